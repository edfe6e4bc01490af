//! `api::lowstate::parse`: any request body, with the default limits and with tiny ones.
//!
//! Checks beyond "no panic": an accepted body is a JSON list of at most `max_chunks`
//! objects (or one object) nested no deeper than `max_json_depth`, less a `batch: null`; a refused one is 400 or 413 with the
//! status in its message; and no body that meets every limit is refused (the byte scan
//! for depth agrees with the nesting of valid JSON as written: a value a later duplicate
//! key replaces still counts, as the parser had to read it). Numbers compare by value: the
//! parser keeps integers exact as Python's `json` does, so `-0` is the integer 0 where
//! serde_json reads the float -0.0.
#![no_main]

use fuzz_common::{default_limits, same_json, small_limits, text_depth};
use libfuzzer_sys::fuzz_target;
use salt_fcgi::internals::lowstate::{nesting_exceeds, parse};
use serde_json::Value as Json;

fuzz_target!(|body: &[u8]| {
    for limits in [default_limits(), small_limits()] {
        let result = parse(body, limits);
        let json: Option<Json> = serde_json::from_slice(body).ok();
        match &result {
            Ok(chunks) => {
                assert!(chunks.len() <= limits.max_chunks);
                let items = match &json {
                    Some(Json::Array(items)) => items.clone(),
                    Some(one @ Json::Object(_)) => vec![one.clone()],
                    _ => panic!("accepted a body that is neither a JSON list nor an object"),
                };
                assert_eq!(items.len(), chunks.len());
                for (item, chunk) in items.iter().zip(chunks) {
                    let mut want = item.as_object().cloned().expect("an object");
                    if want.get("batch") == Some(&Json::Null) {
                        want.remove("batch");
                    }
                    let got = Json::Object(chunk.clone());
                    assert!(same_json(&Json::Object(want), &got), "{item} became {got}");
                }
                let depth = text_depth(body).expect("serde_json read it above");
                assert!(depth <= limits.max_json_depth, "depth {depth} accepted");
            }
            Err(e) => {
                assert!(e.status == 400 || e.status == 413, "status {}", e.status);
                assert!(
                    e.message.starts_with(&format!("{}: ", e.status)),
                    "{}",
                    e.message
                );
            }
        }
        // Valid JSON: the byte scan measures exactly the nesting as written.
        if let (Some(v), Some(depth)) = (&json, text_depth(body)) {
            assert_eq!(
                nesting_exceeds(body, limits.max_json_depth),
                depth > limits.max_json_depth,
                "byte scan disagrees with depth {depth}"
            );
            let meets_limits = (matches!(v, Json::Array(items)
                if items.len() <= limits.max_chunks && items.iter().all(Json::is_object))
                || (v.is_object() && limits.max_chunks >= 1))
                && depth <= limits.max_json_depth;
            assert_eq!(result.is_ok(), meets_limits, "{result:?}");
        }
    }
});
