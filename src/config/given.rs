//! A config key whose value is checked after parsing (prices, budgets): it keeps what was
//! written, so the check can name the key path of a bad value.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One key of a price or budget table as written: missing, or any value (checked where it is read).
/// A present `null` (TOML/YAML `inf` or `nan` reach the tree as `null`) is kept, to be
/// refused, never taken for a missing key.
#[derive(Debug, Default)]
pub enum Given {
    #[default]
    Missing,
    Value(Value),
}

impl<'de> Deserialize<'de> for Given {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Given::Value)
    }
}

/// How a value that is not a usable number reads in an error message (`null, inf or nan`,
/// `the string "x"`, `a list`, …).
pub fn shown(v: &Value) -> String {
    match v {
        Value::Null => "null, inf or nan".to_string(),
        Value::String(s) => format!("the string \"{s}\""),
        Value::Bool(b) => b.to_string(),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a table".to_string(),
        Value::Number(n) => n.to_string(),
    }
}
