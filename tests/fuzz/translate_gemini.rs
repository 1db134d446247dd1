//! The Gemini translators: never panic on any bytes; the stream translators give the same
//! bytes for every split in both framings (SSE chunks whose data is JSON; a JSON array,
//! well-formed once closed); valid generated backend streams end with a `finishReason`
//! chunk; translated requests are JSON naming the backend's model; errors are Google-shaped.

use super::*;
use berry_gateway::translate::gemini::{self, AnswerContext, RequestContext};

fn answer_context(sse: bool, flags: u8) -> AnswerContext {
    let mut cx = AnswerContext::new("m".into(), "r".into(), sse);
    cx.json_answer = flags & 1 != 0;
    cx.include_thoughts = flags & 2 != 0;
    cx
}

#[derive(Debug, PartialEq)]
struct GRun {
    out: Vec<u8>,
    feed: Result<(), UpstreamBroken>,
    finish: Result<(), UpstreamBroken>,
    started: bool,
    saw_error: bool,
    array_open: bool,
}

fn grun(chat: bool, cx: &AnswerContext, chunks: &[&[u8]]) -> GRun {
    let mut out = Vec::new();
    let mut feed = Ok(());
    macro_rules! go {
        ($t:expr) => {{
            let mut t = $t;
            for c in chunks {
                if let Err(e) = t.feed(c, &mut out) {
                    feed = Err(e);
                    break;
                }
            }
            GRun {
                out,
                feed,
                finish: t.finish(),
                started: t.started_content(),
                saw_error: t.saw_error(),
                array_open: t.state().array_open(),
            }
        }};
    }
    if chat {
        go!(gemini::new_chat_stream(cx.clone()))
    } else {
        go!(gemini::new_messages_stream(cx.clone()))
    }
}

/// Split-invariance in both framings and well-formed output; returns the SSE run.
fn check_gemini_stream(chat: bool, flags: u8, input: &[u8], cuts: &[Index]) -> GRun {
    let mut sse_run = None;
    for sse in [true, false] {
        let cx = answer_context(sse, flags);
        let whole = grun(chat, &cx, &[input]);
        let chunks = split(input, cuts);
        assert_eq!(grun(chat, &cx, &chunks), whole, "split into {chunks:?}");
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(grun(chat, &cx, &bytes), whole, "byte at a time");
        if sse {
            let mut d = SseDecoder::new();
            d.feed(&whole.out, |ev| assert!(is_json(ev.data), "{:?}", ev.data))
                .unwrap();
            assert!(!d.is_mid_event());
            assert!(!whole.array_open);
            sse_run = Some(whole);
        } else {
            let mut closed = whole.out.clone();
            if whole.array_open {
                closed.extend(gemini::stream_error_chunk(false, true, 502, "cut"));
            }
            assert!(
                closed.is_empty() || serde_json::from_slice::<Vec<Value>>(&closed).is_ok(),
                "array framing: {}",
                String::from_utf8_lossy(&closed)
            );
        }
    }
    sse_run.unwrap_or_else(|| unreachable!())
}

fn check_google_error(out: &[u8]) {
    let v: Value = serde_json::from_slice(out).unwrap();
    assert!(v["error"]["code"].is_u64() && v["error"]["status"].is_string());
    assert_ne!(v["error"]["message"], json!(null));
}

#[test]
fn gemini_translators_on_arbitrary_bytes() {
    fuzz(
        384,
        || {
            (
                bytes(prop_oneof![vec(any::<u8>(), 0..200), soup()]),
                cuts(),
                any::<u8>(),
                any::<u16>(),
            )
        },
        |(input, cuts, flags, status)| {
            check_gemini_stream(true, flags, &input, &cuts);
            check_gemini_stream(false, flags, &input, &cuts);
            for stream in [false, true] {
                let cx = RequestContext { model: "m", stream };
                for out in [
                    gemini::to_chat(&input, &cx),
                    gemini::to_messages(&input, &cx),
                    gemini::count_tokens_to_messages(&input, &cx),
                ]
                .into_iter()
                .flatten()
                {
                    let v: Value = serde_json::from_slice(&out.body).unwrap();
                    assert_eq!(v["model"], "m");
                }
            }
            let acx = answer_context(false, flags);
            for (out, _) in [
                gemini::from_chat(&input, &acx),
                gemini::from_messages(&input, &acx),
            ]
            .into_iter()
            .flatten()
            {
                let v: Value = serde_json::from_slice(&out).unwrap();
                assert!(v["candidates"][0]["finishReason"].is_string());
            }
            if let Ok(out) = gemini::count_tokens_from_messages(&input) {
                assert!(is_json(&out));
            }
            let (s, out) = gemini::from_openai_error(status, &input);
            assert_ne!(s, 529);
            check_google_error(&out);
            let (_, out) = gemini::from_anthropic_error(status, &input);
            check_google_error(&out);
            if status == 401 || status == 403 {
                assert!(String::from_utf8_lossy(&out).contains(CREDENTIALS_MESSAGE));
            }
            Ok(())
        },
    );
}

#[test]
fn gemini_streams_on_generated_streams() {
    let tally = Tally::default();
    fuzz(
        256,
        || {
            (
                prop_oneof![
                    anthropic_events().prop_map(|e| (false, e)),
                    openai_events().prop_map(|e| (true, e))
                ],
                damage(),
                framing(),
                cuts(),
                any::<u8>(),
            )
        },
        |((chat, mut events), damage, framing, cuts, flags)| {
            apply(&mut events, &damage);
            let input = render(&events, &framing);
            let r = check_gemini_stream(chat, flags, &input, &cuts);
            tally.hit("case");
            if r.feed.is_ok() && r.finish.is_ok() {
                tally.hit("complete");
            }
            if damage.is_empty() {
                assert_eq!(r.feed, Ok(()), "{}", String::from_utf8_lossy(&input));
                assert_eq!(r.finish, Ok(()));
                let last = String::from_utf8_lossy(&r.out);
                let last = last
                    .trim_end()
                    .rsplit("\n\n")
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let v: Value = serde_json::from_str(last.trim_start_matches("data: ")).unwrap();
                assert!(v["candidates"][0]["finishReason"].is_string(), "{last}");
                assert!(v["usageMetadata"].is_object());
            }
            Ok(())
        },
    );
    tally.at_least("complete", "case", 0.4);
}
