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
    /// The body: whole, streamed, or a WebSocket's messages.
    pub body: Body,
}

/// What follows a response's head.
#[derive(Debug)]
pub enum Body {
    /// The whole body (Content-Length is its length).
    Full(Vec<u8>),
    /// A body that arrives over time (`/events`): the front end writes each chunk as it
    /// comes and flushes whenever no more is waiting, with no Content-Length; the stream's
    /// end is the body's end. Chunks are shared: one event's bytes serve every stream.
    Stream(BodyStream),
    /// The messages of a WebSocket (`/ws`, status 101), one text message per chunk; only
    /// a front end that can upgrade the connection is ever given one.
    WebSocket(BodyStream),
}

impl Default for Body {
    fn default() -> Body {
        Body::Full(Vec::new())
    }
}

impl ApiResponse {
    /// A JSON response.
    pub fn json(status: u16, value: &Json) -> ApiResponse {
        // Serialising a serde_json::Value cannot fail.
        let body = serde_json::to_vec(value).unwrap_or_default();
        ApiResponse::bytes(status, ApiResponse::JSON, body)
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
            body: Body::Full(body),
        }
    }

    /// A body that arrives over time from `chunks`.
    pub fn streaming(status: u16, content_type: &'static str, chunks: BodyStream) -> ApiResponse {
        ApiResponse {
            body: Body::Stream(chunks),
            ..ApiResponse::bytes(status, content_type, Vec::new())
        }
    }

    /// A 101 whose WebSocket carries `messages`.
    pub fn websocket(messages: BodyStream) -> ApiResponse {
        ApiResponse {
            body: Body::WebSocket(messages),
            ..ApiResponse::bytes(101, ApiResponse::JSON, Vec::new())
        }
    }

    /// The whole body's bytes (empty for a stream).
    pub fn whole_body(&self) -> &[u8] {
        match &self.body {
            Body::Full(bytes) => bytes,
            Body::Stream(_) | Body::WebSocket(_) => &[],
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
