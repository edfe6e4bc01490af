//! One request sent through any of the three front ends (`Front`), for tests that compare them.

use std::path::Path;

use serde_json::Value as Json;

use super::{Response, cgi, fastcgi_request, http_request};

/// One request as a client sends it: method, path below the mount point, headers, body.
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Req {
    /// `method path` with no body.
    pub fn new(method: &str, path: &str) -> Req {
        Req {
            method: method.into(),
            path: path.into(),
            ..Req::default()
        }
    }

    /// A JSON body.
    pub fn json(mut self, body: &Json) -> Req {
        self.content_type = Some("application/json".into());
        self.body = body.to_string().into_bytes();
        self
    }

    /// A body of any type.
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Req {
        self.content_type = Some(content_type.into());
        self.body = body.to_vec();
        self
    }

    /// A header.
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The three ways a request reaches salt-fcgi.
pub enum Front<'a> {
    /// One CGI process per request with this master config.
    Cgi(&'a Path),
    /// A FastCGI server on a unix socket.
    FastCgi(&'a str),
    /// The HTTP server at `host:port`.
    Http(&'a str),
}

impl Front<'_> {
    /// A name for assertion messages.
    pub fn name(&self) -> &'static str {
        match self {
            Front::Cgi(_) => "CGI",
            Front::FastCgi(_) => "FastCGI",
            Front::Http(_) => "HTTP",
        }
    }

    /// Sends `req` and parses the response.
    pub fn send(&self, req: &Req) -> Response {
        let cgi_headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    format!("HTTP_{}", k.to_ascii_uppercase().replace('-', "_")),
                    v.clone(),
                )
            })
            .collect();
        match self {
            Front::Cgi(config) => {
                let mut extra: Vec<(&str, &str)> = cgi_headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                extra.push(("PATH_INFO", &req.path));
                cgi(
                    config,
                    &req.method,
                    req.content_type.as_deref(),
                    &req.body,
                    &extra,
                )
            }
            Front::FastCgi(socket) => fastcgi_request(socket, req, &cgi_headers),
            Front::Http(address) => http_request(address, req),
        }
    }
}
