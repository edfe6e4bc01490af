//! FastCGI record handling, fed arbitrary bytes as the web server's side of a connection,
//! the way salt-fcgi's FastCGI front end reads one: through `RecordCheck`, then
//! tokio-fastcgi's `Requests::new`, `next()` in a loop and `process` on each request with
//! a closure that reads the params, stdin and data and writes stdout.
//!
//! Checks beyond "no panic": `RecordCheck` hands on a prefix of the input made of whole
//! records, all of it unless it fails, and then the record after the prefix is one that
//! `check_record` refuses or one cut short by the end of the input. (It is what keeps
//! tokio-fastcgi 1.3's panic on a short BEGIN_REQUEST and its allocations from declared
//! parameter lengths out of reach.)
#![no_main]

use std::io::Read;

use fuzz_common::{quietly, runtime};
use libfuzzer_sys::fuzz_target;
use salt_fcgi::internals::{RecordCheck, check_record};
use tokio::io::AsyncReadExt;
use tokio_fastcgi::{RequestResult, Requests};

const NAMES: [&str; 6] = [
    "REQUEST_METHOD",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "PATH_INFO",
    "SCRIPT_NAME",
    "HTTP_HOST",
];

/// What `RecordCheck` hands on from `data`, and whether it refused a record.
async fn checked(data: &[u8]) -> (Vec<u8>, bool) {
    let mut reader = RecordCheck::new(data);
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(_) => return (out, true),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    quietly(|| runtime().block_on(run(data)));
});

async fn run(data: &[u8]) {
    let (passed, refused) = checked(data).await;
    assert_eq!(
        passed,
        data[..passed.len()],
        "RecordCheck hands on a prefix"
    );
    if refused {
        // The record after the prefix is malformed or cut short, never a good one.
        let rest = &data[passed.len()..];
        assert!(
            !rest.is_empty() && !matches!(check_record(rest), Ok(Some(_))),
            "refused a good record"
        );
    } else {
        assert_eq!(passed.len(), data.len(), "RecordCheck hands on everything");
    }
    {
        let mut requests = Requests::new(RecordCheck::new(data), tokio::io::sink(), 255, 1);
        // Each request needs at least one 8-byte record: the loop is bounded by the input.
        for _ in 0..=data.len() / 8 {
            let request = match requests.next().await {
                Ok(Some(r)) => r,
                Ok(None) | Err(_) => break,
            };
            let outcome = request
                .process(|req| async move {
                    let mut seen = 0usize;
                    for name in NAMES {
                        seen += req.get_str_param(name).map_or(0, str::len);
                        seen += req.get_param(name).map_or(0, Vec::len);
                    }
                    if let Some(params) = req.params_iter() {
                        seen += params.map(|(k, v)| k.len() + v.len()).sum::<usize>();
                    }
                    if let Some(params) = req.str_params_iter() {
                        seen += params
                            .map(|(k, v)| k.len() + v.map_or(0, str::len))
                            .sum::<usize>();
                    }
                    let mut stdin = Vec::new();
                    let _ = req.get_stdin().read_to_end(&mut stdin);
                    let mut extra = Vec::new();
                    let _ = req.get_data().read_to_end(&mut extra);
                    let reply = format!(
                        "Status: 200 OK\r\nContent-Length: 0\r\n\r\n{seen} {} {}",
                        stdin.len(),
                        extra.len()
                    );
                    let _ = req.get_stdout().write(reply.as_bytes()).await;
                    RequestResult::Complete(0)
                })
                .await;
            if outcome.is_err() {
                break;
            }
        }
    }
}
