//! Test support shared by the Berry Gateway test crates (the gateway's integration tests
//! and the mock provider's): one way to wait on observable state ([`wait`]), the blocking
//! HTTP/1.1 client the tests speak through ([`http_client`]), and the listening sockets of
//! a child process ([`process`]), so a test learns the port its gateway bound instead of
//! probing for a free one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

pub mod http_client;
pub mod process;
pub mod wait;

pub use http_client::{Client, Resp};
pub use wait::{wait_for, wait_until, wait_until_async};
