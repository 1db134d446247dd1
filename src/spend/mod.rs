//! Spend: what requests cost, per user, team, model and backend, per UTC day and month.
//!
//! [`window`] holds the calendar windows and the micro-dollar unit; [`ledger`] this
//! replica's sums. Budgets are enforced by `crate::quota::budget`; with shared state the
//! fleet's sums live in Redis (`crate::shared`), in the same unit and windows.

pub mod ledger;
pub mod window;

pub use ledger::{Balance, Charge, Ledger, Scope, Totals};
pub use window::{micros, now_unix_ms, usd, Period, Window, WINDOWS};
