//! Berry Gateway: a Pingora-based, OpenAI-compatible gateway that load-balances AI traffic
//! across provider accounts.
//!
//! Modules form layers, and a module uses only modules of lower layers (modules sharing a
//! layer are independent of each other). `scripts/module-graph.py` checks this, and that no
//! two files import each other in a circle; it runs in `scripts/test.sh`. Bottom up:
//!
//! 1. `vocab`: the shared vocabulary (operation, client and backend dialects, attempt
//!    outcome, token usage, user limits and refusals). Imports nothing of the crate.
//! 2. Utilities: `clock`, `random_id`, `fault`, `logbuf`, `listener`, `cli`, and
//!    `request_scope`, the one interface between the connection loop and the proxy.
//! 3. `wire` (typed API schemas), `sse` and `body` (byte scanners), `config` (file →
//!    validated `Config`; owns its settings types).
//! 4. `error` (error answers), `usage` (usage mapping and scanners), `metrics`, `providers`
//!    (provider dialects, addresses, health), `spend` (spend windows and this replica's
//!    spend ledger).
//! 5. `translate` (between dialects), `routing` (snapshot table, backend state, selection).
//! 6. `quota::local` (a user's in-process limiter state) → `auth` (token → user) →
//!    `snapshot` (table + users, swapped by reload) → `shared` (Redis-shared state) →
//!    `quota` (the user-quota enforcer: local or shared) and `conversations` (the Responses
//!    API's stored responses: in memory, or in Redis through `shared`).
//! 7. `api` (local endpoints), `health` (active checks), `reload`.
//! 8. `proxy` (the Pingora hooks) and `connection` (the client connection loop); they meet
//!    only in `request_scope`, and `app` wires them together.
//! 9. `app` (server assembly), then `demo`.
//!
//! The README's "Development" section maps the modules.

pub mod api;
pub mod app;
pub mod auth;
pub mod body;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connection;
pub mod conversations;
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
pub mod request_scope;
pub mod routing;
pub mod shared;
pub mod snapshot;
pub mod spend;
pub mod sse;
pub mod translate;
pub mod usage;
pub mod vocab;
pub mod wire;
