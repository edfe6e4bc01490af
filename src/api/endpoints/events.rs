//! `GET /events` (Server-Sent Events, every front end) and `GET /ws[/<token>]` (WebSocket,
//! the HTTP front end): every event of the master bus, credentials redacted, for as long
//! as the session's token is valid.
//!
//! Each stream is one subscription to the process's one bus reader, with a bounded queue
//! (`stream_queue_events`): a client that falls further behind is closed with a log line,
//! never slowing the reader, the other streams or the synchronous requests. The token is
//! checked with the master every `stream_token_check` seconds and the stream ends at its
//! expiry; SSE streams carry a comment every `stream_heartbeat` seconds so proxies keep
//! them open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::Call;
use crate::api::error::ApiError;
use crate::api::response::ApiResponse;
use crate::salt::Master;
use crate::salt::events::EventStream;
use crate::salt::redact::PublicEvent;
use crate::salt::tokens::{self, is_token_shaped};

/// Chunks waiting between a stream's task and the front end that writes them.
const CHUNKS_IN_FLIGHT: usize = 16;

/// How events are framed for the client (the index of its shared frame in `PublicEvent`).
#[derive(Clone, Copy, PartialEq)]
enum Framing {
    /// rest_cherrypy's SSE: `retry: 400` first, then `tag: <tag>\ndata: <json>\n\n`.
    Sse = 0,
    /// rest_cherrypy's WebSocket: one text message `data: <json>\n\n` per event.
    WebSocket = 1,
}

/// `GET /events`: the session's token (header or cookie, never the query string) must be
/// valid; then the stream.
pub(crate) async fn events(
    master: &Arc<Master>,
    call: &Call,
    stop: watch::Receiver<bool>,
) -> Result<ApiResponse, ApiError> {
    let token = call.session()?.to_string();
    let rx = start(master, token, Framing::Sse, stop).await?;
    Ok(ApiResponse::streaming(200, "text/event-stream", rx)
        .with_header("Cache-Control", "no-cache")
        .with_header("X-Accel-Buffering", "no"))
}

/// `GET /ws/<token>` (rest_cherrypy's path, what salt-netapi-client sends) or `GET /ws`
/// with the session: a WebSocket upgrade, answered by the HTTP front end.
pub(crate) async fn websocket(
    master: &Arc<Master>,
    call: &Call,
    path_token: Option<String>,
    stop: watch::Receiver<bool>,
) -> Result<ApiResponse, ApiError> {
    if !call.req.can_upgrade {
        return Err(ApiError::new(
            400,
            "400: WebSocket needs salt-fcgi's HTTP front end (--http; proxy it with the web \
             server's proxy_pass); use /events through FastCGI or CGI",
        ));
    }
    let key = match (
        call.req.header("upgrade"),
        call.req.header("sec-websocket-key"),
    ) {
        (Some(u), Some(k)) if u.eq_ignore_ascii_case("websocket") => k.to_string(),
        _ => {
            return Err(ApiError::new(
                400,
                "400: expected a WebSocket upgrade request",
            ));
        }
    };
    let token = match path_token {
        Some(t) if is_token_shaped(&t) => t,
        Some(_) => return Err(ApiError::unauthorized("Invalid token")),
        None => call.session()?.to_string(),
    };
    let rx = start(master, token, Framing::WebSocket, stop).await?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    Ok(ApiResponse::streaming(101, "application/json", rx)
        .with_header("Upgrade", "websocket")
        .with_header("Connection", "Upgrade")
        .with_header("Sec-WebSocket-Accept", &accept))
}

/// Checks the token, subscribes, and starts the task that feeds the returned channel.
async fn start(
    master: &Arc<Master>,
    token: String,
    framing: Framing,
    stop: watch::Receiver<bool>,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let Some(valid) = tokens::get_token(master, &token).await? else {
        return Err(ApiError::unauthorized("Invalid or expired token"));
    };
    let limits = &master.settings.limits;
    let stream = master.bus.stream(limits.stream_queue_events).await?;
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let pump = Pump {
        master: Arc::clone(master),
        token,
        expire: valid.expire,
        framing,
    };
    tokio::spawn(pump.run(stream, tx, stop));
    Ok(rx)
}

/// One client's stream.
struct Pump {
    master: Arc<Master>,
    token: String,
    expire: f64,
    framing: Framing,
}

impl Pump {
    /// Feeds events (and heartbeats) to `tx` until the client goes, the token ends, the
    /// stream falls behind or the server stops.
    async fn run(
        mut self,
        mut stream: EventStream,
        tx: mpsc::Sender<Bytes>,
        mut stop: watch::Receiver<bool>,
    ) {
        let limits = self.master.settings.limits.clone();
        if *stop.borrow_and_update() {
            return;
        }
        if self.framing == Framing::Sse
            && tx.send(Bytes::from_static(b"retry: 400\n")).await.is_err()
        {
            return;
        }
        let mut heartbeat = tokio::time::interval(limits.stream_heartbeat);
        let mut check = tokio::time::interval(limits.stream_token_check);
        heartbeat.tick().await;
        check.tick().await;
        let expiry = tokio::time::sleep(self.left());
        tokio::pin!(expiry);
        loop {
            let chunk = tokio::select! {
                event = stream.recv() => match event {
                    Some(event) => event.framed(self.framing as usize, |e| self.frame(e)),
                    None => return,
                },
                _ = heartbeat.tick() => match self.framing {
                    Framing::Sse => Bytes::from_static(b": heartbeat\n\n"),
                    // The front end pings a WebSocket itself.
                    Framing::WebSocket => continue,
                },
                _ = check.tick() => {
                    if !self.still_valid().await {
                        return;
                    }
                    expiry.as_mut().reset(tokio::time::Instant::now() + self.left());
                    continue;
                }
                () = &mut expiry => return,
                _ = stop.changed() => return,
                () = tx.closed() => return,
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    }

    /// The event in the client's framing (a tag never holds a line break: Salt's tags
    /// are `/`-joined words, and any other would end the SSE field early, so it is cut).
    fn frame(&self, event: &PublicEvent) -> Vec<u8> {
        match self.framing {
            Framing::Sse => {
                let tag = event.tag.split(['\r', '\n']).next().unwrap_or_default();
                format!("tag: {tag}\ndata: {}\n\n", event.json).into_bytes()
            }
            Framing::WebSocket => format!("data: {}\n\n", event.json).into_bytes(),
        }
    }

    /// Time until the token expires.
    fn left(&self) -> Duration {
        Duration::from_secs_f64((self.expire - now()).clamp(0.0, 1.0e7))
    }

    /// Asks the master whether the token still exists (revoked or expired ends the
    /// stream); a master that does not answer leaves it running until the bus says more.
    /// Streams of one token share the answer for a check interval (a thousand of a user's
    /// streams cost the master one `get_token` per interval, not a thousand).
    async fn still_valid(&mut self) -> bool {
        let max_age = self.master.settings.limits.stream_token_check;
        if let Some(expire) = recent_check(&self.token, max_age) {
            self.expire = expire.unwrap_or(0.0);
            return expire.is_some();
        }
        let expire = match tokens::get_token(&self.master, &self.token).await {
            Ok(Some(t)) => Some(t.expire),
            Ok(None) => None,
            Err(_) => return true,
        };
        remember_check(&self.token, expire);
        self.expire = expire.unwrap_or(0.0);
        expire.is_some()
    }
}

/// Recent answers of the master about stream tokens: when asked, and the expiry (`None`:
/// gone).
type Checks = HashMap<String, (Instant, Option<f64>)>;

fn checks() -> &'static Mutex<Checks> {
    static CHECKS: OnceLock<Mutex<Checks>> = OnceLock::new();
    CHECKS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The master's answer for `token` if it is younger than `max_age`.
fn recent_check(token: &str, max_age: Duration) -> Option<Option<f64>> {
    let map = checks().lock().unwrap_or_else(|e| e.into_inner());
    map.get(token)
        .filter(|(at, _)| at.elapsed() < max_age)
        .map(|(_, expire)| *expire)
}

/// Keeps the master's answer for `token`; forgets answers older than a minute once many
/// have gathered.
fn remember_check(token: &str, expire: Option<f64>) {
    let mut map = checks().lock().unwrap_or_else(|e| e.into_inner());
    if map.len() > 1024 {
        map.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(60));
    }
    map.insert(token.to_string(), (Instant::now(), expire));
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
