//! Built-in HTTP/1.1 server for development (`--http 127.0.0.1:8001`), on hyper.
//!
//! What `salt-api` does with rest_wsgi's `port`, without its single-threaded HTTP/1.0
//! server: keep-alive, chunked request bodies, concurrent requests.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::handle_guarded;
use super::lifecycle::{Lifecycle, ServeOptions, Slot, accept_loop};
use super::listener::{Listener, Stream};
use crate::api::body_stream::{BodyStream, ChunkReceiver};
use crate::api::request::parse_content_length;
use crate::api::{Api, ApiRequest, ApiResponse, Body, BodyError};

/// Serves HTTP on `listener` until SIGTERM, max-requests or idle exit.
pub async fn serve(listener: Listener, api: Arc<Api>, options: ServeOptions) {
    crate::audit::set_frontend("http");
    let life = Lifecycle::new(options);
    life.watch_signals_and_idle();
    crate::log!(info, "serving HTTP on {}", listener.describe());
    accept_loop(listener, &api, &life, |stream, slot| {
        let (api, life) = (Arc::clone(&api), Arc::clone(&life));
        async move {
            match stream {
                Stream::Tcp(s) => {
                    let peer = s.peer_addr().ok().map(|a| a.ip().to_string());
                    let port = s.local_addr().ok().map(|a| a.port());
                    connection(s, (peer, port), api, life, slot).await;
                }
                Stream::Unix(s) => connection(s, (None, None), api, life, slot).await,
            }
        }
    })
    .await;
}

/// Serves one HTTP/1.1 connection (keep-alive) until it closes or the server stops. A
/// WebSocket it upgrades to keeps the connection's slot; an event stream that ended while
/// its client had stopped reading gets the connection dropped.
async fn connection<S>(
    stream: S,
    (peer, local_port): (Option<String>, Option<u16>),
    api: Arc<Api>,
    life: Arc<Lifecycle>,
    slot: Slot,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let options = life.options.clone();
    let (drop_tx, mut drop_rx) = watch::channel(false);
    let service = service_fn(|mut req: Request<Incoming>| {
        let (api, life, peer) = (Arc::clone(&api), Arc::clone(&life), peer.clone());
        let (slot, drop_tx) = (Arc::clone(&slot), drop_tx.clone());
        async move {
            let _in_flight = life.begin();
            let on_upgrade = hyper::upgrade::on(&mut req);
            let mut request = from_hyper(req, &life.options).await;
            let trusted = &api.settings().api.trusted_proxies;
            request.remote_addr = super::forwarded::client_addr(peer, &request.headers, trusted);
            request.server_port = local_port;
            request.can_upgrade = true;
            let mut resp = handle_guarded(&api, request).await;
            let body = match std::mem::take(&mut resp.body) {
                Body::Full(bytes) => Either::Left(Full::new(Bytes::from(bytes))),
                Body::WebSocket(messages) => {
                    let ping_every = life.options.stream_heartbeat;
                    tokio::spawn(websocket(on_upgrade, messages, ping_every, slot));
                    Either::Left(Full::new(Bytes::new()))
                }
                Body::Stream(stream) => {
                    let (chunks, end) = stream.into_parts();
                    tokio::spawn(async move {
                        end.and_grace().await;
                        drop_tx.send_replace(true);
                    });
                    // A stream is the connection's last response, so dropping the
                    // connection after it never cuts another one short.
                    resp.headers.push(("Connection", "close".into()));
                    Either::Right(StreamBody(chunks))
                }
            };
            Ok::<_, Infallible>(to_hyper(resp, body))
        }
    });
    let conn = http1::Builder::new()
        .max_buf_size(options.max_header_bytes)
        .header_read_timeout(options.body_read_timeout)
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut stop = life.subscribe();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = drop_rx.changed() => {
            crate::log::warn("event stream abandoned: its client stopped reading; connection closed");
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(options.shutdown_grace, conn).await;
        }
    }
}

/// Reads the request (body bounded by `max_body_bytes`) into an ApiRequest.
async fn from_hyper(req: Request<Incoming>, options: &ServeOptions) -> ApiRequest {
    let max = options.max_body_bytes;
    let body_wait = options.body_read_timeout;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type");
    let declared = parse_content_length(header("content-length").as_deref());
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let https = header("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let headers = req
        .headers()
        .iter()
        .filter(|(k, _)| *k != "content-type" && *k != "content-length")
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = match declared {
        Err(e) => Err(e),
        Ok(Some(n)) if n > max => Err(BodyError::TooLarge(n)),
        // Only POST bodies mean anything (as under CGI); a GET's is never waited for (a
        // WebSocket upgrade's connection belongs to the socket after the head).
        Ok(_) if method != "POST" => Ok(Vec::new()),
        // A client that trickles its body (slowloris) is cut off after body_read_timeout.
        Ok(_) => {
            match tokio::time::timeout(body_wait, Limited::new(req.into_body(), max).collect())
                .await
            {
                Err(_) => Err(BodyError::Io(format!(
                    "the body did not arrive within body_read_timeout ({} s)",
                    body_wait.as_secs_f64()
                ))),
                Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
                Ok(Err(e))
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some() =>
                {
                    Err(BodyError::TooLarge(max.saturating_add(1)))
                }
                Ok(Err(e)) => Err(BodyError::Io(e.to_string())),
            }
        }
    };
    ApiRequest {
        method,
        path,
        mount: String::new(),
        query,
        headers,
        content_type,
        body,
        remote_addr: None,
        server_port: None,
        https,
        can_upgrade: false,
        request_id: None,
    }
}

/// A response body: whole, or chunks that arrive over time (an event stream).
type HyperBody = Either<Full<Bytes>, StreamBody>;

/// The hyper response: `resp`'s head and `body` (its whole body, or a stream's chunks).
fn to_hyper(resp: ApiResponse, body: HyperBody) -> Response<HyperBody> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    if resp.status != 101 {
        builder = builder.header("content-type", resp.content_type);
    }
    for (name, value) in &resp.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder.body(body).unwrap_or_else(|_| {
        Response::new(Either::Left(Full::new(Bytes::from_static(
            b"{\"return\":\"500\"}",
        ))))
    })
}

/// The body of a streamed response: each chunk is sent as it comes; the channel's end
/// is the body's end.
struct StreamBody(ChunkReceiver);

impl hyper::body::Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// The only messages a client of `/ws` sends are `websocket client ready`, pings, pongs
/// and a close: anything larger is refused, and buffers stay small (an idle WebSocket
/// costs a few KiB, not tungstenite's default 128 KiB read buffer and 64 MiB messages).
const WS_MAX_MESSAGE: usize = 4096;

fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_MAX_MESSAGE)
        .write_buffer_size(0)
        .max_message_size(Some(WS_MAX_MESSAGE))
        .max_frame_size(Some(WS_MAX_MESSAGE))
}

/// After a 101: the connection as a WebSocket, one text message per chunk, a ping every
/// `ping_every` (proxies close idle connections); ends when either side does. It holds
/// the connection's slot until then; a write the client does not take is abandoned
/// `stream_end_grace` after the stream ended.
async fn websocket(
    on_upgrade: hyper::upgrade::OnUpgrade,
    mut body: BodyStream,
    ping_every: Duration,
    _slot: Slot,
) {
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => {
            crate::log!(warn, "WebSocket upgrade failed: {e}");
            return;
        }
    };
    let io = TokioIo::new(upgraded);
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(websocket_config())).await;
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    loop {
        let message = tokio::select! {
            chunk = body.next() => match chunk {
                // Event text is JSON, so UTF-8; the shared bytes are not copied.
                Some(c) => Message::Text(Utf8Bytes::try_from(c).unwrap_or_default()),
                None => {
                    let _ = body.bounded(ws.close(None)).await;
                    return;
                }
            },
            incoming = ws.next() => match incoming {
                // "websocket client ready", pongs: nothing to do. Oversized: an error.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => Message::Ping(Bytes::new()),
        };
        if !matches!(body.bounded(ws.send(message)).await, Some(Ok(()))) {
            return;
        }
    }
}
