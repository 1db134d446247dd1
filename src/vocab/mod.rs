//! The gateway's shared vocabulary: the small types every layer speaks (token usage, client
//! and backend dialects, operations, limits and refusals). This module imports nothing of
//! the crate's; everything else may import it.

pub mod usage;

pub use usage::TokenUsage;
