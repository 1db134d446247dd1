//! The gateway's shared vocabulary: the small types every layer speaks (token usage and
//! prices, the backend dialect, operations, attempt outcomes, user limits and refusals).
//! This module imports nothing of the crate's; everything else may import it.

pub mod dialect;
pub mod limits;
pub mod operation;
pub mod outcome;
pub mod price;
pub mod usage;

pub use dialect::{BackendType, ClientApi};
pub use operation::{GeminiMethod, Operation};
pub use outcome::Outcome;
pub use price::Price;
pub use usage::TokenUsage;
