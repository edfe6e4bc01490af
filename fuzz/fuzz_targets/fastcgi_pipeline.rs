//! The whole FastCGI path: bytes from the web server → `RecordCheck` → tokio-fastcgi
//! request → the same params/stdin → `ApiRequest` mapping as `frontend::fastcgi` →
//! `Api::handle` (no master: chunks stop at the 503 check) → CGI response bytes written
//! to stdout.
//!
//! Must never panic; every response is JSON with a correct Content-Length (see
//! `fuzz_common::check_response`). An even request id uses the default limits, an odd one
//! tiny limits (64-byte bodies, 4 chunks, depth 6).
#![no_main]

use fuzz_common::{apis, check_response, quietly, runtime};
use libfuzzer_sys::fuzz_target;
use salt_fcgi::internals::RecordCheck;
use salt_fcgi::internals::cgi::{self, response_bytes as cgi_response_bytes};
use salt_fcgi::internals::fastcgi;
use tokio_fastcgi::{RequestResult, Requests};

fuzz_target!(|data: &[u8]| {
    quietly(|| {
        runtime().block_on(async {
            let mut requests = Requests::new(RecordCheck::new(data), tokio::io::sink(), 255, 1);
            for _ in 0..=data.len() / 8 {
                let request = match requests.next().await {
                    Ok(Some(r)) => r,
                    Ok(None) | Err(_) => break,
                };
                let api = &apis()[usize::from(request.get_request_id() % 2)];
                let max_body = api.settings().limits.max_body_bytes;
                let outcome = request
                    .process(|req| async move {
                        let request = cgi::request_from_vars(
                            &fastcgi::params(&req),
                            |declared| cgi::read_body(&mut *req.get_stdin(), declared, max_body),
                            max_body,
                        );
                        if let Ok(body) = &request.body {
                            assert!(body.len() <= max_body, "body over max_body_bytes");
                        }
                        let method = request.method.clone();
                        let response = api.handle(request).await;
                        check_response(&method, &response);
                        let bytes = cgi_response_bytes(&response);
                        let _ = req.get_stdout().write(&bytes).await;
                        RequestResult::Complete(0)
                    })
                    .await;
                if outcome.is_err() {
                    break;
                }
            }
        })
    });
});
