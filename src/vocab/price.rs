//! A model's price per token type, and the cost of one request's usage at that price.

use super::usage::TokenUsage;

/// Prices of one backend model in USD per million tokens, one per token type of
/// [`TokenUsage`]. Every price is finite and `>= 0` (checked when the config is loaded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Prompt tokens neither read from nor written to a cache.
    pub input: f64,
    /// Generated tokens (reasoning tokens are part of them).
    pub output: f64,
    /// Prompt tokens read from the cache.
    pub cache_read: f64,
    /// Prompt tokens written to the cache (Anthropic's 5-minute writes).
    pub cache_write: f64,
    /// Anthropic's 1-hour cache writes, where listed. Usage does not tell 1-hour writes
    /// apart, so [`Price::cost_usd`] charges every write at `cache_write`.
    pub cache_write_1h: Option<f64>,
}

impl Price {
    /// A price whose cache reads and writes cost what plain input costs (the provider
    /// lists no separate cache prices).
    #[must_use]
    pub const fn flat(input: f64, output: f64) -> Self {
        Price {
            input,
            output,
            cache_read: input,
            cache_write: input,
            cache_write_1h: None,
        }
    }

    /// Cost of `usage` in micro-dollars, unrounded: Σ tokens × price per million tokens
    /// over the four token types (a price per million tokens times a token count is
    /// micro-dollars).
    #[must_use]
    pub fn cost_micro_usd_exact(&self, usage: &TokenUsage) -> f64 {
        usage.input as f64 * self.input
            + usage.output as f64 * self.output
            + usage.cache_read as f64 * self.cache_read
            + usage.cache_write as f64 * self.cache_write
    }

    /// Cost of `usage` in USD.
    #[must_use]
    pub fn cost_usd(&self, usage: &TokenUsage) -> f64 {
        self.cost_micro_usd_exact(usage) / 1e6
    }

    /// Cost of `usage` in whole micro-dollars, rounded to the nearest (saturating at
    /// `u64::MAX`): the unit spend is kept in.
    #[must_use]
    pub fn cost_micro_usd(&self, usage: &TokenUsage) -> u64 {
        // `as` saturates for floats out of range; prices are finite and non-negative.
        self.cost_micro_usd_exact(usage).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SONNET: Price = Price {
        input: 3.0,
        output: 15.0,
        cache_read: 0.3,
        cache_write: 3.75,
        cache_write_1h: Some(6.0),
    };

    fn usage(input: u64, output: u64, cache_read: u64, cache_write: u64) -> TokenUsage {
        TokenUsage {
            input,
            output,
            cache_read,
            cache_write,
        }
    }

    #[test]
    fn every_token_type_costs_its_own_price() {
        // (usage, micro-dollars) computed by hand at 3 / 15 / 0.3 / 3.75 per 1M tokens.
        let table: [(TokenUsage, u64); 7] = [
            (usage(0, 0, 0, 0), 0),
            (usage(1_000_000, 0, 0, 0), 3_000_000),
            (usage(0, 1_000_000, 0, 0), 15_000_000),
            (usage(0, 0, 1_000_000, 0), 300_000),
            (usage(0, 0, 0, 1_000_000), 3_750_000),
            // 1000×3 + 200×15 + 10000×0.3 + 2000×3.75 = 3000 + 3000 + 3000 + 7500
            (usage(1000, 200, 10_000, 2000), 16_500),
            // 7×3 + 5×15 + 11×0.3 + 13×3.75 = 21 + 75 + 3.3 + 48.75 = 148.05 → 148
            (usage(7, 5, 11, 13), 148),
        ];
        for (u, micro) in table {
            assert_eq!(SONNET.cost_micro_usd(&u), micro, "{u:?}");
            let usd = SONNET.cost_usd(&u);
            assert!((usd - micro as f64 / 1e6).abs() < 1e-6, "{u:?}: {usd}");
        }
        assert!((SONNET.cost_usd(&usage(7, 5, 11, 13)) - 0.000_148_05).abs() < 1e-12);
    }

    #[test]
    fn openai_usage_prices_cached_tokens_at_the_cache_read_price() {
        // gpt-4o: 2.5 / 10 / cache_read 1.25. 1000 prompt tokens of which 600 cached, 100 out.
        let gpt4o = Price {
            cache_read: 1.25,
            ..Price::flat(2.5, 10.0)
        };
        let u = TokenUsage::from_openai(1000, 100, 600);
        // 400×2.5 + 100×10 + 600×1.25 = 1000 + 1000 + 750
        assert_eq!(gpt4o.cost_micro_usd(&u), 2750);
        assert!((gpt4o.cost_usd(&u) - 0.00275).abs() < 1e-12);
    }

    #[test]
    fn flat_prices_cache_tokens_as_input_and_nothing_costs_nothing() {
        let p = Price::flat(2.0, 8.0);
        assert_eq!(p.cost_micro_usd(&usage(10, 0, 20, 30)), 120);
        assert_eq!(Price::flat(0.0, 0.0).cost_usd(&usage(5, 5, 5, 5)), 0.0);
        // Huge counts saturate instead of wrapping.
        assert_eq!(
            Price::flat(1e12, 1e12).cost_micro_usd(&usage(u64::MAX, u64::MAX, 0, 0)),
            u64::MAX
        );
    }
}
