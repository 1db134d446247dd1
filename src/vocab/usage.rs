//! Token usage in the one partition the gateway counts, and the one rule that maps each
//! dialect's usage counts onto it.

/// Token usage in the partition the gateway counts: `input` = prompt tokens neither read
/// from nor written to a cache; `cache_read`; `cache_write`; `output`. Each prompt token is
/// in exactly one of `input`, `cache_read` and `cache_write`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Prompt tokens neither read from nor written to a cache.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
    /// Prompt tokens read from the provider's prompt cache.
    pub cache_read: u64,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_write: u64,
}
