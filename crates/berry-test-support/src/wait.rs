//! Waiting on observable state instead of sleeping to order events in tests.

use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(10);

/// How long [`wait_for`] waits.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Polls `f` until it holds or `timeout` passes; whether it held (checked once more at the
/// deadline).
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    f()
}

/// Polls `f` until it holds; panics naming `what` after [`DEFAULT_TIMEOUT`].
pub fn wait_for(what: &str, f: impl FnMut() -> bool) {
    assert!(
        wait_until(DEFAULT_TIMEOUT, f),
        "timed out waiting for {what}"
    );
}

/// [`wait_until`] on a tokio runtime: the wait between polls yields the thread.
pub async fn wait_until_async(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(POLL).await;
    }
    f()
}
