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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::super::RequestChannel;
    use super::super::tests::{AbortOnDrop, settings};
    use super::*;
    use crate::salt::error::SaltError;

    /// What the fake request server does with one request.
    enum Answer {
        /// Write these bytes.
        Write(Vec<u8>),
        /// Write these bytes, then close the connection.
        WriteThenClose(Vec<u8>),
        /// Close the connection without answering.
        Close,
    }

    /// A reply message for `mid`.
    fn message(mid: &Json, body: Json) -> Vec<u8> {
        payload::encode(&json!({"head": {"mid": mid}, "body": body}))
    }

    /// A fake `transport: tcp` request server: `answer(n, request)` for the n-th request
    /// (from 0, over all connections). Returns its port and how many connections it has
    /// taken and closed.
    async fn fake_master(
        answer: impl Fn(usize, &Json) -> Answer + Send + Sync + 'static,
    ) -> (u16, Counts, AbortOnDrop) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let counts = Counts::default();
        let (answer, mine, requests) = (
            Arc::new(answer),
            counts.clone(),
            Arc::new(AtomicUsize::new(0)),
        );
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                mine.accepted.fetch_add(1, Ordering::SeqCst);
                let (answer, requests, closed) = (
                    Arc::clone(&answer),
                    Arc::clone(&requests),
                    Arc::clone(&mine.closed),
                );
                tokio::spawn(async move {
                    serve(stream, &*answer, &requests).await;
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        (port, counts, AbortOnDrop(task))
    }

    /// Connections a fake master took and closed.
    #[derive(Clone, Default)]
    struct Counts {
        accepted: Arc<AtomicUsize>,
        closed: Arc<AtomicUsize>,
    }

    /// One connection of the fake master; returns once it is closed.
    async fn serve(
        mut stream: TcpStream,
        answer: &(dyn Fn(usize, &Json) -> Answer + Send + Sync),
        requests: &AtomicUsize,
    ) {
        let mut buf = Vec::new();
        loop {
            while let Ok(Some(n)) = msgpack_size(&buf) {
                let request = payload::decode(&buf[..n]).expect("a msgpack request");
                buf.drain(..n);
                let i = requests.fetch_add(1, Ordering::SeqCst);
                match answer(i, &request) {
                    Answer::Write(b) => stream.write_all(&b).await.expect("write"),
                    Answer::WriteThenClose(b) => {
                        stream.write_all(&b).await.expect("write");
                        return;
                    }
                    Answer::Close => return,
                }
            }
            buf.reserve(4096);
            if stream.read_buf(&mut buf).await.map_or(true, |n| n == 0) {
                return;
            }
        }
    }

    fn channel(port: u16, extra: &str) -> Arc<RequestChannel> {
        RequestChannel::new(&settings("tcp", port, extra))
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn replies_are_matched_by_mid_and_the_connection_is_kept() {
        let (port, counts, _master) = fake_master(|i, request| {
            let body = &request["body"];
            assert_eq!(body["enc"], "clear");
            assert_eq!(body["version"], 3);
            // An answer to some other request first: skipped, as Salt's client does.
            let mut bytes = message(&json!("another-request"), json!("not yours"));
            bytes.extend(message(
                &request["head"]["mid"],
                json!({"n": i, "cmd": body["load"]["cmd"]}),
            ));
            Answer::Write(bytes)
        })
        .await;
        let channel = channel(port, "");
        for i in 0..3 {
            let reply = channel.send(json!({"cmd": "ping"}), WAIT).await;
            assert_eq!(reply, Ok(json!({"n": i, "cmd": "ping"})));
        }
        assert_eq!(
            counts.accepted.load(Ordering::SeqCst),
            1,
            "one connection, kept"
        );
        assert_eq!(channel.round_trips(), 3);
    }

    #[tokio::test]
    async fn oversized_garbage_and_cut_replies_are_clear_errors() {
        let (port, _, _master) = fake_master(|_, request| {
            Answer::Write(message(&request["head"]["mid"], json!("x".repeat(5000))))
        })
        .await;
        let reply = channel(port, "max_reply_bytes: 1000")
            .send(json!({}), WAIT)
            .await;
        assert!(
            matches!(&reply, Err(SaltError::Master(m)) if m.contains("max_reply_bytes (1000 bytes)")),
            "{reply:?}"
        );
        let (port, _, _master) = fake_master(|_, _| Answer::Write(vec![0xc1, 0xff, 0x00])).await;
        let reply = channel(port, "").send(json!({}), WAIT).await;
        assert!(
            matches!(&reply, Err(SaltError::Master(m)) if m.contains("unreadable")),
            "{reply:?}"
        );
        // Half a reply, then the master is gone.
        let (port, _, _master) = fake_master(|_, request| {
            let whole = message(&request["head"]["mid"], json!("y".repeat(100)));
            Answer::WriteThenClose(whole[..50].to_vec())
        })
        .await;
        let reply = channel(port, "").send(json!({}), WAIT).await;
        assert!(
            matches!(&reply, Err(SaltError::NotRunning(m)) if m.contains("closed the connection")),
            "{reply:?}"
        );
        let (port, _, _master) = fake_master(|_, _| Answer::Close).await;
        let reply = channel(port, "").send(json!({}), WAIT).await;
        assert!(matches!(reply, Err(SaltError::NotRunning(_))), "{reply:?}");
    }

    /// A master restart closes every kept connection: the next request notices before it
    /// sends and opens a new one (no error for the caller).
    #[tokio::test]
    async fn a_kept_connection_the_master_closed_is_replaced() {
        let (port, counts, _master) = fake_master(move |i, request| {
            let reply = message(&request["head"]["mid"], json!(i));
            if i == 0 {
                Answer::WriteThenClose(reply)
            } else {
                Answer::Write(reply)
            }
        })
        .await;
        let channel = channel(port, "");
        assert_eq!(channel.send(json!({}), WAIT).await, Ok(json!(0)));
        let deadline = std::time::Instant::now() + WAIT;
        while counts.closed.load(Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the fake never closed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(channel.send(json!({}), WAIT).await, Ok(json!(1)));
        assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn message_ids_differ() {
        assert_ne!(message_id(), message_id());
    }
}
