//! CGI: one request from the environment and stdin, the response on stdout.
//!
//! Also what FastCGI hands over per request (the same variable names arrive as params),
//! so the variable → `ApiRequest` mapping lives here for both.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::api::request::parse_content_length;
use crate::api::{Api, ApiRequest, ApiResponse, BodyError};
use crate::settings::Settings;

/// Builds a request from CGI variables (`get`) and a body source.
pub fn request_from_vars(
    get: impl Fn(&str) -> Option<String>,
    body: impl FnOnce(Option<usize>) -> Result<Vec<u8>, BodyError>,
    max_body: usize,
) -> ApiRequest {
    let method = get("REQUEST_METHOD")
        .unwrap_or_default()
        .to_ascii_uppercase();
    let body = match parse_content_length(get("CONTENT_LENGTH").as_deref()) {
        Ok(Some(n)) if n > max_body => Err(BodyError::TooLarge(n)),
        Ok(declared) if method == "POST" => body(declared),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    ApiRequest {
        method,
        path: get("PATH_INFO").unwrap_or_default(),
        content_type: get("CONTENT_TYPE").filter(|c| !c.is_empty()),
        body,
        remote_addr: get("REMOTE_ADDR"),
    }
}

/// Reads a CGI body: exactly `declared` bytes, or to EOF when no length was given
/// (chunked requests under mod_cgid), never more than `max + 1`.
pub fn read_body(
    mut input: impl Read,
    declared: Option<usize>,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    let want = declared.unwrap_or(max.saturating_add(1));
    let mut buf = Vec::with_capacity(want.min(64 * 1024));
    input
        .by_ref()
        .take(want as u64)
        .read_to_end(&mut buf)
        .map_err(|e| BodyError::Io(e.kind().to_string()))?;
    match declared {
        Some(expected) if buf.len() < expected => Err(BodyError::Truncated {
            expected,
            got: buf.len(),
        }),
        None if buf.len() > max => Err(BodyError::TooLarge(buf.len())),
        _ => Ok(buf),
    }
}

/// Serves the one CGI request of this process.
pub fn run(config: Option<&Path>) -> ExitCode {
    let response = match Settings::load(config) {
        Ok(settings) => serve(settings),
        Err(e) => {
            crate::log::error(&e.to_string());
            ApiResponse::error(
                500,
                "500: salt-fcgi cannot read the master configuration (see the server's error log)",
            )
        }
    };
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(&super::cgi_response_bytes(&response))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn serve(settings: Settings) -> ApiResponse {
    let max = settings.limits.max_body_bytes;
    let stdin_is_tty = unsafe { libc::isatty(0) } == 1;
    let request = request_from_vars(
        |name| std::env::var(name).ok(),
        |declared| {
            if declared.is_none() && stdin_is_tty {
                // Run by hand without CONTENT_LENGTH: do not wait for a terminal.
                return Ok(Vec::new());
            }
            read_body(std::io::stdin().lock(), declared, max)
        },
        max,
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::log::error(&format!("cannot start the runtime: {e}"));
            return ApiResponse::error(500, "500: internal error in salt-fcgi");
        }
    };
    let api = Arc::new(Api::new(settings));
    let response = runtime.block_on(super::handle_guarded(&api, request));
    // A blocking ZeroMQ wait that outlived its request (deadline hit) must not hold the exit.
    runtime.shutdown_background();
    if !stdin_is_tty {
        drain_stdin();
    }
    response
}

/// Most bytes of an unread body consumed before answering.
const DRAIN_CAP: usize = 64 << 20;
/// Longest wait for more body bytes while draining.
const DRAIN_IDLE_MS: i32 = 1000;

/// Reads and discards what is left on stdin. mod_cgid writes the whole request body
/// before it reads the response: answering a body we refused (413) without consuming it
/// would leave Apache with a broken pipe and the client with no response at all.
fn drain_stdin() {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    let mut stdin = std::io::stdin().lock();
    while total < DRAIN_CAP {
        let mut pfd = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for fd 0.
        if unsafe { libc::poll(&mut pfd, 1, DRAIN_IDLE_MS) } <= 0 {
            return;
        }
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn bodies_by_content_length() {
        assert_eq!(read_body(&b"[]xyz"[..], Some(2), 10), Ok(b"[]".to_vec()));
        assert_eq!(
            read_body(&b"[]"[..], Some(5), 10),
            Err(BodyError::Truncated {
                expected: 5,
                got: 2
            })
        );
        assert_eq!(read_body(&b"[1,2]"[..], None, 10), Ok(b"[1,2]".to_vec()));
        assert_eq!(
            read_body(&b"[1,2,3,4,5]"[..], None, 4),
            Err(BodyError::TooLarge(5))
        );
    }

    #[test]
    fn request_from_cgi_variables() {
        let r = request_from_vars(
            vars(&[
                ("REQUEST_METHOD", "post"),
                ("CONTENT_LENGTH", "2"),
                ("CONTENT_TYPE", "application/json"),
                ("PATH_INFO", "/run"),
            ]),
            |n| read_body(&b"[]"[..], n, 10),
            10,
        );
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.body),
            ("POST", "/run", Ok(b"[]".to_vec()))
        );
        let r = request_from_vars(
            vars(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "abc")]),
            |_| Ok(vec![]),
            10,
        );
        assert_eq!(r.body, Err(BodyError::BadLength));
        let r = request_from_vars(
            vars(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "11")]),
            |_| panic!("not read"),
            10,
        );
        assert_eq!(r.body, Err(BodyError::TooLarge(11)));
        let r = request_from_vars(
            vars(&[("REQUEST_METHOD", "GET")]),
            |_| panic!("not read"),
            10,
        );
        assert_eq!(r.body, Ok(vec![]));
    }
}
