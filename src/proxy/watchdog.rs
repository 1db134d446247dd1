//! A per-attempt deadline for upstream response headers on HTTP/1 connections.
//!
//! Pingora applies one `read_timeout` to every upstream read — the wait for headers and
//! each gap between body chunks alike. Streams need a long gap allowance
//! (`stream_idle_timeout_seconds`) but a short header deadline (the attempt timeout), so
//! for streaming requests the header deadline is enforced here: when it passes, the
//! upstream socket is shut down, the pending read fails, and the attempt is classified as
//! a timeout. It never touches a different connection that reuses the descriptor number.
//!
//! Who waits for the deadline, and how it knows the socket:
//! * The client connection loop serving the request
//!   ([`crate::request_scope::watch_upstream_deadline`]) polls it next to the request, with a
//!   timer it keeps for the whole connection: no task per stream. It fires on the task
//!   that owns the socket, so nothing can close the socket while it fires; the deadline
//!   keeps the descriptor number and the socket's identity (device and inode, one `fstat`
//!   when armed) and shuts the socket down only if the number still names it. (A
//!   duplicate descriptor, held before, cost a `dup` and a `close` per stream.)
//! * Outside a connection loop (HTTP/2 clients are served by Pingora's own loop) a task of
//!   its own waits, on any thread: the socket could be closed and its number reused
//!   between a check and the shutdown, so that deadline holds a duplicate descriptor.

use crate::request_scope::{self, UpstreamDeadline};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// An armed upstream header deadline: when it is fired, the socket is shut down.
#[derive(Debug)]
pub struct Deadline {
    /// When it fires.
    pub at: Instant,
    /// The upstream socket.
    socket: Target,
    fired: AtomicBool,
}

/// How a deadline names its socket (see the module documentation).
#[derive(Debug)]
enum Target {
    /// Fired by the connection loop, on the task that owns the socket.
    Watched(SocketId),
    /// Fired by a task of its own: a duplicate descriptor (closed with the deadline).
    Own(std::net::TcpStream),
}

impl Deadline {
    /// Marks the deadline fired and shuts the socket down (the pending read fails), if
    /// it is still open. Call it for a [`Target::Watched`] socket only on the task that
    /// owns the socket.
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        match &self.socket {
            Target::Watched(id) => {
                if id.still_open() {
                    // SAFETY: a plain system call on a descriptor number that still names
                    // the armed socket, which only this task could close.
                    unsafe { libc::shutdown(id.fd, libc::SHUT_RDWR) };
                }
            }
            Target::Own(socket) => {
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl UpstreamDeadline for Deadline {
    fn at(&self) -> Instant {
        self.at
    }

    fn fire(&self) {
        Deadline::fire(self);
    }
}

/// A socket named by a descriptor number, told apart from any later socket that reuses
/// the number by its device and inode (socket inodes are unique among open sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SocketId {
    fd: RawFd,
    dev: u64,
    ino: u64,
}

impl SocketId {
    /// What `fd` names now.
    fn of(fd: RawFd) -> std::io::Result<SocketId> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `fstat` writes a whole `stat` into `st` when it returns 0, and only then
        // is it read.
        let st = unsafe {
            if libc::fstat(fd, st.as_mut_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            st.assume_init()
        };
        Ok(SocketId {
            fd,
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    /// Whether the descriptor number still names this socket.
    fn still_open(&self) -> bool {
        SocketId::of(self.fd).is_ok_and(|now| now == *self)
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
    /// Shuts the TCP socket `fd` down after `after` unless dropped first, and unless its
    /// descriptor number no longer names the same socket by then. The borrow ends with
    /// this call: the deadline keeps either the socket's identity (in a connection loop)
    /// or a duplicate descriptor of its own.
    pub fn arm(fd: BorrowedFd<'_>, after: Duration) -> std::io::Result<Watchdog> {
        let in_loop = request_scope::in_scope();
        let socket = if in_loop {
            Target::Watched(SocketId::of(fd.as_raw_fd())?)
        } else {
            Target::Own(std::net::TcpStream::from(fd.try_clone_to_owned()?))
        };
        let deadline = Arc::new(Deadline {
            at: Instant::now() + after,
            socket,
            fired: AtomicBool::new(false),
        });
        let task = if in_loop {
            let watched = request_scope::watch_upstream_deadline(&deadline);
            debug_assert!(watched, "in a connection loop, which watches the deadline");
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

    /// Whether the deadline passed (and the socket, if still open, was shut down).
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
    use std::os::fd::AsFd;

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
        let w = Watchdog::arm(ours.as_fd(), Duration::ZERO).unwrap();
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
    async fn a_descriptor_number_reused_by_another_socket_is_left_alone() {
        let (ours, _peer) = socket_pair();
        let fd = ours.as_raw_fd();
        let deadline = Deadline {
            at: Instant::now(),
            socket: Target::Watched(SocketId::of(fd).unwrap()),
            fired: AtomicBool::new(false),
        };
        // the number comes to name another connection: `dup2` closes our socket and puts
        // the other one under its number in one step (the number is never free, so no
        // other test thread can be handed it meanwhile)
        let (other, mut other_peer) = socket_pair();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(ours);
        // SAFETY: `fd` is owned here (taken out of `ours`); after dup2 it names a
        // duplicate of `other`, owned by `reused`.
        let reused: std::net::TcpStream = unsafe {
            assert_eq!(libc::dup2(other.as_raw_fd(), fd), fd);
            std::os::fd::FromRawFd::from_raw_fd(fd)
        };
        deadline.fire();
        assert!(deadline.fired.load(Ordering::Acquire));
        // the other connection was not shut down: a write still reaches its peer
        std::io::Write::write_all(&mut &reused, b"x").unwrap();
        let mut got = [0u8; 1];
        other_peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
        // while the number still named the armed socket, firing shuts it down
        let (ours, mut peer) = socket_pair();
        let deadline = Deadline {
            at: Instant::now(),
            socket: Target::Watched(SocketId::of(ours.as_raw_fd()).unwrap()),
            fired: AtomicBool::new(false),
        };
        deadline.fire();
        assert_eq!(peer.read(&mut [0u8; 8]).unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_watchdog_never_fires() {
        let (ours, mut peer) = socket_pair();
        let w = Watchdog::arm(ours.as_fd(), Duration::from_secs(3600)).unwrap();
        let deadline = Arc::clone(&w.deadline);
        assert!(!w.fired());
        drop(w);
        // (paused time) the deadline passes with every task idle; each yield lets the
        // task that would fire it run
        tokio::time::advance(Duration::from_secs(3601)).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!deadline.fired.load(Ordering::Acquire));
        // still connected: a write reaches the peer
        let mut ours = ours;
        std::io::Write::write_all(&mut ours, b"x").unwrap();
        let mut got = [0u8; 1];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
    }

    #[tokio::test(start_paused = true)]
    async fn an_armed_watchdog_fires_when_its_deadline_passes() {
        let (ours, mut peer) = socket_pair();
        let w = Watchdog::arm(ours.as_fd(), Duration::from_secs(3600)).unwrap();
        tokio::time::advance(Duration::from_secs(3599)).await;
        tokio::task::yield_now().await;
        assert!(!w.fired());
        tokio::time::advance(Duration::from_secs(2)).await;
        for _ in 0..100 {
            if w.fired() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(w.fired());
        assert_eq!(peer.read(&mut [0u8; 8]).unwrap(), 0);
    }
}
