//! The listening TCP sockets of another process (a child the test started), read from the
//! kernel: a server started on port 0 is found on the port it really bound, and its
//! listeners' socket options can be read back.
//!
//! Each of the process's descriptors is duplicated into this process with
//! `pidfd_getfd(2)` (Linux 5.6; allowed for a parent on its own children), so every query
//! runs on a descriptor owned here.

use socket2::Socket;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// One listening TCP socket of another process: a duplicate owned by this process.
#[derive(Debug)]
pub struct Listener {
    /// The descriptor number in the other process.
    pub fd: RawFd,
    /// The bound address.
    pub addr: SocketAddr,
    /// The duplicate.
    pub socket: Socket,
}

impl Listener {
    /// `TCP_DEFER_ACCEPT` as the kernel reports it (seconds, rounded up to its
    /// retransmission schedule; 0 when off).
    pub fn defer_accept_secs(&self) -> io::Result<i32> {
        use std::os::fd::AsRawFd;
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `self.socket` is an open descriptor owned by this value; `v` and `len`
        // are a valid buffer and its length.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(v)
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// A `pidfd` for `pid`.
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: a plain system call; a non-negative result is a new descriptor owned here.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A duplicate of descriptor `target` of the process behind `pidfd`.
fn pidfd_getfd(pidfd: &OwnedFd, target: RawFd) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call; a non-negative result is a new descriptor owned here.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The listening TCP sockets of process `pid` now, in descriptor order.
pub fn tcp_listeners(pid: u32) -> io::Result<Vec<Listener>> {
    let pidfd = pidfd_open(pid)?;
    let mut fds: Vec<RawFd> = std::fs::read_dir(format!("/proc/{pid}/fd"))?
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    let mut out = Vec::new();
    for fd in fds {
        // closed meanwhile, or not ours to take: skipped
        let Ok(owned) = pidfd_getfd(&pidfd, fd) else {
            continue;
        };
        let socket = Socket::from(owned);
        if !socket.is_listener().unwrap_or(false) {
            continue;
        }
        let Some(addr) = socket.local_addr().ok().and_then(|a| a.as_socket()) else {
            continue;
        };
        out.push(Listener { fd, addr, socket });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_childs_listener_and_its_options() {
        // a child that binds port 0 and waits for its stdin to close
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.IPPROTO_TCP,socket.TCP_DEFER_ACCEPT,5)\ns.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let port: u16 = line.trim().parse().unwrap();
        let listeners = tcp_listeners(child.id()).unwrap();
        drop(child.stdin.take());
        child.wait().unwrap();
        assert_eq!(listeners.len(), 1, "{listeners:?}");
        assert_eq!(listeners[0].addr.port(), port);
        assert!(listeners[0].defer_accept_secs().unwrap() >= 5);
    }
}
