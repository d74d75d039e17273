//! Prometheus metrics of the server: requests per release, type, method and status (the
//! numbers that say when a release can be retired), their durations per release and type, and
//! migration progress.
//!
//! A small hand-written registry rather than a metrics crate: the server needs four series and
//! the text exposition format 0.0.4, which is a page of code. Each hot-path call takes one
//! mutex for a few map lookups and integer additions, and allocates only the first time it
//! sees a label combination (the maps are nested so that lookups borrow `&str`).
//!
//! Label values come from closed sets: the server's edge (`http.rs`) names releases and types
//! of the schema set, or `other`, and a method it routes, or `other`; so the series are
//! bounded by the schema set, whatever clients send. The duration histogram (sixteen lines
//! a series) leaves the method out, which keeps a scrape small. As a second line of defence
//! against a defective caller, past [`MAX_SERIES`] label combinations new ones are counted
//! under `release="other"`, `type="other"`, so memory and the size of a scrape stay bounded.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Upper bounds (seconds) of the request duration histogram's buckets, from 0.5 ms to 5 s.
pub const DURATION_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The most (release, type, method) combinations recorded separately; see the module docs.
pub const MAX_SERIES: usize = 4096;

/// The label value that stands for every combination past [`MAX_SERIES`].
const OVERFLOW_LABEL: &str = "other";

/// The server's metrics registry: cheap to update from every request, rendered on scrape.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<RequestSeries>,
    migrations: Mutex<BTreeMap<String, MigrationProgress>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("series", &lock(&self.requests).count)
            .finish_non_exhaustive()
    }
}

/// release → type → what was observed. Nested so that a lookup borrows the labels.
#[derive(Default)]
struct RequestSeries {
    by_release: BTreeMap<String, BTreeMap<String, Observed>>,
    /// How many (release, type, method) combinations exist.
    count: usize,
}

/// One (release, type): counts by method and status, and the duration histogram.
#[derive(Default)]
struct Observed {
    by_method: BTreeMap<String, BTreeMap<u16, u64>>,
    durations: Histogram,
}

/// Request durations.
#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket of [`DURATION_BUCKETS`], then the overflow bucket.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// The last progress reported for one type's migration.
struct MigrationProgress {
    phase: String,
    done: u64,
    total: u64,
}

/// The registry's data stays consistent under a panic elsewhere (every update is a handful of
/// plain assignments), so a poisoned lock is used as it is rather than failing every request.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RequestSeries {
    /// Apply `record` to the histogram of (release, type) and the status counts of `method`
    /// in it: found by borrowed lookups when they exist (the common case: no allocation),
    /// created otherwise, or the overflow entry when the registry is full.
    fn record(
        &mut self,
        release: &str,
        type_name: &str,
        method: &str,
        record: impl FnOnce(&mut Histogram, &mut BTreeMap<u16, u64>),
    ) {
        if let Some(Observed {
            by_method,
            durations,
        }) = self
            .by_release
            .get_mut(release)
            .and_then(|t| t.get_mut(type_name))
        {
            if let Some(statuses) = by_method.get_mut(method) {
                record(durations, statuses);
                return;
            }
        }
        let (release, type_name) = if self.count < MAX_SERIES {
            (release, type_name)
        } else {
            (OVERFLOW_LABEL, OVERFLOW_LABEL)
        };
        let Observed {
            by_method,
            durations,
        } = self
            .by_release
            .entry(release.to_owned())
            .or_default()
            .entry(type_name.to_owned())
            .or_default();
        if !by_method.contains_key(method) {
            self.count += 1;
        }
        record(durations, by_method.entry(method.to_owned()).or_default());
    }
}

impl Metrics {
    /// Records one answered request: `release` is the release it was served in (`""` when
    /// none was negotiated), `type_name` the document type (`""` for other routes).
    ///
    /// A duration that is negative or not finite (a clock that went backwards) is recorded as
    /// zero, so it cannot poison the sum.
    pub fn observe_request(
        &self,
        release: &str,
        type_name: &str,
        method: &str,
        status: u16,
        seconds: f64,
    ) {
        let seconds = if seconds.is_finite() && seconds > 0.0 {
            seconds
        } else {
            0.0
        };
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(DURATION_BUCKETS.len());
        let mut series = lock(&self.requests);
        series.record(release, type_name, method, |durations, statuses| {
            *statuses.entry(status).or_default() += 1;
            durations.buckets[bucket] += 1;
            durations.sum += seconds;
            durations.count += 1;
        });
    }

    /// Records a migration's progress: `done` of `total` documents of `type_name`, in `phase`
    /// (the migration's state name). A new phase replaces the type's previous one.
    pub fn set_migration_progress(&self, type_name: &str, done: u64, total: u64, phase: &str) {
        let mut migrations = lock(&self.migrations);
        let progress = MigrationProgress {
            phase: phase.to_owned(),
            done,
            total,
        };
        migrations.insert(type_name.to_owned(), progress);
    }

    /// Renders every metric in the Prometheus text exposition format 0.0.4, series sorted by
    /// label values (so two scrapes of the same state are the same bytes).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason.
        {
            let series = lock(&self.requests);
            let _ = render_requests(&mut out, &series);
        }
        let migrations = lock(&self.migrations);
        let _ = render_migrations(&mut out, &migrations);
        out
    }
}

fn render_requests(out: &mut String, series: &RequestSeries) -> fmt::Result {
    let leaves = || {
        series.by_release.iter().flat_map(|(release, types)| {
            types
                .iter()
                .map(move |(type_name, observed)| (release, type_name, observed))
        })
    };

    writeln!(
        out,
        "# HELP mutatis_requests_total Requests answered, by release served, document type, \
         method and status."
    )?;
    writeln!(out, "# TYPE mutatis_requests_total counter")?;
    for (release, type_name, observed) in leaves() {
        for (method, statuses) in &observed.by_method {
            for (status, n) in statuses {
                writeln!(
                    out,
                    "mutatis_requests_total{{release=\"{}\",type=\"{}\",method=\"{}\",\
                     status=\"{status}\"}} {n}",
                    Escaped(release),
                    Escaped(type_name),
                    Escaped(method),
                )?;
            }
        }
    }

    writeln!(
        out,
        "# HELP mutatis_request_duration_seconds Time to answer a request, by release served \
         and document type."
    )?;
    writeln!(out, "# TYPE mutatis_request_duration_seconds histogram")?;
    for (release, type_name, observed) in leaves() {
        let labels = format!(
            "release=\"{}\",type=\"{}\"",
            Escaped(release),
            Escaped(type_name),
        );
        let h = &observed.durations;
        let mut cumulative = 0u64;
        for (le, n) in DURATION_BUCKETS.iter().zip(&h.buckets) {
            cumulative += n;
            writeln!(
                out,
                "mutatis_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            )?;
        }
        writeln!(
            out,
            "mutatis_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        )?;
        writeln!(
            out,
            "mutatis_request_duration_seconds_sum{{{labels}}} {}",
            h.sum
        )?;
        writeln!(
            out,
            "mutatis_request_duration_seconds_count{{{labels}}} {}",
            h.count
        )?;
    }
    Ok(())
}

fn render_migrations(
    out: &mut String,
    migrations: &BTreeMap<String, MigrationProgress>,
) -> fmt::Result {
    writeln!(
        out,
        "# HELP mutatis_migration_documents Documents a migration has processed, by type and \
         phase."
    )?;
    writeln!(out, "# TYPE mutatis_migration_documents gauge")?;
    for (type_name, p) in migrations {
        writeln!(
            out,
            "mutatis_migration_documents{{type=\"{}\",phase=\"{}\"}} {}",
            Escaped(type_name),
            Escaped(&p.phase),
            p.done
        )?;
    }
    writeln!(
        out,
        "# HELP mutatis_migration_total Documents a migration has to process, by type."
    )?;
    writeln!(out, "# TYPE mutatis_migration_total gauge")?;
    for (type_name, p) in migrations {
        writeln!(
            out,
            "mutatis_migration_total{{type=\"{}\"}} {}",
            Escaped(type_name),
            p.total
        )?;
    }
    Ok(())
}

/// A label value escaped as the text format requires: `\` → `\\`, `"` → `\"`, newline → `\n`.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample line: metric name, labels (unescaped), value.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    /// A small parser of the text format: `# HELP`/`# TYPE` lines, and samples whose label
    /// values are unescaped. Fails the test on anything it does not understand.
    fn parse(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
        let mut samples = Vec::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(types.insert(name.to_owned(), kind.to_owned()).is_none());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment {line}");
            let (name, rest) = match line.find('{') {
                Some(i) => (&line[..i], &line[i..]),
                None => line.split_at(line.find(' ').unwrap()),
            };
            let mut labels = BTreeMap::new();
            let mut chars = rest.chars().peekable();
            if chars.peek() == Some(&'{') {
                chars.next();
                loop {
                    let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().unwrap() {
                            '\\' => match chars.next().unwrap() {
                                '\\' => value.push('\\'),
                                '"' => value.push('"'),
                                'n' => value.push('\n'),
                                other => panic!("bad escape \\{other} in {line}"),
                            },
                            '"' => break,
                            '\n' => panic!("raw newline in {line}"),
                            c => value.push(c),
                        }
                    }
                    labels.insert(key.trim_start_matches(',').to_owned(), value);
                    match chars.next() {
                        Some(',') => continue,
                        Some('}') => break,
                        other => panic!("unexpected {other:?} in {line}"),
                    }
                }
            }
            let value: String = chars.collect();
            let value = value.trim();
            let value = if value == "+Inf" {
                f64::INFINITY
            } else {
                value.parse().unwrap()
            };
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        (samples, types)
    }

    fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
        samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = find(samples, name, labels);
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    #[test]
    fn requests_are_counted_by_status_and_timed_in_cumulative_buckets() {
        let m = Metrics::default();
        m.observe_request("5", "Student", "GET", 200, 0.0003);
        m.observe_request("5", "Student", "GET", 200, 0.003);
        m.observe_request("5", "Student", "GET", 404, 0.2);
        m.observe_request("5", "Student", "GET", 200, 7.0);
        m.observe_request("3", "Student", "PUT", 412, 0.001);
        let (samples, types) = parse(&m.render());

        assert_eq!(types["mutatis_requests_total"], "counter");
        assert_eq!(types["mutatis_request_duration_seconds"], "histogram");
        assert_eq!(types["mutatis_migration_documents"], "gauge");
        assert_eq!(types["mutatis_migration_total"], "gauge");

        let get = [("release", "5"), ("type", "Student"), ("method", "GET")];
        // Durations are per release and type (the method is left out of the histogram).
        let timed = [("release", "5"), ("type", "Student")];
        let with = |status: &'static str| {
            let mut l = get.to_vec();
            l.push(("status", status));
            l
        };
        assert_eq!(value(&samples, "mutatis_requests_total", &with("200")), 3.0);
        assert_eq!(value(&samples, "mutatis_requests_total", &with("404")), 1.0);
        assert_eq!(
            value(
                &samples,
                "mutatis_requests_total",
                &[("release", "3"), ("method", "PUT"), ("status", "412")]
            ),
            1.0
        );

        let bucket = |le: &'static str| {
            let mut l = timed.to_vec();
            l.push(("le", le));
            value(&samples, "mutatis_request_duration_seconds_bucket", &l)
        };
        assert_eq!(bucket("0.0005"), 1.0);
        assert_eq!(bucket("0.001"), 1.0);
        assert_eq!(bucket("0.005"), 2.0);
        assert_eq!(bucket("0.1"), 2.0);
        assert_eq!(bucket("0.25"), 3.0);
        assert_eq!(bucket("5"), 3.0);
        assert_eq!(bucket("+Inf"), 4.0);
        // Buckets never decrease and end at the count.
        let buckets = find(&samples, "mutatis_request_duration_seconds_bucket", &timed);
        assert_eq!(buckets.len(), DURATION_BUCKETS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
        assert!(buckets.iter().all(|b| !b.labels.contains_key("method")));
        assert_eq!(
            value(&samples, "mutatis_request_duration_seconds_count", &timed),
            4.0
        );
        let sum = value(&samples, "mutatis_request_duration_seconds_sum", &timed);
        assert!((sum - 7.2033).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn unusable_durations_count_as_zero() {
        let m = Metrics::default();
        m.observe_request("", "", "GET", 200, f64::NAN);
        m.observe_request("", "", "GET", 200, -1.0);
        let (samples, _) = parse(&m.render());
        let labels = [("release", ""), ("type", "")];
        assert_eq!(
            value(&samples, "mutatis_request_duration_seconds_sum", &labels),
            0.0
        );
        let mut first = labels.to_vec();
        first.push(("le", "0.0005"));
        assert_eq!(
            value(&samples, "mutatis_request_duration_seconds_bucket", &first),
            2.0
        );
    }

    #[test]
    fn migration_progress_replaces_the_previous_phase() {
        let m = Metrics::default();
        m.set_migration_progress("todo", 10, 100, "restoring");
        m.set_migration_progress("todo", 100, 100, "replaying");
        let (samples, _) = parse(&m.render());
        let docs = find(&samples, "mutatis_migration_documents", &[("type", "todo")]);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].labels["phase"], "replaying");
        assert_eq!(docs[0].value, 100.0);
        assert_eq!(
            value(&samples, "mutatis_migration_total", &[("type", "todo")]),
            100.0
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        let nasty = "a\\b\"c\nd";
        m.observe_request(nasty, "T", "GET", 200, 0.1);
        m.set_migration_progress(nasty, 1, 2, "x\"y");
        let text = m.render();
        assert!(text.contains(r#"release="a\\b\"c\nd""#), "{text}");
        // Every sample stays on one line, and the parser gets the original value back.
        let (samples, _) = parse(&text);
        assert_eq!(
            value(
                &samples,
                "mutatis_requests_total",
                &[("release", nasty), ("status", "200")]
            ),
            1.0
        );
        assert_eq!(
            find(&samples, "mutatis_migration_documents", &[("type", nasty)])[0].labels["phase"],
            "x\"y"
        );
    }

    #[test]
    fn label_combinations_are_bounded() {
        let m = Metrics::default();
        for i in 0..MAX_SERIES + 10 {
            m.observe_request(&i.to_string(), "T", "GET", 200, 0.0);
        }
        let (samples, _) = parse(&m.render());
        let counters = find(&samples, "mutatis_requests_total", &[]);
        assert_eq!(counters.len(), MAX_SERIES + 1);
        assert_eq!(
            value(
                &samples,
                "mutatis_requests_total",
                &[("release", OVERFLOW_LABEL), ("type", OVERFLOW_LABEL)]
            ),
            10.0
        );
    }

    #[test]
    fn metrics_are_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Metrics>();
        let m = Metrics::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..250 {
                        m.observe_request("5", "T", "GET", 200, 0.01);
                    }
                });
            }
        });
        let (samples, _) = parse(&m.render());
        assert_eq!(
            value(&samples, "mutatis_requests_total", &[("release", "5")]),
            1000.0
        );
    }
}
