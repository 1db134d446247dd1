//! Integration tests: the real binary over loopback sockets against the mock provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code may fail loudly

mod affinity;
mod bodies;
mod budgets;
mod charging;
mod claude_code;
mod config_files;
mod connections;
mod cost;
mod dialects;
mod errors;
mod forwarding;
mod gemini;
mod hardening;
mod harness;
mod headers;
mod lifecycle;
mod operations;
mod quotas;
mod resilience;
mod responses;
mod responses_state;
mod retries;
mod sdk;
mod shared_state;
mod spend_api;
mod streams;
mod tls;
mod usage_tap;
mod wire;
