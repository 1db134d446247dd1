//! A Responses request into an OpenAI chat completions request, for backends that serve
//! only chat completions (`responses_api = false`: vLLM, Ollama, Gemini's OpenAI endpoint).
//! The request is read (and refused where no backend can express it) by [`super::input`];
//! this module writes the neutral form out as chat.
//!
//! | Responses | chat completions |
//! |---|---|
//! | `instructions`, then every `system` / `developer` message, in order | one `system` message first, texts joined with a blank line (servers' chat templates want one system message, at the start) |
//! | `user` message: `input_text` / `output_text` / `input_image` (data: or http(s) URL) | user message: a string for one text part, else `text` / `image_url` parts |
//! | `assistant` message (`output_text`, `refusal`) | assistant `content` (texts concatenated) |
//! | `function_call` (and the assistant text just before it, and the calls just after it) | one assistant message with `tool_calls` (`id` = `call_id`, `arguments` as sent; empty = `{}`) |
//! | `custom_tool_call` | a tool call of the function named like the tool, `arguments` = `{"input": <input>}` |
//! | `function_call_output` / `custom_tool_call_output` | `tool` message (`tool_call_id` = `call_id`; text parts joined with `\n`; images in a user message after the run of tool messages) |
//! | `reasoning` items | dropped |
//! | `function` tools | function tools (`strict` kept; no `parameters` = an empty object schema) |
//! | `custom` tools | a function tool with one string parameter `input`, the grammar in its description |
//! | hosted tools | dropped, named in `dropped_tools` |
//! | `tool_choice` auto / none / required / `{type: function\|custom, name}` | `auto` / `none` / `required` / `{type: function, function: {name}}` (only with tools) |
//! | `parallel_tool_calls` | same (only with tools) |
//! | `temperature`, `top_p` | same |
//! | `max_output_tokens` | `max_tokens` (what every chat-completions server takes: vLLM, Ollama, Gemini's OpenAI endpoint) |
//! | `reasoning.effort` | `reasoning_effort` low / medium / high (`minimal` → low, `xhigh` → high, `none` → left out: servers other than OpenAI take only the three) |
//! | `text.format` `json_schema` / `json_object` | `response_format` `{type: json_schema, json_schema: {name, description, schema, strict}}` / `{type: json_object}` |
//! | `stream: true` | `stream: true` + `stream_options.include_usage: true` |
//!
//! Refused (400, `param` `input`): `input_file` content (chat servers take no documents).
//! Dropped: `user`, `safety_identifier`, `text.verbosity`, `reasoning.summary` and what
//! [`super::input`] drops.

use super::contract::{RequestContext, TranslatedRequest};
use super::input::{
    self, escaped, Choice, Content, Effort, Entry, Format, Output, Request, ToolDef,
};
use crate::translate::chat::{message, tool_choice_mode, tool_choice_named};
use crate::translate::Untranslatable;
use crate::wire::openai_chat::{
    ChatRequest, FnCall, FnDef, ImageUrl, JsonSchemaFormat, Msg, Part, ResponseFormatOut,
    StreamOptions, Tool, ToolCall,
};
use crate::wire::raw::{self, Lazy, Raw, Str};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The backend, as refusals name it.
const PROVIDER: &str = "chat completions";

/// Translates a Responses request body (with the stored history of earlier turns, if any)
/// into a chat completions request body for `cx.model`. See the module docs for the
/// mapping; what cannot be expressed is an [`Untranslatable`] naming the field.
///
/// # Errors
/// The request is malformed or needs what chat completions cannot express.
pub fn to_chat(body: &[u8], cx: &RequestContext<'_>) -> Result<TranslatedRequest, Untranslatable> {
    let r = input::read_request(body, cx.history, PROVIDER)?;
    let out = request(&r, cx.model)?;
    let mut bytes = Vec::with_capacity(body.len() + 256);
    raw::write(&mut bytes, &out);
    Ok(TranslatedRequest {
        body: bytes,
        dropped_tools: r.dropped_tools,
    })
}

fn request<'a>(r: &'a Request<'a>, model: &'a str) -> Result<ChatRequest<'a>, Untranslatable> {
    let tools: Vec<Tool<'a>> = r.tools.iter().map(tool).collect();
    let has_tools = !tools.is_empty();
    let tool_choice = r
        .tool_choice
        .as_ref()
        .filter(|_| has_tools)
        .map(|c| match c {
            Choice::Auto => tool_choice_mode("auto"),
            Choice::None => tool_choice_mode("none"),
            Choice::Required => tool_choice_mode("required"),
            Choice::Named(name) => tool_choice_named(name),
        });
    let response_format = r.format.as_ref().map(|f| match f {
        Format::JsonSchema {
            name,
            schema,
            description,
            strict,
        } => ResponseFormatOut {
            ty: Str::from_static("json_schema"),
            json_schema: Some(JsonSchemaFormat {
                name: name.clone(),
                description: description.clone(),
                schema: Some(schema.clone()),
                strict: *strict,
            }),
        },
        Format::JsonObject => ResponseFormatOut {
            ty: Str::from_static("json_object"),
            json_schema: None,
        },
    });
    Ok(ChatRequest {
        model: Str::from(model),
        messages: Some(Lazy::Value(messages(r)?)),
        max_tokens: r.max_output_tokens,
        temperature: r.temperature,
        top_p: r.top_p,
        tools: has_tools.then_some(Lazy::Value(tools)),
        tool_choice,
        parallel_tool_calls: r.parallel_tool_calls.filter(|_| has_tools),
        stream: r.stream.then_some(true),
        stream_options: r.stream.then_some(StreamOptions {
            include_usage: true,
        }),
        reasoning_effort: r.effort.and_then(chat_effort).map(Str::from_static),
        response_format,
        ..ChatRequest::default()
    })
}

/// The `reasoning_effort` a chat-completions server takes for `e` (low, medium, high);
/// `None` for no reasoning.
fn chat_effort(e: Effort) -> Option<&'static str> {
    match e {
        Effort::None => None,
        Effort::Minimal | Effort::Low => Some("low"),
        Effort::Medium => Some("medium"),
        Effort::High | Effort::XHigh => Some("high"),
    }
}

/// A function or custom tool as a chat function tool.
fn tool<'a>(t: &ToolDef<'a>) -> Tool<'a> {
    let strict = match t {
        ToolDef::Function { strict, .. } => *strict,
        ToolDef::Custom { .. } => None,
    };
    Tool {
        ty: Str::from_static("function"),
        function: Some(FnDef {
            name: t.name().clone(),
            description: t.function_description().cloned(),
            parameters: Some(t.function_parameters()),
            strict,
        }),
    }
}

/// The conversation as chat messages (see the module docs).
fn messages<'a>(r: &'a Request<'a>) -> Result<Vec<Msg<'a>>, Untranslatable> {
    let mut system: Vec<&Raw<'a>> = r.instructions.iter().collect();
    let mut b = Builder::default();
    for e in &r.conversation {
        match e {
            Entry::System(t) => system.push(t),
            Entry::User(parts) => {
                b.flush();
                b.out.push(message("user", Some(user_content(parts)?)));
            }
            Entry::Assistant(parts) => {
                if !b.calls.is_empty() {
                    b.flush_assistant();
                }
                b.flush_images();
                for p in parts {
                    match p {
                        Content::Text(t) => b.text.push(t),
                        _ => return Err(refused_content(p)),
                    }
                }
            }
            Entry::Call(c) => {
                b.flush_images();
                b.calls.push(ToolCall {
                    id: c.call_id.clone(),
                    ty: Some(Str::from_static("function")),
                    function: FnCall {
                        name: c.name.clone(),
                        arguments: Some(arguments(&c.arguments)?),
                    },
                });
            }
            Entry::Result { call_id, output } => {
                b.flush_assistant();
                let content = match output {
                    Output::Text(t) => t.clone(),
                    Output::Parts(parts) => {
                        let mut text = Vec::new();
                        for p in parts {
                            match p {
                                Content::Text(t) => text.push(t),
                                Content::Image(url) => b.images.push(image_part(url)),
                                Content::File { .. } => return Err(refused_content(p)),
                            }
                        }
                        join(&text, "\\n")
                    }
                };
                let mut m = message("tool", Some(Lazy::Raw(content)));
                m.tool_call_id_out = Some(call_id.clone());
                b.out.push(m);
            }
            Entry::Reasoning(_) => {}
        }
    }
    b.flush();
    let mut out = Vec::with_capacity(b.out.len() + 1);
    if !system.is_empty() {
        out.push(message("system", Some(Lazy::Raw(join(&system, "\\n\\n")))));
    }
    out.append(&mut b.out);
    Ok(out)
}

/// The chat messages so far and the turn being assembled.
#[derive(Default)]
struct Builder<'r, 'a> {
    out: Vec<Msg<'a>>,
    /// The assistant turn's text pieces (JSON strings).
    text: Vec<&'r Raw<'a>>,
    /// The assistant turn's tool calls.
    calls: Vec<ToolCall<'a>>,
    /// Images of tool outputs, for one user message after the tool messages.
    images: Vec<Part<'a>>,
}

impl Builder<'_, '_> {
    fn flush(&mut self) {
        self.flush_assistant();
        self.flush_images();
    }

    /// The assistant turn (text, then tool calls) as one message, if any.
    fn flush_assistant(&mut self) {
        if self.text.is_empty() && self.calls.is_empty() {
            return;
        }
        let content = (!self.text.is_empty()).then(|| Lazy::Raw(join(&self.text, "")));
        let mut m = message("assistant", content);
        if !self.calls.is_empty() {
            m.tool_calls = Some(std::mem::take(&mut self.calls));
        }
        self.text.clear();
        self.out.push(m);
    }

    /// The images of the tool outputs just written, as a user message.
    fn flush_images(&mut self) {
        if !self.images.is_empty() {
            let parts = std::mem::take(&mut self.images);
            self.out.push(message("user", Some(Lazy::Value(parts))));
        }
    }
}

/// A user message's content: a string for one text part, else parts.
fn user_content<'a>(parts: &[Content<'a>]) -> Result<Lazy<'a, Vec<Part<'a>>>, Untranslatable> {
    if let [Content::Text(t)] = parts {
        return Ok(Lazy::Raw(t.clone()));
    }
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        out.push(match p {
            Content::Text(t) => Part {
                ty: Str::from_static("text"),
                text: Some(t.clone()),
                refusal: None,
                image_url: None,
            },
            Content::Image(url) => image_part(url),
            Content::File { .. } => return Err(refused_content(p)),
        });
    }
    Ok(Lazy::Value(out))
}

fn image_part<'a>(url: &Cow<'a, str>) -> Part<'a> {
    Part {
        ty: Str::from_static("image_url"),
        text: None,
        refusal: None,
        image_url: Some(ImageUrl {
            url: Raw::Text(url.clone()),
        }),
    }
}

fn refused_content(c: &Content<'_>) -> Untranslatable {
    let what = match c {
        Content::File { .. } => "`input_file` content is not supported",
        _ => "assistant messages may only hold text",
    };
    Untranslatable::new(
        "input",
        format!("Unsupported content in `input`: {what} for this model ({PROVIDER} backend)."),
    )
}

/// JSON strings joined by `sep` (already escaped) into one JSON string, their escaped text
/// copied verbatim; one string is passed on as it is, none is `""`.
fn join<'a>(strings: &[&Raw<'a>], sep: &str) -> Raw<'a> {
    match strings {
        [] => Raw::text(""),
        [one] => (*one).clone(),
        many => {
            let mut s = String::with_capacity(many.len() * (sep.len() + 64) + 2);
            s.push('"');
            for (i, r) in many.iter().enumerate() {
                if i > 0 {
                    s.push_str(sep);
                }
                s.push_str(&escaped(r));
            }
            s.push('"');
            RawValue::from_string(s).map_or(Raw::text(""), Raw::Owned)
        }
    }
}

/// A call's arguments (a JSON string) decoded, as the chat schema holds them; empty
/// arguments are `{}` (chat templates parse them).
fn arguments<'a>(r: &Raw<'a>) -> Result<Str<'a>, Untranslatable> {
    let a = decode(r)?;
    if a.as_str()
        .trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
        .is_empty()
    {
        return Ok(Str::from_static("{}"));
    }
    Ok(a)
}

/// A JSON string value decoded.
fn decode<'a>(r: &Raw<'a>) -> Result<Str<'a>, Untranslatable> {
    let bad = || Untranslatable::invalid("input", "tool call arguments must be a string");
    match r {
        Raw::Text(t) => Ok(Str(t.clone())),
        Raw::Borrowed(_) => r.parse::<Str<'a>>().and_then(Result::ok).ok_or_else(bad),
        Raw::Owned(v) => serde_json::from_str::<String>(v.get())
            .map(Str::from)
            .map_err(|_| bad()),
        Raw::Null => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn cx() -> RequestContext<'static> {
        RequestContext {
            model: "real",
            history: None,
        }
    }

    fn chat(body: &Value) -> Value {
        let t = to_chat(body.to_string().as_bytes(), &cx()).unwrap();
        serde_json::from_slice(&t.body).unwrap()
    }

    fn refused(body: &Value) -> Untranslatable {
        to_chat(body.to_string().as_bytes(), &cx()).unwrap_err()
    }

    fn call(id: &str) -> Value {
        json!({"type": "function_call", "call_id": id, "name": "f", "arguments": "{}"})
    }

    fn output(id: &str) -> Value {
        json!({"type": "function_call_output", "call_id": id, "output": id})
    }

    fn roles(v: &Value) -> Vec<String> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let calls = m["tool_calls"].as_array().map_or(0, Vec::len);
                let role = m["role"].as_str().unwrap();
                if calls > 0 {
                    format!("{role}({calls})")
                } else {
                    role.to_owned()
                }
            })
            .collect()
    }

    #[test]
    fn consecutive_calls_merge_with_the_text_before_them() {
        let v = chat(&json!({"input": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
            {"type": "reasoning", "summary": []},
            call("c1"),
            {"type": "reasoning", "summary": []},
            call("c2"),
            output("c1"),
            output("c2"),
            call("c3"),
            output("c3"),
            {"role": "assistant", "content": "done"},
        ]}));
        assert_eq!(
            roles(&v),
            [
                "user",
                "assistant(2)",
                "tool",
                "tool",
                "assistant(1)",
                "tool",
                "assistant"
            ]
        );
        assert_eq!(v["messages"][1]["content"], "a");
        assert_eq!(v["messages"][1]["tool_calls"][1]["id"], "c2");
        assert_eq!(v["messages"][3]["tool_call_id"], "c2");
        assert_eq!(v["messages"][4]["content"], Value::Null);
    }

    #[test]
    fn text_after_calls_is_its_own_message() {
        let v = chat(&json!({"input": [
            {"role": "user", "content": "go"},
            call("c1"),
            {"role": "assistant", "content": "b"},
            {"role": "assistant", "content": "c"},
        ]}));
        assert_eq!(roles(&v), ["user", "assistant(1)", "assistant"]);
        assert_eq!(v["messages"][2]["content"], "bc");
    }

    #[test]
    fn text_is_copied_verbatim() {
        let body = br#"{"instructions":"s\u00e9","input":[{"role":"user","content":"x\u00e9\/"},{"role":"developer","content":"d\n"}]}"#;
        let t = to_chat(body, &cx()).unwrap();
        let s = String::from_utf8(t.body).unwrap();
        assert!(s.contains(r#""content":"s\u00e9\n\nd\n""#), "{s}");
        assert!(s.contains(r#""content":"x\u00e9\/""#), "{s}");
    }

    #[test]
    fn streams_always_ask_for_usage() {
        let v = chat(
            &json!({"input": "hi", "stream": true, "stream_options": {"include_obfuscation": false}}),
        );
        assert_eq!(v["stream"], true);
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
        let v = chat(&json!({"input": "hi", "stream": false}));
        assert!(v.get("stream").is_none() && v.get("stream_options").is_none());
    }

    #[test]
    fn tool_settings_need_tools() {
        let v = chat(&json!({"input": "hi", "tools": [{"type": "web_search"}],
            "tool_choice": "required", "parallel_tool_calls": false}));
        assert!(v.get("tools").is_none());
        assert!(v.get("tool_choice").is_none());
        assert!(v.get("parallel_tool_calls").is_none());
        let t = to_chat(
            br#"{"input":"hi","tools":[{"type":"web_search"},{"type":"mcp"},{"type":"web_search"}]}"#,
            &cx(),
        )
        .unwrap();
        assert_eq!(t.dropped_tools, ["web_search", "mcp"]);
    }

    #[test]
    fn refusals_name_the_field() {
        let file = json!({"input": [{"role": "user", "content": [
            {"type": "input_file", "file_url": "https://example.com/a.pdf"}]}]});
        assert_eq!(refused(&file).param, "input");
        let file_in_output = json!({"input": [call("c1"), {"type": "function_call_output",
            "call_id": "c1", "output": [{"type": "input_file", "file_data": "data:application/pdf;base64,AA"}]}]});
        assert_eq!(refused(&file_in_output).param, "input");
        let orphan = json!({"input": [output("c9")]});
        assert_eq!(refused(&orphan).param, "input");
        let later_call = json!({"input": [output("c1"), call("c1")]});
        assert_eq!(refused(&later_call).param, "input");
        for (k, v) in [
            ("top_logprobs", json!(2)),
            ("background", json!(true)),
            ("conversation", json!({"id": "c"})),
            ("prompt", json!({"id": "p"})),
        ] {
            let mut body = json!({"input": "hi"});
            body[k] = v;
            assert_eq!(refused(&body).param, k);
        }
    }

    #[test]
    fn history_comes_first() {
        let history = br#"[{"role":"user","content":"one"},{"type":"function_call","call_id":"c1","name":"f","arguments":""}]"#;
        let cx = RequestContext {
            model: "real",
            history: Some(history),
        };
        let body = br#"{"input":[{"type":"function_call_output","call_id":"c1","output":"r"}]}"#;
        let v: Value = serde_json::from_slice(&to_chat(body, &cx).unwrap().body).unwrap();
        assert_eq!(roles(&v), ["user", "assistant(1)", "tool"]);
        assert_eq!(
            v["messages"][1]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
    }
}
