//! A response from any front end, parsed from CGI output or an HTTP head.

use std::collections::HashMap;

use serde_json::Value as Json;

/// A parsed response from any front end.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    /// Raw body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (panics with the body text if it is not).
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `return` of the body.
    pub fn ret(&self) -> Json {
        self.json()["return"].clone()
    }

    /// Checks Content-Type (JSON; YAML or a tarball where asked for) and a byte-accurate
    /// Content-Length.
    pub fn check_headers(&self) {
        let ct = self.headers.get("content-type").map(String::as_str);
        assert!(
            matches!(
                ct,
                Some("application/json" | "application/x-yaml" | "application/x-tar")
            ),
            "Content-Type {ct:?}"
        );
        let len: usize = self
            .headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .expect("Content-Length");
        assert_eq!(len, self.body.len(), "Content-Length must count bytes");
    }
}

/// Splits a CGI-style (`Status:` …) or HTTP response head from its body.
pub(super) fn parse_head(raw: &[u8], http: bool) -> Response {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no header block in response: {}",
                String::from_utf8_lossy(raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
    let mut lines = head.split("\r\n");
    let mut headers = HashMap::new();
    let mut status = None;
    if http {
        let first = lines.next().unwrap_or_default();
        status = first.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    }
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "status" {
                status = v.get(..3).and_then(|s| s.parse().ok());
            }
            headers.insert(k, v);
        }
    }
    Response {
        status: status.unwrap_or(200),
        headers,
        body: raw[at + 4..].to_vec(),
    }
}
