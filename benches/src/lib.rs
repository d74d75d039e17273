//! Shared fixture for mutatis's benchmarks: a deterministic document generator and the lens
//! chain `todo@1 → … → todo@10` that the criterion benches and the `compare` binary both run.
//!
//! Everything here is generated from a seed, so two runs (or two machines) measure the same
//! bytes and no external data set is needed.

pub mod load;

use mutatis_lens::{Direction, Lens, LensError, Plan, Transforms};
use serde_json::{json, Value};

/// How many documents the standard fixture holds.
pub const DOCS: usize = 100_000;

/// The seed of the standard fixture.
pub const SEED: u64 = 0x6d75_7461_7469_7321;

/// The lenses between adjacent versions, `LENSES[i]` carrying version `i + 1` to `i + 2`.
///
/// `v1 → v4` (the first three) uses every op kind the issue names: rename, add, a table
/// convert, a nested `in` + rename and a remove. `v4 → v10` adds the churn a long-lived type
/// accumulates: a field renamed four times, fields added and later removed, repeated edits
/// inside `owner`, and a second convert, 23 ops in all.
pub const LENSES: [&str; 9] = [
    // v1 → v2
    "lens:
  - rename: {source: title, destination: summary}
  - add: {name: important, type: boolean, default: false}
",
    // v2 → v3
    "lens:
  - convert:
      name: done
      sourceType: boolean
      destinationType: string
      forward: {'true': done, 'false': open}
      backward: {done: true, open: false}
  - in: {name: owner, lens: [{rename: {source: name, destination: fullName}}]}
",
    // v3 → v4
    "lens:
  - remove: {name: legacyCode, type: string}
",
    // v4 → v5
    "lens:
  - rename: {source: summary, destination: headline}
  - in: {name: owner, lens: [{rename: {source: email, destination: mail}}]}
  - add: {name: archived, type: boolean}
",
    // v5 → v6
    "lens:
  - rename: {source: priority, destination: rank}
  - add: {name: reviewers, type: array, items: {type: string}}
  - rename: {source: estimateHours, destination: estimate}
",
    // v6 → v7
    "lens:
  - rename: {source: headline, destination: title}
  - remove: {name: archived, type: boolean}
  - in: {name: owner, lens: [{add: {name: team, type: string, default: core}}]}
",
    // v7 → v8
    "lens:
  - rename: {source: createdAt, destination: created}
  - convert:
      name: rank
      sourceType: integer
      destinationType: string
      forward: {'1': low, '2': low, '3': medium, '4': high, '5': urgent}
      backward: {low: 1, medium: 3, high: 4, urgent: 5}
  - remove: {name: reviewers, type: array}
",
    // v8 → v9
    "lens:
  - rename: {source: title, destination: subject}
  - add: {name: revision, type: integer, default: 1}
  - in: {name: owner, lens: [{rename: {source: mail, destination: email}}]}
",
    // v9 → v10
    "lens:
  - rename: {source: notes, destination: description}
  - rename: {source: id, destination: key}
  - add: {name: watchers, type: integer, default: 0}
",
];

/// The lenses, parsed.
pub fn lenses() -> Result<Vec<Lens>, LensError> {
    LENSES
        .iter()
        .map(|text| Lens::from_file_str(text))
        .collect()
}

/// The plan `v1 → v{to}`, composed from the adjacent lenses with [`Plan::compose`].
/// `to == 1` is [`Plan::identity`].
pub fn plan_from_v1(lenses: &[Lens], to: usize) -> Result<Plan, LensError> {
    let steps = to.saturating_sub(1).min(lenses.len());
    let labels: Vec<String> = (1..=steps).map(|v| format!("todo {v}→{}", v + 1)).collect();
    Plan::compose(
        labels
            .iter()
            .zip(&lenses[..steps])
            .map(|(label, lens)| (label.as_str(), lens, Direction::Forward)),
        &Transforms::new(),
    )
}

/// How many ops the lenses `v1 → v{to}` declare, counting nested ones.
pub fn op_count(lenses: &[Lens], to: usize) -> usize {
    fn count(ops: &[mutatis_lens::LensOp]) -> usize {
        ops.iter()
            .map(|op| match op {
                mutatis_lens::LensOp::In { lens, .. } | mutatis_lens::LensOp::Map { lens } => {
                    1 + count(lens)
                }
                _ => 1,
            })
            .sum()
    }
    lenses
        .iter()
        .take(to.saturating_sub(1))
        .map(|l| count(l.ops()))
        .sum()
}

/// SplitMix64: tiny, fast and fully determined by its seed, which is all a fixture needs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        let span = hi.saturating_sub(lo).saturating_add(1);
        lo.saturating_add(self.next_u64() % span)
    }

    /// One of `items` (`""` when there are none).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = self.next_u64().checked_rem(items.len() as u64).unwrap_or(0);
        items.get(i as usize).copied().unwrap_or("")
    }
}

const WORDS: &[&str] = &[
    "buy",
    "milk",
    "call",
    "the",
    "plumber",
    "about",
    "kitchen",
    "sink",
    "review",
    "quarterly",
    "report",
    "draft",
    "email",
    "to",
    "team",
    "book",
    "flights",
    "for",
    "conference",
    "renew",
    "passport",
    "before",
    "june",
    "fix",
    "bike",
    "tyre",
    "water",
    "plants",
    "on",
    "balcony",
    "prepare",
    "slides",
    "budget",
    "meeting",
    "pick",
    "up",
    "parcel",
    "from",
    "post",
    "office",
];
const FIRST: &[&str] = &[
    "Mary", "Ann", "José", "Wei", "Olu", "Priya", "Lars", "Zoë", "Ahmed", "Keiko", "Sam", "Ines",
];
const LAST: &[&str] = &[
    "Smith", "Okafor", "García", "Chen", "Nakamura", "Müller", "Haddad", "Kowalski", "Silva",
    "Novak",
];
const TAGS: &[&str] = &[
    "home", "work", "errand", "urgent", "weekly", "finance", "health", "travel",
];

fn sentence(rng: &mut Rng, lo: u64, hi: u64) -> String {
    let n = rng.range(lo, hi);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(rng.pick(WORDS));
    }
    s
}

/// One `todo@1` document: 10 top-level fields, one of them a nested object, about 330 bytes.
pub fn document(rng: &mut Rng, index: usize) -> Value {
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let tags: Vec<&str> = (0..rng.range(1, 3)).map(|_| rng.pick(TAGS)).collect();
    json!({
        "id": format!("t-{index:010}"),
        "title": sentence(rng, 3, 7),
        "done": rng.next_u64() % 2 == 0,
        "priority": rng.range(1, 5),
        "owner": {
            "name": format!("{first} {last}"),
            "email": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase()),
        },
        "tags": tags,
        "createdAt": format!(
            "2025-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            rng.range(1, 12), rng.range(1, 28), rng.range(0, 23), rng.range(0, 59), rng.range(0, 59)
        ),
        "estimateHours": rng.range(1, 4000) as f64 / 100.0,
        "notes": sentence(rng, 8, 16),
        "legacyCode": format!("LC-{:05}", rng.range(0, 99_999)),
    })
}

/// `count` documents from `seed`, each serialised compactly.
pub fn documents(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let doc = document(&mut rng, i);
            // Serialising a `Value` built from strings and numbers cannot fail.
            serde_json::to_vec(&doc).unwrap_or_default()
        })
        .collect()
}

/// Total bytes of a set of documents.
pub fn total_bytes(docs: &[Vec<u8>]) -> usize {
    docs.iter().map(Vec::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutatis_lens::Params;

    #[test]
    fn fixture_is_deterministic_and_the_advertised_size() {
        let a = documents(SEED, 2_000);
        let b = documents(SEED, 2_000);
        assert_eq!(a, b);
        assert_ne!(a, documents(SEED + 1, 2_000));
        let avg = total_bytes(&a) / a.len();
        assert!(
            (300..=360).contains(&avg),
            "average document is {avg} bytes"
        );
        let doc: Value = serde_json::from_slice(&a[0]).unwrap();
        assert_eq!(doc.as_object().unwrap().len(), 10);
    }

    #[test]
    fn chain_has_the_ops_the_issue_asks_for() {
        let lenses = lenses().unwrap();
        assert!(op_count(&lenses, 4) >= 5);
        assert!(op_count(&lenses, 10) >= 20);
        let v4 = plan_from_v1(&lenses, 4).unwrap();
        let names: Vec<&str> = v4.ops().iter().map(|d| d.op.name()).collect();
        for op in ["rename", "add", "convert", "in", "remove"] {
            assert!(names.contains(&op), "{op} missing from {names:?}");
        }
        assert!(plan_from_v1(&lenses, 1).unwrap().is_identity());
    }

    #[test]
    fn raw_and_value_translation_agree_on_the_fixture() {
        let lenses = lenses().unwrap();
        let docs = documents(SEED, 500);
        for to in [2, 4, 10] {
            let plan = plan_from_v1(&lenses, to).unwrap();
            for doc in &docs {
                let mut out = Vec::new();
                plan.translate_bytes(doc, &Params::new(), &mut out).unwrap();
                let via_bytes: Value = serde_json::from_slice(&out).unwrap();
                let via_value = plan
                    .translate(&serde_json::from_slice(doc).unwrap(), &Params::new())
                    .unwrap();
                assert_eq!(via_bytes, via_value);
                // Key order too: the raw path must not reshuffle the document.
                let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
                assert_eq!(keys(&via_bytes), keys(&via_value), "v1→v{to}");
            }
        }
        let v10 = plan_from_v1(&lenses, 10).unwrap();
        let out = v10
            .translate(&serde_json::from_slice(&docs[0]).unwrap(), &Params::new())
            .unwrap();
        let obj = out.as_object().unwrap();
        for field in [
            "key",
            "subject",
            "rank",
            "estimate",
            "created",
            "description",
        ] {
            assert!(obj.contains_key(field), "{field} missing from {out}");
        }
        assert_eq!(obj["owner"]["team"], "core");
        assert!(obj["owner"].get("email").is_some());
    }
}
