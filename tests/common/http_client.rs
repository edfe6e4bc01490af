//! A small HTTP/1.1 client, and the socket read loops the stream tests share.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{Req, Response, parse_head};

/// One read from a socket with a read timeout into `buf`: `false` once the peer closed or
/// the read failed (a timeout is not the end).
pub fn read_some(stream: &mut impl Read, chunk: &mut [u8], buf: &mut Vec<u8>) -> bool {
    match stream.read(chunk) {
        Ok(0) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Reads an HTTP response from `address` for `GET path` (an event stream) until the
/// server ends it or `limit` passes; returns what arrived and how long it lasted.
pub fn read_stream(
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    limit: Duration,
) -> (String, Duration) {
    let start = Instant::now();
    let stream = OpenStream::open(address, path, headers);
    let (text, _) = stream.read_for(limit.saturating_sub(start.elapsed()));
    (text, start.elapsed())
}

/// Whether `text` (a raw SSE stream) holds a whole event whose tag contains `tag`: its
/// `data:` line has arrived to the blank line that ends the event. A read can end in the
/// middle of an event, so a test that looks into an event's data waits for this, not for
/// its tag line alone.
pub fn has_whole_event(text: &str, tag: &str) -> bool {
    text.split("\ntag: ").skip(1).any(|event| {
        event.split_once('\n').is_some_and(|(line, rest)| {
            line.contains(tag) && rest.starts_with("data: ") && rest.contains("\n\n")
        })
    })
}

/// An event stream (`GET /events`, plain HTTP) whose head has arrived: once `open`
/// returns, the server has subscribed it to the bus (salt-fcgi subscribes before it
/// answers), so a test can act knowing the stream will see the events, however loaded the
/// machine is, instead of sleeping a guessed time.
pub struct OpenStream {
    socket: std::net::TcpStream,
    buf: Vec<u8>,
}

impl OpenStream {
    /// Sends `GET path` and reads until the response head and, for a 200, rest_cherrypy's
    /// `retry: 400` line have arrived (or the server closed, or 60 s passed).
    pub fn open(address: &str, path: &str, headers: &[(&str, &str)]) -> OpenStream {
        let mut socket = std::net::TcpStream::connect(address).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        socket.write_all(head.as_bytes()).expect("write");
        let mut stream = OpenStream {
            socket,
            buf: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut chunk = [0u8; 4096];
        while !stream.is_open() && Instant::now() < deadline {
            if !read_some(&mut stream.socket, &mut chunk, &mut stream.buf) {
                break;
            }
        }
        stream
    }

    /// The head is complete and, if the answer is a 200, the stream has begun.
    fn is_open(&self) -> bool {
        let text = String::from_utf8_lossy(&self.buf);
        match text.split_once("\r\n\r\n") {
            Some((head, rest)) => {
                !head.starts_with("HTTP/1.1 200") || rest.contains("retry: 400\n")
            }
            None => false,
        }
    }

    /// Reads on until the server ends the stream or `limit` passes; everything that
    /// arrived (head included) and how long this read lasted.
    pub fn read_for(self, limit: Duration) -> (String, Duration) {
        self.read_until(|_| false, limit)
    }

    /// Reads on until what arrived satisfies `done`, the server ends the stream, or
    /// `limit` passes; everything that arrived (head included) and how long this read lasted.
    pub fn read_until(
        mut self,
        done: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> (String, Duration) {
        let start = Instant::now();
        self.wait_for(done, limit);
        (
            String::from_utf8_lossy(&self.buf).into_owned(),
            start.elapsed(),
        )
    }

    /// Reads on, keeping the stream open, until what arrived satisfies `done` (true), or
    /// the server ends the stream or `limit` passes (false).
    pub fn wait_for(&mut self, done: impl Fn(&str) -> bool, limit: Duration) -> bool {
        let start = Instant::now();
        let mut chunk = [0u8; 4096];
        loop {
            if done(&String::from_utf8_lossy(&self.buf)) {
                return true;
            }
            if start.elapsed() >= limit || !read_some(&mut self.socket, &mut chunk, &mut self.buf) {
                return false;
            }
        }
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) to `/` and reads the whole response.
pub fn http(address: &str, method: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let mut req = Req::new(method, "/");
    req.content_type = content_type.map(str::to_string);
    req.body = body.to_vec();
    http_request(address, &req)
}

/// POSTs a JSON body over HTTP.
pub fn http_post(address: &str, body: &Json) -> Response {
    let resp = http(
        address,
        "POST",
        Some("application/json"),
        body.to_string().as_bytes(),
    );
    resp.check_headers();
    resp
}

pub(super) fn http_request(address: &str, req: &Req) -> Response {
    let mut stream = std::net::TcpStream::connect(address).expect("connect HTTP");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method,
        if req.path.is_empty() { "/" } else { &req.path },
        req.body.len()
    );
    if let Some(ct) = &req.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(&req.body).expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    parse_head(&raw, true)
}
