//! What a scenario reports: its figures, in order, and every broken promise.

use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Report {
    pub name: String,
    pub promise: String,
    pub figures: Vec<(String, String)>,
    pub failures: Vec<String>,
    pub took: Duration,
}

impl Report {
    pub fn new(name: &str, promise: &str) -> Report {
        Report {
            name: name.to_owned(),
            promise: promise.to_owned(),
            ..Report::default()
        }
    }

    pub fn figure(&mut self, name: &str, value: impl std::fmt::Display) {
        self.figures.push((name.to_owned(), value.to_string()));
    }

    /// Records a broken promise unless `ok`.
    pub fn expect(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report as text: a heading, the promise, one figure per line, the failures.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let _ = writeln!(
            out,
            "== {} [{verdict}] ({:.1} s)\n   promise: {}",
            self.name,
            self.took.as_secs_f64(),
            self.promise
        );
        for (k, v) in &self.figures {
            let _ = writeln!(out, "   {k}: {v}");
        }
        for f in &self.failures {
            let _ = writeln!(out, "   FAILED: {f}");
        }
        out
    }
}

/// `1.23 s` / `45 ms`.
pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// A list of durations as `a, b, c`.
pub fn list(ds: &[Duration]) -> String {
    ds.iter().map(|d| secs(*d)).collect::<Vec<_>>().join(", ")
}

/// Items as `a, b, c`.
pub fn joined<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Answers by status as `200 ×5, 503 ×2`.
pub fn statuses(by_status: &std::collections::BTreeMap<u16, u64>) -> String {
    by_status
        .iter()
        .map(|(s, n)| format!("{s} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
