//! Prometheus metrics in the text exposition format: requests by verb and code, request
//! latency as a histogram, open watches, and the storage revision.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The apiserver's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    watches: AtomicI64,
    extra: Mutex<Vec<Counter>>,
    sections: Sections,
}

/// Registered sections (their text is not shown by `Debug`).
#[derive(Default)]
struct Sections(Mutex<Vec<Section>>);

impl std::fmt::Debug for Sections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sections")
    }
}

/// Another component's metrics, already in the exposition format (the scheduler's).
pub type Section = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// A counter another part of the process keeps (the GitOps engine's failed writes), shown
/// with the apiserver's.
#[derive(Clone)]
pub struct Counter {
    /// Metric name.
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// Label name and value of each series, and its value.
    pub series: std::sync::Arc<dyn Fn() -> Vec<(String, u64)> + Send + Sync>,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter").field("name", &self.name).finish()
    }
}

impl Metrics {
    /// Counts a finished request.
    pub fn request(&self, verb: &str, code: u16, elapsed: Duration) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((verb.to_owned(), code)).or_default() += 1;
        }
        if verb == "watch" {
            // A watch lasts as long as the client wants: not a latency.
            return;
        }
        let seconds = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// A watch opened (+1) or closed (-1).
    pub fn watch_delta(&self, delta: i64) {
        self.watches.fetch_add(delta, Ordering::Relaxed);
    }

    /// Shows `counter` on `/metrics` from now on.
    pub fn register(&self, counter: Counter) {
        if let Ok(mut extra) = self.extra.lock() {
            extra.push(counter);
        }
    }

    /// Shows another component's metrics text on `/metrics` from now on.
    pub fn register_section(&self, section: Section) {
        if let Ok(mut sections) = self.sections.0.lock() {
            sections.push(section);
        }
    }

    /// The exposition text.
    pub fn render(&self, revision: Option<i64>) -> String {
        let mut out = String::new();
        if let Ok(sections) = self.sections.0.lock() {
            for section in sections.iter() {
                out.push_str(&section());
            }
        }
        if let Ok(extra) = self.extra.lock() {
            for counter in extra.iter() {
                out.push_str(&format!(
                    "# HELP {} {}\n# TYPE {} counter\n",
                    counter.name, counter.help, counter.name
                ));
                for (labels, value) in (counter.series)() {
                    out.push_str(&format!("{}{{{labels}}} {value}\n", counter.name));
                }
            }
        }
        out.push_str("# HELP apiserver_request_total Requests served, by verb and HTTP code.\n# TYPE apiserver_request_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((verb, code), n) in requests.iter() {
                out.push_str(&format!(
                    "apiserver_request_total{{verb=\"{verb}\",code=\"{code}\"}} {n}\n"
                ));
            }
        }
        out.push_str("# HELP apiserver_request_duration_seconds Request latency (watches excluded).\n# TYPE apiserver_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "apiserver_request_duration_seconds_bucket{{le=\"{bound}\"}} {}\n",
                self.buckets[i].load(Ordering::Relaxed)
            ));
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        out.push_str(&format!(
            "apiserver_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        out.push_str(&format!(
            "apiserver_request_duration_seconds_sum {}\napiserver_request_duration_seconds_count {count}\n",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!(
            "# HELP apiserver_watches Open watches.\n# TYPE apiserver_watches gauge\napiserver_watches {}\n",
            self.watches.load(Ordering::Relaxed)
        ));
        if let Some(revision) = revision {
            out.push_str(&format!(
                "# HELP ferry_storage_revision The global revision (last resourceVersion).\n# TYPE ferry_storage_revision gauge\nferry_storage_revision {revision}\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let m = Metrics::default();
        m.request("get", 200, Duration::from_millis(3));
        m.request("get", 200, Duration::from_millis(30));
        m.request("create", 409, Duration::from_micros(500));
        m.request("watch", 200, Duration::from_secs(60));
        m.watch_delta(1);
        let text = m.render(Some(42));
        assert!(text.contains("apiserver_request_total{verb=\"get\",code=\"200\"} 2\n"));
        assert!(text.contains("apiserver_request_total{verb=\"create\",code=\"409\"} 1\n"));
        assert!(text.contains("apiserver_request_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("apiserver_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("apiserver_watches 1\n"));
        assert!(text.contains("ferry_storage_revision 42\n"));
    }
}
