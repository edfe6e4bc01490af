//! `salt::payload::encode` then `decode` on any JSON document (what salt-fcgi sends to the
//! master is encoded from chunk JSON): the round trip is exact, or fails only by depth.
#![no_main]

use fuzz_common::json_depth;
use libfuzzer_sys::fuzz_target;
use salt_fcgi::internals::event_frame::msgpack_size;
use salt_fcgi::internals::payload::{decode, encode};
use serde_json::Value as Json;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Json>(data) else {
        return;
    };
    let packed = encode(&v);
    assert!(!packed.is_empty(), "encode produced nothing");
    assert_eq!(msgpack_size(&packed), Ok(Some(packed.len())));
    match decode(&packed) {
        Ok(back) => assert_eq!(back, v, "decode(encode(v)) != v"),
        Err(e) => {
            let depth = json_depth(&v);
            assert!(
                depth > 126 && e.0.contains("depth limit"),
                "decode(encode(v)) failed at depth {depth}: {e}"
            );
        }
    }
});
