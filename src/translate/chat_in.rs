//! Reading a chat backend's `chat.completion.chunk` stream: what every translator out of it
//! checks before its own dialect takes over. `[DONE]` and its order, the in-band
//! `{"error": …}`, usage chunks, choice 0, the text pieces of a delta, and which tool call a
//! tool-call piece belongs to.

use super::stream::{Progress, StreamPhase};
use super::UpstreamBroken;
use crate::wire::error::OpenAiErrorIn;
use crate::wire::openai_chat::{ChatChunk, ChunkChoice, ChunkDelta, ToolCallDelta};
use crate::wire::raw::Raw;

/// One upstream event, read and checked against the stream's phase.
#[derive(Debug)]
pub(crate) enum Chunk<'a> {
    /// Nothing to translate: empty data, or anything after an in-band error.
    Skip,
    /// `[DONE]` after at least one chunk (and the first one): the translator ends its
    /// answer and sets [`StreamPhase::Done`].
    Done,
    /// An in-band error (`data: {"error": …}` or an `event: error`), its `error` member when
    /// present. The phase is already [`StreamPhase::Errored`]; `first`: no chunk came
    /// before it.
    Error {
        error: Option<OpenAiErrorIn<'a>>,
        first: bool,
    },
    /// A chunk. Its usage (if any) is already the usage so far and the phase is
    /// [`StreamPhase::Open`]; `first`: it is the stream's first chunk.
    Data { chunk: ChatChunk<'a>, first: bool },
}

/// Reads one event's data (`name`: its `event:` name) against `progress`'s phase.
///
/// Err ([`UpstreamBroken::invalid`]): data that is neither `[DONE]` nor a JSON object (or
/// whose `error` is not an error object), `[DONE]` before any chunk, data after `[DONE]`.
pub(crate) fn read<'a>(
    progress: &mut Progress,
    name: &[u8],
    data: &'a [u8],
) -> Result<Chunk<'a>, UpstreamBroken> {
    if progress.phase == StreamPhase::Errored || data.is_empty() {
        return Ok(Chunk::Skip);
    }
    if data == b"[DONE]" {
        return match progress.phase {
            StreamPhase::Start => Err(UpstreamBroken::invalid("[DONE] before any chunk")),
            StreamPhase::Done => Err(UpstreamBroken::invalid("second [DONE]")),
            _ => Ok(Chunk::Done),
        };
    }
    if progress.phase == StreamPhase::Done {
        return Err(UpstreamBroken::invalid("data after [DONE]"));
    }
    let broken = || UpstreamBroken::invalid("invalid chunk JSON");
    let c: ChatChunk<'a> = crate::wire::raw::read(data).map_err(|_| broken())?;
    let error: Option<OpenAiErrorIn<'a>> = match &c.error {
        Some(e) => Some(e.parse().and_then(Result::ok).ok_or_else(broken)?),
        None => None,
    };
    let first = progress.phase == StreamPhase::Start;
    if name == b"error" || error.is_some() {
        progress.phase = StreamPhase::Errored;
        return Ok(Chunk::Error { error, first });
    }
    if let Some(u) = &c.usage {
        progress.usage = Some(u.tokens());
    }
    progress.phase = StreamPhase::Open;
    Ok(Chunk::Data { chunk: c, first })
}

/// The chunk's choice 0 (a choice without `index` counts as 0); other choices are ignored.
pub(crate) fn choice0<'c, 'a>(c: &'c ChatChunk<'a>) -> Option<&'c ChunkChoice<'a>> {
    c.choices
        .iter()
        .flat_map(|l| l.iter())
        .find(|ch| ch.index.unwrap_or(0) == 0)
}

/// A delta's text pieces, `content` then `refusal`: the non-empty strings (`null` and `""`
/// skipped); an Err for a piece that is not a string.
pub(crate) fn texts<'c, 'a>(
    d: &'c ChunkDelta<'a>,
) -> impl Iterator<Item = Result<&'c Raw<'a>, UpstreamBroken>> + 'c {
    [&d.content, &d.refusal]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_null())
        .filter_map(|t| {
            if !t.is_str() {
                Some(Err(UpstreamBroken::invalid("delta content not a string")))
            } else if t.is_empty_str() {
                None
            } else {
                Some(Ok(t))
            }
        })
}

/// Which call the tool-call pieces of a stream belong to, for clients whose calls open one
/// at a time and in order: a piece continues the open call when it has its index and no
/// other id; otherwise it starts a new one (a higher index, or a different id: some
/// providers number every call 0; without an index, a new id is the next index).
#[derive(Debug, Default)]
pub(crate) struct ToolCalls {
    /// Highest tool-call index opened so far.
    last: Option<u64>,
    /// Hash of the id of the last call opened (0: none / no id).
    id_hash: u64,
}

/// A tool-call piece, placed.
#[derive(Debug)]
pub(crate) struct CallPiece<'c, 'a> {
    /// The chat tool-call index of its call.
    pub index: u64,
    /// Its `arguments` (a string; `None` when absent or `null`).
    pub args: Option<&'c Raw<'a>>,
    /// It starts a new call: the caller closes the open one and opens this one.
    pub new: Option<NewCall<'c, 'a>>,
}

/// The start of a tool call.
#[derive(Debug)]
pub(crate) struct NewCall<'c, 'a> {
    /// Its id (`None` when absent or `""`: the caller makes one up).
    pub id: Option<&'c Raw<'a>>,
    /// Its function's name (a non-empty string).
    pub name: &'c Raw<'a>,
}

impl ToolCalls {
    /// Places `tc`, given the chat index of the open call (`None`: no call open). A new
    /// call is counted as opened.
    ///
    /// Err: arguments that are not a string, a piece of a call already closed (`closed`
    /// is that error's message), a new call without a function name.
    pub(crate) fn piece<'c, 'a>(
        &mut self,
        tc: &'c ToolCallDelta<'a>,
        open: Option<u64>,
        closed: &'static str,
    ) -> Result<CallPiece<'c, 'a>, UpstreamBroken> {
        // An empty id counts as absent (some providers send `""` on continuation pieces).
        let id = tc.id.as_ref().filter(|v| v.is_str() && !v.is_empty_str());
        let id_hash = id.map(|v| fnv1a(v.json().unwrap_or_default().as_bytes()));
        let new_id = id_hash.is_some_and(|h| h != self.id_hash);
        let index = match (tc.index, self.last) {
            (Some(i), _) => i,
            (None, Some(l)) if new_id => l.saturating_add(1),
            (None, Some(l)) => l,
            (None, None) => 0,
        };
        let args = tc
            .function
            .as_ref()
            .and_then(|f| f.arguments.as_ref())
            .filter(|a| !a.is_null());
        if args.is_some_and(|a| !a.is_str()) {
            return Err(UpstreamBroken::invalid("tool call arguments not a string"));
        }
        if open == Some(index) && !new_id {
            return Ok(CallPiece {
                index,
                args,
                new: None,
            });
        }
        if !new_id && self.last.is_some_and(|l| index <= l) {
            return Err(UpstreamBroken::invalid(closed));
        }
        let Some(name) = tc
            .function
            .as_ref()
            .and_then(|f| f.name.as_ref())
            .filter(|n| n.is_str() && !n.is_empty_str())
        else {
            return Err(UpstreamBroken::invalid("new tool call without a name"));
        };
        self.last = Some(self.last.map_or(index, |l| l.max(index)));
        self.id_hash = id_hash.unwrap_or(0);
        Ok(CallPiece {
            index,
            args,
            new: Some(NewCall { id, name }),
        })
    }
}

/// FNV-1a, 64 bits (never 0 for the inputs that matter: 0 means "none").
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}
