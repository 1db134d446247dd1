//! Configuration problems: each with the key path it concerns, collected so that every
//! problem of a file is reported at once.

use std::fmt;
use std::time::Duration;

/// One configuration problem: where (`models.gpt_4.backends[0].weight`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects problems with their key paths.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Seconds value: must be finite and > 0 (`allow_zero` for optional features).
    pub(super) fn seconds(&mut self, path: &str, v: Option<f64>, default: f64) -> Duration {
        let v = v.unwrap_or(default);
        if !v.is_finite() || v <= 0.0 || v > 31_536_000.0 {
            self.add(path, format!("must be a number of seconds > 0 (got {v})"));
            return Duration::from_secs_f64(default);
        }
        Duration::from_secs_f64(v)
    }

    pub(super) fn at_least_one(&mut self, path: &str, v: Option<u32>, default: u32) -> u32 {
        let v = v.unwrap_or(default);
        if v == 0 {
            self.add(path, "must be at least 1");
            return default;
        }
        v
    }

    pub(super) fn fraction(&mut self, path: &str, v: Option<f64>, default: f64) -> f64 {
        let v = v.unwrap_or(default);
        if !(0.0..=1.0).contains(&v) {
            self.add(path, format!("must be between 0 and 1 (got {v})"));
            return default;
        }
        v
    }
}
