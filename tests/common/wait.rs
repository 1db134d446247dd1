//! Waiting on observable state instead of sleeping to order events in tests.

use std::time::{Duration, Instant};

/// Polls `f` every 10 ms until it holds; panics naming `what` after 5 s.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
