//! Token usage in the one partition the gateway counts, and the one rule that maps each
//! dialect's usage counts onto it.

/// Token usage in the partition the gateway counts: `input` = prompt tokens neither read
/// from nor written to a cache; `cache_read`; `cache_write`; `output`. With consistent
/// provider counts, each prompt token is in exactly one of `input`, `cache_read` and
/// `cache_write` (see [`TokenUsage::from_openai`] for counts that are not).
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

impl TokenUsage {
    /// OpenAI's counts (chat `usage`): `prompt_tokens` is the whole prompt and
    /// `prompt_tokens_details.cached_tokens` the part of it read from the cache, so
    /// `cache_read = cached`, `input = prompt - cached` (saturating at 0) and
    /// `cache_write = 0` (OpenAI does not report cache writes).
    ///
    /// `cached` is not clamped to `prompt`: a provider reporting more cached tokens than
    /// prompt tokens gets `input = 0` and `cache_read = cached`.
    #[must_use]
    pub const fn from_openai(prompt: u64, completion: u64, cached: u64) -> Self {
        TokenUsage {
            input: prompt.saturating_sub(cached),
            output: completion,
            cache_read: cached,
            cache_write: 0,
        }
    }

    /// Anthropic's counts (`usage` of Messages): uncached input, cache reads and cache
    /// writes are reported apart, which is the gateway's partition already.
    #[must_use]
    pub const fn from_anthropic(
        input_tokens: u64,
        output_tokens: u64,
        cache_read_input_tokens: u64,
        cache_creation_input_tokens: u64,
    ) -> Self {
        TokenUsage {
            input: input_tokens,
            output: output_tokens,
            cache_read: cache_read_input_tokens,
            cache_write: cache_creation_input_tokens,
        }
    }

    /// The whole prompt as OpenAI counts it: `input + cache_read + cache_write`
    /// (saturating). The inverse of [`TokenUsage::from_openai`] when `cached <= prompt`.
    #[must_use]
    pub const fn prompt_tokens(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }
}
