//! The clear request channel: one load in a version-3 clear envelope to the master's
//! `ret_port`, one reply back, over the transport the master config names (`transport`):
//! ZeroMQ (Salt's default, `zeromq`), Salt's own TCP framing (`tcp`) or WebSocket (`ws`),
//! each in its own module under `channel/`. Every transport has the same limits and errors:
//! `master_connect_timeout` for the connection, the caller's timeout (capped by
//! `request_deadline`) for the reply, `max_reply_bytes` for its size. Connections are kept
//! for the next request (FastCGI/HTTP); one that failed is dropped. A transport salt-fcgi
//! does not speak, or TLS on the request port, is a 503 that names it.

mod pool;
mod tcp;
mod ws;
mod zeromq;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::error::{SaltError, SaltResult};
use crate::settings::Settings;

/// The transports salt-fcgi speaks, as named in the master config.
pub(crate) const TRANSPORTS: [&str; 3] = ["zeromq", "tcp", "ws"];

/// Sends clear loads to the master's request server.
pub struct RequestChannel {
    transport: Transport,
    wire: Wire,
    /// No reply is waited for longer than the whole request may take (`request_deadline`):
    /// a blocking thread must not outlive its request by a caller-chosen timeout.
    max_wait: Duration,
    round_trips: AtomicU64,
    /// Requests that failed on the way, by [`SaltError::kind`] (`/metrics`).
    failures: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

/// The request port as the configured transport reaches it.
enum Transport {
    Zeromq(zeromq::Channel),
    Tcp(pool::Pool<tcp::Connection>),
    Ws(pool::Pool<ws::Connection>),
    /// A transport (or TLS) salt-fcgi does not speak: every request is this 503.
    Refused(SaltError),
}

/// Where the request port is and the limits every transport applies.
pub(crate) struct Wire {
    /// The master's address as a client connects to it (an IPv6 literal unbracketed).
    host: String,
    port: u16,
    connect_timeout: Duration,
    max_reply_bytes: usize,
}

/// A transport's answer, and whether the request left for the master (it may have acted).
pub(crate) type Sent = (SaltResult<Json>, bool);

/// How long one reply may be waited for, and whether that was cut to `request_deadline`.
#[derive(Clone, Copy)]
pub(crate) struct Wait {
    timeout: Duration,
    capped: bool,
}

impl RequestChannel {
    /// A channel to the master named by `settings` (nothing is connected yet).
    pub fn new(settings: &Settings) -> Arc<RequestChannel> {
        let wire = Wire {
            host: settings.addresses.interface.clone(),
            port: settings.addresses.ret_port,
            connect_timeout: settings.limits.master_connect_timeout,
            max_reply_bytes: settings.limits.max_reply_bytes,
        };
        let transport = match (settings.addresses.transport.as_str(), refusal(settings)) {
            (_, Some(refused)) => Transport::Refused(refused),
            ("tcp", None) => Transport::Tcp(pool::Pool::new()),
            ("ws", None) => Transport::Ws(pool::Pool::new()),
            _ => Transport::Zeromq(zeromq::Channel::new(settings.addresses.master_uri())),
        };
        Arc::new(RequestChannel {
            transport,
            wire,
            max_wait: settings.limits.request_deadline,
            round_trips: AtomicU64::new(0),
            failures: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    /// Sends `load` in a version-3 clear envelope and returns the master's decoded reply.
    /// `timeout` bounds the wait for the reply after the master accepted the request.
    pub async fn send(self: &Arc<Self>, load: Json, timeout: Duration) -> SaltResult<Json> {
        // A token lookup changes nothing; every other load may make the master act.
        let acts = load.get("cmd").and_then(Json::as_str) != Some("get_token");
        let envelope = json!({"enc": "clear", "load": load, "version": 3});
        let wait = Wait {
            timeout: timeout.min(self.max_wait),
            capped: timeout > self.max_wait,
        };
        let (reply, left) = match &self.transport {
            Transport::Zeromq(channel) => channel.send(&self.wire, &envelope, wait).await,
            Transport::Tcp(pool) => pool.send(&self.wire, &envelope, wait).await,
            Transport::Ws(pool) => pool.send(&self.wire, &envelope, wait).await,
            Transport::Refused(e) => (Err(e.clone()), false),
        };
        // A cluster master that is not ready defers the load without acting on it.
        let deferred = matches!(&reply, Ok(r) if is_cluster_retry(r));
        if left && acts && !deferred {
            super::sent::mark();
        }
        match reply {
            Ok(reply) => {
                self.round_trips.fetch_add(1, Ordering::Relaxed);
                Ok(reply)
            }
            Err(e) => {
                let mut failures = self
                    .failures
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *failures.entry(e.kind()).or_default() += 1;
                Err(e)
            }
        }
    }

    /// Requests that failed on the way to or from the master so far, by kind.
    pub fn failures(&self) -> Vec<(&'static str, u64)> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Requests the master answered so far (`/stats`).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

/// The 503 for a master whose request port salt-fcgi cannot speak to: a transport it does
/// not know, or TLS (`ssl`) on `tcp`/`ws`. `None` when it can.
pub fn refusal(settings: &Settings) -> Option<SaltError> {
    let transport = settings.addresses.transport.as_str();
    if !TRANSPORTS.contains(&transport) {
        let shown: String = transport.chars().take(64).collect();
        return Some(SaltError::NotRunning(format!(
            "the master uses transport {shown}; salt-fcgi speaks zeromq, tcp and ws"
        )));
    }
    (transport != "zeromq" && settings.addresses.master_tls).then(|| {
        SaltError::NotRunning(format!(
            "the master's {transport} transport uses TLS (ssl in the master config); \
             salt-fcgi speaks {transport} to the master without TLS only"
        ))
    })
}

impl Wire {
    /// `host:port` for a socket address or URL (an IPv6 literal bracketed).
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Nothing accepted a connection within `master_connect_timeout`.
    fn not_accepted(&self) -> SaltError {
        SaltError::NotRunning(format!(
            "Salt Master is not available: nothing accepted a connection to ret_port {} within {:.1} s.",
            self.port,
            self.connect_timeout.as_secs_f64()
        ))
    }

    /// The connection to `ret_port` could not be made or used (`what` failed with `e`).
    fn unreachable(&self, what: &str, e: impl std::fmt::Display) -> SaltError {
        SaltError::NotRunning(format!(
            "Salt Master is not available: cannot {what} ret_port {} ({e}).",
            self.port
        ))
    }

    /// The master closed the connection before its reply was complete.
    fn closed(&self) -> SaltError {
        SaltError::NotRunning(format!(
            "Salt Master is not available: it closed the connection to ret_port {} before \
             its reply was complete.",
            self.port
        ))
    }

    /// A reply bigger than `max_reply_bytes` (`size` if its header told).
    fn oversized(&self, size: Option<usize>) -> SaltError {
        let size = size.map_or_else(|| "more than that".into(), |n| format!("{n} bytes"));
        SaltError::Master(format!(
            "the master's reply is over max_reply_bytes ({} bytes): {size}",
            self.max_reply_bytes
        ))
    }

    /// A reply that is not what the transport carries (`why`).
    fn garbage(&self, why: impl std::fmt::Display) -> SaltError {
        SaltError::Master(format!(
            "the master's reply on ret_port {} is unreadable: {why}",
            self.port
        ))
    }
}

impl Wait {
    /// The reply did not come within the wait.
    fn expired(&self) -> SaltError {
        if self.capped {
            SaltError::Timeout(format!(
                "Salt request timed out: the master did not answer within request_deadline \
                 ({:.1} s).",
                self.timeout.as_secs_f64()
            ))
        } else {
            SaltError::Timeout(format!(
                "Salt request timed out. The master is not responding (waited {:.1} s).",
                self.timeout.as_secs_f64()
            ))
        }
    }
}

/// Turns Salt's error replies into errors: `{"error": {"name", "message"}}`, `{"error": "…"}`,
/// and the bare strings the request server answers to loads it refuses.
pub(crate) fn check_reply(reply: Json) -> SaltResult<Json> {
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

    /// Settings for a master on 127.0.0.1:`port` speaking `transport`, plus `extra` YAML
    /// under `salt_fcgi:`.
    pub(crate) fn settings(transport: &str, port: u16, extra: &str) -> Settings {
        let yaml = format!(
            "interface: 127.0.0.1\nret_port: {port}\ntransport: {transport}\nsalt_fcgi: {{{extra}}}\n"
        );
        let m: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&yaml).expect("yaml");
        Settings::from_mapping(&m)
    }

    /// A request server on every transport that takes requests and never answers; the
    /// port and a handle that keeps it alive.
    async fn silent_master(transport: &str) -> (u16, Box<dyn std::any::Any>) {
        if transport == "zeromq" {
            let ctx = zmq::Context::new();
            let rep = ctx.socket(zmq::REP).expect("rep");
            rep.set_linger(0).expect("linger");
            rep.bind("tcp://127.0.0.1:*").expect("bind");
            let endpoint = rep.get_last_endpoint().expect("endpoint").expect("utf8");
            let port = endpoint.rsplit(':').next().and_then(|p| p.parse().ok());
            return (port.expect("port"), Box::new((ctx, rep)));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let ws = transport == "ws";
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if ws {
                        use futures_util::StreamExt;
                        let mut ws = tokio_tungstenite::accept_async(stream).await.expect("ws");
                        while ws.next().await.is_some() {}
                    } else {
                        use tokio::io::AsyncReadExt;
                        let mut stream = stream;
                        let mut buf = [0u8; 4096];
                        while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                    }
                });
            }
        });
        (port, Box::new(AbortOnDrop(task)))
    }

    /// Ends a server task when the test is done with it.
    pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    /// Issue 13 item 11: a caller's long `timeout` never keeps a request (a blocking thread
    /// for ZeroMQ) waiting on the master past `request_deadline`, on every transport.
    #[tokio::test]
    async fn reply_waits_are_capped_by_the_request_deadline() {
        for transport in TRANSPORTS {
            let (port, _master) = silent_master(transport).await;
            let channel = RequestChannel::new(&settings(transport, port, "request_deadline: 0.5"));
            let started = std::time::Instant::now();
            let reply = channel
                .send(json!({"cmd": "x"}), Duration::from_secs(60))
                .await;
            assert!(
                matches!(&reply, Err(SaltError::Timeout(m)) if m.contains("request_deadline")),
                "{transport}: {reply:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{transport}: {:?}",
                started.elapsed()
            );
        }
    }

    /// Nothing listening on ret_port: a 503 at once, whatever the transport.
    #[tokio::test]
    async fn a_closed_port_is_503_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        for transport in ["tcp", "ws"] {
            let channel = RequestChannel::new(&settings(transport, port, ""));
            let started = std::time::Instant::now();
            let reply = channel
                .send(json!({"cmd": "ping"}), Duration::from_secs(5))
                .await;
            assert!(
                matches!(&reply, Err(SaltError::NotRunning(m)) if m.contains("ret_port")),
                "{transport}: {reply:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(1), "{transport}");
        }
    }

    /// A transport salt-fcgi does not speak, or TLS on the request port, is named.
    #[tokio::test]
    async fn unknown_transports_and_tls_are_named() {
        let channel = RequestChannel::new(&settings("rabbitmq", 4506, ""));
        let reply = channel
            .send(json!({"cmd": "ping"}), Duration::from_secs(1))
            .await;
        assert_eq!(
            reply,
            Err(SaltError::NotRunning(
                "the master uses transport rabbitmq; salt-fcgi speaks zeromq, tcp and ws".into()
            ))
        );
        for transport in ["tcp", "ws"] {
            let yaml = format!("transport: {transport}\nssl: {{certfile: /x.pem}}\n");
            let m: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&yaml).expect("yaml");
            let refused = refusal(&Settings::from_mapping(&m));
            assert!(
                matches!(&refused, Some(SaltError::NotRunning(m)) if m.contains("TLS")),
                "{refused:?}"
            );
        }
        let m: serde_yaml_ng::Mapping =
            serde_yaml_ng::from_str("ssl: {certfile: /x.pem}\n").expect("yaml");
        assert!(
            refusal(&Settings::from_mapping(&m)).is_none(),
            "zeromq ignores ssl"
        );
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
