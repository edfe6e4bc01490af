//! The CGI-style response that CGI and FastCGI both write: a `Status:` head, then the whole
//! body, or a stream's chunks as they come. The two front ends differ only in where the
//! bytes go (a [`ResponseSink`]: CGI's stdout, a FastCGI request's STDOUT records).

use crate::api::body_stream::BodyStream;
use crate::api::{ApiResponse, Body};

/// Where a CGI-style response goes.
pub(crate) trait ResponseSink {
    /// Writes `bytes` and flushes them on to the web server.
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

/// How a response went out.
#[derive(Debug, PartialEq)]
pub(crate) enum Delivery {
    /// Written, to its end.
    Done,
    /// A stream ended while its client had stopped reading: the write was abandoned
    /// (after `stream_end_grace`), and the connection must go.
    Abandoned,
}

/// Bodies up to this size go out in one write with their head; a bigger body is written
/// after the head instead of being copied behind it (a 1 MB return is held once, not
/// twice). A stream also copies at most this much of its ready chunks into one write.
const COPY_BODY_MAX: usize = 64 * 1024;

/// Writes `resp` to `sink`: its head, then its body. Only a front end that upgrades
/// connections is given a WebSocket; here one would go out as a stream.
pub(crate) async fn write_response<S: ResponseSink>(
    sink: &mut S,
    resp: ApiResponse,
) -> std::io::Result<Delivery> {
    let mut head = response_head(&resp);
    match resp.body {
        Body::Full(body) if body.len() <= COPY_BODY_MAX => {
            head.extend_from_slice(&body);
            sink.send(&head).await?;
            Ok(Delivery::Done)
        }
        Body::Full(body) => {
            sink.send(&head).await?;
            sink.send(&body).await?;
            Ok(Delivery::Done)
        }
        Body::Stream(mut chunks) | Body::WebSocket(mut chunks) => {
            write_stream(sink, head, &mut chunks).await
        }
    }
}

/// Writes the head, then what the stream has ready as one flushed write at a time, until
/// the stream ends, the sink fails, or the stream ended while a write was stuck.
async fn write_stream<S: ResponseSink>(
    sink: &mut S,
    head: Vec<u8>,
    body: &mut BodyStream,
) -> std::io::Result<Delivery> {
    let mut ready = head;
    loop {
        match body.bounded(sink.send(&ready)).await {
            Some(written) => written?,
            None => return Ok(Delivery::Abandoned),
        }
        // Written: the storage goes too (an idle stream holds none between events).
        ready = Vec::new();
        let Some(chunk) = body.next().await else {
            return Ok(Delivery::Done);
        };
        ready.extend_from_slice(&chunk);
        while ready.len() < COPY_BODY_MAX
            && let Some(more) = body.try_next()
        {
            ready.extend_from_slice(&more);
        }
    }
}

/// A whole response as bytes: `Status:` line, headers, blank line, body (a streamed
/// body's chunks are not part of it).
pub fn response_bytes(resp: &ApiResponse) -> Vec<u8> {
    let mut out = response_head(resp);
    out.extend_from_slice(resp.whole_body());
    out
}

/// The response without its body: `Status:` line, headers, blank line. A streamed body
/// has no Content-Length (the web server chunks it).
fn response_head(resp: &ApiResponse) -> Vec<u8> {
    let mut head = format!(
        "Status: {} {}\r\nContent-Type: {}\r\n",
        resp.status,
        resp.reason(),
        resp.content_type,
    );
    if let Body::Full(body) = &resp.body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in &resp.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::body_stream;
    use bytes::Bytes;
    use std::time::Duration;

    /// Collects what was sent, one entry per write.
    #[derive(Default)]
    struct Sent(Vec<Vec<u8>>);

    impl ResponseSink for Sent {
        async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            self.0.push(bytes.to_vec());
            Ok(())
        }
    }

    #[test]
    fn cgi_headers_are_byte_accurate() {
        let resp = ApiResponse::error(405, "é").with_header("Allow", "GET, POST");
        let bytes = response_bytes(&resp);
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(text.starts_with("Status: 405 Method Not Allowed\r\n"));
        assert!(text.contains("Content-Length: 15\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{\"return\":\"é\"}"));
    }

    #[tokio::test]
    async fn a_small_body_goes_with_its_head_and_a_big_one_after_it() -> std::io::Result<()> {
        let mut sent = Sent::default();
        let small = ApiResponse::bytes(200, ApiResponse::JSON, b"{}".to_vec());
        assert_eq!(write_response(&mut sent, small).await?, Delivery::Done);
        assert_eq!(sent.0.len(), 1);
        assert!(sent.0[0].ends_with(b"Content-Length: 2\r\n\r\n{}"));
        let mut sent = Sent::default();
        let big = ApiResponse::bytes(200, ApiResponse::JSON, vec![b'x'; COPY_BODY_MAX + 1]);
        write_response(&mut sent, big).await?;
        assert_eq!(sent.0.len(), 2);
        assert_eq!(sent.0[1].len(), COPY_BODY_MAX + 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_stream_has_no_length_and_batches_what_is_ready() -> std::io::Result<()> {
        let (tx, chunks) = body_stream::channel(8, Duration::from_secs(1));
        for chunk in ["a", "b", "c"] {
            assert!(tx.try_send(Bytes::from(chunk)).is_ok(), "room");
        }
        drop(tx);
        let mut sent = Sent::default();
        let resp = ApiResponse::streaming(200, "text/event-stream", chunks);
        assert_eq!(write_response(&mut sent, resp).await?, Delivery::Done);
        let head = String::from_utf8_lossy(&sent.0[0]).into_owned();
        assert!(head.starts_with("Status: 200 OK\r\n") && !head.contains("Content-Length"));
        assert_eq!(sent.0[1..], [b"abc".to_vec()]);
        Ok(())
    }
}
