//! `transport: zeromq` (Salt's default): a ZeroMQ REQ socket per in-flight request, taken
//! from a small pool and returned only after a complete round trip (a REQ socket that timed
//! out is in the wrong state and is dropped). `ZMQ_IMMEDIATE` plus a send timeout turns "no
//! master listening" into a quick error instead of a long wait. Blocking ZeroMQ calls run on
//! tokio's blocking pool. One frame each way: the msgpack envelope, the msgpack reply.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value as Json;

use super::{Wait, Wire};
use crate::salt::error::{SaltError, SaltResult};
use crate::salt::payload;

/// Sockets kept for reuse; more concurrent requests simply open more.
const POOL_SIZE: usize = 32;

/// The process-wide ZeroMQ context (one I/O thread), created on first use.
fn context() -> &'static zmq::Context {
    static CONTEXT: OnceLock<zmq::Context> = OnceLock::new();
    CONTEXT.get_or_init(zmq::Context::new)
}

/// REQ sockets to `tcp://host:ret_port`.
pub(super) struct Channel {
    uri: String,
    pool: Arc<Mutex<Vec<zmq::Socket>>>,
}

impl Channel {
    /// A channel to `uri` (nothing is connected yet).
    pub(super) fn new(uri: String) -> Channel {
        Channel {
            uri,
            pool: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// One request/reply on a blocking thread.
    pub(super) async fn send(&self, wire: &Wire, envelope: &Json, wait: Wait) -> SaltResult<Json> {
        let frame = payload::encode(envelope);
        let (uri, pool) = (self.uri.clone(), Arc::clone(&self.pool));
        let (connect_timeout, max_reply_bytes) = (wire.connect_timeout, wire.max_reply_bytes);
        let reply = tokio::task::spawn_blocking(move || {
            let socket = match take(&pool) {
                Some(s) => s,
                None => open(&uri, connect_timeout, max_reply_bytes)
                    .map_err(|e| Failure::Zmq("open a socket to", e))?,
            };
            let reply = round_trip(&socket, &frame, wait.timeout)?;
            give_back(&pool, socket);
            Ok(reply)
        })
        .await
        .unwrap_or_else(|e| Err(Failure::Thread(e.to_string())));
        match reply {
            Ok(bytes) => payload::decode(&bytes).map_err(|e| wire.garbage(e)),
            Err(Failure::NotAccepted) => Err(wire.not_accepted()),
            Err(Failure::NoReply) => Err(wait.expired()),
            Err(Failure::Zmq(what, e)) => Err(wire.unreachable(what, e)),
            Err(Failure::Thread(e)) => {
                Err(SaltError::Master(format!("request channel failed: {e}")))
            }
        }
    }
}

/// What went wrong on the blocking thread.
enum Failure {
    NotAccepted,
    NoReply,
    Zmq(&'static str, zmq::Error),
    Thread(String),
}

/// Sends `frame` and waits `timeout` for the reply.
fn round_trip(socket: &zmq::Socket, frame: &[u8], timeout: Duration) -> Result<Vec<u8>, Failure> {
    socket
        .set_rcvtimeo(millis(timeout))
        .map_err(|e| Failure::Zmq("configure a socket to", e))?;
    match socket.send(frame, 0) {
        Ok(()) => {}
        Err(zmq::Error::EAGAIN) => return Err(Failure::NotAccepted),
        Err(e) => return Err(Failure::Zmq("send to", e)),
    }
    match socket.recv_bytes(0) {
        Ok(bytes) => Ok(bytes),
        Err(zmq::Error::EAGAIN) => Err(Failure::NoReply),
        Err(e) => Err(Failure::Zmq("receive from", e)),
    }
}

fn take(pool: &Mutex<Vec<zmq::Socket>>) -> Option<zmq::Socket> {
    pool.lock().ok()?.pop()
}

fn give_back(pool: &Mutex<Vec<zmq::Socket>>, socket: zmq::Socket) {
    if let Ok(mut pool) = pool.lock()
        && pool.len() < POOL_SIZE
    {
        pool.push(socket);
    }
}

/// A new REQ socket: no linger, no queueing before the connection is up, bounded replies.
fn open(
    uri: &str,
    connect_timeout: Duration,
    max_reply_bytes: usize,
) -> Result<zmq::Socket, zmq::Error> {
    let socket = context().socket(zmq::REQ)?;
    socket.set_linger(0)?;
    socket.set_immediate(true)?;
    socket.set_sndtimeo(millis(connect_timeout))?;
    socket.set_maxmsgsize(i64::try_from(max_reply_bytes).unwrap_or(i64::MAX))?;
    socket.set_tcp_keepalive(1)?;
    socket.set_reconnect_ivl_max(5000)?;
    socket.connect(uri)?;
    Ok(socket)
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1)
}
