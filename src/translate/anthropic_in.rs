//! Reading an Anthropic Messages event stream (the hub's, as a backend answers): what every
//! translator out of it checks before its own dialect takes over. The in-band `error` event,
//! `ping`, the event order around `message_start` and `message_stop`, the usage the message
//! events carry, and the bookkeeping of open content blocks.

use super::stream::{Progress, StreamPhase};
use super::UpstreamBroken;
use crate::vocab::TokenUsage;
use crate::wire::anthropic::{AnswerBlock, Delta, MessageResponse, StreamEvent};
use crate::wire::error::AnthropicErrorIn;
use crate::wire::raw::{Raw, Str};

/// Most content blocks open at the same time (Anthropic opens one at a time).
pub const MAX_OPEN_BLOCKS: usize = 16;

/// One upstream event, read and checked against the stream's phase.
// `Other` (most events) is the large variant: boxing it would allocate once per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// Nothing to translate: empty data, `ping`, or anything after an in-band error.
    Skip,
    /// An in-band error (`event: error` or `"type":"error"`), its `error` member when
    /// present (see [`InBandError`]). The phase is already [`StreamPhase::Errored`]: the
    /// translator writes its dialect's error and nothing more.
    Error(InBandError<'a>),
    /// The (first) `message_start`, with its message. The phase is still
    /// [`StreamPhase::Start`]: the translator checks what it needs, then calls [`open`].
    Start(Box<MessageResponse<'a>>),
    /// Any other event after `message_start` and before `message_stop` (`message_delta`'s
    /// usage not yet merged: see [`merge_delta_usage`]).
    Other(StreamEvent<'a>),
}

/// An in-band error event's `error` member (`None` when it had none).
#[derive(Debug)]
pub(crate) struct InBandError<'a>(Option<Box<AnthropicErrorIn<'a>>>);

impl InBandError<'_> {
    /// Its `error.type`.
    pub(crate) fn ty(&self) -> Option<&str> {
        self.0.as_ref().and_then(|e| e.ty.as_ref()).map(Str::as_str)
    }

    /// Its `error.message`.
    pub(crate) fn message(&self) -> Option<&str> {
        self.0
            .as_ref()
            .and_then(|e| e.message.as_ref())
            .map(Str::as_str)
    }
}

/// Reads one event's data (`name`: its `event:` name) against `progress`'s phase.
///
/// Err ([`UpstreamBroken::invalid`]): data that is not a JSON object with a `type`, an event
/// other than `ping` or `error` before `message_start` or after `message_stop`, a second
/// `message_start`, a `message_start` without its message.
pub(crate) fn read<'a>(
    progress: &mut Progress,
    name: &[u8],
    data: &'a [u8],
) -> Result<Event<'a>, UpstreamBroken> {
    if progress.phase == StreamPhase::Errored || data.is_empty() {
        return Ok(Event::Skip);
    }
    let ev: StreamEvent<'a> =
        crate::wire::raw::read(data).map_err(|_| UpstreamBroken::invalid("invalid event JSON"))?;
    let ty = ev.ty.as_str();
    if name == b"error" || ty == "error" {
        progress.phase = StreamPhase::Errored;
        return Ok(Event::Error(InBandError(ev.error)));
    }
    if ty == "ping" {
        return Ok(Event::Skip);
    }
    match progress.phase {
        StreamPhase::Start if ty != "message_start" => {
            return Err(UpstreamBroken::invalid("event before message_start"))
        }
        StreamPhase::Done => return Err(UpstreamBroken::invalid("event after message_stop")),
        _ => {}
    }
    if ty != "message_start" {
        return Ok(Event::Other(ev));
    }
    if progress.phase != StreamPhase::Start {
        return Err(UpstreamBroken::invalid("second message_start"));
    }
    match ev.message {
        Some(m) => Ok(Event::Start(m)),
        None => Err(UpstreamBroken::invalid("message_start without message")),
    }
}

/// The message is open: its start's usage (input and cache tokens; zero without usage)
/// recorded, the phase [`StreamPhase::Open`].
pub(crate) fn open(progress: &mut Progress, usage: Option<crate::wire::anthropic::Usage>) {
    progress.usage = Some(usage.map(|u| u.tokens()).unwrap_or_default());
    progress.phase = StreamPhase::Open;
}

/// Merges a `message_delta`'s usage (each count it carries replaces the one so far) into
/// `progress`, and returns its `stop_reason` if it has one.
pub(crate) fn merge_delta_usage<'e>(
    progress: &mut Progress,
    ev: &'e StreamEvent<'_>,
) -> Option<&'e str> {
    if let Some(u) = &ev.usage {
        let cur = progress.usage.get_or_insert_with(TokenUsage::default);
        if let Some(o) = u.output_tokens {
            cur.output = o;
        }
        if let Some(i) = u.input_tokens {
            cur.input = i;
        }
        if let Some(c) = u.cache_read_input_tokens {
            cur.cache_read = c;
        }
        if let Some(c) = u.cache_creation_input_tokens {
            cur.cache_write = c;
        }
    }
    ev.delta
        .as_ref()
        .and_then(|d| d.stop_reason.as_ref())
        .map(Str::as_str)
}

/// A `tool_use` block's `input` when the block carries it whole (a JSON object other than
/// `{}`; Anthropic itself sends `{}` and streams the input as `input_json_delta`s).
pub(crate) fn whole_input<'b>(input: Option<&'b Raw<'_>>) -> Option<&'b str> {
    match input {
        Some(i) if i.is_obj() && i.json() != Some("{}") => Some(i.json().unwrap_or_default()),
        _ => None,
    }
}

/// The open content blocks of a message: (Anthropic index, what the translator feeds).
#[derive(Debug)]
pub(crate) struct Blocks<S>(Vec<(u64, S)>);

impl<S> Default for Blocks<S> {
    fn default() -> Self {
        Blocks(Vec::new())
    }
}

impl<S> Blocks<S> {
    /// A `content_block_start`'s index and block, checked: both present, the index not
    /// open, fewer than [`MAX_OPEN_BLOCKS`] open. The caller then [`Blocks::push`]es it.
    pub(crate) fn starting<'a>(
        &self,
        ev: StreamEvent<'a>,
    ) -> Result<(u64, Box<AnswerBlock<'a>>), UpstreamBroken> {
        let (Some(index), Some(b)) = (ev.index, ev.content_block) else {
            return Err(UpstreamBroken::invalid(
                "content_block_start without index/block",
            ));
        };
        if self.0.iter().any(|(i, _)| *i == index) {
            return Err(UpstreamBroken::invalid("content block started twice"));
        }
        if self.0.len() >= MAX_OPEN_BLOCKS {
            return Err(UpstreamBroken::invalid("too many open content blocks"));
        }
        Ok((index, b))
    }

    /// Opens block `index` feeding `slot`.
    pub(crate) fn push(&mut self, index: u64, slot: S) {
        self.0.push((index, slot));
    }

    /// A `content_block_delta`'s delta and the slot of its (open) block.
    pub(crate) fn delta<'a>(
        &mut self,
        ev: StreamEvent<'a>,
    ) -> Result<(Delta<'a>, &mut S), UpstreamBroken> {
        let (Some(index), Some(d)) = (ev.index, ev.delta) else {
            return Err(UpstreamBroken::invalid(
                "content_block_delta without index/delta",
            ));
        };
        let Some((_, slot)) = self.0.iter_mut().find(|(i, _)| *i == index) else {
            return Err(UpstreamBroken::invalid(
                "delta for a block that is not open",
            ));
        };
        Ok((d, slot))
    }

    /// Closes the block a `content_block_stop` names, returning its slot.
    pub(crate) fn stop(&mut self, ev: &StreamEvent<'_>) -> Result<S, UpstreamBroken> {
        let Some(index) = ev.index else {
            return Err(UpstreamBroken::invalid("content_block_stop without index"));
        };
        let Some(pos) = self.0.iter().position(|(i, _)| *i == index) else {
            return Err(UpstreamBroken::invalid("stop for a block that is not open"));
        };
        Ok(self.0.swap_remove(pos).1)
    }

    /// The indexes of the open blocks, in opening order (for a message end that closes them).
    pub(crate) fn open_indexes(&self) -> Vec<u64> {
        self.0.iter().map(|(i, _)| *i).collect()
    }
}
