//! The JSON bodies of the Gemini API: `GenerateContentResponse` ([`response_body`]), its
//! `usageMetadata` ([`usage`]), `countTokens` ([`count_tokens_body`]) and the model
//! list ([`models_body`], [`model_object`]).

use serde_json::{json, Value};

use crate::answer::Answer;

/// The `responseId` of answer `id`.
pub(super) fn response_id(id: u64) -> String {
    format!("mockresp{id}")
}

/// `usageMetadata`: `promptTokenCount` (cache reads included), `candidatesTokenCount`,
/// `totalTokenCount`, and `cachedContentTokenCount` when the answer read the cache.
pub(super) fn usage(ans: &Answer) -> Value {
    let mut u = json!({
        "promptTokenCount": ans.openai_prompt_tokens(),
        "candidatesTokenCount": ans.completion_tokens,
        "totalTokenCount": ans.total_tokens(),
    });
    if ans.cache_read > 0 {
        u["cachedContentTokenCount"] = json!(ans.cache_read);
    }
    u
}

/// The parts of the answer: one `text` part, or one `functionCall` part.
pub(super) fn parts(ans: &Answer) -> Value {
    match &ans.tool {
        Some(call) => {
            let args: Value = serde_json::from_str(&call.input).unwrap_or_else(|_| json!({}));
            json!([{"functionCall": {"name": call.name, "args": args}}])
        }
        None => json!([{"text": ans.reply_text()}]),
    }
}

/// The whole (non-streamed) `GenerateContentResponse` of `ans` on `model`.
pub(super) fn response_body(ans: &Answer, model: &str) -> Value {
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts(ans)},
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": usage(ans),
        "modelVersion": model,
        "responseId": response_id(ans.id),
    })
}

/// `countTokens` body: `{"totalTokens":N,"promptTokensDetails":[…]}` with N the prompt
/// tokens (cache reads included).
pub(super) fn count_tokens_body(ans: &Answer) -> String {
    let n = ans.openai_prompt_tokens();
    json!({"totalTokens": n,
           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]})
    .to_string()
}

/// One model of the list: `name` `models/{model}`, limits, and the methods the mock
/// serves for it.
pub(super) fn model_object(model: &str) -> Value {
    json!({
        "name": format!("models/{model}"),
        "version": "001",
        "displayName": model,
        "description": "A model of the Berry mock provider.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": true,
    })
}

/// `GET …/models` body listing `models`: `{"models":[…]}` (no `nextPageToken`).
pub(crate) fn models_body(models: &[String]) -> Vec<u8> {
    let list: Vec<Value> = models.iter().map(|m| model_object(m)).collect();
    json!({ "models": list }).to_string().into_bytes()
}
