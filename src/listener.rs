//! `TCP_DEFER_ACCEPT` on the client listeners.
//!
//! When a graceful stop or upgrade begins, Pingora drops every accepted connection whose
//! request has not arrived yet. With `TCP_DEFER_ACCEPT` the kernel hands a connection to
//! `accept()` only once its first bytes are there, so a connection the old process
//! accepted always has a request to read and is served instead of dropped. Pingora offers
//! no listener option for it, so the gateway finds its own listening sockets (bound by
//! Pingora, or inherited on upgrade) and sets the option on them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Seconds the kernel waits for data before passing a silent connection on anyway.
const DEFER_SECS: libc::c_int = 5;

/// Sets `TCP_DEFER_ACCEPT` on this process's listening TCP sockets bound to one of
/// `addrs`. Returns how many sockets were updated.
#[cfg(target_os = "linux")]
pub fn defer_accept(addrs: &[SocketAddr]) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut updated = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<libc::c_int>().ok())
        else {
            continue;
        };
        if is_listening(fd) && local_addr(fd).is_some_and(|a| addrs.contains(&a)) && set_defer(fd) {
            updated += 1;
        }
    }
    updated
}

/// Not available outside Linux: does nothing.
#[cfg(not(target_os = "linux"))]
pub fn defer_accept(_addrs: &[SocketAddr]) -> usize {
    0
}

/// Applies [`defer_accept`] once the listeners exist (they are bound while services
/// start), retrying for up to `wait`.
pub fn defer_accept_when_bound(addrs: &[SocketAddr], wait: Duration) {
    let t0 = Instant::now();
    loop {
        let n = defer_accept(addrs);
        if n >= addrs.len() || t0.elapsed() >= wait {
            if n < addrs.len() {
                log::warn!("TCP_DEFER_ACCEPT set on {n} of {} listeners", addrs.len());
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The socket behind `fd` (borrowed for the call; a non-socket fd makes every query fail).
#[cfg(target_os = "linux")]
fn with_socket<T>(fd: libc::c_int, f: impl FnOnce(socket2::SockRef<'_>) -> Option<T>) -> Option<T> {
    // SAFETY: `fd` is one of this process's open descriptors (listed in /proc/self/fd) and
    // is only borrowed for the duration of this call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    f(socket2::SockRef::from(&borrowed))
}

#[cfg(target_os = "linux")]
fn is_listening(fd: libc::c_int) -> bool {
    with_socket(fd, |s| s.is_listener().ok()).unwrap_or(false)
}

#[cfg(target_os = "linux")]
fn local_addr(fd: libc::c_int) -> Option<SocketAddr> {
    with_socket(fd, |s| s.local_addr().ok()?.as_socket())
}

/// socket2 has no setter for `TCP_DEFER_ACCEPT`, hence the one raw `setsockopt`.
#[cfg(target_os = "linux")]
fn set_defer(fd: libc::c_int) -> bool {
    let v: libc::c_int = DEFER_SECS;
    // SAFETY: valid pointer to a c_int and its length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn finds_and_tunes_its_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(defer_accept(&[addr]), 1);
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(defer_accept(&[other]), 0);
    }
}
