//! `/metrics` in Prometheus's text format: requests by route and status, tokens read and
//! generated, the queue and the active sequences, sequences cancelled by a closed
//! connection, and histograms of the time to the first token and between tokens. Written
//! by hand: a handful of counters does not need a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Histogram buckets in seconds (upper bounds), from 5 ms to 60 s.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// A Prometheus histogram.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        for (c, &upper) in self.counts.iter_mut().zip(&BUCKETS) {
            if seconds <= upper {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (c, upper) in self.counts.iter().zip(&BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{upper}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// Everything `/metrics` reports.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// (route, status) → requests.
    pub requests: BTreeMap<(String, u16), u64>,
    pub prompt_tokens: u64,
    pub generated_tokens: u64,
    pub queued_requests: usize,
    pub active_sequences: usize,
    pub cancelled_sequences: u64,
    /// Batched forward passes, the rows they computed, and their time.
    pub steps: u64,
    pub step_rows: u64,
    pub step_seconds: f64,
    pub time_to_first_token: Histogram,
    pub time_per_token: Histogram,
}

impl Metrics {
    pub fn request(&mut self, route: &str, status: u16) {
        *self
            .requests
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    /// The text `/metrics` serves.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        };
        let _ = writeln!(
            out,
            "# HELP fmlab_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE fmlab_requests_total counter");
        for ((route, status), n) in &self.requests {
            let _ = writeln!(
                out,
                "fmlab_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        counter(
            &mut out,
            "fmlab_prompt_tokens_total",
            "Prompt tokens read.",
            self.prompt_tokens.to_string(),
        );
        counter(
            &mut out,
            "fmlab_generated_tokens_total",
            "Tokens generated.",
            self.generated_tokens.to_string(),
        );
        counter(
            &mut out,
            "fmlab_cancelled_sequences_total",
            "Sequences dropped because their client closed the connection.",
            self.cancelled_sequences.to_string(),
        );
        counter(
            &mut out,
            "fmlab_batch_steps_total",
            "Batched forward passes.",
            self.steps.to_string(),
        );
        counter(
            &mut out,
            "fmlab_batch_rows_total",
            "Token rows computed by the batched forward passes.",
            self.step_rows.to_string(),
        );
        counter(
            &mut out,
            "fmlab_batch_seconds_total",
            "Time spent in batched forward passes.",
            format!("{}", self.step_seconds),
        );
        gauge(
            &mut out,
            "fmlab_queue_length",
            "Requests waiting for a slot.",
            self.queued_requests.to_string(),
        );
        gauge(
            &mut out,
            "fmlab_active_sequences",
            "Sequences being read or decoded.",
            self.active_sequences.to_string(),
        );
        self.time_to_first_token.write(
            &mut out,
            "fmlab_time_to_first_token_seconds",
            "From a sequence's admission to its first token.",
        );
        self.time_per_token.write(
            &mut out,
            "fmlab_time_per_output_token_seconds",
            "Between consecutive tokens of a sequence.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let mut h = Histogram::default();
        for s in [0.001, 0.02, 0.02, 3.0, 100.0] {
            h.observe(s);
        }
        let mut out = String::new();
        h.write(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.025\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"5\"} 4\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 5\n"), "{out}");
        assert!(out.contains("x_count 5\n"), "{out}");
    }
}
