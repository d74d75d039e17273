//! Prometheus metrics of the server: requests per release, type, method and status (the
//! numbers that say when a release can be retired), their durations per release and type, and
//! migration progress; kept and rendered by `prometheus-client` (the OpenMetrics text format,
//! which Prometheus scrapes).
//!
//! Label values come from closed sets: the server's edge (`http.rs`) names releases and types
//! of the schema set, or `other`, and a method it routes, or `other`; so the series are
//! bounded by the schema set, whatever clients send. The duration histogram leaves the method
//! out, which keeps a scrape small. As a second line of defence against a defective caller,
//! past [`MAX_SERIES`] label combinations new ones are counted under `release="other"`,
//! `type="other"`, so memory and the size of a scrape stay bounded.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the request duration histogram's buckets, from 0.5 ms to 5 s.
pub const DURATION_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The most (release, type, method) combinations recorded separately; see the module docs.
pub const MAX_SERIES: usize = 4096;

/// The label value that stands for every combination past [`MAX_SERIES`].
const OVERFLOW_LABEL: &str = "other";

/// `release`, `type`, `method`, `status`.
type RequestLabels = [(&'static str, String); 4];
/// `release`, `type`; or `type`, `phase`.
type PairLabels = [(&'static str, String); 2];
type TypeLabel = [(&'static str, String); 1];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The server's metrics registry: cheap to update from every request, rendered on scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<PairLabels, Histogram, fn() -> Histogram>,
    migration_documents: Family<PairLabels, Gauge>,
    migration_expected: Family<TypeLabel, Gauge>,
    /// The (release, type, method) combinations recorded, bounded by [`MAX_SERIES`].
    series: Mutex<HashSet<(String, String, String)>>,
    /// Each type's migration phase last reported: a new phase replaces its series.
    phases: Mutex<BTreeMap<String, String>>,
    /// The series of every (release, type) recorded so far, by release then type, looked up
    /// with borrowed names: a request to a series seen before allocates nothing and hashes
    /// no label set. Holds only series within [`MAX_SERIES`].
    handles: Mutex<foldhash::HashMap<String, foldhash::HashMap<String, Handles>>>,
}

/// The series of one (release, type): its duration histogram and, per (method, status),
/// its request counter. Clones of the family's own metrics: they share their counts.
#[derive(Debug)]
struct Handles {
    duration: Histogram,
    requests: Vec<(String, u16, Counter)>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: Family<PairLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        let migration_documents = Family::<PairLabels, Gauge>::default();
        let migration_expected = Family::<TypeLabel, Gauge>::default();
        // The counter's samples get the `_total` suffix from the format.
        registry.register(
            "mutatis_requests",
            "Requests answered, by release served, document type, method and status",
            requests.clone(),
        );
        registry.register(
            "mutatis_request_duration_seconds",
            "Time to answer a request, by release served and document type",
            durations.clone(),
        );
        registry.register(
            "mutatis_migration_documents",
            "Documents a migration has processed, by type and phase",
            migration_documents.clone(),
        );
        registry.register(
            "mutatis_migration_documents_expected",
            "Documents a migration has to process, by type",
            migration_expected.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            migration_documents,
            migration_expected,
            series: Mutex::default(),
            phases: Mutex::default(),
            handles: Mutex::default(),
        }
    }
}

/// The bookkeeping stays consistent under a panic elsewhere (every update is an insert), so a
/// poisoned lock is used as it is rather than failing every request.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A count as a gauge's value (counts past `i64::MAX` do not happen; they would saturate).
fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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
        {
            let handles = lock(&self.handles);
            let known = handles.get(release).and_then(|types| types.get(type_name));
            if let Some(h) = known {
                if let Some((_, _, counter)) = h
                    .requests
                    .iter()
                    .find(|(m, s, _)| m == method && *s == status)
                {
                    counter.inc();
                    h.duration.observe(seconds);
                    return;
                }
            }
        }
        let key = (release.to_owned(), type_name.to_owned(), method.to_owned());
        let (release, type_name, within) = {
            let mut series = lock(&self.series);
            if series.contains(&key) || series.len() < MAX_SERIES {
                series.insert(key.clone());
                (key.0, key.1, true)
            } else {
                (OVERFLOW_LABEL.to_owned(), OVERFLOW_LABEL.to_owned(), false)
            }
        };
        let counter = self
            .requests
            .get_or_create(&[
                ("release", release.clone()),
                ("type", type_name.clone()),
                ("method", key.2.clone()),
                ("status", status.to_string()),
            ])
            .clone();
        counter.inc();
        let duration = self
            .durations
            .get_or_create(&[("release", release.clone()), ("type", type_name.clone())])
            .clone();
        duration.observe(seconds);
        // Past the bound, the overflow series is not remembered under the names that led
        // to it: those are what must not grow without bound.
        if within {
            let mut handles = lock(&self.handles);
            let h = handles
                .entry(release)
                .or_default()
                .entry(type_name)
                .or_insert_with(|| Handles {
                    duration,
                    requests: Vec::new(),
                });
            if !h
                .requests
                .iter()
                .any(|(m, s, _)| *m == key.2 && *s == status)
            {
                h.requests.push((key.2, status, counter));
            }
        }
    }

    /// Records a migration's progress: `done` of `total` documents of `type_name`, in `phase`
    /// (the migration's state name). A new phase replaces the type's previous one.
    pub fn set_migration_progress(&self, type_name: &str, done: u64, total: u64, phase: &str) {
        let mut phases = lock(&self.phases);
        if let Some(old) = phases.insert(type_name.to_owned(), phase.to_owned()) {
            if old != phase {
                self.migration_documents
                    .remove(&[("type", type_name.to_owned()), ("phase", old)]);
            }
        }
        self.migration_documents
            .get_or_create(&[("type", type_name.to_owned()), ("phase", phase.to_owned())])
            .set(gauge_value(done));
        self.migration_expected
            .get_or_create(&[("type", type_name.to_owned())])
            .set(gauge_value(total));
    }

    /// Renders every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The media type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
            if line.starts_with("# HELP ") || line.starts_with("# UNIT ") || line == "# EOF" {
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

        // OpenMetrics names a counter without its samples' `_total`.
        assert_eq!(types["mutatis_requests"], "counter");
        assert_eq!(types["mutatis_request_duration_seconds"], "histogram");

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
        assert_eq!(bucket("5.0"), 3.0);
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

    /// The text a scrape reads, line by line (series order within a metric is not fixed).
    #[test]
    fn the_exposition_text() {
        let m = Metrics::default();
        m.observe_request("5", "Student", "GET", 200, 0.003);
        m.set_migration_progress("todo", 10, 100, "filling copies");
        let text = m.render();
        for line in [
            "# HELP mutatis_requests Requests answered, by release served, document type, method and status.",
            "# TYPE mutatis_requests counter",
            r#"mutatis_requests_total{release="5",type="Student",method="GET",status="200"} 1"#,
            "# TYPE mutatis_request_duration_seconds histogram",
            r#"mutatis_request_duration_seconds_sum{release="5",type="Student"} 0.003"#,
            r#"mutatis_request_duration_seconds_count{release="5",type="Student"} 1"#,
            r#"mutatis_request_duration_seconds_bucket{le="0.0025",release="5",type="Student"} 0"#,
            r#"mutatis_request_duration_seconds_bucket{le="0.005",release="5",type="Student"} 1"#,
            r#"mutatis_request_duration_seconds_bucket{le="+Inf",release="5",type="Student"} 1"#,
            "# TYPE mutatis_migration_documents gauge",
            r#"mutatis_migration_documents{type="todo",phase="filling copies"} 10"#,
            "# TYPE mutatis_migration_documents_expected gauge",
            r#"mutatis_migration_documents_expected{type="todo"} 100"#,
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
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
        let (samples, types) = parse(&m.render());
        assert_eq!(types["mutatis_migration_documents"], "gauge");
        // A gauge is not named `_total` (which says "a counter" to Prometheus).
        assert_eq!(types["mutatis_migration_documents_expected"], "gauge");
        assert!(!types.contains_key("mutatis_migration_total"));
        let docs = find(&samples, "mutatis_migration_documents", &[("type", "todo")]);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].labels["phase"], "replaying");
        assert_eq!(docs[0].value, 100.0);
        assert_eq!(
            value(
                &samples,
                "mutatis_migration_documents_expected",
                &[("type", "todo")]
            ),
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
