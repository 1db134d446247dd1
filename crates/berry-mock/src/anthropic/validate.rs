//! Request validation of native Messages and `count_tokens` requests, like the real
//! API: the first problem found is the message of a 400 `invalid_request_error`, as
//! `<field path>: <problem>` (e.g. `max_tokens: Field required`,
//! `messages.0.role: Input should be 'user', 'assistant' or 'system'`,
//! `stream_options: Extra inputs are not permitted`).
//!
//! Checked: the body is a JSON object with only known top-level fields; `model` a
//! string; `max_tokens` (Messages only) an integer ≥ 1; `messages` a non-empty list of
//! objects with `role` `user` / `assistant` and `content` a string or a list of blocks
//! with a string `type`; `system` a string or a list of blocks; `stream` a boolean;
//! `temperature` and `top_p` numbers in 0..=1, `top_k` an integer ≥ 0;
//! `stop_sequences` a list of strings; `metadata` an object; `tools` a list of objects
//! with a string `name` (custom tools, i.e. without a `type` or of type `custom`, also an
//! object `input_schema`); `tool_choice` an object of type `auto` / `any` / `tool`
//! (with a string `name`) / `none`, only together with `tools`.

use serde_json::{Map, Value};

/// Which request is validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `POST …/messages`.
    Messages,
    /// `POST …/messages/count_tokens`.
    CountTokens,
}

const MESSAGES_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "metadata",
    "stop_sequences",
    "stream",
    "system",
    "temperature",
    "thinking",
    "tool_choice",
    "tools",
    "top_k",
    "top_p",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    // sent by Claude Code
    "output_config",
];

const COUNT_TOKENS_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "thinking",
    "tool_choice",
    "tools",
    "mcp_servers",
    "context_management",
    "output_config",
];

const REQUIRED: &str = "Field required";

/// `Ok` when `body` is a valid request of `kind`, else the message of the 400.
pub(crate) fn validate(body: &[u8], kind: Kind) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("There was an error parsing the body of your request: {e}"))?;
    let Value::Object(req) = v else {
        return Err("The request body must be a JSON object".to_string());
    };
    let known = match kind {
        Kind::Messages => MESSAGES_FIELDS,
        Kind::CountTokens => COUNT_TOKENS_FIELDS,
    };
    if let Some(extra) = req.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("{extra}: Extra inputs are not permitted"));
    }
    match req.get("model") {
        None => return Err(format!("model: {REQUIRED}")),
        Some(m) if !m.is_string() => return Err("model: Input should be a valid string".into()),
        _ => {}
    }
    if kind == Kind::Messages {
        match req.get("max_tokens") {
            None => return Err(format!("max_tokens: {REQUIRED}")),
            Some(m) => match m.as_i64() {
                None => return Err("max_tokens: Input should be a valid integer".into()),
                Some(n) if n < 1 => {
                    return Err("max_tokens: Input should be greater than or equal to 1".into())
                }
                _ => {}
            },
        }
    }
    messages(&req)?;
    optional(&req)?;
    tools(&req)
}

fn messages(req: &Map<String, Value>) -> Result<(), String> {
    let list = match req.get("messages") {
        None => return Err(format!("messages: {REQUIRED}")),
        Some(Value::Array(l)) => l,
        Some(_) => return Err("messages: Input should be a valid list".into()),
    };
    if list.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    for (i, m) in list.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(format!("messages.{i}: Input should be a valid dictionary"));
        };
        match m.get("role").and_then(Value::as_str) {
            // Claude Code also sends `system` turns inside `messages` (accepted by the API).
            Some("user" | "assistant" | "system") => {}
            None if !m.contains_key("role") => {
                return Err(format!("messages.{i}.role: {REQUIRED}"))
            }
            _ => {
                return Err(format!(
                    "messages.{i}.role: Input should be 'user', 'assistant' or 'system'"
                ))
            }
        }
        match m.get("content") {
            None => return Err(format!("messages.{i}.content: {REQUIRED}")),
            Some(c) => blocks(c, &format!("messages.{i}.content"))?,
        }
    }
    Ok(())
}

/// A `content` / `system` value: a string or a list of blocks with a string `type`.
fn blocks(v: &Value, path: &str) -> Result<(), String> {
    match v {
        Value::String(_) => Ok(()),
        Value::Array(list) => {
            for (j, b) in list.iter().enumerate() {
                if !b.get("type").is_some_and(Value::is_string) {
                    return Err(format!("{path}.{j}.type: {REQUIRED}"));
                }
            }
            Ok(())
        }
        _ => Err(format!(
            "{path}: Input should be a valid string or a list of content blocks"
        )),
    }
}

fn optional(req: &Map<String, Value>) -> Result<(), String> {
    if let Some(s) = req.get("system") {
        blocks(s, "system")?;
    }
    if req.get("stream").is_some_and(|s| !s.is_boolean()) {
        return Err("stream: Input should be a valid boolean".into());
    }
    for name in ["temperature", "top_p"] {
        if let Some(v) = req.get(name) {
            match v.as_f64() {
                None => return Err(format!("{name}: Input should be a valid number")),
                Some(x) if !(0.0..=1.0).contains(&x) => {
                    return Err(format!("{name}: Input should be less than or equal to 1 and greater than or equal to 0"))
                }
                _ => {}
            }
        }
    }
    if req.get("top_k").is_some_and(|k| k.as_u64().is_none()) {
        return Err("top_k: Input should be a valid integer greater than or equal to 0".into());
    }
    if let Some(s) = req.get("stop_sequences") {
        let ok = s.as_array().is_some_and(|l| l.iter().all(Value::is_string));
        if !ok {
            return Err("stop_sequences: Input should be a valid list of strings".into());
        }
    }
    if req.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err("metadata: Input should be a valid dictionary".into());
    }
    Ok(())
}

fn tools(req: &Map<String, Value>) -> Result<(), String> {
    let list = match req.get("tools") {
        None => None,
        Some(Value::Array(l)) => Some(l),
        Some(_) => return Err("tools: Input should be a valid list".into()),
    };
    for (i, t) in list.into_iter().flatten().enumerate() {
        let Value::Object(t) = t else {
            return Err(format!("tools.{i}: Input should be a valid dictionary"));
        };
        if !t.get("name").is_some_and(Value::is_string) {
            return Err(format!("tools.{i}.name: {REQUIRED}"));
        }
        let custom = matches!(t.get("type").and_then(Value::as_str), None | Some("custom"));
        if custom && !t.get("input_schema").is_some_and(Value::is_object) {
            return Err(format!("tools.{i}.custom.input_schema: {REQUIRED}"));
        }
    }
    let Some(choice) = req.get("tool_choice") else {
        return Ok(());
    };
    if list.is_none_or(|l| l.is_empty()) {
        return Err("tool_choice may only be specified while providing tools.".into());
    }
    match choice.get("type").and_then(Value::as_str) {
        Some("auto" | "any" | "none") => Ok(()),
        Some("tool") if choice.get("name").is_some_and(Value::is_string) => Ok(()),
        Some("tool") => Err(format!("tool_choice.tool.name: {REQUIRED}")),
        _ => Err("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, kind: Kind) -> Result<(), String> {
        validate(body.as_bytes(), kind)
    }

    #[test]
    fn messages_requests() {
        let ok = r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"x"}]}],"system":[{"type":"text","text":"s"}],"stream":true,"temperature":1,"top_k":3,"stop_sequences":["x"],"tools":[{"name":"t","input_schema":{"type":"object"}},{"type":"web_search_20250305","name":"web_search"}],"tool_choice":{"type":"tool","name":"t"}}"#;
        assert_eq!(check(ok, Kind::Messages), Ok(()));
        for (body, msg) in [
            ("{", "There was an error parsing"),
            ("[1]", "must be a JSON object"),
            (r#"{"max_tokens":1,"messages":[]}"#, "model: Field required"),
            (
                r#"{"model":"c","messages":[{"role":"user","content":"x"}]}"#,
                "max_tokens: Field required",
            ),
            (
                r#"{"model":"c","max_tokens":0,"messages":[]}"#,
                "max_tokens: Input should be greater",
            ),
            (
                r#"{"model":"c","max_tokens":"9","messages":[]}"#,
                "max_tokens: Input should be a valid integer",
            ),
            (
                r#"{"model":"c","max_tokens":9}"#,
                "messages: Field required",
            ),
            (
                r#"{"model":"c","max_tokens":9,"messages":[]}"#,
                "messages: at least one message",
            ),
            (
                r#"{"model":"c","max_tokens":9,"messages":[{"role":"tool","content":"x"}]}"#,
                "messages.0.role: Input should be 'user', 'assistant' or 'system'",
            ),
            (
                r#"{"model":"c","max_tokens":9,"messages":[{"role":"user"}]}"#,
                "messages.0.content: Field required",
            ),
            (
                r#"{"model":"c","max_tokens":9,"messages":[{"role":"user","content":[{"text":"x"}]}]}"#,
                "messages.0.content.0.type: Field required",
            ),
            (
                r#"{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}],"stream_options":{}}"#,
                "stream_options: Extra inputs are not permitted",
            ),
            (
                r#"{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}],"temperature":1.5}"#,
                "temperature: Input should be less than",
            ),
            (
                r#"{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"t"}]}"#,
                "tools.0.custom.input_schema: Field required",
            ),
            (
                r#"{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"any"}}"#,
                "tool_choice may only be specified",
            ),
            (
                r#"{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"t","input_schema":{}}],"tool_choice":{"type":"tool"}}"#,
                "tool_choice.tool.name: Field required",
            ),
            (
                r#"{"model":"c","max_tokens":9,"messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                "stream: Input should be a valid boolean",
            ),
        ] {
            let err = check(body, Kind::Messages).unwrap_err();
            assert!(err.starts_with(msg) || err.contains(msg), "{body}: {err}");
        }
    }

    #[test]
    fn count_tokens_requests() {
        let ok = r#"{"model":"c","messages":[{"role":"user","content":"hi"}],"system":"s"}"#;
        assert_eq!(check(ok, Kind::CountTokens), Ok(()));
        let err = check(
            r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
            Kind::CountTokens,
        );
        assert_eq!(
            err,
            Err("max_tokens: Extra inputs are not permitted".into())
        );
    }
}
