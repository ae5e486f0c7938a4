//! The scheduler's metrics, named as kube-scheduler names them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const BUCKETS: &[f64] = &[
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192, 16.384,
];

/// Counters and a histogram, shared by the loop and `/metrics`.
#[derive(Debug, Default)]
pub struct SchedulerMetrics {
    /// `scheduler_pending_pods`.
    pub pending: AtomicU64,
    /// `scheduler_schedule_attempts_total{result="scheduled"}`.
    pub scheduled: AtomicU64,
    /// `{result="unschedulable"}`.
    pub unschedulable: AtomicU64,
    /// `{result="error"}` (a binding that failed).
    pub errors: AtomicU64,
    /// `scheduler_preemption_attempts_total`.
    pub preemptions: AtomicU64,
    /// `scheduler_scheduling_attempt_duration_seconds`: bucket counts, sum (µs), count.
    latency: Mutex<(Vec<u64>, u64, u64)>,
}

impl SchedulerMetrics {
    /// Records how long one attempt took.
    pub fn observe(&self, took: Duration) {
        let Ok(mut h) = self.latency.lock() else {
            return;
        };
        if h.0.is_empty() {
            h.0 = vec![0; BUCKETS.len()];
        }
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.0[i] += 1;
            }
        }
        h.1 += took.as_micros() as u64;
        h.2 += 1;
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP scheduler_pending_pods Pods waiting to be scheduled.\n# TYPE scheduler_pending_pods gauge\n");
        out.push_str(&format!(
            "scheduler_pending_pods{{queue=\"active\"}} {}\n",
            self.pending.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP scheduler_schedule_attempts_total Scheduling attempts by result.\n# TYPE scheduler_schedule_attempts_total counter\n");
        for (result, v) in [
            ("scheduled", &self.scheduled),
            ("unschedulable", &self.unschedulable),
            ("error", &self.errors),
        ] {
            out.push_str(&format!(
                "scheduler_schedule_attempts_total{{result=\"{result}\",profile=\"default-scheduler\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out.push_str("# HELP scheduler_preemption_attempts_total Preemption attempts.\n# TYPE scheduler_preemption_attempts_total counter\n");
        out.push_str(&format!(
            "scheduler_preemption_attempts_total {}\n",
            self.preemptions.load(Ordering::Relaxed)
        ));
        if let Ok(h) = self.latency.lock() {
            out.push_str("# HELP scheduler_scheduling_attempt_duration_seconds Scheduling attempt latency.\n# TYPE scheduler_scheduling_attempt_duration_seconds histogram\n");
            for (i, bound) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "scheduler_scheduling_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {}\n",
                    h.0.get(i).copied().unwrap_or(0)
                ));
            }
            out.push_str(&format!(
                "scheduler_scheduling_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {}\n",
                h.2
            ));
            out.push_str(&format!(
                "scheduler_scheduling_attempt_duration_seconds_sum {}\n",
                h.1 as f64 / 1e6
            ));
            out.push_str(&format!(
                "scheduler_scheduling_attempt_duration_seconds_count {}\n",
                h.2
            ));
        }
        out
    }
}
