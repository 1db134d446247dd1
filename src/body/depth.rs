//! The nesting-depth check: serde_json skips values without a nesting limit, so depth is
//! counted here, linearly, only for values that have enough brackets to be too deep.

use memchr::memchr;

use super::outcome::MAX_DEPTH;

/// Whether `b` holds at most `limit` bytes `[` or `{` (inside strings too), in which case
/// containers in `b` nest at most `limit` deep. Vectorised (a byte counter per 64-byte chunk)
/// and stops as soon as the limit is exceeded.
pub(super) fn few_openers(b: &[u8], limit: usize) -> bool {
    let mut n = 0usize;
    for chunk in b.chunks(64) {
        n += usize::from(
            chunk
                .iter()
                .map(|&c| u8::from(c | 0x20 == b'{'))
                .sum::<u8>(),
        );
        if n > limit {
            return false;
        }
    }
    true
}

/// Whether a `[` or `{` outside strings in `b` opens a container nested deeper than
/// [`MAX_DEPTH`] when `outer` containers enclose `b` (the top-level object is depth 1).
///
/// `b` must be valid JSON or a prefix of it (text that serde_json parsed up to `b.len()`), so
/// every `"` outside a string opens one. Linear: returns at once when `b` has too few opening
/// brackets to be too deep, and otherwise jumps over string contents with `memchr`.
pub(super) fn too_deep(b: &[u8], outer: usize) -> bool {
    if few_openers(b, MAX_DEPTH.saturating_sub(outer)) {
        return false;
    }
    let mut depth = outer;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => {
                i = string_end(b, i + 1);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// Offset just past the closing quote of the string whose contents start at `i`, or `b.len()`.
/// A `"` closes the string unless an odd number of backslashes precedes it.
fn string_end(b: &[u8], mut i: usize) -> usize {
    loop {
        let Some(q) = b.get(i..).and_then(|rest| memchr(b'"', rest)) else {
            return b.len();
        };
        let q = i + q;
        // `b[i - 1]` is a quote, so a backslash run never extends to the left of `i`.
        let run = b.get(i..q).unwrap_or_default();
        if run.iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 0 {
            return q + 1;
        }
        i = q + 1;
    }
}

#[cfg(test)]
mod tests {
    use crate::body::tests::{fail, invalid_reason, many_brackets, ok};
    use crate::body::{reason, scan, BodyError};

    fn nested_arrays(n: usize) -> String {
        format!(r#"{{"model":"m","a":{}{}}}"#, "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn depth_limit() {
        // The top-level object is depth 1.
        assert_eq!(ok(&nested_arrays(126)).model, "m");
        assert_eq!(ok(&nested_arrays(127)).model, "m");
        assert_eq!(fail(&nested_arrays(128)), BodyError::TooDeep);
        assert_eq!(fail(&nested_arrays(129)), BodyError::TooDeep);

        let objects = |n: usize| {
            format!(
                r#"{{"model":"m","a":{}1{}}}"#,
                r#"{"k":"#.repeat(n),
                "}".repeat(n)
            )
        };
        assert!(scan(objects(127).as_bytes()).is_ok());
        assert_eq!(scan(objects(128).as_bytes()), Err(BodyError::TooDeep));

        // Mixed, and inside stream_options (depth 2 for the stream_options object itself).
        let mixed = |n: usize| {
            let open: String = (0..n)
                .map(|i| if i % 2 == 0 { "[" } else { r#"{"k":"# })
                .collect();
            let close: String = (0..n)
                .rev()
                .map(|i| if i % 2 == 0 { "]" } else { "}" })
                .collect();
            (open, close)
        };
        let (o, c) = mixed(126);
        assert!(
            scan(format!(r#"{{"model":"m","stream_options":{{"x":{o}1{c}}}}}"#).as_bytes()).is_ok()
        );
        let (o, c) = mixed(127);
        assert_eq!(
            scan(format!(r#"{{"model":"m","stream_options":{{"x":{o}1{c}}}}}"#).as_bytes()),
            Err(BodyError::TooDeep)
        );
    }

    #[test]
    fn very_deep_input_does_not_overflow_the_stack() {
        let body = format!(r#"{{"model":"m","a":{}"#, "[".repeat(1_000_000));
        assert_eq!(scan(body.as_bytes()), Err(BodyError::TooDeep));
        let body = format!(r#"{{"model":"m","a":{}"#, r#"{"a":"#.repeat(200_000));
        assert_eq!(scan(body.as_bytes()), Err(BodyError::TooDeep));
    }

    fn arrays(n: usize) -> String {
        format!("{}{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn depth_limit_in_bodies_with_many_brackets() {
        let ok_and_too_deep = |member: &dyn Fn(usize) -> String, deepest_ok: usize| {
            let body = many_brackets(&member(deepest_ok));
            assert!(scan(body.as_bytes()).is_ok(), "{}", member(deepest_ok));
            let body = many_brackets(&member(deepest_ok + 1));
            assert_eq!(
                scan(body.as_bytes()),
                Err(BodyError::TooDeep),
                "{}",
                member(1)
            );
        };
        // A top-level array or object, checked element by element.
        ok_and_too_deep(&|n| format!(r#""a":{}"#, arrays(n)), 127);
        ok_and_too_deep(&|n| format!(r#""a":{{"k":{}}}"#, arrays(n)), 126);
        ok_and_too_deep(&|n| format!(r#""a":[1,"x",{{}},{}]"#, arrays(n)), 126);
        // An escaped key: the value is checked as a whole.
        ok_and_too_deep(&|n| format!(r#""\u0061":{}"#, arrays(n)), 127);
        // The messages array itself (depth 2) holding a deep element.
        ok_and_too_deep(&|n| format!(r#""b":[{{"x":1}},{}]"#, arrays(n)), 126);
        // Quotes, escaped quotes and backslashes before the brackets.
        ok_and_too_deep(
            &|n| format!(r#""b":[{{"c":"a\\\"[[[\\","d":{}}}]"#, arrays(n)),
            125,
        );
        ok_and_too_deep(
            &|n| format!(r#""stream_options":{{"x":{}}}"#, arrays(n)),
            126,
        );
        // Too deep is reported before what is wrong with a model or stream value.
        let body = many_brackets(&format!(r#""stream":{}"#, arrays(127)));
        assert_eq!(invalid_reason(&fail(&body)), reason::STREAM_NOT_BOOL);
        let body = many_brackets(&format!(r#""stream":{}"#, arrays(128)));
        assert_eq!(fail(&body), BodyError::TooDeep);
        let messages = vec!["{}"; 200].join(",");
        let body = format!(r#"{{"messages":[{messages}],"model":{}}}"#, arrays(127));
        assert_eq!(fail(&body), BodyError::ModelNotString);
        let body = format!(r#"{{"messages":[{messages}],"model":{}}}"#, arrays(128));
        assert_eq!(fail(&body), BodyError::TooDeep);
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let brackets = "[{".repeat(300);
        for member in [
            format!(r#""a":"{brackets}""#),
            format!(r#""a":["{brackets}"]"#),
            format!(r#""a":{{"{brackets}":"{brackets}"}}"#),
            format!(r#""{brackets}":1"#),
        ] {
            for body in [
                many_brackets(&member),
                format!(r#"{{"model":"m",{member}}}"#),
            ] {
                assert_eq!(ok(&body).model, "m", "{member}");
            }
        }
    }

    #[test]
    fn too_deep_and_syntax_errors_in_document_order() {
        for pad in [
            "",
            r#""p":[[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[]],"#,
        ] {
            let deep = arrays(128);
            let body = format!(r#"{{{pad}"model":"m","a":{deep},"b":x}}"#);
            assert_eq!(fail(&body), BodyError::TooDeep, "{body}");
            let body = format!(r#"{{{pad}"model":"m","b":x,"a":{deep}}}"#);
            assert!(
                matches!(fail(&body), BodyError::InvalidJson { .. }),
                "{body}"
            );
            let body = format!(r#"{{{pad}"model":"m","a":[{deep},x]}}"#);
            assert_eq!(fail(&body), BodyError::TooDeep, "{body}");
            let body = format!(r#"{{{pad}"model":"m","a":[x,{deep}]}}"#);
            assert!(
                matches!(fail(&body), BodyError::InvalidJson { .. }),
                "{body}"
            );
            // Too deep, then the body ends.
            let body = format!(r#"{{{pad}"model":"m","a":[1,{}"#, "[".repeat(200));
            assert_eq!(fail(&body), BodyError::TooDeep, "{body}");
        }
    }
}
