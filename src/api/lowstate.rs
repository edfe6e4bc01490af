//! A request body → a list of lowstate chunks, with every limit checked first.
//!
//! As rest_cherrypy reads them: one object is a list of one chunk, and `batch: null`
//! (pepper sends it on every call) is the same as no `batch`.

use serde_json::Value as Json;

use crate::salt::Chunk;
use crate::settings::Limits;

/// A body that is not a usable lowstate list: the status and the message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct LowstateError {
    /// 400 or 413.
    pub status: u16,
    /// Human-readable reason.
    pub message: String,
}

fn bad(message: String) -> LowstateError {
    LowstateError {
        status: 400,
        message: format!("400: {message}"),
    }
}

/// Parses a JSON body: a list of chunk objects, or one chunk object.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Vec<Chunk>, LowstateError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad(
            "request body is empty; expected a JSON list of lowstate chunks".into(),
        ));
    }
    if nesting_exceeds(body, limits.max_json_depth) {
        return Err(too_deep(limits));
    }
    let value: Json =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    from_value(value, limits)
}

/// The 400 for JSON nested deeper than `max_json_depth`.
pub fn too_deep(limits: &Limits) -> LowstateError {
    bad(format!(
        "JSON nested deeper than max_json_depth ({})",
        limits.max_json_depth
    ))
}

/// A parsed body (JSON, YAML or form) → chunks: a list of objects, or one object.
pub fn from_value(value: Json, limits: &Limits) -> Result<Vec<Chunk>, LowstateError> {
    let items = match value {
        Json::Array(items) => items,
        Json::Object(chunk) => vec![Json::Object(chunk)],
        _ => {
            return Err(bad(
                "request body must be a JSON list of lowstate chunks".into()
            ));
        }
    };
    if items.len() > limits.max_chunks {
        return Err(LowstateError {
            status: 413,
            message: format!(
                "413: {} chunks in one request; max_chunks is {}",
                items.len(),
                limits.max_chunks
            ),
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Json::Object(mut chunk) => {
                if chunk.get("batch") == Some(&Json::Null) {
                    chunk.remove("batch");
                }
                Ok(chunk)
            }
            _ => Err(bad(format!("lowstate chunk {i} is not a JSON object"))),
        })
        .collect()
}

/// True if arrays/objects nest deeper than `max` (a byte scan; strings are skipped).
pub fn nesting_exceeds(body: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn limits() -> Limits {
        Settings::from_mapping(&serde_yaml_ng::Mapping::new()).limits
    }

    #[test]
    fn accepts_lists_of_objects() {
        let chunks = parse(br#"[{"client":"local"},{}]"#, &limits()).expect("parse");
        assert_eq!(chunks.len(), 2);
        let one = parse(br#"{"client":"local","batch":null}"#, &limits()).expect("one");
        assert_eq!(one.len(), 1);
        assert!(!one[0].contains_key("batch"));
        assert_eq!(parse(b"[]", &limits()).expect("empty list").len(), 0);
    }

    #[test]
    fn refuses_everything_else() {
        for body in [
            &b""[..],
            b"  ",
            b"{",
            b"1",
            b"null",
            b"[1]",
            b"[{}, []]",
            b"\xff\xfe",
            b"[\"\xff\"]",
        ] {
            let e = parse(body, &limits()).expect_err("must fail");
            assert_eq!(e.status, 400, "{body:?}");
        }
    }

    /// Floats the default serde_json parser read one ULP off; Python reads them exactly.
    const EXACT_FLOATS: [&str; 4] = [
        "-113.22589111328125",
        "124.23332112876233",
        "-506.75413023681443",
        "1.30918652314081e-309",
    ];

    #[test]
    fn floats_reach_the_payload_exactly() {
        let body = format!(r#"[{{"arg": [{}]}}]"#, EXACT_FLOATS.join(","));
        let chunks = parse(body.as_bytes(), &limits()).expect("parse");
        let packed = crate::salt::payload::encode(&chunks[0]["arg"]);
        let args: Vec<f64> = rmp_serde::from_slice(&packed).expect("msgpack floats");
        for (text, got) in EXACT_FLOATS.iter().zip(args) {
            let want: f64 = text.parse().expect("std parses");
            assert_eq!(got.to_bits(), want.to_bits(), "{text} became {got}");
        }
    }

    #[test]
    fn depth_and_count_limits() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse(deep.as_bytes(), &limits()).expect_err("deep").status,
            400
        );
        let ok = format!("[{{\"a\":{}1{}}}]", "[".repeat(60), "]".repeat(60));
        assert!(parse(ok.as_bytes(), &limits()).is_ok());
        assert!(!nesting_exceeds(
            br#"["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"["]"#,
            2
        ));
        let many = format!("[{}{{}}]", "{},".repeat(100));
        assert_eq!(
            parse(many.as_bytes(), &limits()).expect_err("many").status,
            413
        );
    }
}
