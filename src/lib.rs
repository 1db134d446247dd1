//! Berry Gateway: a Pingora-based, OpenAI-compatible gateway that load-balances AI traffic
//! across provider accounts.
//!
//! Data flows one way: `config` → `routing` (snapshot) → `proxy` hooks, with `health` and
//! `metrics` on the side. The README's "Architecture" section maps the modules.

pub mod api;
pub mod app;
pub mod auth;
pub mod body;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connection;
pub mod demo;
pub mod error;
pub mod fault;
pub mod health;
pub mod listener;
pub mod logbuf;
pub mod metrics;
pub mod providers;
pub mod proxy;
pub mod quota;
pub mod random_id;
pub mod reload;
pub mod routing;
pub mod shared;
pub mod snapshot;
pub mod sse;
pub mod translate;
pub mod usage;
pub mod vocab;
pub mod wire;
