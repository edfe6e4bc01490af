//! The whole FastCGI path: bytes from the web server → `RecordReader` → `Assembly` →
//! the request's `ApiRequest` (as `frontend::fastcgi` builds it) → `Api::handle` (no
//! master: chunks stop at the 503 check) → CGI response bytes.
//!
//! Must never panic; every response is JSON with a correct Content-Length (see
//! `fuzz_common::check_response`). An even request id uses the default limits, an odd one
//! tiny limits (64-byte bodies, 4 chunks, depth 6).
#![no_main]

use fuzz_common::{apis, check_response, quietly, runtime};
use libfuzzer_sys::fuzz_target;
use salt_fcgi::internals::cgi::response_bytes as cgi_response_bytes;
use salt_fcgi::internals::fastcgi::{self, Step};

fuzz_target!(|data: &[u8]| {
    quietly(|| {
        runtime().block_on(async {
            let (steps, _) = fastcgi::steps(data, usize::MAX).await;
            for step in steps {
                let Step::Request(request) = step else {
                    continue;
                };
                let api = &apis()[usize::from(request.id % 2)];
                let max_body = api.settings().limits.max_body_bytes;
                let request = request.into_api_request(max_body);
                if let Ok(body) = &request.body {
                    assert!(body.len() <= max_body, "body over max_body_bytes");
                }
                let method = request.method.clone();
                let response = api.handle(request).await;
                check_response(&method, &response);
                let _ = cgi_response_bytes(&response);
            }
        })
    });
});
