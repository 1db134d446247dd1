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

#[cfg(target_os = "linux")]
fn is_listening(fd: libc::c_int) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid pointers to a c_int and its length; a non-socket fd just errors.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && v == 1
}

#[cfg(target_os = "linux")]
fn local_addr(fd: libc::c_int) -> Option<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; zeroed is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: valid pointers to the storage and its length.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel filled a sockaddr_in for AF_INET.
            let a: libc::sockaddr_in =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel filled a sockaddr_in6 for AF_INET6.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}

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
