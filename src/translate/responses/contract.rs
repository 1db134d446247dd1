//! The entry points' argument and result types, and the request flags the gateway reads
//! before translating.

use crate::vocab::TokenUsage;
use crate::wire::raw::{self, Members, Raw, Str};

/// What a request translation needs besides the client's body.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The backend's real model, written into the upstream body.
    pub model: &'a str,
    /// The items of the earlier turns (a JSON array) the gateway stored for
    /// `previous_response_id`: treated as if prepended to `input`.
    pub history: Option<&'a [u8]>,
}

/// A translated request.
#[derive(Debug, Clone)]
pub struct TranslatedRequest {
    /// The upstream body.
    pub body: Vec<u8>,
    /// The hosted tool types dropped (for `x-berry-dropped-tools`).
    pub dropped_tools: Vec<String>,
}

/// A translated non-stream answer.
#[derive(Debug, Clone)]
pub struct TranslatedAnswer {
    /// The `Response` object.
    pub body: Vec<u8>,
    /// Its usage.
    pub usage: TokenUsage,
    /// Its output items (a JSON array): what the gateway stores for the next turn.
    pub output_items: Vec<u8>,
}

/// The members of a Responses request the gateway acts on before translating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFlags {
    /// `stream: true`.
    pub stream: bool,
    /// `store` (default true).
    pub store: bool,
    /// `previous_response_id`, when a string.
    pub previous_response_id: Option<String>,
}

/// Reads [`RequestFlags`] leniently: a malformed body or member gives the defaults.
#[must_use]
pub fn request_flags(body: &[u8]) -> RequestFlags {
    let mut f = RequestFlags {
        store: true,
        ..RequestFlags::default()
    };
    let Ok(members) = raw::read::<Members<'_>>(body) else {
        return f;
    };
    for (k, v) in members.0 {
        let r = Raw::Borrowed(v);
        match k.as_str() {
            "stream" => f.stream = r.json() == Some("true"),
            "store" => f.store = r.json() != Some("false"),
            "previous_response_id" => {
                f.previous_response_id = r
                    .parse::<Str<'_>>()
                    .and_then(Result::ok)
                    .map(|s| s.0.into_owned());
            }
            _ => {}
        }
    }
    f
}
