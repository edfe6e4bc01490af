//! A request body → a list of lowstate chunks, with every limit checked first.
//!
//! As rest_cherrypy reads them: one object is a list of one chunk, and `batch: null`
//! (pepper sends it on every call) is the same as no `batch`.

use serde_json::Value as Json;

use super::body_value::{self, Bounds, Refusal};
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
    let bounds = Bounds {
        max_depth: limits.max_json_depth,
        max_values: limits.max_body_values,
    };
    let value = body_value::from_json(body, bounds).map_err(|why| refusal(why, "JSON", limits))?;
    from_value(value, limits)
}

/// The error for a body the value builder refused (`syntax`: JSON or YAML).
pub(crate) fn refusal(why: Refusal, syntax: &str, limits: &Limits) -> LowstateError {
    match why {
        Refusal::Invalid(e) => bad(format!("invalid {syntax}: {e}")),
        Refusal::TooDeep => too_deep(limits),
        Refusal::TooMany => LowstateError {
            status: 413,
            message: format!(
                "413: request body holds more than max_body_values ({}) values",
                limits.max_body_values
            ),
        },
        Refusal::Expands => {
            bad("YAML aliases expand the body past its own size; send the values themselves".into())
        }
    }
}

/// The 400 for JSON nested deeper than `max_json_depth`.
pub(crate) fn too_deep(limits: &Limits) -> LowstateError {
    bad(format!(
        "JSON nested deeper than max_json_depth ({})",
        limits.max_json_depth
    ))
}

/// A parsed body (JSON, YAML or form) → chunks: a list of objects, or one object.
pub(crate) fn from_value(value: Json, limits: &Limits) -> Result<Vec<Chunk>, LowstateError> {
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
    use serde_json::json;

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

    /// Issue 18 item 1: integers past 64 bits arrive as Salt sends them (their decimal
    /// text), never as a float; everything else is untouched.
    #[test]
    fn integers_past_64_bits_are_never_floats() {
        let body = br#"[{"jid": 20261203072555932498, "arg": [18446744073709551615,
            18446744073709551616, -9223372036854775808, -9223372036854775809, 1.5e3, 0,
            -0, "20261203072555932498", "a\"1", 123456789012345678901234567890123456789012345],
            "kwarg": {"n": -20261203072555932498}}]"#;
        let chunks = parse(body, &limits()).expect("parse");
        let c = &chunks[0];
        assert_eq!(c["jid"], json!("20261203072555932498"));
        assert_eq!(
            c["arg"],
            json!([
                u64::MAX,
                "18446744073709551616",
                i64::MIN,
                "-9223372036854775809",
                1500.0,
                0,
                0,
                "20261203072555932498",
                "a\"1",
                "123456789012345678901234567890123456789012345"
            ])
        );
        assert_eq!(c["kwarg"]["n"], json!("-20261203072555932498"));
        // What the master receives: a msgpack str, as from Salt.
        let packed = crate::salt::payload::encode(&c["jid"]);
        assert_eq!(packed[0], 0xa0 | 20, "fixstr of 20 bytes");
        // Invalid JSON stays invalid: a number where a key belongs is not quoted.
        for bad in [
            &br#"{20261203072555932498: 1}"#[..],
            br#"{"a": 1, 20261203072555932498: 1}"#,
            br#"[020261203072555932498]"#,
            br#"[20261203072555932498 1]"#,
            br#"[1e400]"#,
        ] {
            assert!(
                parse(bad, &limits()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// The same for YAML and form bodies (`api::body`): a jid is the same text in each.
    #[test]
    fn every_body_type_keeps_big_integers() {
        let parsed = |ct: &str, body: &str| {
            crate::api::body::parse(Some(ct), body.as_bytes(), &limits())
                .map(|v| v.expect("a body"))
        };
        let jid = "20261203072555932498";
        let want = json!({"fun": "jobs.lookup_jid", "jid": jid, "arg": [jid], "n": -1});
        for (ct, body) in [
            (
                "application/json",
                format!(r#"{{"fun":"jobs.lookup_jid","jid":{jid},"arg":[{jid}],"n":-1}}"#),
            ),
            (
                "application/x-yaml",
                format!("fun: jobs.lookup_jid\njid: {jid}\narg: [{jid}]\nn: -1\n"),
            ),
        ] {
            assert_eq!(parsed(ct, &body).expect(ct), want, "{ct}");
        }
        let form = parsed(
            "application/x-www-form-urlencoded",
            &format!("jid={jid}&arg={jid}&arg=-{jid}"),
        )
        .expect("form");
        assert_eq!(form["jid"], json!(jid));
        assert_eq!(form["arg"], json!([jid, format!("-{jid}")]));
        let i128_min = format!("a: {}", i128::MIN);
        assert_eq!(
            parsed("application/x-yaml", &i128_min).expect("i128")["a"],
            json!(i128::MIN.to_string())
        );
        let huge = format!("a: -{jid}{jid}");
        for nan in ["a: .inf", "a: .nan", "[-.inf]", &huge, "a: 1.8e38"] {
            assert_eq!(
                parsed("application/x-yaml", nan).expect_err(nan).status(),
                400
            );
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
        // The limit is on the text: a value a later duplicate key replaces was read all the
        // same (the parsed chunk keeps `"arg": 1`; the body still nests 4 deep).
        let dup = br#"[{"client":"local","arg":[[]],"arg":1}]"#;
        let three = Limits {
            max_json_depth: 3,
            ..limits()
        };
        assert!(nesting_exceeds(dup, 3) && !nesting_exceeds(dup, 4));
        assert_eq!(parse(dup, &three).expect_err("4 deep").status, 400);
        let many = format!("[{}{{}}]", "{},".repeat(100));
        assert_eq!(
            parse(many.as_bytes(), &limits()).expect_err("many").status,
            413
        );
    }
}
