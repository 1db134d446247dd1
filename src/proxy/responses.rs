//! The OpenAI Responses API on the proxy path: continuing a stored response on the account
//! that holds it (`previous_response_id`, the by-id routes), the id the gateway issues for
//! translated answers, and what the conversation store keeps once an answer completed.

use super::admitted::ProxyRequest;
use super::ctx::Proxied;
pub use super::responses_call::{IdCapture, ResponsesCall};
use super::translation::Translation;
use crate::api::{LocalResponse, StoredAction};
use crate::auth::UserEntry;
use crate::conversations::{concat_arrays, ConversationStore, StoredResponse};
use crate::error::ApiError;
use crate::routing::ModelRoute;
use crate::shared::SharedState;
use crate::snapshot::Snapshot;
use crate::translate::responses::{request_flags, AnswerContext};
use crate::vocab::Operation;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

/// Whether `p` (a provider id) may serve an attempt of `req`: always, unless the request is
/// pinned to another account.
pub fn allowed_provider(req: &ProxyRequest, provider: &str) -> bool {
    req.pinned_provider()
        .is_none_or(|pinned| pinned == provider)
}

/// Completes the admission of a `POST /v1/responses` (or `/compact`) request: reads its
/// `store` and `previous_response_id`, looks the continued response up (400
/// `previous_response_not_found` when this user has none by that id), pins the request to
/// the account that holds it (409 `previous_response_unavailable` when that account cannot
/// serve now), and checks that every backend the request may reach can express it, the
/// stored conversation included. Nothing is sent upstream on a refusal.
pub async fn prepare(
    req: &mut ProxyRequest,
    shared: Option<&SharedState>,
    store: &ConversationStore,
) -> Result<(), ApiError> {
    let flags = request_flags(&req.body);
    let mut call = ResponsesCall {
        store: flags.store,
        issued_id: format!("resp_{}", crate::random_id::random_hex_string()),
        ..ResponsesCall::default()
    };
    if let Some(id) = flags.previous_response_id {
        let Some(record) = store.get(shared, &id, &req.user.id).await else {
            return Err(ApiError::previous_response_not_found(&id));
        };
        if !pinned_usable(&req.model, &record.provider, req.op, &req.user) {
            return Err(ApiError::previous_response_unavailable(&id));
        }
        call.pinned = Some(record.provider.clone());
        call.previous = Some(record);
        call.previous_id = Some(id);
    }
    req.responses = Some(Box::new(call));
    check_translations(req)
}

/// A field a reachable backend's API cannot express is refused before any quota is taken
/// (at most one check per translation).
fn check_translations(req: &ProxyRequest) -> Result<(), ApiError> {
    let mut checked = smallvec::SmallVec::<[Translation; 2]>::new();
    for b in req
        .model
        .backends
        .iter()
        .filter(|b| b.provider.serves(req.op) && allowed_provider(req, &b.provider.id))
    {
        let t = Translation::of(req.op, &b.provider);
        if t != Translation::None && !checked.contains(&t) {
            checked.push(t);
            t.check(&req.body, req.history())?;
        }
    }
    Ok(())
}

/// Whether `model` has a backend on account `provider` that could serve `op` for `user`
/// now (enabled, visible to the user, available by health, circuit and cooldown).
fn pinned_usable(model: &ModelRoute, provider: &str, op: Operation, user: &UserEntry) -> bool {
    let now = crate::clock::now_ms();
    model.backends.iter().any(|b| {
        b.provider.id == provider
            && b.provider.enabled
            && b.provider.serves(op)
            && b.visible_to(&user.tags)
            && b.is_available(now)
    })
}

/// The Response a translated attempt's answer is issued as: the gateway's id, the
/// backend's real model, and what the client's request echoes. `None` for other attempts.
pub fn answer_context(p: &Proxied, t: Translation) -> Option<AnswerContext> {
    if !t.is_responses() {
        return None;
    }
    let call = p.request.responses.as_deref()?;
    let model = p.attempt.as_ref()?.backend.real_model.clone();
    Some(AnswerContext::new(
        call.issued_id.clone(),
        model,
        &p.request.body,
    ))
}

/// Names the hosted tools a translated request left out, in `x-berry-dropped-tools`, and
/// counts them.
pub fn note_dropped_tools(
    p: &Proxied,
    resp: &mut pingora_http::ResponseHeader,
) -> pingora_error::Result<()> {
    let Some(a) = p.attempt.as_ref().filter(|a| !a.dropped_tools.is_empty()) else {
        return Ok(());
    };
    let mut names = String::new();
    for tool in &a.dropped_tools {
        // Tool types come from the client: only well-formed names reach the header, and
        // only known ones become metric labels (bounded label set).
        if tool.is_empty()
            || tool.len() > 64
            || !tool
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            continue;
        }
        let label = HOSTED_TOOLS
            .iter()
            .find(|k| tool.starts_with(**k))
            .copied()
            .unwrap_or("other");
        crate::metrics::DROPPED_TOOLS
            .with_label_values(&[label])
            .inc();
        if !names.is_empty() {
            names.push(',');
        }
        names.push_str(tool);
    }
    if names.is_empty() {
        return Ok(());
    }
    resp.insert_header("x-berry-dropped-tools", names)
}

/// Hosted tool families (by type prefix) counted by name in `berry_dropped_tools_total`.
const HOSTED_TOOLS: [&str; 9] = [
    "web_search",
    "file_search",
    "tool_search",
    "code_interpreter",
    "namespace",
    "mcp",
    "computer_use",
    "image_generation",
    "local_shell",
];

/// What a by-id request resolves to.
pub enum StoredTarget {
    /// The gateway answers it (a translated response, or a refusal).
    Local(LocalResponse),
    /// Proxied to the account that holds it: the admitted request.
    Proxied(Box<ProxyRequest>),
}

/// Resolves `GET`/`DELETE /v1/responses/{id}`, `…/input_items` and `…/cancel`: a response
/// of another user or an unknown one is 404; one the gateway translated is answered from
/// the store; one a provider holds is proxied to that account (409 when it cannot serve).
pub async fn resolve_stored(
    action: StoredAction,
    id: &str,
    user: Arc<UserEntry>,
    snap: &Snapshot,
    shared: Option<&SharedState>,
    store: &ConversationStore,
) -> Result<StoredTarget, ApiError> {
    let Some(record) = store.get(shared, id, &user.id).await else {
        return Err(ApiError::response_not_found(id));
    };
    if record.translated {
        return Ok(StoredTarget::Local(
            answer_translated(action, id, &record, shared, store).await,
        ));
    }
    let model = snap
        .table
        .model_index(&record.model)
        .and_then(|i| snap.table.models.get(i))
        .filter(|m| user.may_use(m.index));
    let Some(model) = model else {
        return Err(ApiError::previous_response_unavailable(id));
    };
    if !pinned_usable(model, &record.provider, Operation::ResponseById, &user) {
        return Err(ApiError::previous_response_unavailable(id));
    }
    let call = ResponsesCall {
        store: false,
        pinned: Some(record.provider.clone()),
        previous_id: Some(id.to_string()),
        ..ResponsesCall::default()
    };
    Ok(StoredTarget::Proxied(Box::new(ProxyRequest {
        op: Operation::ResponseById,
        user,
        model: Arc::clone(model),
        body: bytes::Bytes::new(),
        model_span: 0..0,
        stream: false,
        include_usage: None,
        responses: Some(Box::new(call)),
        gemini: None,
        session: Default::default(),
    })))
}

/// A by-id request on a response the gateway translated, answered from the store.
async fn answer_translated(
    action: StoredAction,
    id: &str,
    record: &StoredResponse,
    shared: Option<&SharedState>,
    store: &ConversationStore,
) -> LocalResponse {
    match action {
        StoredAction::Get => match &record.response {
            Some(r) => raw_json(200, r.get().as_bytes().to_vec()),
            None => LocalResponse::error(
                &ApiError::response_not_found(id),
                crate::vocab::ClientApi::OpenAiResponses,
            ),
        },
        StoredAction::Delete => {
            store.delete(shared, id).await;
            LocalResponse::json(
                200,
                &serde_json::json!({"id": id, "object": "response", "deleted": true}),
            )
        }
        StoredAction::InputItems => {
            let items = record.input_items.as_ref().map_or("[]", |r| r.get());
            input_items_list(items)
        }
        StoredAction::Cancel => LocalResponse::error(
            &ApiError::not_cancellable(id),
            crate::vocab::ClientApi::OpenAiResponses,
        ),
    }
}

/// `{"object":"list","data":[…],"first_id":…,"last_id":…,"has_more":false}` of stored input
/// items (ids where the items have them).
fn input_items_list(items: &str) -> LocalResponse {
    #[derive(serde::Deserialize)]
    struct WithId<'a> {
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
    }
    #[derive(serde::Serialize)]
    struct List<'a> {
        object: &'static str,
        data: &'a RawValue,
        first_id: Option<&'a str>,
        last_id: Option<&'a str>,
        has_more: bool,
    }
    let ids: Vec<WithId<'_>> = serde_json::from_str(items).unwrap_or_default();
    let Ok(data) = serde_json::from_str::<&RawValue>(items) else {
        return (&ApiError::internal()).into();
    };
    let list = List {
        object: "list",
        data,
        first_id: ids.first().and_then(|i| i.id.as_deref()),
        last_id: ids.last().and_then(|i| i.id.as_deref()),
        has_more: false,
    };
    match serde_json::to_vec(&list) {
        Ok(body) => raw_json(200, body),
        Err(_) => (&ApiError::internal()).into(),
    }
}

fn raw_json(status: u16, body: Vec<u8>) -> LocalResponse {
    LocalResponse {
        status,
        content_type: "application/json",
        body,
        headers: Vec::new(),
    }
}

/// Records a completed Responses answer (once): for a translated one the conversation
/// through it, under the id the gateway issued; for a native one which account holds the
/// provider's id. Nothing for `store: false`, unfinished or failed answers.
pub fn record_completed(p: &mut Proxied, store: &Arc<ConversationStore>) {
    if p.request.op != Operation::Responses {
        return;
    }
    let Some(call) = p.request.responses.as_deref() else {
        return;
    };
    let (Some(answer), Some(attempt)) = (p.answer.as_ref(), p.attempt.as_ref()) else {
        return;
    };
    if call.saved || !call.store || !answer.complete {
        return;
    }
    let translated = attempt.translation.is_responses();
    let base = |translated| StoredResponse {
        user: p.request.user.id.to_string(),
        model: p.request.model.name.clone(),
        provider: attempt.backend.provider.id.clone(),
        translated,
        created_at: crate::translate::now_secs(),
        conversation: None,
        input_items: None,
        response: None,
    };
    let (id, record) = if translated {
        let super::ctx::BodyWatch::Translate(t) = &answer.watch else {
            return;
        };
        let Some(stored) = t.stored_answer() else {
            return;
        };
        let history = call.history().unwrap_or(b"[]");
        let input = input_items(&p.request.body).unwrap_or_else(|| b"[]".to_vec());
        let Some(inputs) = concat_arrays(&[history, &input]) else {
            return;
        };
        let Some(conversation) = concat_arrays(&[&inputs, &stored.output_items]) else {
            return;
        };
        let raw = |b: Vec<u8>| {
            String::from_utf8(b)
                .ok()
                .and_then(|s| RawValue::from_string(s).ok())
        };
        let mut record = base(true);
        record.conversation = raw(conversation);
        record.input_items = raw(inputs);
        record.response = raw(stored.response);
        (call.issued_id.clone(), record)
    } else {
        match call.capture.id() {
            Some(id) => (id.to_string(), base(false)),
            None => return,
        }
    };
    let settings = &p.snapshot.table.settings.responses;
    store.put(p.shared.as_ref(), id, record, settings, store);
    if let Some(call) = p.request.responses.as_deref_mut() {
        call.saved = true;
    }
}

/// The request's `input` as a JSON array of items: a string input is one user message.
fn input_items(body: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Input<'a> {
        #[serde(borrow)]
        input: Option<&'a RawValue>,
    }
    /// A string input as the one user message it stands for.
    #[derive(serde::Serialize)]
    struct Message<'a> {
        #[serde(rename = "type")]
        ty: &'static str,
        role: &'static str,
        content: &'a RawValue,
    }
    let input = serde_json::from_slice::<Input<'_>>(body).ok()?.input?;
    match input.get().as_bytes().first() {
        Some(b'[') => Some(input.get().as_bytes().to_vec()),
        Some(b'"') => serde_json::to_vec(&[Message {
            ty: "message",
            role: "user",
            content: input,
        }])
        .ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_becomes_items() {
        assert_eq!(
            input_items(br#"{"model":"m","input":"hi"}"#).unwrap(),
            br#"[{"type":"message","role":"user","content":"hi"}]"#
        );
        assert_eq!(
            input_items(br#"{"input":[{"role":"user","content":"x"}]}"#).unwrap(),
            br#"[{"role":"user","content":"x"}]"#
        );
        assert!(input_items(br#"{"model":"m"}"#).is_none());
    }
}
