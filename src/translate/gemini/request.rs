//! A `GenerateContentRequest` read into the neutral form both backend mappings write out
//! ([`super::chat`], [`super::messages`]), refusing what no backend can express.
//!
//! Refused (400, `param` = the top-level member): a body that is not a JSON object or a
//! member of the wrong shape; in `contents`: a role other than `user` / `model` /
//! `function`, a part of no known kind, `executableCode` / `codeExecutionResult`, a
//! `functionCall` outside a `model` turn, a `functionResponse` outside a user turn or
//! without an earlier unanswered call of its name, non-string text, media other than
//! images and PDFs, `fileData` URIs that are not http(s); `generationConfig.candidateCount`
//! above 1, `responseLogprobs`, `logprobs`, a `responseMimeType` other than `text/plain` /
//! `application/json`; `cachedContent`. Dropped: `safetySettings`, `labels`, Google's own
//! tools (`googleSearch`, `codeExecution`, `urlContext`, …), `topK`, `seed`, penalties,
//! `responseModalities`, thought signatures, thought parts (their text cannot be sent back
//! as thinking).

use super::schema;
use crate::translate::Untranslatable;
use crate::wire::gemini::{Content, FunctionDeclaration, GenerationConfig, Part, Tool, ToolConfig};
use crate::wire::raw::{self, Members, Raw, Str};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `user` (and `function`, older clients' turns of function responses).
    User,
    /// `model`.
    Model,
}

/// One thing a turn holds.
#[derive(Debug)]
pub enum Item<'a> {
    /// Text (a JSON string, verbatim).
    Text(Raw<'a>),
    /// Base64 data of an image or PDF (`media_type`, `data`).
    Inline { media_type: Str<'a>, data: Str<'a> },
    /// An image or PDF by http(s) URL.
    Url { url: Str<'a>, pdf: bool },
    /// A function call with the id the gateway issued (`call_<n>`).
    Call {
        id: String,
        name: Raw<'a>,
        args: Raw<'a>,
    },
    /// A function's result (the `response` object as JSON text) for the call `id`.
    Result { id: String, response: Raw<'a> },
}

/// A turn of the conversation.
#[derive(Debug)]
pub struct Turn<'a> {
    pub role: Role,
    pub items: Vec<Item<'a>>,
}

/// A declared function.
#[derive(Debug)]
pub struct Decl<'a> {
    pub name: Raw<'a>,
    pub description: Option<Raw<'a>>,
    /// JSON Schema of the arguments.
    pub schema: Raw<'a>,
}

/// `functionCallingConfig.mode` (+ allowed names).
#[derive(Debug, Clone)]
pub enum Choice<'a> {
    Auto,
    None,
    /// `ANY` with no or several allowed names.
    Any,
    /// `ANY` with one allowed name.
    Named(Raw<'a>),
}

/// How much the model thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    /// No `thinkingConfig` (the backend's default).
    Unset,
    /// Budget 0 or level `MINIMAL`.
    Off,
    /// A budget in tokens (levels: low 1,024, medium 4,096, high 16,384; dynamic: 4,096).
    Budget(u64),
}

impl Thinking {
    /// Chat's `reasoning_effort` for the budget.
    #[must_use]
    pub fn effort(self) -> Option<&'static str> {
        match self {
            Thinking::Unset | Thinking::Off => None,
            Thinking::Budget(b) if b <= 2048 => Some("low"),
            Thinking::Budget(b) if b <= 8192 => Some("medium"),
            Thinking::Budget(_) => Some("high"),
        }
    }
}

/// A request in the neutral form.
#[derive(Debug)]
pub struct Request<'a> {
    /// `systemInstruction` text parts (JSON strings).
    pub system: Vec<Raw<'a>>,
    pub turns: Vec<Turn<'a>>,
    pub tools: Vec<Decl<'a>>,
    pub choice: Option<Choice<'a>>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_output_tokens: Option<u64>,
    pub stop: Vec<Raw<'a>>,
    /// `responseMimeType: application/json`: the answer's JSON Schema when one was given.
    pub json: Option<Option<Raw<'a>>>,
    pub thinking: Thinking,
}

/// Reads a `GenerateContentRequest` (see the module docs for what is refused).
///
/// # Errors
/// A malformed request or one no backend can express ([`Untranslatable`]).
pub fn read(body: &[u8]) -> Result<Request<'_>, Untranslatable> {
    let members = raw::read::<Members<'_>>(body)
        .map_err(|_| Untranslatable::new("", "The request body must be a JSON object."))?;
    let mut r = Request {
        system: Vec::new(),
        turns: Vec::new(),
        tools: Vec::new(),
        choice: None,
        temperature: None,
        top_p: None,
        max_output_tokens: None,
        stop: Vec::new(),
        json: None,
        thinking: Thinking::Unset,
    };
    let mut contents = None;
    for (k, v) in members.0 {
        let v = Raw::Borrowed(v);
        if v.is_null() {
            continue;
        }
        match k.as_str() {
            "contents" => contents = Some(parse::<Vec<Content<'_>>>(&v, "contents")?),
            "systemInstruction" | "system_instruction" => {
                r.system = system(&v)?;
            }
            "tools" => {
                for t in parse::<Vec<Tool<'_>>>(&v, "tools")? {
                    for d in t.function_declarations.into_iter().flatten() {
                        r.tools.push(decl(d)?);
                    }
                }
            }
            "toolConfig" | "tool_config" => {
                r.choice = choice(parse::<ToolConfig<'_>>(&v, "toolConfig")?)?;
            }
            "generationConfig" | "generation_config" => {
                generation(
                    &mut r,
                    parse::<GenerationConfig<'_>>(&v, "generationConfig")?,
                )?;
            }
            "cachedContent" | "cached_content" => {
                return Err(Untranslatable::unsupported(
                    "cachedContent",
                    super::context::PROVIDERS,
                ))
            }
            _ => {} // safetySettings, labels, model, unknown: dropped
        }
    }
    r.turns = turns(contents.unwrap_or_default())?;
    Ok(r)
}

fn parse<'a, T: serde::Deserialize<'a>>(v: &Raw<'a>, param: &str) -> Result<T, Untranslatable> {
    match v.parse::<T>() {
        Some(Ok(t)) => Ok(t),
        Some(Err(e)) => Err(Untranslatable::invalid(param, e)),
        None => Err(Untranslatable::invalid(param, "malformed")),
    }
}

/// `systemInstruction`: a `Content` (its text parts) or, as some clients send, a string.
fn system<'a>(v: &Raw<'a>) -> Result<Vec<Raw<'a>>, Untranslatable> {
    if v.is_str() {
        return Ok(vec![v.clone()]);
    }
    let c = parse::<Content<'_>>(v, "systemInstruction")?;
    let mut out = Vec::with_capacity(c.parts.len());
    for p in c.parts {
        match p.text {
            Some(t) if t.is_str() => out.push(t),
            _ => {
                return Err(Untranslatable::invalid(
                    "systemInstruction",
                    "only text parts are supported",
                ))
            }
        }
    }
    Ok(out)
}

fn decl(d: FunctionDeclaration<'_>) -> Result<Decl<'_>, Untranslatable> {
    if !d.name.is_str() || d.name.is_empty_str() {
        return Err(Untranslatable::invalid("tools", "a function needs a name"));
    }
    let schema = match (d.parameters_json_schema, d.parameters) {
        (Some(s), _) if !s.is_null() => {
            if !s.is_obj() {
                return Err(Untranslatable::invalid(
                    "tools",
                    "`parametersJsonSchema` must be an object",
                ));
            }
            s
        }
        (_, Some(p)) if !p.is_null() => schema::to_json_schema(&p)
            .ok_or_else(|| Untranslatable::invalid("tools", "`parameters` must be an object"))?,
        _ => Raw::constant(r#"{"type":"object","properties":{}}"#),
    };
    Ok(Decl {
        name: d.name,
        description: d.description.filter(|s| s.is_str()),
        schema,
    })
}

fn choice(c: ToolConfig<'_>) -> Result<Option<Choice<'_>>, Untranslatable> {
    let Some(f) = c.function_calling_config else {
        return Ok(None);
    };
    let mode = f.mode.as_ref().map(|m| m.as_str().to_ascii_uppercase());
    Ok(match mode.as_deref() {
        None | Some("MODE_UNSPECIFIED" | "AUTO" | "VALIDATED") => Some(Choice::Auto),
        Some("NONE") => Some(Choice::None),
        Some("ANY") => match f.allowed_function_names.as_deref() {
            Some([one]) if one.is_str() => Some(Choice::Named(one.clone())),
            _ => Some(Choice::Any),
        },
        Some(other) => {
            return Err(Untranslatable::invalid(
                "toolConfig",
                format!("unknown functionCallingConfig mode `{other}`"),
            ))
        }
    })
}

fn generation<'a>(r: &mut Request<'a>, g: GenerationConfig<'a>) -> Result<(), Untranslatable> {
    let refuse = |what: &str| {
        Untranslatable::new(
            "generationConfig",
            format!(
                "The parameter `generationConfig.{what}` is not supported for this model ({} backend).",
                super::context::PROVIDERS
            ),
        )
    };
    if g.candidate_count.is_some_and(|n| n > 1) {
        return Err(refuse("candidateCount"));
    }
    if g.response_logprobs == Some(true) {
        return Err(refuse("responseLogprobs"));
    }
    if g.logprobs.is_some_and(|n| n > 0) {
        return Err(refuse("logprobs"));
    }
    r.temperature = g.temperature;
    r.top_p = g.top_p;
    r.max_output_tokens = g.max_output_tokens;
    for s in g.stop_sequences.into_iter().flatten() {
        if !s.is_str() {
            return Err(Untranslatable::invalid(
                "generationConfig",
                "stopSequences must be strings",
            ));
        }
        r.stop.push(s);
    }
    match g.response_mime_type.as_ref().map(Str::as_str) {
        None | Some("" | "text/plain") => {}
        Some("application/json") => {
            let schema = match (g.response_json_schema, g.response_schema) {
                (Some(s), _) if s.is_obj() => Some(s),
                (_, Some(s)) if s.is_obj() => schema::to_json_schema(&s),
                _ => None,
            };
            r.json = Some(schema);
        }
        Some(other) => return Err(refuse(&format!("responseMimeType` `{other}"))),
    }
    if let Some(t) = g.thinking_config {
        r.thinking = match (t.thinking_budget, t.thinking_level.as_ref()) {
            (Some(0), _) => Thinking::Off,
            (Some(b), _) if b < 0 => Thinking::Budget(4096),
            (Some(b), _) => Thinking::Budget(u64::try_from(b).unwrap_or(4096)),
            (None, Some(l)) => match l.as_str().to_ascii_lowercase().as_str() {
                "minimal" => Thinking::Off,
                "low" => Thinking::Budget(1024),
                "high" => Thinking::Budget(16_384),
                _ => Thinking::Budget(4096),
            },
            (None, None) => Thinking::Unset,
        };
    }
    Ok(())
}

/// A call waiting for its response.
struct Pending {
    id: String,
    answered: bool,
}

/// Issues call ids and pairs responses with calls: by the client's id when it names an
/// unanswered call, else the earliest unanswered call of the same name.
#[derive(Default)]
struct Calls {
    calls: Vec<Pending>,
    by_name: HashMap<String, VecDeque<usize>>,
    by_client_id: HashMap<String, usize>,
}

impl Calls {
    fn call(&mut self, name: &str, client_id: Option<&str>) -> String {
        let n = self.calls.len();
        let id = format!("call_{n}");
        self.calls.push(Pending {
            id: id.clone(),
            answered: false,
        });
        self.by_name
            .entry(name.to_owned())
            .or_default()
            .push_back(n);
        if let Some(c) = client_id.filter(|c| !c.is_empty()) {
            self.by_client_id.insert(c.to_owned(), n);
        }
        id
    }

    fn answer(&mut self, name: &str, client_id: Option<&str>) -> Option<String> {
        let by_id = client_id
            .and_then(|c| self.by_client_id.get(c).copied())
            .filter(|&n| self.calls.get(n).is_some_and(|p| !p.answered));
        let n = match by_id {
            Some(n) => n,
            None => {
                let q = self.by_name.get_mut(name)?;
                loop {
                    let n = q.pop_front()?;
                    if self.calls.get(n).is_some_and(|p| !p.answered) {
                        break n;
                    }
                }
            }
        };
        let p = self.calls.get_mut(n)?;
        p.answered = true;
        Some(p.id.clone())
    }
}

fn name_of(r: &Raw<'_>) -> Result<String, Untranslatable> {
    match r.parse::<Str<'_>>() {
        Some(Ok(s)) if !s.as_str().is_empty() => Ok(s.0.into_owned()),
        _ => Err(Untranslatable::invalid(
            "contents",
            "a function needs a name",
        )),
    }
}

fn turns(contents: Vec<Content<'_>>) -> Result<Vec<Turn<'_>>, Untranslatable> {
    let mut calls = Calls::default();
    let mut out = Vec::with_capacity(contents.len());
    for c in contents {
        let role = match c.role.as_ref().map(Str::as_str) {
            None | Some("" | "user" | "function") => Role::User,
            Some("model") => Role::Model,
            Some(other) => {
                return Err(Untranslatable::invalid(
                    "contents",
                    format!("unknown role `{other}`"),
                ))
            }
        };
        let mut items = Vec::with_capacity(c.parts.len());
        for p in c.parts {
            if let Some(i) = item(p, role, &mut calls)? {
                items.push(i);
            }
        }
        out.push(Turn { role, items });
    }
    Ok(out)
}

fn item<'a>(
    p: Part<'a>,
    role: Role,
    calls: &mut Calls,
) -> Result<Option<Item<'a>>, Untranslatable> {
    let bad = |why: &str| Untranslatable::invalid("contents", why);
    if let Some(f) = p.function_call {
        if role != Role::Model {
            return Err(bad("a `functionCall` must be in a `model` turn"));
        }
        let name = name_of(&f.name)?;
        let args = match f.args {
            Some(a) if a.is_obj() => a,
            Some(a) if !a.is_null() => return Err(bad("`functionCall.args` must be an object")),
            _ => Raw::constant("{}"),
        };
        let id = calls.call(&name, f.id.as_ref().map(Str::as_str));
        return Ok(Some(Item::Call {
            id,
            name: f.name,
            args,
        }));
    }
    if let Some(f) = p.function_response {
        if role != Role::User {
            return Err(bad("a `functionResponse` must be in a `user` turn"));
        }
        let name = name_of(&f.name)?;
        let Some(id) = calls.answer(&name, f.id.as_ref().map(Str::as_str)) else {
            return Err(Untranslatable::invalid(
                "contents",
                format!("the `functionResponse` of `{name}` answers no earlier `functionCall`"),
            ));
        };
        let response = match f.response {
            Some(r) if !r.is_null() => r,
            _ => Raw::constant("{}"),
        };
        let response = Raw::Text(Cow::Owned(response.json().unwrap_or("{}").to_owned()));
        return Ok(Some(Item::Result { id, response }));
    }
    if let Some(t) = p.text {
        if !t.is_str() {
            return Err(bad("`text` must be a string"));
        }
        // Thinking text cannot be sent back as thinking (no usable signature): dropped.
        return Ok((p.thought != Some(true)).then_some(Item::Text(t)));
    }
    if let Some(b) = p.inline_data {
        let pdf = b.mime_type.as_str() == "application/pdf";
        if !pdf && !b.mime_type.as_str().starts_with("image/") {
            return Err(unsupported_media(b.mime_type.as_str()));
        }
        return Ok(Some(Item::Inline {
            media_type: b.mime_type,
            data: b.data,
        }));
    }
    if let Some(f) = p.file_data {
        let uri = f.file_uri.as_str();
        if !(uri.starts_with("https://") || uri.starts_with("http://")) {
            return Err(bad("`fileData.fileUri` must be an http(s) URL"));
        }
        let mime = match &f.mime_type {
            Some(m) => Cow::Borrowed(m.as_str()),
            None => Cow::Owned(guess_mime(uri)),
        };
        let pdf = mime == "application/pdf";
        if !pdf && !mime.starts_with("image/") {
            return Err(unsupported_media(&mime));
        }
        return Ok(Some(Item::Url {
            url: f.file_uri,
            pdf,
        }));
    }
    if p.executable_code.is_some() || p.code_execution_result.is_some() {
        return Err(bad("code execution parts are not supported"));
    }
    if p.thought_signature.is_some() || p.thought.is_some() {
        return Ok(None);
    }
    Err(bad("a part of unknown kind"))
}

fn unsupported_media(mime: &str) -> Untranslatable {
    Untranslatable::invalid(
        "contents",
        format!("media of type `{mime}` is not supported (images and PDFs are)"),
    )
}

/// The media type of a URL by its extension (`application/octet-stream` when unknown).
fn guess_mime(uri: &str) -> String {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
    .to_owned()
}

/// JSON strings concatenated (with `sep`, already escaped) into one JSON string, their
/// escaped text copied verbatim.
#[must_use]
pub fn join<'a>(texts: &[&Raw<'a>], sep: &str) -> Raw<'a> {
    match texts {
        [] => Raw::text(""),
        [one] => (*one).clone(),
        many => {
            let mut s = String::from("\"");
            for (i, t) in many.iter().enumerate() {
                if i > 0 {
                    s.push_str(sep);
                }
                match t.inner() {
                    Some(inner) => s.push_str(inner),
                    None => {
                        let mut buf = Vec::new();
                        raw::write(&mut buf, *t);
                        let enc = String::from_utf8(buf).unwrap_or_default();
                        s.push_str(enc.get(1..enc.len().saturating_sub(1)).unwrap_or(""));
                    }
                }
            }
            s.push('"');
            serde_json::value::RawValue::from_string(s).map_or(Raw::text(""), Raw::Owned)
        }
    }
}
