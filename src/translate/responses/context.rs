//! What the answer side knows about the request: the response id, the backend's model,
//! the request settings echoed in the `Response` object, and which tools are `custom`.

use crate::wire::raw::{self, Members, Raw, Str};
use crate::wire::responses::{TextConfig, Tool};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

/// What the answer of one request needs to know about the request and the gateway.
#[derive(Debug, Clone)]
pub struct AnswerContext {
    /// The response's id (`resp_…`), issued by the gateway; item ids are derived from it.
    pub response_id: String,
    /// The backend's real model.
    pub model: String,
    /// `created_at` (Unix seconds).
    pub created_at: u64,
    pub(super) echo: Echo,
    /// [`AnswerContext::echo`] with `instructions` `null` and `tools` `[]`: the echo of the
    /// `response.created` and `response.in_progress` events, which the gateway holds back
    /// until the commit point (the full settings are in `response.completed`).
    pub(super) echo_light: Echo,
    custom_tools: Vec<String>,
    json_answer: bool,
}

impl AnswerContext {
    /// The context of an answer to `request_body` (the client's Responses request): its
    /// settings are echoed in the `Response` object, its `custom` tools are answered as
    /// `custom_tool_call` items. A malformed body gives the defaults.
    #[must_use]
    pub fn new(response_id: String, model: String, request_body: &[u8]) -> Self {
        let mut cx = AnswerContext {
            response_id,
            model,
            created_at: crate::translate::now_secs(),
            echo: Echo::default(),
            echo_light: Echo::default(),
            custom_tools: Vec::new(),
            json_answer: false,
        };
        let mut seen: Vec<(&str, &RawValue)> = Vec::new();
        if let Ok(members) = raw::read::<Members<'_>>(request_body) {
            for (k, v) in members.0 {
                let raw = Raw::Borrowed(v);
                if raw.is_null() {
                    continue;
                }
                match k.as_str() {
                    "tools" => {
                        if let Some(Ok(tools)) = raw.parse::<Vec<Tool<'_>>>() {
                            cx.custom_tools = tools
                                .iter()
                                .filter(|t| t.ty.as_str() == "custom")
                                .filter_map(|t| t.name.as_ref()?.parse::<Str<'_>>()?.ok())
                                .map(|s| s.0.into_owned())
                                .collect();
                        }
                    }
                    "text" => {
                        if let Some(Ok(t)) = raw.parse::<TextConfig<'_>>() {
                            cx.json_answer = t.format.is_some_and(|f| {
                                matches!(f.ty.as_str(), "json_schema" | "json_object")
                            })
                        }
                    }
                    _ => {}
                }
                if let Some(name) = ECHOED.iter().find(|(n, _)| *n == k.as_str()) {
                    seen.retain(|(n, _)| *n != name.0);
                    seen.push((name.0, v));
                }
            }
        }
        for (name, default) in ECHOED {
            let value = match seen.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => Some((*v).to_owned()),
                None => default.and_then(|d| RawValue::from_string(d.to_owned()).ok()),
            };
            if let Some(v) = value {
                let light = match name {
                    "instructions" => RawValue::from_string("null".to_owned()).ok(),
                    "tools" => RawValue::from_string("[]".to_owned()).ok(),
                    _ => Some(v.clone()),
                };
                if let Some(l) = light {
                    cx.echo_light.0.push((name, l));
                }
                cx.echo.0.push((name, v));
            }
        }
        cx
    }

    /// Whether `name` (decoded) is a `custom` tool of the request.
    #[must_use]
    pub fn is_custom_tool(&self, name: &str) -> bool {
        self.custom_tools.iter().any(|t| t == name)
    }

    /// Whether the request asked for a JSON answer (`text.format` `json_schema` or
    /// `json_object`).
    #[must_use]
    pub fn json_answer(&self) -> bool {
        self.json_answer
    }
}

/// The request members echoed in the `Response` object, with their defaults (`None`: not
/// written when the request has none).
const ECHOED: [(&str, Option<&str>); 15] = [
    ("instructions", Some("null")),
    ("max_output_tokens", Some("null")),
    ("metadata", Some("{}")),
    ("parallel_tool_calls", Some("true")),
    ("previous_response_id", Some("null")),
    ("reasoning", Some(r#"{"effort":null,"summary":null}"#)),
    ("store", Some("true")),
    ("temperature", Some("1.0")),
    ("text", Some(r#"{"format":{"type":"text"}}"#)),
    ("tool_choice", Some("\"auto\"")),
    ("tools", Some("[]")),
    ("top_p", Some("1.0")),
    ("truncation", Some("\"disabled\"")),
    ("user", None),
    ("prompt_cache_key", None),
];

/// The echoed members, written flattened into the `Response` object.
#[derive(Debug, Clone, Default)]
pub(super) struct Echo(Vec<(&'static str, Box<RawValue>)>);

impl Serialize for Echo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}
