//! Inputs the fuzzers once broke salt-fcgi with (fuzz/regressions/), replayed on every
//! test run: each must decode quickly, with bounded output, without a crash, and its JSON
//! must parse back to the same value (floats included); a malformed FastCGI record must
//! end the connection without a panic.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The inputs in `fuzz/regressions/<target>/`, at least `at_least` of them.
fn inputs(target: &str, at_least: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let found: Vec<_> = std::fs::read_dir(&dir)
        .expect("regressions dir")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            (path, bytes)
        })
        .collect();
    assert!(found.len() >= at_least, "the regression inputs are present");
    found
}

#[test]
fn payload_decode_regressions_stay_fixed() {
    for (path, bytes) in inputs("payload_decode", 3) {
        // Run on a small stack, as a tokio worker would: a recursion bug overflows it.
        let started = Instant::now();
        let size = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || json_size_after_round_trip(&bytes))
            .expect("spawn")
            .join()
            .expect("decode must not crash");
        assert!(size < 1 << 20, "{}: {size} bytes of JSON", path.display());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{}",
            path.display()
        );
    }
}

/// Decodes `bytes`; when that succeeds, checks its JSON text parses back to the same value
/// and returns the text's length (0 for a refused input).
fn json_size_after_round_trip(bytes: &[u8]) -> usize {
    let Ok(value) = salt_fcgi::internals::payload::decode(bytes) else {
        return 0;
    };
    let text = value.to_string();
    let back: serde_json::Value = serde_json::from_str(&text).expect("JSON parses back");
    assert_eq!(back, value, "JSON text round trip");
    text.len()
}

#[test]
fn fastcgi_regressions_end_the_connection_without_a_panic() {
    use salt_fcgi::internals::fastcgi::Step;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for (path, bytes) in inputs("fastcgi_records", 4) {
        // As the FastCGI front end reads a connection.
        let (steps, error) =
            runtime.block_on(salt_fcgi::internals::fastcgi::steps(&bytes, 1 << 20));
        // Refused, or the connection ends there (a cut record); never a request.
        assert!(
            !steps.iter().any(|s| matches!(s, Step::Request(_))),
            "{}: no request from a malformed record: {steps:?}",
            path.display()
        );
        assert!(
            error.is_some() || matches!(steps.last(), Some(Step::Close(_))),
            "{}: the malformed record is refused",
            path.display()
        );
    }
}
