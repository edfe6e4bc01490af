//! `transport: tcp`: Salt's own framing over a plain TCP connection to `ret_port`
//! (`salt/transport/tcp.py` and `frame.py`, the same in 3006, 3007 and 3008). Each message
//! either way is one msgpack map `{"head": {"mid": <id>}, "body": <value>}`, with no length
//! before it; the body of a request is the clear envelope, the body of a reply is the
//! master's answer, and the reply's head repeats the request's `mid` (the master answers a
//! connection's requests in any order). The stream is cut into maps by their msgpack sizes,
//! so a reply's size is known from its first bytes and one over `max_reply_bytes` is refused
//! before it is read.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::pool::Connection as PoolConnection;
use super::{Wait, Wire};
use crate::salt::error::SaltResult;
use crate::salt::event_frame::{msgpack_size, oversized_frame};
use crate::salt::payload;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// One connection to a `transport: tcp` request port.
pub(crate) struct Connection {
    stream: TcpStream,
    /// Bytes read past the last whole message (none between requests).
    buf: Vec<u8>,
}

impl PoolConnection for Connection {
    async fn open(wire: &Wire) -> SaltResult<Connection> {
        let stream = connect(wire).await?;
        Ok(Connection {
            stream,
            buf: Vec::new(),
        })
    }

    async fn round_trip(&mut self, wire: &Wire, envelope: &Json, wait: Wait) -> SaltResult<Json> {
        let mid = message_id();
        let frame = payload::encode(&json!({"head": {"mid": mid}, "body": envelope}));
        tokio::time::timeout(wait.timeout, async {
            self.stream
                .write_all(&frame)
                .await
                .map_err(|e| wire.unreachable("send to", e))?;
            loop {
                let message = self.next_message(wire).await?;
                if let Some(body) = reply_to(message, &mid, wire)? {
                    return Ok(body);
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(wait.expired()))
    }

    fn socket(&self) -> &TcpStream {
        &self.stream
    }
}

impl Connection {
    /// The next whole message from the master, decoded.
    async fn next_message(&mut self, wire: &Wire) -> SaltResult<Json> {
        let max = wire.max_reply_bytes;
        loop {
            if let Some(&first) = self.buf.first() {
                // Every message is a map (fixmap, map16 or map32).
                if !(first & 0xf0 == 0x80 || first == 0xde || first == 0xdf) {
                    return Err(wire.garbage(format!("not a Salt TCP message (byte {first:#04x})")));
                }
                if let Some(size) = oversized_frame(&self.buf, max) {
                    return Err(wire.oversized(Some(size)));
                }
                match msgpack_size(&self.buf).map_err(|e| wire.garbage(e))? {
                    Some(n) if n > max => return Err(wire.oversized(Some(n))),
                    Some(n) => {
                        let message = payload::decode(&self.buf[..n]).map_err(|e| wire.garbage(e));
                        self.buf.drain(..n);
                        return message;
                    }
                    None if self.buf.len() > max => return Err(wire.oversized(None)),
                    None => {}
                }
            }
            self.buf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => return Err(wire.closed()),
                Ok(_) => {}
                Err(e) if is_reset(&e) => return Err(wire.closed()),
                Err(e) => return Err(wire.unreachable("receive from", e)),
            }
        }
    }
}

/// The body of `message` if it answers `mid`; `None` for an answer to another request
/// (Salt's client logs and skips those too); an error if it is no Salt message.
fn reply_to(message: Json, mid: &str, wire: &Wire) -> SaltResult<Option<Json>> {
    let Json::Object(mut map) = message else {
        return Err(wire.garbage("not a Salt TCP message"));
    };
    let Some(head) = map.get("head").and_then(Json::as_object) else {
        return Err(wire.garbage("a message without a head"));
    };
    if head.get("mid").and_then(Json::as_str) != Some(mid) {
        crate::log!(
            warn,
            "ret_port {}: skipped a reply to another request",
            wire.port
        );
        return Ok(None);
    }
    map.remove("body")
        .map(Some)
        .ok_or_else(|| wire.garbage("a reply without a body"))
}

/// A TCP connection to the request port within `master_connect_timeout`.
pub(super) async fn connect(wire: &Wire) -> SaltResult<TcpStream> {
    let connecting = TcpStream::connect((wire.host.as_str(), wire.port));
    let stream = match tokio::time::timeout(wire.connect_timeout, connecting).await {
        Err(_) => return Err(wire.not_accepted()),
        Ok(Err(e)) => return Err(wire.unreachable("connect to", e)),
        Ok(Ok(s)) => s,
    };
    // Requests are one small write each: send them at once.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A connection reset or aborted by the peer: the master went away.
fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

/// An id no other request of this process uses (Salt sends a uuid4; any string will do).
fn message_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "salt-fcgi-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
