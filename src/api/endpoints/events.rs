//! `GET /events` (Server-Sent Events, every front end) and `GET /ws[/<token>]` (WebSocket,
//! the HTTP front end): every event of the master bus, credentials redacted, for as long
//! as the session's token is valid.
//!
//! Each stream is one subscription to the process's one bus reader, with a bounded queue
//! (`stream_queue_events`): a client that falls further behind is closed with a log line,
//! never slowing the reader, the other streams or the synchronous requests. The token is
//! checked with the master every `stream_token_check` seconds and the stream ends at its
//! expiry; SSE streams carry a comment every `stream_heartbeat` seconds so proxies keep
//! them open. Every wait of a stream (for an event, for the client to take a chunk, for
//! the master's answer) also ends on the token's end, on falling behind and on shutdown.
//!
//! Who may stream is bounded: `stream_users` (default: any valid token), at most
//! `stream_max_per_token` streams per token and `stream_max_per_user` per user (429), and
//! `max_streams` in the process (503), so streams never take every connection slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;

use super::Call;
use super::stream_timers::{Due, StreamTimers};
use crate::api::body_stream::{self, BodySender, BodyStream};
use crate::api::error::ApiError;
use crate::api::response::ApiResponse;
use crate::api::stream_delay::Handover;
use crate::salt::Master;
use crate::salt::events::EventStream;
use crate::salt::redact::PublicEvent;
use crate::salt::tokens::{self, Token, is_token_shaped};
use crate::settings::seconds;
use crate::small_channel::SendError;

/// Chunks (events' shared frames) waiting between a stream's task and the front end that
/// writes them; the front end takes all that wait in one write, so this many events of a
/// burst go out in one system call (16 cut a 100-minion job's burst into seven writes).
const CHUNKS_IN_FLIGHT: usize = 64;

/// How events are framed for the client (the index of its shared frame in `PublicEvent`).
#[derive(Clone, Copy, PartialEq)]
enum Framing {
    /// rest_cherrypy's SSE: `retry: 400` first, then `tag: <tag>\ndata: <json>\n\n`.
    Sse = 0,
    /// rest_cherrypy's WebSocket: one text message `data: <json>\n\n` per event.
    WebSocket = 1,
}

// Each framing has its slot in an event's shared frames.
const _: () = assert!((Framing::WebSocket as usize) < crate::salt::redact::FRAME_SLOTS);

/// The event streams of a process: how many are open (in all, per token, per user) and
/// the signal that ends them all when the server stops.
pub(crate) struct Streams {
    stop: watch::Sender<bool>,
    open: Mutex<OpenCounts>,
}

#[derive(Default)]
struct OpenCounts {
    total: usize,
    by_token: HashMap<String, usize>,
    by_user: HashMap<String, usize>,
}

impl Streams {
    /// No stream open yet.
    pub(crate) fn new() -> Streams {
        Streams {
            stop: watch::channel(false).0,
            open: Mutex::new(OpenCounts::default()),
        }
    }

    /// Streams open in this process now (`/metrics`).
    pub(crate) fn open_count(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .total
    }

    /// Ends every stream (the server is stopping).
    pub(crate) fn stop_all(&self) {
        self.stop.send_replace(true);
    }

    /// Counts a new stream of `token` (of user `user`) unless a cap is reached.
    fn open(
        self: &Arc<Self>,
        master: &Master,
        token: &str,
        user: &str,
    ) -> Result<OpenStream, ApiError> {
        let limits = &master.settings.limits;
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = |map: &HashMap<String, usize>, key: &str| map.get(key).copied().unwrap_or(0);
        let caps = [
            (
                open.total,
                limits.max_streams,
                503,
                "this server",
                "max_streams",
            ),
            (
                count(&open.by_token, token),
                limits.stream_max_per_token,
                429,
                "this session",
                "stream_max_per_token",
            ),
            (
                count(&open.by_user, user),
                limits.stream_max_per_user,
                429,
                "this user",
                "stream_max_per_user",
            ),
        ];
        if let Some((_, max, status, who, name)) = caps.iter().find(|(n, max, ..)| n >= max) {
            let advice = if *status == 503 {
                "try again later"
            } else {
                "close one first"
            };
            return Err(ApiError::new(
                *status,
                format!("{status}: {who} already has {name} ({max}) event streams open; {advice}"),
            ));
        }
        open.total += 1;
        *open.by_token.entry(token.to_string()).or_default() += 1;
        *open.by_user.entry(user.to_string()).or_default() += 1;
        Ok(OpenStream {
            streams: Arc::clone(self),
            token: token.to_string(),
            user: user.to_string(),
        })
    }
}

/// One open stream, counted until dropped.
struct OpenStream {
    streams: Arc<Streams>,
    token: String,
    user: String,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut guard = self
            .streams
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = &mut *guard;
        open.total = open.total.saturating_sub(1);
        for (map, key) in [
            (&mut open.by_token, &self.token),
            (&mut open.by_user, &self.user),
        ] {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

/// `GET /events`: the session's token (header or cookie, never the query string) must be
/// valid; then the stream.
pub(crate) async fn events(
    master: &Arc<Master>,
    call: &Call,
    streams: &Arc<Streams>,
) -> Result<ApiResponse, ApiError> {
    let token = call.session()?.to_string();
    let body = start(master, token, Framing::Sse, streams).await?;
    Ok(ApiResponse::streaming(200, "text/event-stream", body)
        .with_header("Cache-Control", "no-cache")
        .with_header("X-Accel-Buffering", "no"))
}

/// `GET /ws/<token>` (rest_cherrypy's path, what salt-netapi-client sends) or `GET /ws`
/// with the session: a WebSocket upgrade, answered by the HTTP front end.
pub(crate) async fn websocket(
    master: &Arc<Master>,
    call: &Call,
    path_token: Option<String>,
    streams: &Arc<Streams>,
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
    let body = start(master, token, Framing::WebSocket, streams).await?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    Ok(ApiResponse::websocket(body)
        .with_header("Upgrade", "websocket")
        .with_header("Connection", "Upgrade")
        .with_header("Sec-WebSocket-Accept", &accept))
}

/// Checks the token and who may stream, counts the stream, subscribes, and starts the
/// task that feeds the returned body.
async fn start(
    master: &Arc<Master>,
    token: String,
    framing: Framing,
    streams: &Arc<Streams>,
) -> Result<BodyStream, ApiError> {
    let Some(valid) = tokens::get_token(master, &token).await? else {
        return Err(ApiError::unauthorized("Invalid or expired token"));
    };
    let settings = &master.settings;
    if !may_stream(&settings.api.stream_users, &valid) {
        crate::log!(
            warn,
            "403 event stream refused for user {} (not in stream_users)",
            crate::log::quoted(&valid.name)
        );
        return Err(ApiError::new(
            403,
            "403: this user may not read the event stream (stream_users)",
        ));
    }
    let user = format!("{}\u{0}{}", valid.eauth, valid.name);
    let counted = streams.open(master, &token, &user)?;
    let stream = master
        .bus
        .stream(settings.limits.stream_queue_events)
        .await?;
    let (tx, body) = body_stream::channel(CHUNKS_IN_FLIGHT, settings.limits.stream_end_grace);
    let pump = Pump {
        master: Arc::clone(master),
        token,
        expire: valid.expire,
        framing,
        _counted: counted,
    };
    tokio::spawn(pump.run(stream, tx, streams.stop.subscribe()));
    Ok(body)
}

/// `stream_users`: empty allows every user; else the user's name, `*`, or one of the
/// token's groups as `group%`.
fn may_stream(allowed: &[String], token: &Token) -> bool {
    allowed.is_empty() || token.is_listed_in(allowed)
}

/// One client's stream.
struct Pump {
    master: Arc<Master>,
    token: String,
    expire: f64,
    framing: Framing,
    _counted: OpenStream,
}

impl Pump {
    /// Feeds events (and heartbeats) to `out` until the client goes, the token ends, the
    /// stream falls behind or the server stops. At most one chunk waits here for the
    /// client; while it waits, the other ends are still watched.
    ///
    /// Writes come in bursts at most one `stream_write_interval` apart: an event that
    /// arrives sooner after the last burst is held until the interval is over, and then it
    /// and every event queued behind it go to the front end together (one wake-up of the
    /// connection, one write). The hold applies only to a stream that had caught up; one
    /// whose client is the bottleneck is fed as fast as the client takes chunks. It ends
    /// early when the queue from the bus is half full, so a busy bus never overflows it.
    async fn run(mut self, stream: EventStream, out: BodySender, mut stop: watch::Receiver<bool>) {
        if *stop.borrow_and_update() {
            return;
        }
        let mut timers = self.timers();
        // The chunk waiting for the client, and when its event was read off the bus (none
        // for the `retry` line and heartbeats).
        let mut pending = (self.framing == Framing::Sse)
            .then(|| (Bytes::from_static(b"retry: 400\n"), None::<Instant>));
        let timer = tokio::time::sleep_until(timers.next());
        tokio::pin!(timer);
        let closed = stream.closed();
        tokio::pin!(closed);
        loop {
            if timer.deadline() != timers.next() {
                timer.as_mut().reset(timers.next());
            }
            tokio::select! {
                room = out.room(), if pending.is_some() && !timers.holding() => {
                    if !room {
                        return;
                    }
                    let mut handover = Handover::now();
                    let Ok(caught_up) =
                        self.forward_ready(pending.take(), &stream, &out, &mut handover)
                    else {
                        return;
                    };
                    // A burst of events starts the interval; the `retry` line or a
                    // heartbeat alone does not.
                    if handover.has_events() {
                        timers.burst_sent(caught_up);
                    }
                }
                event = stream.recv(), if pending.is_none() => match event {
                    Some(event) => {
                        pending = Some((self.framed(&event), Some(event.read_at)));
                        timers.event_arrived();
                    }
                    None => return,
                },
                // A hold ends early if the queue fills halfway: a busy bus must not
                // overflow it.
                () = stream.half_full(), if timers.holding() => timers.release(),
                // The bus closed the stream while a chunk waited for the client: it fell
                // behind (the bus logged it).
                () = &mut closed, if pending.is_some() => return,
                () = &mut timer => match timers.due(tokio::time::Instant::now()) {
                    Due::Expiry => return,
                    Due::TokenCheck => {
                        timer.as_mut().reset(timers.expire_at());
                        // Boxed: the master request is large and runs once a check
                        // interval, so the idle stream's task need not hold room for it.
                        let valid = tokio::select! {
                            valid = Box::pin(self.still_valid()) => valid,
                            _ = stop.changed() => return,
                            () = &mut timer => return,
                        };
                        if !valid {
                            return;
                        }
                        timers.set_expiry(self.left());
                    }
                    // The front end pings a WebSocket itself; a waiting chunk is as good.
                    Due::Heartbeat if self.framing == Framing::Sse && pending.is_none() => {
                        pending = Some((Bytes::from_static(b": heartbeat\n\n"), None));
                    }
                    Due::Heartbeat | Due::HoldOver | Due::Nothing => {}
                },
                _ = stop.changed() => return,
                () = out.closed() => return,
            }
        }
    }

    /// The stream's timers, started now.
    fn timers(&self) -> StreamTimers {
        let limits = &self.master.settings.limits;
        StreamTimers::new(
            limits.stream_heartbeat,
            limits.stream_token_check,
            limits.stream_write_interval,
            self.left(),
        )
    }

    /// Hands `first` (the chunk waiting for the client), then the events already queued
    /// for this stream, to the front end while the body channel has room, in one go (the
    /// connection writes them as one): whether no event is left.
    fn forward_ready(
        &self,
        first: Option<(Bytes, Option<Instant>)>,
        stream: &EventStream,
        tx: &BodySender,
        handover: &mut Handover,
    ) -> Result<bool, SendError> {
        let mut first = first;
        let (_, caught_up) = tx.fill(|| {
            let (chunk, read_at) = match first.take() {
                Some(pending) => pending,
                None => {
                    let event = stream.try_recv()?;
                    (self.framed(&event), Some(event.read_at))
                }
            };
            if let Some(read_at) = read_at {
                handover.event(read_at);
            }
            Some(chunk)
        })?;
        Ok(caught_up)
    }

    /// The event's shared frame in this stream's framing.
    fn framed(&self, event: &PublicEvent) -> Bytes {
        event.framed(self.framing as usize, |e| self.frame(e))
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
        seconds(self.expire - now())
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
    let map = checks()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.get(token)
        .filter(|(at, _)| at.elapsed() < max_age)
        .map(|(_, expire)| *expire)
}

/// Keeps the master's answer for `token`; forgets answers older than a minute once many
/// have gathered.
fn remember_check(token: &str, expire: Option<f64>) {
    let mut map = checks()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use serde_json::json;
    use tokio::time::Instant;

    /// A stream's task with `stream_write_interval` as given, a token valid for long, and
    /// no heartbeat or token check during a test.
    fn pump(write_interval: f64) -> (Pump, Arc<Streams>) {
        let yaml = format!(
            "salt_fcgi: {{stream_write_interval: {write_interval}, stream_token_check: 3600, \
             stream_heartbeat: 3600}}"
        );
        let opts: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&yaml).expect("yaml");
        let master = Arc::new(Master::new(Arc::new(Settings::from_mapping(&opts))));
        let streams = Arc::new(Streams::new());
        let counted = streams.open(&master, "t", "u").expect("room for a stream");
        let pump = Pump {
            master,
            token: "t".into(),
            expire: now() + 1e6,
            framing: Framing::Sse,
            _counted: counted,
        };
        (pump, streams)
    }

    /// Runs a pump on a hand-fed stream and takes its `retry` line: the function that
    /// fires events, and the body.
    async fn running(write_interval: f64) -> (impl Fn(&str), BodyStream, Arc<Streams>) {
        let (stream, fire) = crate::salt::events::test_stream(100);
        let (tx, mut body) = body_stream::channel(CHUNKS_IN_FLIGHT, Duration::from_secs(1));
        let (pump, streams) = pump(write_interval);
        tokio::spawn(pump.run(stream, tx, streams.stop.subscribe()));
        assert_eq!(body.next().await.as_deref(), Some(&b"retry: 400\n"[..]));
        (move |tag: &str| fire(tag, &json!({})), body, streams)
    }

    fn sse(tag: &str) -> Bytes {
        Bytes::from(format!(
            "tag: {tag}\ndata: {{\"data\":{{}},\"tag\":\"{tag}\"}}\n\n"
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_waits_for_the_write_interval_and_goes_out_together() {
        let (fire, mut body, _streams) = running(1.0).await;
        // A lone event goes out at once.
        let start = Instant::now();
        fire("t/0");
        assert_eq!(body.next().await, Some(sse("t/0")));
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Events right behind it wait for the interval's end, then come all at once.
        fire("t/1");
        fire("t/2");
        fire("t/3");
        assert_eq!(body.next().await, Some(sse("t/1")));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(body.try_next(), Some(sse("t/2")));
        assert_eq!(body.try_next(), Some(sse("t/3")));
        // An event after a quiet interval goes out at once again.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let quiet = Instant::now();
        fire("t/4");
        assert_eq!(body.next().await, Some(sse("t/4")));
        assert_eq!(quiet.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_whose_client_is_behind_is_never_held() {
        let (fire, mut body, _streams) = running(1.0).await;
        let start = Instant::now();
        // More than the body channel holds (and less than the stream's queue of 100): the
        // pump waits for the client, not the clock.
        let tags: Vec<String> = (0..CHUNKS_IN_FLIGHT + 30)
            .map(|n| format!("t/{n}"))
            .collect();
        for tag in &tags {
            fire(tag);
        }
        for tag in &tags {
            assert_eq!(body.next().await, Some(sse(tag)));
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_ends_when_the_queue_is_half_full() {
        // The queue holds 100 events (`running`): 60 behind one write are more than half.
        let (fire, mut body, _streams) = running(1.0).await;
        let start = Instant::now();
        let tags: Vec<String> = (0..61).map(|n| format!("t/{n}")).collect();
        fire(&tags[0]);
        assert_eq!(body.next().await, Some(sse(&tags[0])));
        for tag in &tags[1..] {
            fire(tag);
        }
        for tag in &tags[1..] {
            assert_eq!(body.next().await, Some(sse(tag)));
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "not held for the interval");
    }

    #[tokio::test(start_paused = true)]
    async fn no_write_interval_sends_each_event_as_it_comes() {
        let (fire, mut body, _streams) = running(0.0).await;
        let start = Instant::now();
        for n in 0..3 {
            let tag = format!("t/{n}");
            fire(&tag);
            assert_eq!(body.next().await, Some(sse(&tag)));
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
