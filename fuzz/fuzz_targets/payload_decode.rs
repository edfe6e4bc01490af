//! `salt::payload::decode` on any bytes (a master reply or event data).
//!
//! Checks beyond "no panic", for every document it accepts:
//! - it is exactly one msgpack value: `events::msgpack_size` measures the whole input
//!   (or refuses a 0xc1 byte, which rmpv reads as nil);
//! - the JSON serialises and, up to serde_json's parsing depth of 127, parses back to itself
//!   exactly (floats too: salt-fcgi builds serde_json with `float_roundtrip`, and the text is
//!   ryu's shortest form);
//! - `decode(encode(v)) == v`. NaN/inf already became null, every key is a string, ext
//!   78/79 became strings/values, so the round trip is exact, except for depth: ext 79
//!   decodes its inner document with a fresh depth budget, so `v` can nest deeper than
//!   `decode` accepts in one document; then the round trip must fail with a depth error.
//!
//! Map keys that nest maps (once exponential output) and ext 79 chains (once unbounded
//! recursion) are fixed in salt-fcgi; see fuzz/regressions/.
#![no_main]

use fuzz_common::json_depth;
use libfuzzer_sys::fuzz_target;
use salt_fcgi::internals::event_frame::msgpack_size;
use salt_fcgi::internals::payload::{decode, encode};
use serde_json::Value as Json;

/// Deepest JSON nesting `decode` must accept back from `encode` (its depth budget of 256
/// costs two per array/map level and three for a string leaf: 126 levels always fit).
const ALWAYS_DECODABLE_DEPTH: usize = 126;

/// Deepest JSON nesting serde_json parses; `decode` can return 128 levels.
const SERDE_JSON_MAX_DEPTH: usize = 127;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = decode(data) else { return };
    match msgpack_size(data) {
        Ok(Some(n)) => assert_eq!(n, data.len(), "decode accepted exactly one value"),
        // rmpv reads the reserved byte 0xc1 as nil; the frame scanner refuses it.
        Err(e) if e.contains("0xc1") && data.contains(&0xc1) => {}
        other => panic!("decode accepted what msgpack_size calls {other:?}"),
    }

    let text = serde_json::to_vec(&v).expect("JSON serialises");
    // serde_json refuses to parse deeper text than that (its recursion limit of 128); a
    // client's JSON parser takes it (Python's goes to ~1,000 levels).
    if json_depth(&v) <= SERDE_JSON_MAX_DEPTH {
        let back: Json = serde_json::from_slice(&text).expect("JSON parses back");
        assert_eq!(back, v, "JSON text round trip");
    }

    let packed = encode(&v);
    assert_eq!(msgpack_size(&packed), Ok(Some(packed.len())));
    match decode(&packed) {
        Ok(again) => assert_eq!(again, v, "decode(encode(v)) != v"),
        Err(e) => {
            let depth = json_depth(&v);
            assert!(
                depth > ALWAYS_DECODABLE_DEPTH && e.0.contains("depth limit"),
                "decode(encode(v)) failed at depth {depth}: {e}"
            );
        }
    }
});
