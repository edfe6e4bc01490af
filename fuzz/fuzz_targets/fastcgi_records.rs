//! tokio-fastcgi's record parsing, fed arbitrary bytes as the web server's side of a
//! connection, used the way salt-fcgi's FastCGI front end uses it: `Requests::new`, then
//! `next()` in a loop and `process` on each request with a closure that reads the
//! params, stdin and data and writes stdout.
//!
//! A panic here would end one connection task of salt-fcgi (tokio catches it), not the
//! process. The one known panic (BEGIN_REQUEST shorter than 2 bytes) is skipped unless
//! `FUZZ_KNOWN_BUGS=1`; see `fuzz_common::hits_known_fastcgi_panic`.
#![no_main]

use std::io::Read;

use fuzz_common::{hits_known_fastcgi_panic, runtime};
use libfuzzer_sys::fuzz_target;
use tokio_fastcgi::{RequestResult, Requests};

const NAMES: [&str; 6] = [
    "REQUEST_METHOD",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "PATH_INFO",
    "SCRIPT_NAME",
    "HTTP_HOST",
];

fuzz_target!(|data: &[u8]| {
    if hits_known_fastcgi_panic(data) {
        return;
    }
    runtime().block_on(async {
        let mut requests = Requests::new(data, tokio::io::sink(), 255, 1);
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
    });
});
