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
//! Responses API tools are listed flat (`{"type":"function","name":N,"parameters":S}`)
//! and forced with `"required"` or `{"type":"function","name":N}`. Gemini tools are the
//! `functionDeclarations` of each `tools` entry (schema `parametersJsonSchema`, else
//! `parameters` in Google's schema subset, whose upper-case types are read like JSON
//! Schema's), forced by `toolConfig.functionCallingConfig` `{"mode":"ANY"}` (the first of
//! `allowedFunctionNames`, else the first tool). An integer or number property honours
//! its `minimum` (else 1, capped at its `maximum`).
//!
//! A request that asks for a call with `x-mock-tool-use` but whose last input is a
//! tool's output (a chat `tool` message, an Anthropic `tool_result` block, a Responses
//! `function_call_output` / `custom_tool_call_output` item, a Gemini `functionResponse`
//! part in the last content, whose `response.output` is the output when it has one) is
//! the turn after the call:
//! it is answered with the text `tool output: <output>` instead
//! ([`tool_output_reply`]), so an agent that runs the tool ends its loop and shows what
//! the tool printed.

use serde_json::{Map, Value};

use crate::route::Api;

/// How a request lists and forces its tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToolShape {
    /// Anthropic Messages: `{"name","input_schema"}`.
    Anthropic,
    /// OpenAI chat: `{"type":"function","function":{"name","parameters"}}`.
    Chat,
    /// OpenAI Responses: `{"type":"function","name","parameters"}`.
    Responses,
    /// Gemini: `{"functionDeclarations":[{"name","parametersJsonSchema"|"parameters"}]}`.
    Gemini,
}

impl ToolShape {
    /// The shape of chat-style requests of `api`.
    pub(crate) fn of(api: Api) -> ToolShape {
        match api {
            Api::Anthropic => ToolShape::Anthropic,
            Api::OpenAi | Api::Azure => ToolShape::Chat,
            Api::Gemini => ToolShape::Gemini,
        }
    }
}

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
        crate::answer::piece(&self.input, i, n)
    }
}

/// The tool call a request asks for (see the module docs), `None` for a text answer.
/// `Err` (a message for a 400) when `x-mock-tool-use` or a forced `tool_choice`
/// names a tool the request does not list.
pub(crate) fn requested_call(
    api: ToolShape,
    tools: Option<&Value>,
    tool_choice: Option<&Value>,
    wanted: Option<&str>,
    input: Option<&Map<String, Value>>,
) -> Result<Option<ToolCall>, String> {
    let tools = tools
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let listed: Vec<(&str, Option<&Value>)> = match api {
        ToolShape::Gemini => tools
            .iter()
            .filter_map(|t| t.get("functionDeclarations")?.as_array())
            .flatten()
            .filter_map(|d| {
                let schema = d
                    .get("parametersJsonSchema")
                    .or_else(|| d.get("parameters"));
                Some((d.get("name")?.as_str()?, schema))
            })
            .collect(),
        _ => tools.iter().filter_map(|t| tool_entry(api, t)).collect(),
    };
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
fn tool_entry(api: ToolShape, tool: &Value) -> Option<(&str, Option<&Value>)> {
    match api {
        ToolShape::Anthropic => Some((tool.get("name")?.as_str()?, tool.get("input_schema"))),
        ToolShape::Chat => {
            let f = tool.get("function")?;
            Some((f.get("name")?.as_str()?, f.get("parameters")))
        }
        ToolShape::Responses => {
            (tool.get("type")?.as_str()? == "function").then_some(())?;
            Some((tool.get("name")?.as_str()?, tool.get("parameters")))
        }
        ToolShape::Gemini => None,
    }
}

/// The tool a `tool_choice` forces, if any (`Ok(None)` when it forces none or the
/// request lists no tool to pick the first of).
fn forced_choice<'a>(
    api: ToolShape,
    choice: Option<&'a Value>,
    listed: &[(&'a str, Option<&Value>)],
) -> Result<Option<&'a str>, String> {
    let Some(choice) = choice else {
        return Ok(None);
    };
    let first = listed.first().map(|(n, _)| *n);
    let kind = choice.get("type").and_then(Value::as_str);
    Ok(match api {
        ToolShape::Anthropic => match kind {
            Some("any") => first,
            Some("tool") => Some(
                choice
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("tool_choice.name: Field required")?,
            ),
            _ => None,
        },
        ToolShape::Chat => match (choice.as_str(), kind) {
            (Some("required"), _) => first,
            (_, Some("function")) => choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str),
            _ => None,
        },
        ToolShape::Responses => match (choice.as_str(), kind) {
            (Some("required"), _) => first,
            (_, Some("function")) => choice.get("name").and_then(Value::as_str),
            _ => None,
        },
        ToolShape::Gemini => match choice.get("mode").and_then(Value::as_str) {
            Some(m) if m.eq_ignore_ascii_case("any") => choice
                .get("allowedFunctionNames")
                .and_then(|n| n.get(0))
                .and_then(Value::as_str)
                .or(first),
            _ => None,
        },
    })
}

/// The answer to the turn after a tool call (see the module docs): `tool output:
/// <output>` when the last input of `body` (a JSON request in `shape`) is a tool's
/// output, `None` otherwise.
pub(crate) fn tool_output_reply(shape: ToolShape, body: &Value) -> Option<String> {
    let output = match shape {
        ToolShape::Chat => {
            let last = body.get("messages")?.as_array()?.last()?;
            (last.get("role")?.as_str()? == "tool").then_some(())?;
            text_of(last.get("content")?)
        }
        ToolShape::Anthropic => {
            let last = body.get("messages")?.as_array()?.last()?;
            let result = last
                .get("content")?
                .as_array()?
                .iter()
                .rev()
                .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))?;
            result.get("content").map_or_else(String::new, text_of)
        }
        ToolShape::Responses => {
            let last = body.get("input")?.as_array()?.last()?;
            match last.get("type")?.as_str()? {
                "function_call_output" | "custom_tool_call_output" => text_of(last.get("output")?),
                _ => return None,
            }
        }
        ToolShape::Gemini => {
            let last = body.get("contents")?.as_array()?.last()?;
            let response = last
                .get("parts")?
                .as_array()?
                .iter()
                .rev()
                .find_map(|p| p.get("functionResponse"))?
                .get("response")?;
            response
                .get("output")
                .map_or_else(|| text_of(response), text_of)
        }
    };
    Some(format!("tool output: {output}"))
}

/// The text of a tool output: a string, or the `text` of each part of an array.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        other => other.to_string(),
    }
}

/// An example value for JSON schema `schema` (see the module docs).
pub(crate) fn example_json(schema: &Value) -> Value {
    example_value(schema, 0)
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
    }
    .map(str::to_ascii_lowercase);
    match ty.as_deref() {
        Some("integer" | "number") => {
            let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
            let n = bound("minimum").map_or(1.0, f64::ceil);
            let n = bound("maximum").map_or(n, |max| n.min(max.floor()));
            Value::from(n as i64)
        }
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
            requested_call(
                ToolShape::Anthropic,
                Some(tools),
                choice.as_ref(),
                wanted,
                None,
            )
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
        assert!(requested_call(ToolShape::Anthropic, None, None, Some("a"), None).is_err());

        let oai = json!([{"type": "function", "function": {"name": "f", "parameters": {"properties": {"q": {}}}}}]);
        let c = requested_call(
            ToolShape::Chat,
            Some(&oai),
            Some(&json!("required")),
            None,
            None,
        );
        assert_eq!(c.unwrap().unwrap().input, r#"{"q":"mock"}"#);
        let named = json!({"type": "function", "function": {"name": "f"}});
        let mut given = Map::new();
        given.insert("x".into(), json!([1, "é"]));
        let c = requested_call(
            ToolShape::Chat,
            Some(&oai),
            Some(&named),
            None,
            Some(&given),
        );
        assert_eq!(c.unwrap().unwrap().input, r#"{"x":[1,"é"]}"#);
        let c = requested_call(
            ToolShape::Chat,
            Some(&oai),
            Some(&json!("auto")),
            None,
            None,
        );
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
