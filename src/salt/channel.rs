//! The clear request channel: one msgpack frame to the master's `ret_port`, one back.
//!
//! A ZeroMQ REQ socket per in-flight request, taken from a small pool and returned only
//! after a complete round trip (a REQ socket that timed out is in the wrong state and is
//! dropped). `ZMQ_IMMEDIATE` plus a send timeout turns "no master listening" into a quick
//! error instead of a long wait. Blocking ZeroMQ calls run on tokio's blocking pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::error::{SaltError, SaltResult};
use super::payload;
use crate::settings::Settings;

/// Sockets kept for reuse; more concurrent requests simply open more.
const POOL_SIZE: usize = 32;

/// The process-wide ZeroMQ context (one I/O thread), created on first use.
fn context() -> &'static zmq::Context {
    static CONTEXT: OnceLock<zmq::Context> = OnceLock::new();
    CONTEXT.get_or_init(zmq::Context::new)
}

/// Sends clear loads to the master's request server.
pub struct RequestChannel {
    uri: String,
    connect_timeout: Duration,
    /// No reply is waited for longer than the whole request may take (`request_deadline`):
    /// a blocking thread must not outlive its request by a caller-chosen timeout.
    max_wait: Duration,
    max_reply_bytes: usize,
    pool: Mutex<Vec<zmq::Socket>>,
    round_trips: AtomicU64,
}

impl RequestChannel {
    /// A channel to the master named by `settings` (nothing is connected yet).
    pub fn new(settings: &Settings) -> Arc<RequestChannel> {
        Arc::new(RequestChannel {
            uri: settings.master_uri(),
            connect_timeout: settings.limits.master_connect_timeout,
            max_wait: settings.limits.request_deadline,
            max_reply_bytes: settings.limits.max_reply_bytes,
            pool: Mutex::new(Vec::new()),
            round_trips: AtomicU64::new(0),
        })
    }

    /// Sends `load` in a version-3 clear envelope and returns the master's decoded reply.
    /// `timeout` bounds the wait for the reply after the master accepted the request.
    pub async fn send(self: &Arc<Self>, load: Json, timeout: Duration) -> SaltResult<Json> {
        // A token lookup changes nothing; every other load may make the master act.
        let acts = load.get("cmd").and_then(Json::as_str) != Some("get_token");
        let frame = payload::encode(&json!({"enc": "clear", "load": load, "version": 3}));
        let capped = timeout > self.max_wait;
        let timeout = timeout.min(self.max_wait);
        let this = Arc::clone(self);
        let (reply, sent) =
            tokio::task::spawn_blocking(move || this.round_trip(&frame, timeout, capped))
                .await
                .unwrap_or_else(|e| {
                    let e = SaltError::Master(format!("request channel failed: {e}"));
                    (Err(e), true)
                });
        // A cluster master that is not ready defers the load without acting on it.
        let deferred = matches!(&reply, Ok(r) if is_cluster_retry(r));
        if sent && acts && !deferred {
            super::sent::mark();
        }
        reply
    }

    /// One blocking request/reply on a pooled or new REQ socket; `capped`: the wait was cut
    /// to `request_deadline` (the error then says so, as the request's own deadline would).
    /// Also says whether the frame left (every failure before that is a `NotRunning`).
    fn round_trip(
        &self,
        frame: &[u8],
        timeout: Duration,
        capped: bool,
    ) -> (SaltResult<Json>, bool) {
        match self.send_frame(frame, timeout) {
            Ok(socket) => (self.receive(socket, timeout, capped), true),
            Err(e) => (Err(e), false),
        }
    }

    /// Sends `frame` on a pooled or new socket; a `NotRunning` error when it did not leave.
    fn send_frame(&self, frame: &[u8], timeout: Duration) -> SaltResult<zmq::Socket> {
        let socket = match self.take() {
            Some(s) => s,
            None => self
                .open()
                .map_err(|e| zmq_failure("open a socket to", e))?,
        };
        socket
            .set_rcvtimeo(millis(timeout))
            .map_err(|e| zmq_failure("configure", e))?;
        match socket.send(frame, 0) {
            Ok(()) => Ok(socket),
            Err(zmq::Error::EAGAIN) => Err(SaltError::NotRunning(format!(
                "Salt Master is not available: nothing accepted a connection to ret_port {} within {:.1} s.",
                self.uri.rsplit(':').next().unwrap_or("?"),
                self.connect_timeout.as_secs_f64()
            ))),
            Err(e) => Err(zmq_failure("send to", e)),
        }
    }

    /// Waits for the master's reply on `socket` (the frame has left).
    fn receive(&self, socket: zmq::Socket, timeout: Duration, capped: bool) -> SaltResult<Json> {
        let reply = match socket.recv_bytes(0) {
            Ok(bytes) => bytes,
            Err(zmq::Error::EAGAIN) if capped => {
                return Err(SaltError::Timeout(format!(
                    "Salt request timed out: the master did not answer within request_deadline \
                     ({:.1} s).",
                    timeout.as_secs_f64()
                )));
            }
            Err(zmq::Error::EAGAIN) => {
                return Err(SaltError::Timeout(format!(
                    "Salt request timed out. The master is not responding (waited {:.1} s).",
                    timeout.as_secs_f64()
                )));
            }
            Err(e) => return Err(zmq_failure("receive from", e)),
        };
        self.give_back(socket);
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        payload::decode(&reply).map_err(|e| SaltError::Master(e.to_string()))
    }

    /// Requests the master answered so far (`/stats`).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn take(&self) -> Option<zmq::Socket> {
        self.pool.lock().ok()?.pop()
    }

    fn give_back(&self, socket: zmq::Socket) {
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < POOL_SIZE
        {
            pool.push(socket);
        }
    }

    /// A new REQ socket: no linger, no queueing before the connection is up, bounded replies.
    fn open(&self) -> Result<zmq::Socket, zmq::Error> {
        let socket = context().socket(zmq::REQ)?;
        socket.set_linger(0)?;
        socket.set_immediate(true)?;
        socket.set_sndtimeo(millis(self.connect_timeout))?;
        socket.set_maxmsgsize(i64::try_from(self.max_reply_bytes).unwrap_or(i64::MAX))?;
        socket.set_tcp_keepalive(1)?;
        socket.set_reconnect_ivl_max(5000)?;
        socket.connect(&self.uri)?;
        Ok(socket)
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1)
}

fn zmq_failure(what: &str, e: zmq::Error) -> SaltError {
    SaltError::NotRunning(format!(
        "Salt Master is not available: cannot {what} the master ({e})."
    ))
}

/// Turns Salt's error replies into errors: `{"error": {"name", "message"}}`, `{"error": "…"}`,
/// and the bare strings the request server answers to loads it refuses.
pub fn check_reply(reply: Json) -> SaltResult<Json> {
    if is_cluster_retry(&reply) {
        // A 3008 cluster master whose Raft node is not ready defers every request.
        return Err(SaltError::NotRunning(
            "Salt Master is not available: its cluster is not ready yet (cluster_retry); retry later."
                .into(),
        ));
    }
    match &reply {
        Json::String(s) if s.starts_with("bad load") || s.starts_with("payload and load") => Err(
            SaltError::Invocation(format!("The master refused the request: {s}")),
        ),
        Json::String(s) if s.contains("exception handling") => Err(SaltError::Master(format!(
            "The master failed to handle the request: {s}"
        ))),
        Json::Object(map) => match map.get("error") {
            None | Some(Json::Null) => Ok(reply),
            Some(Json::Object(err)) => {
                let name = err
                    .get("name")
                    .and_then(Json::as_str)
                    .unwrap_or("SaltException");
                let message = err
                    .get("message")
                    .and_then(Json::as_str)
                    .map(str::to_string)
                    .or_else(|| err.get("args").map(args_message))
                    .unwrap_or_default();
                Err(SaltError::from_exception(name, &message))
            }
            Some(Json::String(s)) => Err(SaltError::Master(s.clone())),
            Some(other) => Err(SaltError::Master(other.to_string())),
        },
        _ => Ok(reply),
    }
}

/// `{"ret": false, "cluster_retry": true}`, bare or under `load`.
fn is_cluster_retry(reply: &Json) -> bool {
    let flag = |v: &Json| v.get("cluster_retry") == Some(&Json::Bool(true));
    flag(reply) || reply.get("load").is_some_and(flag)
}

/// Python exception `args` as text.
fn args_message(args: &Json) -> String {
    match args {
        Json::Array(items) => items
            .iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13 item 11: a caller's long `timeout` never keeps a blocking thread waiting on
    /// the master past `request_deadline`.
    #[tokio::test]
    async fn reply_waits_are_capped_by_the_request_deadline() {
        let rep = context().socket(zmq::REP).expect("rep");
        rep.set_linger(0).expect("linger");
        rep.bind("tcp://127.0.0.1:*").expect("bind");
        let endpoint = rep.get_last_endpoint().expect("endpoint").expect("utf8");
        let port = endpoint.rsplit(':').next().expect("port");
        let yaml = format!(
            "interface: 127.0.0.1\nret_port: {port}\nsalt_fcgi: {{request_deadline: 0.5}}\n"
        );
        let m: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&yaml).expect("yaml");
        let channel = RequestChannel::new(&Settings::from_mapping(&m));
        let started = std::time::Instant::now();
        // The master (our REP socket) receives the request and never answers.
        let reply = channel
            .send(json!({"cmd": "x"}), Duration::from_secs(60))
            .await;
        assert!(matches!(reply, Err(SaltError::Timeout(_))), "{reply:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(rep);
    }

    #[test]
    fn error_replies_map_to_variants() {
        let auth = json!({"error": {"name": "AuthenticationError", "message": "Authentication error occurred."}});
        assert_eq!(
            check_reply(auth),
            Err(SaltError::Authentication(
                "Authentication error occurred.".into()
            ))
        );
        let authz = json!({"error": {"name": "AuthorizationError", "message": "no"}});
        assert_eq!(
            check_reply(authz),
            Err(SaltError::Authorization("no".into()))
        );
        let inv = json!({"error": {"name": "SaltInvocationError", "args": ["bad", 1]}});
        assert_eq!(
            check_reply(inv),
            Err(SaltError::Invocation("bad, 1".into()))
        );
        assert!(matches!(
            check_reply(json!("bad load")),
            Err(SaltError::Invocation(_))
        ));
        assert!(matches!(
            check_reply(json!({"error": "jid"})),
            Err(SaltError::Master(_))
        ));
        assert_eq!(check_reply(json!({"jid": "1"})), Ok(json!({"jid": "1"})));
        assert_eq!(check_reply(json!("")), Ok(json!("")));
        for retry in [
            json!({"ret": false, "cluster_retry": true}),
            json!({"enc": "clear", "load": {"ret": false, "cluster_retry": true}}),
        ] {
            assert!(
                matches!(check_reply(retry), Err(SaltError::NotRunning(_))),
                "cluster_retry is a 503, not an empty 200"
            );
        }
    }
}
