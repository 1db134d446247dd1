//! Prices of backend models: the catalog shipped in the binary (`conf/prices.toml`),
//! `[prices."<backend model>"]` of the config over it, and `price = {…}` of one backend
//! over both. Each key set replaces that key only; the others keep the value below them.

pub use super::given::Given;
use super::model::ModelConfig;
use super::problem::Problems;
use crate::vocab::Price;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The shipped catalog: list prices of common OpenAI, Anthropic, Azure OpenAI and Gemini
/// models, in the same `[prices."<model>"]` form the config takes.
pub const CATALOG: &str = include_str!("../../conf/prices.toml");

/// Where the catalog's problems are reported from (it is checked by a unit test; a
/// problem here means the binary was built from a broken catalog).
const CATALOG_PATH: &str = "conf/prices.toml (built in)";

/// `[prices."<model>"]` or a backend's `price = {…}`: USD per million tokens.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FilePrice {
    pub input: Given,
    pub output: Given,
    pub cache_read: Given,
    pub cache_write: Given,
    pub cache_write_1h: Given,
}

/// The catalog file: only `[prices."<model>"]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CatalogFile {
    prices: BTreeMap<String, FilePrice>,
}

/// A price table with the keys it sets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Partial {
    input: Option<f64>,
    output: Option<f64>,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
}

impl Partial {
    /// Checks every key of `fp` (at `path`): a finite number `>= 0`, else a problem.
    fn of(path: &str, fp: FilePrice, p: &mut Problems) -> Partial {
        let mut one = |key: &str, g: Given| -> Option<f64> {
            let Given::Value(v) = g else {
                return None;
            };
            match v.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => Some(x),
                Some(x) => {
                    p.add(
                        format!("{path}.{key}"),
                        format!("must be a price >= 0 in USD per million tokens (got {x})"),
                    );
                    None
                }
                None => {
                    let got = super::given::shown(&v);
                    p.add(
                        format!("{path}.{key}"),
                        format!("must be a number of USD per million tokens (got {got})"),
                    );
                    None
                }
            }
        };
        Partial {
            input: one("input", fp.input),
            output: one("output", fp.output),
            cache_read: one("cache_read", fp.cache_read),
            cache_write: one("cache_write", fp.cache_write),
            cache_write_1h: one("cache_write_1h", fp.cache_write_1h),
        }
    }

    /// `self` over `below`: keys `self` sets win.
    fn over(self, below: Partial) -> Partial {
        Partial {
            input: self.input.or(below.input),
            output: self.output.or(below.output),
            cache_read: self.cache_read.or(below.cache_read),
            cache_write: self.cache_write.or(below.cache_write),
            cache_write_1h: self.cache_write_1h.or(below.cache_write_1h),
        }
    }

    /// The price, when `input` and `output` are set: cache reads and writes without a
    /// price of their own cost what input costs.
    fn complete(self) -> Option<Price> {
        let (input, output) = (self.input?, self.output?);
        Some(Price {
            input,
            output,
            cache_read: self.cache_read.unwrap_or(input),
            cache_write: self.cache_write.unwrap_or(input),
            cache_write_1h: self.cache_write_1h,
        })
    }

    /// Problems for the keys a price at `path` needs and does not set.
    fn require_complete(&self, path: &str, p: &mut Problems) {
        for (key, v) in [("input", self.input), ("output", self.output)] {
            if v.is_none() {
                p.add(
                    format!("{path}.{key}"),
                    "is required for a model without a catalog price",
                );
            }
        }
    }
}

/// Backend model → price: the built-in catalog with `[prices]` of the config over it.
#[derive(Debug, Clone, Default)]
pub struct PriceList {
    entries: BTreeMap<String, Partial>,
}

impl PriceList {
    /// The catalog with `overrides` (`[prices]` of the config) over it, checked with key
    /// paths. An override of a model the catalog lacks must set `input` and `output`.
    pub(super) fn build(overrides: BTreeMap<String, FilePrice>, p: &mut Problems) -> PriceList {
        let mut entries = catalog(p);
        for (model, fp) in overrides {
            let path = format!("prices.{}", key_segment(&model));
            let set = Partial::of(&path, fp, p);
            let merged = match entries.get(&model) {
                Some(base) => set.over(*base),
                None => {
                    set.require_complete(&path, p);
                    set
                }
            };
            entries.insert(model, merged);
        }
        PriceList { entries }
    }

    /// The price of one backend: its own `price` (at `path`) over the list's entry for
    /// `model`. `None`: the model has no price (it costs 0).
    pub(super) fn for_backend(
        &self,
        path: &str,
        model: &str,
        own: Option<FilePrice>,
        p: &mut Problems,
    ) -> Option<Price> {
        let listed = self.entries.get(model).copied();
        match own {
            None => listed.and_then(Partial::complete),
            Some(fp) => {
                let set = Partial::of(path, fp, p);
                match listed {
                    Some(base) => set.over(base).complete(),
                    None => {
                        set.require_complete(path, p);
                        set.complete()
                    }
                }
            }
        }
    }

    /// Every complete price by backend model name.
    pub(super) fn prices(&self) -> BTreeMap<String, Price> {
        self.entries
            .iter()
            .filter_map(|(m, e)| Some((m.clone(), e.complete()?)))
            .collect()
    }
}

/// The built-in catalog, parsed (problems reported under [`CATALOG_PATH`]).
fn catalog(p: &mut Problems) -> BTreeMap<String, Partial> {
    let parsed = toml::from_str::<Value>(CATALOG)
        .map_err(|e| e.message().to_string())
        .and_then(|v| serde_json::from_value::<CatalogFile>(v).map_err(|e| e.to_string()));
    match parsed {
        Ok(file) => file
            .prices
            .into_iter()
            .map(|(model, fp)| {
                let path = format!("{CATALOG_PATH}: prices.{}", key_segment(&model));
                let set = Partial::of(&path, fp, p);
                set.require_complete(&path, p);
                (model, set)
            })
            .collect(),
        Err(e) => {
            p.add(CATALOG_PATH, e);
            BTreeMap::new()
        }
    }
}

/// A model name as one key path segment: quoted when it holds a `.` (`prices."gpt-4.1"`).
fn key_segment(model: &str) -> String {
    if model.contains('.') {
        format!("\"{model}\"")
    } else {
        model.to_string()
    }
}

/// One warning per backend model name without a price (at its first backend, enabled or
/// not): it costs 0 and its tokens count in `berry_unpriced_tokens_total`.
pub(super) fn warn_unpriced(models: &[ModelConfig], warnings: &mut Vec<String>) {
    let mut named = std::collections::HashSet::new();
    for m in models {
        for (i, b) in m.backends.iter().enumerate() {
            if b.price.is_none() && !b.model.is_empty() && named.insert(b.model.as_str()) {
                warnings.push(format!(
                    "models.{}.backends[{i}].model: `{}` has no price (not in the built-in \
                     catalog nor in [prices]); its requests cost 0 and its tokens are \
                     counted in berry_unpriced_tokens_total",
                    m.key, b.model
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Config, Format};

    fn load(text: &str) -> Result<Config, Vec<String>> {
        load_str(text, Format::Toml, &|_| None)
            .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect())
    }

    fn with(extra: &str, backend_extra: &str, model: &str) -> String {
        format!(
            "[providers.p]\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key = \"k\"\n{extra}\n\
             [models.m]\n[[models.m.backends]]\nprovider = \"p\"\nmodel = \"{model}\"\n{backend_extra}\n"
        )
    }

    #[test]
    fn the_catalog_is_clean_and_in_common_use() {
        let mut p = Problems::default();
        let list = PriceList::build(BTreeMap::new(), &mut p);
        assert!(p.0.is_empty(), "{:?}", p.0);
        let prices = list.prices();
        assert!((40..=80).contains(&prices.len()), "{}", prices.len());
        let sonnet = prices["claude-sonnet-4-5"];
        assert_eq!(
            sonnet,
            Price {
                input: 3.0,
                output: 15.0,
                cache_read: 0.3,
                cache_write: 3.75,
                cache_write_1h: Some(6.0),
            }
        );
        let gpt4o = prices["gpt-4o"];
        assert_eq!(
            (gpt4o.input, gpt4o.output, gpt4o.cache_read),
            (2.5, 10.0, 1.25)
        );
        // No cache write price listed: writes cost input.
        assert_eq!(gpt4o.cache_write, 2.5);
        for m in ["gpt-4o-mini", "text-embedding-3-small", "gemini-2.5-pro"] {
            assert!(prices.contains_key(m), "{m}");
        }
    }

    #[test]
    fn backends_get_catalog_config_and_own_prices_key_by_key() {
        let cfg = load(&with(
            "[prices.\"gpt-4o\"]\noutput = 12\n[prices.house-model]\ninput = 1\noutput = 2\ncache_read = 0.5\n",
            "",
            "gpt-4o",
        ))
        .unwrap();
        let b = &cfg.models[0].backends[0];
        let price = b.price.unwrap();
        assert_eq!(
            (price.input, price.output, price.cache_read),
            (2.5, 12.0, 1.25)
        );
        assert_eq!(
            cfg.prices["house-model"],
            Price {
                cache_read: 0.5,
                ..Price::flat(1.0, 2.0)
            }
        );
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);

        // A backend's own price over the catalog's.
        let cfg = load(&with(
            "",
            "price = { input = 2, cache_write = 3 }",
            "claude-sonnet-4-5",
        ))
        .unwrap();
        let price = cfg.models[0].backends[0].price.unwrap();
        assert_eq!(
            price,
            Price {
                input: 2.0,
                output: 15.0,
                cache_read: 0.3,
                cache_write: 3.0,
                cache_write_1h: Some(6.0),
            }
        );
        // A backend's own full price for a model nobody lists.
        let cfg = load(&with(
            "",
            "price = { input = 0.5, output = 1.5 }",
            "local-llm",
        ))
        .unwrap();
        assert_eq!(cfg.models[0].backends[0].price, Some(Price::flat(0.5, 1.5)));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn unpriced_models_cost_nothing_and_are_named_once() {
        let text = format!(
            "{}[[models.m.backends]]\nprovider = \"q\"\nmodel = \"mystery\"\n\
             [providers.q]\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key = \"k\"\n",
            with("", "", "mystery")
        );
        let cfg = load(&text).unwrap();
        assert!(cfg.models[0].backends.iter().all(|b| b.price.is_none()));
        let about: Vec<_> = cfg
            .warnings
            .iter()
            .filter(|w| w.contains("`mystery` has no price"))
            .collect();
        assert_eq!(about.len(), 1, "{:?}", cfg.warnings);
        assert!(
            about[0].starts_with("models.m.backends[0].model: "),
            "{}",
            about[0]
        );
    }

    #[test]
    fn bad_prices_are_refused_with_their_key_paths() {
        let e = load(&with(
            "[prices.\"gpt-4.1\"]\ninput = -1\ncache_read = \"cheap\"\noutput = nan\n\
             [prices.new-model]\ncache_read = 1\n[prices.x]\ninput = 1\noutput = 1\nbatch = 0.5\n",
            "price = { output = inf, cache_write = true }",
            "gpt-4o",
        ))
        .unwrap_err();
        let want = [
            "prices.\"gpt-4.1\".input: must be a price >= 0 in USD per million tokens (got -1)",
            "prices.\"gpt-4.1\".output: must be a number of USD per million tokens (got null, inf or nan)",
            "prices.\"gpt-4.1\".cache_read: must be a number of USD per million tokens (got the string \"cheap\")",
            "prices.new-model.input: is required for a model without a catalog price",
            "prices.new-model.output: is required for a model without a catalog price",
            "models.m.backends[0].price.output: must be a number of USD per million tokens (got null, inf or nan)",
            "models.m.backends[0].price.cache_write: must be a number of USD per million tokens (got true)",
        ];
        for w in want {
            assert!(e.iter().any(|p| p == w), "missing {w:?} in {e:#?}");
        }
        assert!(
            e.iter()
                .any(|p| p.starts_with("prices.x.batch: unknown key")),
            "{e:#?}"
        );
    }
}
