//! Tool calls: which tool of a request the mock calls ([`requested_call`]), the input
//! it passes, and how the input's JSON is split into streamed pieces
//! ([`ToolCall::piece`]).
//!
//! A call is made when the request lists tools and either the `x-mock-tool-use: NAME`
//! header names one of them, or its `tool_choice` forces one: Anthropic
//! `{"type":"tool","name":N}` / `{"type":"any"}` (the first tool), OpenAI
//! `{"type":"function","function":{"name":N}}` / `"required"` (the first tool). The
//! input is the `x-mock-tool-input` object when given, else an example built from the
//! tool's schema (every property of `properties`, in the schema map's order: its first `enum`
//! value, else by `type`: string `"mock"`, integer / number `1`, boolean `true`, array
//! `[]`, object recursively, null `null`; no type: `"mock"`).

use serde_json::{Map, Value};

use crate::route::Api;

/// Deepest nesting of objects an example input is built to.
const MAX_DEPTH: usize = 8;

/// One tool call of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// The input, compact JSON of an object.
    pub input: String,
}

impl ToolCall {
    /// Piece `i` of `n` of the input JSON (`n` ≥ 1): consecutive pieces of about equal
    /// length, cut at character boundaries, that concatenate to the input (some may be
    /// empty when `n` exceeds the length).
    pub(crate) fn piece(&self, i: u32, n: u32) -> &str {
        let n = u64::from(n.max(1));
        let len = self.input.len() as u64;
        let at = |k: u64| {
            let mut b = usize::try_from(k.min(n) * len / n).unwrap_or(self.input.len());
            while !self.input.is_char_boundary(b) {
                b += 1;
            }
            b
        };
        let (from, to) = (at(u64::from(i)), at(u64::from(i) + 1));
        self.input.get(from..to).unwrap_or("")
    }
}

/// The tool call a request asks for (see the module docs), `None` for a text answer.
/// `Err` (a message for a 400) when `x-mock-tool-use` or a forced `tool_choice`
/// names a tool the request does not list.
pub(crate) fn requested_call(
    api: Api,
    tools: Option<&Value>,
    tool_choice: Option<&Value>,
    wanted: Option<&str>,
    input: Option<&Map<String, Value>>,
) -> Result<Option<ToolCall>, String> {
    let listed: Vec<(&str, Option<&Value>)> = tools
        .and_then(Value::as_array)
        .map(|ts| ts.iter().filter_map(|t| tool_entry(api, t)).collect())
        .unwrap_or_default();
    let name = match wanted {
        Some(n) => Some(n),
        None => forced_choice(api, tool_choice, &listed)?,
    };
    let Some(name) = name else {
        return Ok(None);
    };
    let Some((_, schema)) = listed.iter().find(|(n, _)| *n == name) else {
        return Err(format!("the request has no tool named {name:?}"));
    };
    let input = match input {
        Some(m) => Value::Object(m.clone()),
        None => schema.map_or_else(|| Value::Object(Map::new()), |s| example_object(s, 0)),
    };
    Ok(Some(ToolCall {
        name: name.to_string(),
        input: input.to_string(),
    }))
}

/// Name and input schema of one listed tool.
fn tool_entry(api: Api, tool: &Value) -> Option<(&str, Option<&Value>)> {
    match api {
        Api::Anthropic => Some((tool.get("name")?.as_str()?, tool.get("input_schema"))),
        Api::OpenAi | Api::Azure => {
            let f = tool.get("function")?;
            Some((f.get("name")?.as_str()?, f.get("parameters")))
        }
    }
}

/// The tool a `tool_choice` forces, if any (`Ok(None)` when it forces none or the
/// request lists no tool to pick the first of).
fn forced_choice<'a>(
    api: Api,
    choice: Option<&'a Value>,
    listed: &[(&'a str, Option<&Value>)],
) -> Result<Option<&'a str>, String> {
    let Some(choice) = choice else {
        return Ok(None);
    };
    let first = listed.first().map(|(n, _)| *n);
    let kind = choice.get("type").and_then(Value::as_str);
    Ok(match api {
        Api::Anthropic => match kind {
            Some("any") => first,
            Some("tool") => Some(
                choice
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("tool_choice.name: Field required")?,
            ),
            _ => None,
        },
        Api::OpenAi | Api::Azure => match (choice.as_str(), kind) {
            (Some("required"), _) => first,
            (_, Some("function")) => choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str),
            _ => None,
        },
    })
}

/// An example object for JSON schema `schema` (`{}` when it has no properties).
fn example_object(schema: &Value, depth: usize) -> Value {
    let mut out = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            out.insert(k.clone(), example_value(s, depth + 1));
        }
    }
    Value::Object(out)
}

fn example_value(schema: &Value, depth: usize) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::Array(types)) => types.first().and_then(Value::as_str),
        Some(t) => t.as_str(),
        None => None,
    };
    match ty {
        Some("integer" | "number") => Value::from(1),
        Some("boolean") => Value::Bool(true),
        Some("array") => Value::Array(Vec::new()),
        Some("null") => Value::Null,
        Some("object") if depth < MAX_DEPTH => example_object(schema, depth),
        Some("object") => Value::Object(Map::new()),
        _ => Value::from("mock"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn choice_and_input() {
        let anth = json!([
            {"name": "a", "input_schema": {"type": "object", "properties": {
                "city": {"type": "string"}, "n": {"type": "integer"},
                "unit": {"enum": ["c", "f"]}, "deep": {"type": "object", "properties": {"ok": {"type": ["boolean", "null"]}}}
            }}},
            {"name": "b", "input_schema": {"type": "object"}}
        ]);
        let call = |tools: &Value, choice: Option<Value>, wanted: Option<&str>| {
            requested_call(Api::Anthropic, Some(tools), choice.as_ref(), wanted, None)
        };
        assert_eq!(call(&anth, None, None), Ok(None));
        assert_eq!(call(&anth, Some(json!({"type": "auto"})), None), Ok(None));
        let c = call(&anth, Some(json!({"type": "any"})), None)
            .unwrap()
            .unwrap();
        assert_eq!(c.name, "a");
        let input: Value = serde_json::from_str(&c.input).unwrap();
        assert_eq!(
            input,
            json!({"city": "mock", "deep": {"ok": true}, "n": 1, "unit": "c"})
        );
        let c = call(&anth, Some(json!({"type": "tool", "name": "b"})), None);
        assert_eq!(c.unwrap().unwrap().input, "{}");
        assert_eq!(call(&anth, None, Some("b")).unwrap().unwrap().name, "b");
        assert!(call(&anth, None, Some("zz")).is_err());
        assert!(requested_call(Api::Anthropic, None, None, Some("a"), None).is_err());

        let oai = json!([{"type": "function", "function": {"name": "f", "parameters": {"properties": {"q": {}}}}}]);
        let c = requested_call(
            Api::OpenAi,
            Some(&oai),
            Some(&json!("required")),
            None,
            None,
        );
        assert_eq!(c.unwrap().unwrap().input, r#"{"q":"mock"}"#);
        let named = json!({"type": "function", "function": {"name": "f"}});
        let mut given = Map::new();
        given.insert("x".into(), json!([1, "é"]));
        let c = requested_call(Api::Azure, Some(&oai), Some(&named), None, Some(&given));
        assert_eq!(c.unwrap().unwrap().input, r#"{"x":[1,"é"]}"#);
        let c = requested_call(Api::OpenAi, Some(&oai), Some(&json!("auto")), None, None);
        assert_eq!(c, Ok(None));
    }

    #[test]
    fn pieces_concatenate_to_the_input() {
        let call = ToolCall {
            name: "t".into(),
            input: r#"{"city":"Zürich","n":1}"#.into(),
        };
        for n in [1, 2, 3, 7, 40] {
            let joined: String = (0..n).map(|i| call.piece(i, n)).collect();
            assert_eq!(joined, call.input, "n={n}");
        }
        assert_eq!(call.piece(0, 1), call.input);
        assert_eq!(call.piece(5, 2), "");
    }
}
