//! A per-attempt deadline for upstream response headers on HTTP/1 connections.
//!
//! Pingora applies one `read_timeout` to every upstream read — the wait for headers and
//! each gap between body chunks alike. Streams need a long gap allowance
//! (`stream_idle_timeout_seconds`) but a short header deadline (the attempt timeout), so
//! for streaming requests the header deadline is enforced here: when it passes, the
//! upstream socket is shut down, the pending read fails, and the attempt is classified as
//! a timeout. The watchdog holds its own duplicate of the socket descriptor, so it can
//! never touch a different connection that reuses the number.
//!
//! Who waits for the deadline: the client connection loop serving the request
//! ([`crate::connection::watch_upstream_deadline`]), which polls it next to the request
//! with a timer it keeps for the whole connection — no task per stream. Outside a
//! connection loop (HTTP/2 clients are served by Pingora's own loop) a task of its own
//! waits instead.

use std::net::Shutdown;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// An armed upstream header deadline: when it is fired, the socket is shut down.
#[derive(Debug)]
pub struct Deadline {
    /// When it fires.
    pub at: Instant,
    /// A duplicate of the upstream socket's descriptor (closed when the deadline is dropped).
    socket: std::net::TcpStream,
    fired: AtomicBool,
}

impl Deadline {
    /// Marks the deadline fired and shuts the socket down (the pending read fails).
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

/// Armed deadline; disarmed by dropping it. Whoever waits for it holds it weakly or is
/// aborted on drop, so a dropped watchdog never fires.
#[derive(Debug)]
pub struct Watchdog {
    deadline: Arc<Deadline>,
    /// The task waiting for the deadline, when no connection loop does.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Watchdog {
    /// Shuts the socket `fd` down after `after` unless dropped first. `fd` must be an open
    /// TCP socket for the duration of this call.
    pub fn arm(fd: RawFd, after: Duration) -> std::io::Result<Watchdog> {
        // SAFETY: the caller guarantees `fd` is open during this call; we only duplicate it.
        let owned = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
        let deadline = Arc::new(Deadline {
            at: Instant::now() + after,
            socket: std::net::TcpStream::from(owned),
            fired: AtomicBool::new(false),
        });
        let task = if crate::connection::watch_upstream_deadline(&deadline) {
            None
        } else {
            let d = Arc::clone(&deadline);
            Some(tokio::spawn(async move {
                tokio::time::sleep_until(d.at).await;
                d.fire();
            }))
        };
        Ok(Watchdog { deadline, task })
    }

    /// Whether the deadline passed and the socket was shut down.
    pub fn fired(&self) -> bool {
        self.deadline.fired.load(Ordering::Acquire)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    /// A connected pair of TCP sockets on the loopback interface.
    fn socket_pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        (ours, peer)
    }

    #[tokio::test]
    async fn outside_a_connection_loop_a_task_fires_the_deadline() {
        let (ours, mut peer) = socket_pair();
        let w = Watchdog::arm(ours.as_raw_fd(), Duration::ZERO).unwrap();
        assert!(w.task.is_some());
        for _ in 0..1000 {
            if w.fired() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(w.fired());
        // the socket was shut down: the peer sees the end of the stream
        assert_eq!(peer.read(&mut [0u8; 8]).unwrap(), 0);
    }

    #[tokio::test]
    async fn a_dropped_watchdog_never_fires() {
        let (ours, peer) = socket_pair();
        let w = Watchdog::arm(ours.as_raw_fd(), Duration::from_secs(3600)).unwrap();
        assert!(!w.fired());
        drop(w);
        // still connected: a write reaches the peer
        peer.set_nonblocking(true).unwrap();
        let mut ours = ours;
        std::io::Write::write_all(&mut ours, b"x").unwrap();
    }
}
