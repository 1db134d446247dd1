//! Byte splices on a scanned body: the model replacement and the `include_usage` insertion.

use std::ops::Range;

use super::outcome::{IncludeUsage, RequestScan, StreamOptions};

/// One splice: replace `range` of the original body with `bytes`. An empty range is an insertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit<'a> {
    /// Byte range of the original body to replace (`start..start` to insert at `start`).
    pub range: Range<usize>,
    /// Replacement bytes.
    pub bytes: &'a [u8],
}

/// Apply `edits` to `body`, producing a new body with exactly one allocation of the final size.
///
/// Edits may be given in any order; they are sorted (stably) by range, so insertions at the same
/// offset are applied in the order given, and an insertion at `x` comes before a replacement
/// starting at `x`. Ranges must lie within `body` and must not overlap (checked with
/// `debug_assert!`). In release builds, out-of-bounds or overlapping ranges are clamped to the
/// unconsumed part of `body` instead of panicking.
///
/// The output `Vec` is the only allocation (the in-place stable sort needs no scratch memory for
/// up to 20 edits; the gateway makes at most two).
pub fn apply_edits(body: &[u8], edits: &mut [Edit<'_>]) -> Vec<u8> {
    // Stable sort; allocation-free for the handful of edits the gateway makes.
    edits.sort_by_key(|e| (e.range.start, e.range.end));

    let mut total = 0usize;
    let mut cursor = 0usize;
    for e in edits.iter() {
        debug_assert!(
            e.range.start <= e.range.end && e.range.end <= body.len(),
            "edit {:?} out of bounds for body of {} bytes",
            e.range,
            body.len()
        );
        debug_assert!(e.range.start >= cursor, "overlapping edits");
        let (start, end) = clamp_range(&e.range, cursor, body.len());
        total = total
            .saturating_add(start.saturating_sub(cursor))
            .saturating_add(e.bytes.len());
        cursor = end;
    }
    total = total.saturating_add(body.len().saturating_sub(cursor));

    let mut out = Vec::with_capacity(total);
    cursor = 0;
    for e in edits.iter() {
        let (start, end) = clamp_range(&e.range, cursor, body.len());
        out.extend_from_slice(body.get(cursor..start).unwrap_or_default());
        out.extend_from_slice(e.bytes);
        cursor = end;
    }
    out.extend_from_slice(body.get(cursor..).unwrap_or_default());
    debug_assert_eq!(out.len(), total);
    out
}

/// Clamp `r` to `cursor..len` (requires `cursor <= len`, which `apply_edits` maintains).
#[inline]
fn clamp_range(r: &Range<usize>, cursor: usize, len: usize) -> (usize, usize) {
    let start = r.start.max(cursor).min(len);
    let end = r.end.max(start).min(len);
    (start, end)
}

/// Encode `s` as a JSON string literal, including the surrounding quotes (serde_json's encoder).
///
/// Escapes `"` and `\`, uses the short escapes `\b \f \n \r \t`, and `\u00XX` (lowercase hex) for
/// all other control characters below U+0020. Everything else (including `/`, DEL and non-ASCII)
/// is copied verbatim, so the result is valid JSON whose decoded value is exactly `s`.
pub fn json_string_literal(s: &str) -> String {
    // Serialising a `str` into memory cannot fail (serde_json only fails on I/O errors or
    // non-string map keys), so the empty fallback is unreachable.
    serde_json::to_string(s).unwrap_or_default()
}

/// The edit that makes a streaming request ask the provider for a final usage chunk,
/// whatever the client sent: `stream_options.include_usage` becomes `true`.
///
/// Returns `None` when `!scan.stream`, or when the (last) `include_usage` key of a
/// `stream_options` object is already the literal `true` (the client asked for usage
/// itself, see [`client_asked_for_usage`]). Otherwise:
/// * `stream_options` absent: insert `,"stream_options":{"include_usage":true}` just before
///   [`RequestScan::object_end`] (the object always has `model`, so the leading comma is right);
/// * `stream_options` is an object without `include_usage`: insert `"include_usage":true` right
///   after its `{`, followed by a comma when the object is not empty;
/// * `stream_options` is an object with one `include_usage` of another value (`false`,
///   `null`, …): replace that value with `true`;
/// * `stream_options` is an object with several `include_usage` keys: append
///   `,"include_usage":true` just before its `}` (the last key is what readers keep);
/// * `stream_options` is not an object (`null`, an array, …): replace the whole value
///   with `{"include_usage":true}`.
///
/// The edit never overlaps [`RequestScan::model_span`] (`stream_options` is another member),
/// so it can be applied together with a model replacement in one [`apply_edits`] call.
pub fn include_usage_edit(scan: &RequestScan) -> Option<Edit<'static>> {
    if !scan.stream {
        return None;
    }
    match scan.stream_options {
        StreamOptions::Absent => Some(Edit {
            range: scan.object_end..scan.object_end,
            bytes: br#","stream_options":{"include_usage":true}"#,
        }),
        StreamOptions::Object {
            open_brace,
            empty,
            include_usage: IncludeUsage::Absent,
            ..
        } => {
            let at = open_brace.saturating_add(1);
            Some(Edit {
                range: at..at,
                bytes: if empty {
                    br#""include_usage":true"#
                } else {
                    br#""include_usage":true,"#
                },
            })
        }
        StreamOptions::Object {
            include_usage: IncludeUsage::True,
            ..
        } => None,
        StreamOptions::Object {
            include_usage: IncludeUsage::Value { start, end },
            ..
        } => Some(Edit {
            range: start..end,
            bytes: b"true",
        }),
        StreamOptions::Object {
            end,
            include_usage: IncludeUsage::Several,
            ..
        } => {
            let at = end.saturating_sub(1);
            Some(Edit {
                range: at..at,
                bytes: br#","include_usage":true"#,
            })
        }
        StreamOptions::Other { start, end } => Some(Edit {
            range: start..end,
            bytes: br#"{"include_usage":true}"#,
        }),
    }
}

/// Whether a streaming request asked for the usage chunk itself: the (last)
/// `include_usage` key of its `stream_options` object is the literal `true`. Exactly the
/// streams for which [`include_usage_edit`] has nothing to do.
pub fn client_asked_for_usage(scan: &RequestScan) -> bool {
    scan.stream && include_usage_edit(scan).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::scan;
    use crate::body::tests::{json, ok, rewrite};

    #[test]
    fn include_usage_edit_cases() {
        // (body, expected rewritten body with model "p/m")
        let cases = [
            (
                r#"{"model":"m","stream":true}"#,
                Some(r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true}}"#),
            ),
            (
                "{\"stream\":true,\"model\":\"m\" \n}",
                Some(
                    "{\"stream\":true,\"model\":\"p/m\" \n,\"stream_options\":{\"include_usage\":true}}",
                ),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{}}"#,
                Some(r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true}}"#),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{ }}"#,
                Some(r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true }}"#),
            ),
            (
                r#"{"stream_options":{"foo":1},"model":"m","stream":true}"#,
                Some(
                    r#"{"stream_options":{"include_usage":true,"foo":1},"model":"p/m","stream":true}"#,
                ),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#,
                Some(r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true}}"#),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"x":1, "include_usage" : null }}"#,
                Some(
                    r#"{"model":"p/m","stream":true,"stream_options":{"x":1, "include_usage" : true }}"#,
                ),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":"yes"}}"#,
                Some(r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true}}"#),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":true,"include_usage":false }}"#,
                Some(
                    r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true,"include_usage":false ,"include_usage":true}}"#,
                ),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"include_usage":true}}"#,
                None,
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
                None,
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":true,"include_\u0075sage":true}}"#,
                None,
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":null}"#,
                Some(r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true}}"#),
            ),
            (
                r#"{"model":"m","stream_options": [1] ,"stream":true}"#,
                Some(r#"{"model":"p/m","stream_options": {"include_usage":true} ,"stream":true}"#),
            ),
            (
                r#"{"model":"m","stream":true,"stream_options":"off"}"#,
                Some(r#"{"model":"p/m","stream":true,"stream_options":{"include_usage":true}}"#),
            ),
            (r#"{"model":"m","stream":false}"#, None),
            (r#"{"model":"m","stream":null,"stream_options":{}}"#, None),
            (r#"{"model":"m"}"#, None),
        ];
        for (body, expected) in cases {
            let s = ok(body);
            let edit = include_usage_edit(&s);
            assert_eq!(edit.is_some(), expected.is_some(), "{body}");
            let out = rewrite(body.as_bytes(), "p/m");
            let expected =
                expected.map_or_else(|| body.replace(r#""m""#, r#""p/m""#), str::to_owned);
            assert_eq!(std::str::from_utf8(&out).unwrap(), expected, "{body}");
            let v = json(&out);
            assert_eq!(v["model"], "p/m");
            if s.stream {
                assert_eq!(v["stream_options"]["include_usage"], true, "{body}");
            }
            assert_eq!(client_asked_for_usage(&s), s.stream && edit.is_none());
            if edit.is_some() {
                assert_eq!(v["stream_options"]["include_usage"], true);
                // The rewritten body must itself scan cleanly and need no further edit.
                let again = scan(&out).unwrap();
                assert_eq!(include_usage_edit(&again), None);
                assert_eq!(again.model, "p/m");
            }
        }
    }

    // ------------------------------------------------------------------ splicing helpers

    #[test]
    fn apply_edits_sorts_and_allocates_once() {
        let body = b"0123456789";
        let mut edits = [
            Edit {
                range: 10..10,
                bytes: b"<end>",
            },
            Edit {
                range: 2..4,
                bytes: b"",
            },
            Edit {
                range: 0..0,
                bytes: b"<start>",
            },
            Edit {
                range: 5..6,
                bytes: b"FIVE",
            },
            Edit {
                range: 5..5,
                bytes: b"+",
            },
            Edit {
                range: 5..5,
                bytes: b"+",
            },
        ];
        let out = apply_edits(body, &mut edits);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "<start>014++FIVE6789<end>"
        );
        assert_eq!(out.capacity(), out.len());

        assert_eq!(apply_edits(body, &mut []), body.to_vec());
        assert_eq!(
            apply_edits(
                b"",
                &mut [Edit {
                    range: 0..0,
                    bytes: b"x"
                }]
            ),
            b"x".to_vec()
        );
        let out = apply_edits(
            body,
            &mut [Edit {
                range: 0..10,
                bytes: b"all",
            }],
        );
        assert_eq!(out, b"all".to_vec());
        assert_eq!(out.capacity(), 3);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "overlapping edits")]
    fn apply_edits_rejects_overlap_in_debug() {
        let mut edits = [
            Edit {
                range: 0..5,
                bytes: b"a",
            },
            Edit {
                range: 3..4,
                bytes: b"b",
            },
        ];
        apply_edits(b"0123456789", &mut edits);
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn apply_edits_clamps_bad_ranges_in_release() {
        let mut edits = [
            Edit {
                range: 0..5,
                bytes: b"a",
            },
            Edit {
                range: 3..7,
                bytes: b"b",
            },
            Edit {
                range: 50..60,
                bytes: b"c",
            },
        ];
        let out = apply_edits(b"0123456789", &mut edits);
        assert_eq!(out, b"ab789c".to_vec());
        assert_eq!(out.capacity(), out.len());
    }

    #[test]
    fn json_string_literal_round_trips() {
        assert_eq!(json_string_literal(""), r#""""#);
        assert_eq!(json_string_literal("gpt-4o"), r#""gpt-4o""#);
        assert_eq!(
            json_string_literal("a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}/\u{7f}é😀"),
            "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f/\u{7f}é😀\""
        );
        let all_controls: String = (0u8..0x20).map(char::from).collect();
        for s in [
            all_controls.as_str(),
            "\"\\\"\\",
            "中文 \u{2028}\u{2029} \u{feff}",
            "x",
        ] {
            let lit = json_string_literal(s);
            assert_eq!(serde_json::from_str::<String>(&lit).unwrap(), s);
            // And it scans back to the same model name.
            let body = format!(r#"{{"model":{lit}}}"#);
            if !s.is_empty() {
                assert_eq!(ok(&body).model, s);
            }
        }
    }
}
