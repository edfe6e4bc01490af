//! `transport: ws` (Salt 3007 and 3008, `salt/transport/ws.py`): a WebSocket to
//! `ws://host:ret_port/` (Salt's client turns `master_uri` `tcp://host:port` into
//! `http://host:port`; the master's aiohttp server takes any path). Each request is one
//! binary message holding the msgpack clear envelope, each reply one binary message holding
//! the msgpack answer; no head, no ids: the master answers a connection's messages in turn.
//! tungstenite refuses a message or frame over `max_reply_bytes` as it reads the header.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value as Json;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::pool::Connection as PoolConnection;
use super::{Wait, Wire, tcp};
use crate::salt::error::{SaltError, SaltResult};
use crate::salt::payload;

/// One WebSocket to a `transport: ws` request port.
pub(crate) struct Connection {
    ws: WebSocketStream<TcpStream>,
}

impl PoolConnection for Connection {
    async fn open(wire: &Wire) -> SaltResult<Connection> {
        let stream = tcp::connect(wire).await?;
        let url = format!("ws://{}/", wire.authority());
        let config = WebSocketConfig::default()
            .max_message_size(Some(wire.max_reply_bytes))
            .max_frame_size(Some(wire.max_reply_bytes));
        let handshake = tokio_tungstenite::client_async_with_config(url, stream, Some(config));
        match tokio::time::timeout(wire.connect_timeout, handshake).await {
            Err(_) => Err(wire.not_accepted()),
            Ok(Err(e)) => {
                Err(wire.unreachable("open a WebSocket to (is the master's transport ws?)", e))
            }
            Ok(Ok((ws, _response))) => Ok(Connection { ws }),
        }
    }

    async fn round_trip(&mut self, wire: &Wire, envelope: &Json, wait: Wait) -> SaltResult<Json> {
        let request = Message::Binary(payload::encode(envelope).into());
        tokio::time::timeout(wait.timeout, async {
            self.ws.send(request).await.map_err(|e| failure(wire, e))?;
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Binary(bytes))) => {
                        return payload::decode(&bytes).map_err(|e| wire.garbage(e));
                    }
                    // tungstenite answers pings itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Text(_))) => {
                        return Err(wire.garbage("a text message, not a binary one"));
                    }
                    Some(Ok(Message::Close(_) | Message::Frame(_))) | None => {
                        return Err(wire.closed());
                    }
                    Some(Err(e)) => return Err(failure(wire, e)),
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(wait.expired()))
    }

    fn socket(&self) -> &TcpStream {
        self.ws.get_ref()
    }
}

/// The error for a failed WebSocket read or write.
fn failure(wire: &Wire, e: WsError) -> SaltError {
    match e {
        WsError::Capacity(_) => wire.oversized(None),
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => wire.closed(),
        WsError::Io(io) if io.kind() != std::io::ErrorKind::Other => wire.closed(),
        WsError::Protocol(p) => wire.garbage(p),
        other => wire.unreachable("talk to", other),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use serde_json::json;

    use super::super::RequestChannel;
    use super::super::tests::{AbortOnDrop, settings};
    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    /// What the fake master does with the n-th request (from 0, over all connections):
    /// `Some(reply)` sends it, `None` closes the connection.
    type Answer = dyn Fn(usize, Json) -> Option<Message> + Send + Sync;

    /// A fake `transport: ws` request server; its port and how many connections it took.
    async fn fake_master(answer: Arc<Answer>) -> (u16, Arc<AtomicUsize>, AbortOnDrop) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (count, requests) = (Arc::clone(&accepted), Arc::new(AtomicUsize::new(0)));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (answer, requests) = (Arc::clone(&answer), Arc::clone(&requests));
                tokio::spawn(async move {
                    let mut ws = tokio_tungstenite::accept_async(stream).await.expect("ws");
                    while let Some(Ok(Message::Binary(request))) = ws.next().await {
                        let request = payload::decode(&request).expect("msgpack request");
                        let i = requests.fetch_add(1, Ordering::SeqCst);
                        match answer(i, request) {
                            Some(reply) => ws.send(reply).await.expect("send"),
                            None => return,
                        }
                    }
                });
            }
        });
        (port, accepted, AbortOnDrop(task))
    }

    fn binary(value: &Json) -> Message {
        Message::Binary(payload::encode(value).into())
    }

    #[tokio::test]
    async fn one_binary_message_each_way_on_a_kept_connection() {
        let (port, accepted, _master) = fake_master(Arc::new(|i, request: Json| {
            assert_eq!(request["enc"], "clear");
            assert_eq!(request["version"], 3);
            Some(binary(&json!({"n": i, "cmd": request["load"]["cmd"]})))
        }))
        .await;
        let channel = RequestChannel::new(&settings("ws", port, ""));
        for i in 0..3 {
            let reply = channel.send(json!({"cmd": "ping"}), WAIT).await;
            assert_eq!(reply, Ok(json!({"n": i, "cmd": "ping"})));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, kept");
    }

    #[tokio::test]
    async fn oversized_garbage_and_closed_are_clear_errors() {
        let big = Arc::new(|_, _| Some(Message::Binary(vec![0xa1; 5000].into())));
        let (port, _, _master) = fake_master(big).await;
        let channel = RequestChannel::new(&settings("ws", port, "max_reply_bytes: 1000"));
        let reply = channel.send(json!({}), WAIT).await;
        assert!(
            matches!(&reply, Err(SaltError::Master(m)) if m.contains("max_reply_bytes (1000 bytes)")),
            "{reply:?}"
        );
        let garbage = Arc::new(|_, _| Some(Message::Binary(vec![0xc1, 0xff].into())));
        let (port, _, _master) = fake_master(garbage).await;
        let reply = RequestChannel::new(&settings("ws", port, ""))
            .send(json!({}), WAIT)
            .await;
        assert!(
            matches!(&reply, Err(SaltError::Master(m)) if m.contains("unreadable")),
            "{reply:?}"
        );
        let (port, _, _master) = fake_master(Arc::new(|_, _| None)).await;
        let reply = RequestChannel::new(&settings("ws", port, ""))
            .send(json!({}), WAIT)
            .await;
        assert!(
            matches!(&reply, Err(SaltError::NotRunning(m)) if m.contains("closed the connection")),
            "{reply:?}"
        );
    }

    /// A server that takes the connection and never answers the handshake: 503 within
    /// `master_connect_timeout`.
    #[tokio::test]
    async fn a_handshake_that_never_ends_is_503_within_the_connect_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let _guard = AbortOnDrop(task);
        let channel = RequestChannel::new(&settings("ws", port, "master_connect_timeout: 0.5"));
        let started = std::time::Instant::now();
        let reply = channel.send(json!({}), WAIT).await;
        assert!(
            matches!(&reply, Err(SaltError::NotRunning(m)) if m.contains("within 0.5 s")),
            "{reply:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    /// A ZeroMQ (or any other) server on the port fails the handshake with a 503 that says so.
    #[tokio::test]
    async fn a_port_that_is_not_a_websocket_is_named() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s
                    .write_all(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f")
                    .await;
            }
        });
        let _guard = AbortOnDrop(task);
        let reply = RequestChannel::new(&settings("ws", port, ""))
            .send(json!({}), WAIT)
            .await;
        assert!(
            matches!(&reply, Err(SaltError::NotRunning(m)) if m.contains("transport ws")),
            "{reply:?}"
        );
    }
}
