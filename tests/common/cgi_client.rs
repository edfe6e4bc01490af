//! The salt-fcgi binary run as one CGI request.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value as Json;

use super::{Response, parse_head};

/// The salt-fcgi binary under test: cargo's build, or `$SALT_FCGI_TEST_BINARY` (the static
/// build of scripts/build-static, the installed package's /usr/bin/salt-fcgi).
pub fn binary() -> &'static str {
    static BINARY: OnceLock<String> = OnceLock::new();
    BINARY.get_or_init(|| match std::env::var("SALT_FCGI_TEST_BINARY") {
        Ok(path) if !path.is_empty() => {
            assert!(
                Path::new(&path).is_file(),
                "SALT_FCGI_TEST_BINARY={path}: no such file"
            );
            path
        }
        _ => env!("CARGO_BIN_EXE_salt-fcgi").to_string(),
    })
}

/// Runs one CGI request: POST `body` as `application/json` against `config`.
pub fn cgi_post(config: &Path, body: &Json) -> Response {
    cgi(
        config,
        "POST",
        Some("application/json"),
        body.to_string().as_bytes(),
        &[],
    )
}

/// Runs one CGI request with full control over method, content type, body, extra env.
pub fn cgi(
    config: &Path,
    method: &str,
    content_type: Option<&str>,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Response {
    let mut cmd = Command::new(binary());
    cmd.env_clear()
        .env("SALT_MASTER_CONFIG", config)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", method)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("PATH_INFO", "/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ct) = content_type {
        cmd.env("CONTENT_TYPE", ct);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn salt-fcgi");
    let mut stdin = child.stdin.take().expect("stdin");
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().expect("wait salt-fcgi");
    let _ = writer.join();
    let resp = parse_head(&out.stdout, false);
    resp.check_headers();
    resp
}
