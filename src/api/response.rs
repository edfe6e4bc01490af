//! The response every front end writes out: status, headers, body bytes and their type.

use serde_json::{Value as Json, json};

use super::body_stream::BodyStream;

/// A response; the body is JSON unless a handler chose another type (YAML on request, a
/// key tarball, an event stream).
#[derive(Debug)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// Extra headers beyond Content-Type and Content-Length.
    pub headers: Vec<(&'static str, String)>,
    /// The body bytes (Content-Length is their count), when the body is whole.
    pub body: Vec<u8>,
    /// A body that arrives over time (`/events`; for a 101, one WebSocket text message per
    /// chunk): the front end writes each chunk as it comes and flushes whenever no more is
    /// waiting, with no Content-Length; the stream's end is the body's end. Chunks are
    /// shared: one event's bytes serve every stream.
    pub stream: Option<BodyStream>,
}

impl ApiResponse {
    /// A JSON response.
    pub fn json(status: u16, value: &Json) -> ApiResponse {
        ApiResponse {
            status,
            content_type: ApiResponse::JSON,
            headers: Vec::new(),
            // Serialising a serde_json::Value cannot fail.
            body: serde_json::to_vec(value).unwrap_or_default(),
            stream: None,
        }
    }

    /// `{"return": [results…]}` with status 200.
    pub fn ok(results: Vec<Json>) -> ApiResponse {
        ApiResponse::json(200, &json!({ "return": results }))
    }

    /// `{"return": "<message>"}`, rest_wsgi's error shape.
    pub fn error(status: u16, message: &str) -> ApiResponse {
        ApiResponse::json(status, &json!({ "return": message }))
    }

    /// A response without a body (CORS preflight).
    pub fn empty(status: u16) -> ApiResponse {
        ApiResponse::bytes(status, ApiResponse::JSON, Vec::new())
    }

    /// A whole body of any type.
    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> ApiResponse {
        ApiResponse {
            status,
            content_type,
            headers: Vec::new(),
            body,
            stream: None,
        }
    }

    /// A body that arrives over time from `chunks`.
    pub fn streaming(status: u16, content_type: &'static str, chunks: BodyStream) -> ApiResponse {
        ApiResponse {
            stream: Some(chunks),
            ..ApiResponse::bytes(status, content_type, Vec::new())
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: &str) -> ApiResponse {
        self.headers.push((name, value.to_string()));
        self
    }

    /// The `Content-Type` of JSON bodies (every error, and success unless YAML is asked for).
    pub const JSON: &'static str = "application/json";
    /// The `Content-Type` of YAML bodies.
    pub const YAML: &'static str = "application/x-yaml";

    /// The reason phrase for the statuses salt-fcgi uses.
    pub fn reason(&self) -> &'static str {
        reason(self.status)
    }
}

/// Standard reason phrases.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
