//! Inputs the fuzzers once broke salt-fcgi with (fuzz/regressions/), replayed on every
//! test run: each must decode quickly, with bounded output, without a crash, and its JSON
//! must parse back to the same value (floats included); a malformed FastCGI record must
//! end the connection without a panic.

use std::time::{Duration, Instant};

#[test]
fn payload_decode_regressions_stay_fixed() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/regressions/payload_decode"
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("regressions dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
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
        seen += 1;
    }
    assert!(seen >= 3, "the regression inputs are present");
}

/// Decodes `bytes`; when that succeeds, checks its JSON text parses back to the same value
/// and returns the text's length (0 for a refused input).
fn json_size_after_round_trip(bytes: &[u8]) -> usize {
    let Ok(value) = salt_fcgi::salt::payload::decode(bytes) else {
        return 0;
    };
    let text = value.to_string();
    let back: serde_json::Value = serde_json::from_str(&text).expect("JSON parses back");
    assert_eq!(back, value, "JSON text round trip");
    text.len()
}

#[test]
fn fastcgi_regressions_end_the_connection_without_a_panic() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/regressions/fastcgi_records"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("regressions dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        // As the FastCGI front end reads a connection: through the record check.
        let outcome = runtime.block_on(async {
            let reader = salt_fcgi::frontend::record_check::RecordCheck::new(&bytes[..]);
            tokio_fastcgi::Requests::new(reader, tokio::io::sink(), 1, 1)
                .next()
                .await
                .map(|r| r.is_some())
        });
        // Refused, or the connection ends there (a cut record); never a request.
        assert!(
            !matches!(outcome, Ok(true)),
            "the malformed record is refused"
        );
        seen += 1;
    }
    assert!(seen >= 4, "the regression inputs are present");
}
