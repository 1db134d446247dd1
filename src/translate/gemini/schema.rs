//! Google's OpenAPI schema subset (`parameters`, `responseSchema`) as JSON Schema.
//!
//! | OpenAPI subset | JSON Schema |
//! |---|---|
//! | `type` `STRING` / `NUMBER` / `INTEGER` / `BOOLEAN` / `ARRAY` / `OBJECT` / `NULL` (any case) | the lower-case name; `TYPE_UNSPECIFIED` dropped |
//! | `nullable: true` | `type: [t, "null"]` (or `anyOf` + `{type: null}` without a type); `null` added to an `enum` |
//! | `properties` (each value a schema), `items`, `anyOf` (each a schema) | converted recursively |
//! | `propertyOrdering`, `example` | dropped |
//! | everything else (`enum`, `format`, `required`, `description`, `title`, `minimum`, …) | kept as is |
//!
//! The schema is rewritten through [`serde_json::Value`] (schemas are small and every
//! member may change); serde_json's recursion limit bounds the depth.

use crate::wire::raw::Raw;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Converts a schema in Google's OpenAPI subset into JSON Schema. `None` when `raw` is not a
/// JSON object.
#[must_use]
pub fn to_json_schema(raw: &Raw<'_>) -> Option<Raw<'static>> {
    let v: Value = serde_json::from_str(raw.json()?).ok()?;
    let Value::Object(o) = v else {
        return None;
    };
    let out = Value::Object(convert(o));
    let text = serde_json::to_string(&out).ok()?;
    RawValue::from_string(text).ok().map(Raw::Owned)
}

/// Whether a JSON Schema (or OpenAPI subset schema) describes an object at its top level.
#[must_use]
pub fn is_object_schema(raw: &Raw<'_>) -> bool {
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(borrow, rename = "type", default)]
        ty: Option<&'a RawValue>,
        #[serde(borrow, default)]
        properties: Option<&'a RawValue>,
    }
    let Some(Ok(top)) = raw.json().map(serde_json::from_str::<Top<'_>>) else {
        return false;
    };
    match top.ty.map(RawValue::get) {
        Some(t) => t.eq_ignore_ascii_case("\"object\""),
        None => top.properties.is_some(),
    }
}

fn convert(o: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::with_capacity(o.len());
    let mut nullable = false;
    for (k, v) in o {
        match k.as_str() {
            "type" => match v {
                Value::String(t) => {
                    let t = t.to_ascii_lowercase();
                    if t != "type_unspecified" {
                        out.insert(k, Value::String(t));
                    }
                }
                other => {
                    out.insert(k, other);
                }
            },
            "nullable" => nullable = v == Value::Bool(true),
            "propertyOrdering" | "property_ordering" | "example" => {}
            "properties" => {
                let v = match v {
                    Value::Object(props) => Value::Object(
                        props
                            .into_iter()
                            .map(|(name, s)| (name, schema(s)))
                            .collect(),
                    ),
                    other => other,
                };
                out.insert(k, v);
            }
            "items" => {
                out.insert(k, schema(v));
            }
            "anyOf" | "any_of" => {
                let v = match v {
                    Value::Array(a) => Value::Array(a.into_iter().map(schema).collect()),
                    other => other,
                };
                out.insert("anyOf".to_owned(), v);
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    if nullable {
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            if !e.contains(&Value::Null) {
                e.push(Value::Null);
            }
        }
        match out.remove("type") {
            Some(Value::String(t)) => {
                out.insert(
                    "type".to_owned(),
                    Value::Array(vec![Value::String(t), Value::String("null".to_owned())]),
                );
            }
            Some(t) => {
                out.insert("type".to_owned(), t);
            }
            None => {
                if let Some(Value::Array(a)) = out.get_mut("anyOf") {
                    a.push(serde_json::json!({"type": "null"}));
                }
            }
        }
    }
    out
}

fn schema(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(convert(o)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(v: Value) -> Value {
        let s = v.to_string();
        let r: &RawValue = serde_json::from_str(&s).unwrap();
        let out = to_json_schema(&Raw::Borrowed(r)).unwrap();
        serde_json::from_str(out.json().unwrap()).unwrap()
    }

    #[test]
    fn upper_case_types_nested() {
        let v = conv(json!({
            "type": "OBJECT",
            "propertyOrdering": ["a", "b"],
            "properties": {
                "type": {"type": "STRING", "enum": ["x", "y"], "description": "d"},
                "b": {"type": "ARRAY", "items": {"type": "OBJECT", "nullable": true,
                    "properties": {"n": {"type": "INTEGER", "format": "int32", "minimum": 1}}}},
                "c": {"anyOf": [{"type": "NUMBER"}, {"type": "BOOLEAN"}], "nullable": true},
                "properties": {"type": "TYPE_UNSPECIFIED"}
            },
            "required": ["type"]
        }));
        assert_eq!(
            v,
            json!({
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["x", "y"], "description": "d"},
                    "b": {"type": "array", "items": {"type": ["object", "null"],
                        "properties": {"n": {"type": "integer", "format": "int32", "minimum": 1}}}},
                    "c": {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "null"}]},
                    "properties": {}
                },
                "required": ["type"]
            })
        );
    }

    #[test]
    fn not_an_object_is_none() {
        let r: &RawValue = serde_json::from_str("[1]").unwrap();
        assert!(to_json_schema(&Raw::Borrowed(r)).is_none());
        assert!(to_json_schema(&Raw::Null).is_none());
    }

    #[test]
    fn object_schemas() {
        for (s, want) in [
            (r#"{"type":"OBJECT"}"#, true),
            (r#"{"type":"object","properties":{}}"#, true),
            (r#"{"properties":{}}"#, true),
            (r#"{"type":"ARRAY","items":{}}"#, false),
            (r#"{"type":["object","null"]}"#, false),
            ("3", false),
        ] {
            let r: &RawValue = serde_json::from_str(s).unwrap();
            assert_eq!(is_object_schema(&Raw::Borrowed(r)), want, "{s}");
        }
    }
}
