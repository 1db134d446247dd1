//! The output items as the answer builds them, and how they are written.

use crate::wire::raw::{List, Raw};
use crate::wire::responses::{Event, OutputItem, OutputPart};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// An output item's index in `output`.
pub type ItemIx = usize;

/// An output item's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// `message` (one `output_text` part).
    Message,
    /// `function_call`.
    FunctionCall,
    /// `custom_tool_call`.
    CustomToolCall,
    /// `reasoning` (one summary part).
    Reasoning,
}

/// One output item as built.
#[derive(Debug)]
pub(super) struct ItemState {
    pub(super) kind: ItemKind,
    pub(super) id: String,
    pub(super) call_id: Raw<'static>,
    pub(super) name: Raw<'static>,
    /// The escaped characters of the text, arguments or thinking so far.
    pub(super) buf: String,
    /// A delta was written.
    pub(super) had_delta: bool,
    /// The escaped characters of the thinking block's signature.
    pub(super) signature: String,
    /// A `redacted_thinking` block's data (decoded).
    pub(super) redacted: Option<String>,
    /// Set at close: the text / arguments / input / summary text.
    pub(super) value: Raw<'static>,
    /// Set at close: a reasoning item's `encrypted_content`.
    pub(super) encrypted: Option<Raw<'static>>,
    pub(super) done: bool,
}

/// The empty string.
pub(super) const EMPTY: Raw<'static> = Raw::Text(Cow::Borrowed(""));

/// An event about item `ix` (`output_index`, `item_id` set).
pub(super) fn item_event<'a>(ty: &'static str, seq: u64, ix: ItemIx, id: &'a str) -> Event<'a> {
    let mut ev = Event::new(ty, seq);
    ev.output_index = Some(ix as u64);
    ev.item_id = Some(id);
    ev
}

/// `r` with nothing borrowed.
pub(super) fn owned(r: &Raw<'_>) -> Raw<'static> {
    match r {
        Raw::Borrowed(v) => Raw::Owned((*v).to_owned()),
        Raw::Owned(v) => Raw::Owned(v.clone()),
        Raw::Text(t) => Raw::Text(Cow::Owned(t.clone().into_owned())),
        Raw::Null => Raw::Null,
    }
}

/// The JSON string whose escaped characters are `escaped`.
pub(super) fn string_value(escaped: &str) -> Option<Raw<'static>> {
    let mut s = String::with_capacity(escaped.len() + 2);
    s.push('"');
    s.push_str(escaped);
    s.push('"');
    RawValue::from_string(s).ok().map(Raw::Owned)
}

/// The string whose escaped characters are `escaped`, decoded.
pub(super) fn decode(escaped: &str) -> Option<String> {
    let mut s = String::with_capacity(escaped.len() + 2);
    s.push('"');
    s.push_str(escaped);
    s.push('"');
    serde_json::from_str(&s).ok()
}

/// A custom call's input from its function arguments `{"input": "…"}` (escaped JSON text):
/// the `input` string; arguments of another shape are passed as the input text itself.
pub(super) fn custom_input(escaped_args: &str) -> Option<Raw<'static>> {
    #[derive(serde::Deserialize)]
    struct Args {
        input: Box<RawValue>,
    }
    let args = decode(escaped_args)?;
    if let Ok(a) = serde_json::from_str::<Args>(&args) {
        if a.input.get().starts_with('"') {
            return Some(Raw::Owned(a.input));
        }
    }
    Some(Raw::Text(Cow::Owned(args)))
}

pub(super) fn text_part<'a>(text: &'a Raw<'a>) -> OutputPart<'a> {
    OutputPart {
        ty: "output_text",
        text,
        annotations: Some(List::Borrowed(&[])),
    }
}

pub(super) fn summary_part<'a>(text: &'a Raw<'a>) -> OutputPart<'a> {
    OutputPart {
        ty: "summary_text",
        text,
        annotations: None,
    }
}

/// An item as the response holds it (`in_progress` with empty members while open).
pub(super) fn view(it: &ItemState) -> OutputItem<'_> {
    let mut o = OutputItem::new(
        match it.kind {
            ItemKind::Message => "message",
            ItemKind::FunctionCall => "function_call",
            ItemKind::CustomToolCall => "custom_tool_call",
            ItemKind::Reasoning => "reasoning",
        },
        &it.id,
    );
    let value: &Raw<'_> = if it.done { &it.value } else { &EMPTY };
    let status = Some(if it.done { "completed" } else { "in_progress" });
    match it.kind {
        ItemKind::Message => {
            o.status = status;
            o.role = Some("assistant");
            o.content = Some(if it.done {
                List::Owned(vec![text_part(value)])
            } else {
                List::Borrowed(&[])
            });
        }
        ItemKind::FunctionCall | ItemKind::CustomToolCall => {
            o.status = status;
            o.call_id = Some(&it.call_id);
            o.name = Some(&it.name);
            if it.kind == ItemKind::FunctionCall {
                o.arguments = Some(value);
            } else {
                o.input = Some(value);
            }
        }
        ItemKind::Reasoning => {
            o.summary = Some(if it.done && !it.buf.is_empty() {
                List::Owned(vec![summary_part(value)])
            } else {
                List::Borrowed(&[])
            });
            o.encrypted_content = it.encrypted.as_ref();
        }
    }
    o
}
