//! A per-attempt deadline for upstream response headers on HTTP/1 connections.
//!
//! Pingora applies one `read_timeout` to every upstream read — the wait for headers and
//! each gap between body chunks alike. Streams need a long gap allowance
//! (`stream_idle_timeout_seconds`) but a short header deadline (the attempt timeout), so
//! for streaming requests the header deadline is enforced here: when it passes, the
//! upstream socket is shut down, the pending read fails, and the attempt is classified as
//! a timeout. The watchdog holds its own duplicate of the socket descriptor, so it can
//! never touch a different connection that reuses the number.

use std::net::Shutdown;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Armed deadline; disarmed by dropping it.
#[derive(Debug)]
pub struct Watchdog {
    task: tokio::task::JoinHandle<()>,
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    /// Shuts the socket `fd` down after `after` unless dropped first. `fd` must be an open
    /// TCP socket for the duration of this call.
    pub fn arm(fd: RawFd, after: Duration) -> std::io::Result<Watchdog> {
        // SAFETY: the caller guarantees `fd` is open during this call; we only duplicate it.
        let owned = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
        let socket = std::net::TcpStream::from(owned);
        let fired = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&fired);
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            flag.store(true, Ordering::Release);
            let _ = socket.shutdown(Shutdown::Both);
        });
        Ok(Watchdog { task, fired })
    }

    /// Whether the deadline passed and the socket was shut down.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.task.abort();
    }
}
