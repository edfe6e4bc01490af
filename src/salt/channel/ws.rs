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
        WsError::ConnectionClosed | WsError::AlreadyClosed => wire.closed(),
        WsError::Io(io) if io.kind() != std::io::ErrorKind::Other => wire.closed(),
        WsError::Protocol(p) => wire.garbage(p),
        other => wire.unreachable("talk to", other),
    }
}
