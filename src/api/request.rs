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
    /// The path below the mount point (`/login`, `/jobs/2024…`; empty or `/` is the root).
    pub path: String,
    /// Where the API is mounted (`SCRIPT_NAME`: empty for the host root, `/api` …); the
    /// session cookie's `Path`.
    pub mount: String,
    /// The query string without `?` (never used for credentials).
    pub query: String,
    /// Request headers other than Content-Type/Content-Length, names in lower case
    /// (`x-auth-token`, `cookie`, `accept`, `origin`, …).
    pub headers: Vec<(String, String)>,
    /// `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, or why it could not be read.
    pub body: Result<Vec<u8>, BodyError>,
    /// The client's address as the web server saw it (`REMOTE_ADDR`), for the log.
    pub remote_addr: Option<String>,
    /// The port the web server took the request on (`SERVER_PORT`; for `--http` its own):
    /// the API's own origin when `Host` carries no port (Debian's `fastcgi_params` pass
    /// `HTTP_HOST` as nginx's `$host`, without one).
    pub server_port: Option<u16>,
    /// The client reached the web server over TLS (cookies get `Secure`).
    pub https: bool,
    /// The front end can hand the connection over to a WebSocket (HTTP only).
    pub can_upgrade: bool,
    /// The web server's request id (`REQUEST_ID` or `UNIQUE_ID` param), if it sent one;
    /// [`crate::api::request_id::choose`] picks the id the request is known by.
    pub request_id: Option<String>,
}

impl ApiRequest {
    /// A request with a body that was read successfully, no headers, mounted at the root.
    pub fn new(method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> ApiRequest {
        ApiRequest {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            mount: String::new(),
            query: String::new(),
            headers: Vec::new(),
            content_type: content_type.map(str::to_string),
            body: Ok(body),
            remote_addr: None,
            server_port: None,
            https: false,
            can_upgrade: false,
            request_id: None,
        }
    }

    /// Adds a header (the name is lower-cased).
    pub fn with_header(mut self, name: &str, value: &str) -> ApiRequest {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name` from the `Cookie` header(s).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().trim_matches('"'))
    }
}

/// Parses a `Content-Length` value: absent or empty is `None`.
pub(crate) fn parse_content_length(value: Option<&str>) -> Result<Option<usize>, BodyError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<usize>()
            .map(Some)
            .map_err(|_| BodyError::BadLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_cookies() {
        let r = ApiRequest::new("get", "/", None, vec![])
            .with_header("X-Auth-Token", "ab12")
            .with_header("Cookie", "a=1; session_id=\"cafe\" ; b=2")
            .with_header("Cookie", "c=3");
        assert_eq!(r.method, "GET");
        assert_eq!(r.header("x-auth-token"), Some("ab12"));
        assert_eq!(r.cookie("session_id"), Some("cafe"));
        assert_eq!(r.cookie("c"), Some("3"));
        assert_eq!(r.cookie("session"), None);
    }
}
