//! Integration tests: the real binary over loopback sockets against the mock provider.

mod config_files;
mod errors;
mod forwarding;
mod harness;
mod resilience;
mod retries;
mod sdk;
