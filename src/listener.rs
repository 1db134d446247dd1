//! `TCP_DEFER_ACCEPT` on the client listeners.
//!
//! When a graceful stop or upgrade begins, Pingora drops every accepted connection whose
//! request has not arrived yet. With `TCP_DEFER_ACCEPT` the kernel hands a connection to
//! `accept()` only once its first bytes are there, so a connection the old process
//! accepted always has a request to read and is served instead of dropped. The option is
//! set by Pingora when it creates the listening socket (the carried pingora-core patch adds
//! it to `TcpSocketOptions`); a listener inherited on upgrade is the same socket and keeps it.

use pingora_core::listeners::TcpSocketOptions;

/// Seconds the kernel waits for data before passing a silent connection on anyway.
pub const DEFER_SECS: u32 = 5;

/// Options for a client listening socket: `TCP_DEFER_ACCEPT` of [`DEFER_SECS`] (Linux
/// only; elsewhere none), applied before the socket listens.
pub fn client_socket_options() -> TcpSocketOptions {
    let mut options = TcpSocketOptions::default();
    options.tcp_defer_accept = Some(DEFER_SECS);
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_listeners_defer_accept() {
        assert_eq!(client_socket_options().tcp_defer_accept, Some(DEFER_SECS));
    }
}
