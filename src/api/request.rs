//! The one request type every front end (CGI, FastCGI, HTTP) produces.

/// Why a front end could not deliver the request body.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyError {
    /// The body is larger than `max_body_bytes` (its declared or actual size).
    TooLarge(usize),
    /// The body ended before `Content-Length` bytes arrived.
    Truncated {
        /// Bytes promised by Content-Length.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// `Content-Length` is not a number.
    BadLength,
    /// Reading the body failed.
    Io(String),
}

/// A transport-neutral HTTP request.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// Upper-case method (`GET`, `POST`, …).
    pub method: String,
    /// The path after the script name (ignored by the rest_wsgi routes).
    pub path: String,
    /// `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, or why it could not be read.
    pub body: Result<Vec<u8>, BodyError>,
    /// The client's address as the web server saw it (`REMOTE_ADDR`), for the log.
    pub remote_addr: Option<String>,
}

impl ApiRequest {
    /// A request with a body that was read successfully.
    pub fn new(method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> ApiRequest {
        ApiRequest {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            content_type: content_type.map(str::to_string),
            body: Ok(body),
            remote_addr: None,
        }
    }
}

/// Parses a `Content-Length` value: absent or empty is `None`.
pub fn parse_content_length(value: Option<&str>) -> Result<Option<usize>, BodyError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<usize>()
            .map(Some)
            .map_err(|_| BodyError::BadLength),
    }
}
