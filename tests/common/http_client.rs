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
    let mut s = std::net::TcpStream::connect(address).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write");
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while start.elapsed() < limit && read_some(&mut s, &mut chunk, &mut buf) {}
    (String::from_utf8_lossy(&buf).into_owned(), start.elapsed())
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
