//! Anthropic Messages: request, response and stream events.
//!
//! The translators' hub: every other dialect maps to and from these types. Each type reads
//! what the translators need and is written by derive, members in the order declared
//! (absent ones skipped unless noted). Text, ids, tool inputs and schemas are [`Raw`]:
//! copied verbatim. Content blocks are one struct with a `type` discriminator rather than
//! a tagged enum, so reading borrows (see [`super::raw`]).

use super::raw::{Lazy, Raw, Rest, Str};
use serde::{Deserialize, Serialize};

/// A Messages request (`POST /v1/messages`). Read member by member (see the translators)
/// so that an error names the member; `rest` holds the members not named here.
#[derive(Debug, Default, Serialize)]
pub struct MessagesRequest<'a> {
    /// The model.
    pub model: Str<'a>,
    /// Output limit (required by Anthropic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// The system prompt: a string or text blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<Raw<'a>>,
    /// The conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Lazy<'a, Vec<Msg<'a>>>>,
    /// Stop sequences (strings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Lazy<'a, Vec<Raw<'a>>>>,
    /// Sampling temperature (0–1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Lazy<'a, Vec<Tool<'a>>>>,
    /// Tool choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Lazy<'a, ToolChoice<'a>>>,
    /// Request metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Lazy<'a, Metadata<'a>>>,
    /// Streaming.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Extended thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Members not named above, verbatim.
    #[serde(flatten, skip_serializing_if = "Rest::is_empty")]
    pub rest: Rest<'a>,
}

/// A turn of the conversation.
#[derive(Debug, Deserialize, Serialize)]
pub struct Msg<'a> {
    /// `user` or `assistant` (`system` turns occur in some clients' requests).
    #[serde(borrow)]
    pub role: Str<'a>,
    /// A string or content blocks.
    #[serde(borrow)]
    pub content: Lazy<'a, Vec<Block<'a>>>,
}

/// A content block: `text`, `image`, `tool_use`, `tool_result`, `thinking`, … (the members
/// of its kind are set).
///
/// `S` is how an image's `source` is read: [`Source`] in a request, where a malformed source
/// makes the block (and the request) invalid; [`Raw`] in an answer ([`AnswerBlock`]), whose
/// mappings never look at it, so a malformed one does not break the answer.
#[derive(Debug, Deserialize, Serialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>", serialize = "S: Serialize"))]
pub struct Block<'a, S = Source<'a>> {
    /// The block's kind.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// `text`.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Raw<'a>>,
    /// `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<S>,
    /// `tool_use`: the call's id.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Raw<'a>>,
    /// `tool_use`: the tool's name.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Raw<'a>>,
    /// `tool_use`: the input object.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Raw<'a>>,
    /// `tool_result`: the call answered.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<Raw<'a>>,
    /// `tool_result`: a string or content blocks.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Lazy<'a, Vec<Block<'a, S>>>>,
    /// `thinking`: the thinking text.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Raw<'a>>,
    /// `thinking`: the signature that lets it be sent back.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Raw<'a>>,
    /// `redacted_thinking`: the opaque data.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Raw<'a>>,
}

/// A block of an answer (a response's `content`, a `content_block_start`'s block): its
/// `source` is carried raw, unchecked.
pub type AnswerBlock<'a> = Block<'a, Raw<'a>>;

impl<'a, S> Block<'a, S> {
    /// A block of kind `ty` with no members set.
    #[must_use]
    pub fn new(ty: &'static str) -> Self {
        Block {
            ty: Str::from_static(ty),
            text: None,
            source: None,
            id: None,
            name: None,
            input: None,
            tool_use_id: None,
            content: None,
            thinking: None,
            signature: None,
            data: None,
        }
    }

    /// A `text` block.
    #[must_use]
    pub fn text(text: Raw<'a>) -> Self {
        Block {
            text: Some(text),
            ..Block::new("text")
        }
    }
}

/// An image's source: `base64` (`media_type`, `data`) or `url`.
#[derive(Debug, Deserialize, Serialize)]
pub struct Source<'a> {
    /// `base64` or `url`.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// `base64`: e.g. `image/png`.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<Str<'a>>,
    /// `base64`: the data.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Str<'a>>,
    /// `url`: the URL.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Raw<'a>>,
}

/// A tool: custom (`type` absent or `custom`) or a server tool.
#[derive(Debug, Deserialize, Serialize)]
pub struct Tool<'a> {
    /// `custom` or a server tool's type.
    #[serde(
        borrow,
        rename = "type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ty: Option<Str<'a>>,
    /// Its name.
    #[serde(borrow)]
    pub name: Raw<'a>,
    /// What it does.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Raw<'a>>,
    /// Its input's JSON schema.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Raw<'a>>,
}

/// `tool_choice`: `auto`, `any`, `tool` (with `name`), `none`.
#[derive(Debug, Deserialize, Serialize)]
pub struct ToolChoice<'a> {
    /// The mode.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// `tool`: the tool forced.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Raw<'a>>,
    /// At most one tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

/// Request `thinking`: `{type: enabled, budget_tokens}`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Thinking {
    /// `enabled`.
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Tokens the model may think with (at least 1,024, below `max_tokens`).
    pub budget_tokens: u64,
}

/// Request `metadata`.
#[derive(Debug, Deserialize, Serialize)]
pub struct Metadata<'a> {
    /// The end user (a string).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Raw<'a>>,
}

/// A response `message` (also the `message` of a `message_start` event).
///
/// `C` is how `content` is read: [`Lazy`] by default (a `message_start` does not need it, so
/// a malformed one is not looked at); a reader that maps the blocks names
/// `Vec<AnswerBlock>`, so the blocks are read in the same pass as the message.
#[derive(Debug, Deserialize, Serialize)]
#[serde(bound(
    deserialize = "C: Deserialize<'de> + Default",
    serialize = "C: Serialize"
))]
pub struct MessageResponse<'a, C = Lazy<'a, Vec<AnswerBlock<'a>>>> {
    /// The message's id.
    #[serde(borrow)]
    pub id: Raw<'a>,
    /// `message`.
    #[serde(
        borrow,
        rename = "type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ty: Option<Raw<'a>>,
    /// `assistant`.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub role: Option<Raw<'a>>,
    /// The model that answered.
    #[serde(borrow)]
    pub model: Raw<'a>,
    /// The answer's blocks.
    #[serde(default)]
    pub content: C,
    /// Why generation stopped (written as `null` when `None`).
    #[serde(borrow, default)]
    pub stop_reason: Option<Raw<'a>>,
    /// The stop sequence hit (written as `null` when `None`).
    #[serde(skip_deserializing, default)]
    pub stop_sequence: Option<Raw<'a>>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Anthropic `usage`: uncached input and the cache counts apart (see
/// [`crate::vocab::TokenUsage::from_anthropic`]).
#[derive(Debug, Default, Clone, Copy, Deserialize, Serialize)]
pub struct Usage {
    /// Prompt tokens neither read from nor written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Prompt tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Prompt tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
}

impl Usage {
    /// The counts in the gateway's partition (absent counts are 0).
    #[must_use]
    pub fn tokens(&self) -> crate::vocab::TokenUsage {
        crate::vocab::TokenUsage::from_anthropic(
            self.input_tokens.unwrap_or(0),
            self.output_tokens.unwrap_or(0),
            self.cache_read_input_tokens.unwrap_or(0),
            self.cache_creation_input_tokens.unwrap_or(0),
        )
    }

    /// `usage` with all four counts.
    #[must_use]
    pub fn of(u: crate::vocab::TokenUsage) -> Self {
        Usage {
            input_tokens: Some(u.input),
            cache_creation_input_tokens: Some(u.cache_write),
            cache_read_input_tokens: Some(u.cache_read),
            output_tokens: Some(u.output),
        }
    }
}

/// A stream event's data: `message_start`, `content_block_start`, `content_block_delta`,
/// `content_block_stop`, `message_delta`, `message_stop`, `ping`, `error` (the members of
/// its kind are set).
#[derive(Debug, Deserialize, Serialize)]
pub struct StreamEvent<'a> {
    /// The event's kind.
    #[serde(borrow, rename = "type")]
    pub ty: Str<'a>,
    /// `message_start`: the message, without content (boxed, like the other members of
    /// rare events, so that the frequent events stay small to read and move).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Box<MessageResponse<'a>>>,
    /// Block events: the block's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// `content_block_start`: the block.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub content_block: Option<Box<AnswerBlock<'a>>>,
    /// `content_block_delta` and `message_delta`.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta<'a>>,
    /// `message_delta`: usage so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// `error`: the error.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<super::error::AnthropicErrorIn<'a>>>,
}

impl<'a> StreamEvent<'a> {
    /// An event of kind `ty` with no members set.
    #[must_use]
    pub fn new(ty: &'static str) -> Self {
        StreamEvent {
            ty: Str::from_static(ty),
            message: None,
            index: None,
            content_block: None,
            delta: None,
            usage: None,
            error: None,
        }
    }
}

/// A delta: of a block (`text_delta`, `input_json_delta`, `thinking_delta`, …) or of the
/// message (`stop_reason`, `stop_sequence`).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Delta<'a> {
    /// Block deltas: the kind.
    #[serde(
        borrow,
        rename = "type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ty: Option<Str<'a>>,
    /// `text_delta`.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Raw<'a>>,
    /// `input_json_delta`: the next piece of the input's text.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub partial_json: Option<Raw<'a>>,
    /// `thinking_delta`: the next piece of the thinking text.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Raw<'a>>,
    /// `signature_delta`: the thinking block's signature.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Raw<'a>>,
    /// `message_delta`.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<Str<'a>>,
    /// `message_delta` (write [`Raw::Null`] for `null`).
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub stop_sequence: Option<Raw<'a>>,
}
