//! Connections of the stream transports (`tcp`, `ws`) kept between requests: one request
//! at a time on each (Salt's ws server answers a connection's messages in turn, and one
//! connection per request in flight spreads them over the master's workers, which accept
//! connections, not messages). A connection goes back only after a complete round trip; a
//! kept one the master has closed meanwhile (a restart) is noticed before it is used.

use std::os::fd::AsRawFd;
use std::sync::Mutex;

use serde_json::Value as Json;
use tokio::net::TcpStream;

use super::{Wait, Wire};
use crate::salt::error::SaltResult;

/// Connections kept for reuse; more concurrent requests simply open more.
const POOL_SIZE: usize = 32;

/// One connection to the request port of a stream transport.
pub(super) trait Connection: Sized + Send {
    /// Connects (within `master_connect_timeout`).
    async fn open(wire: &Wire) -> SaltResult<Self>;
    /// Sends `envelope` and returns the decoded reply (within `wait`).
    async fn round_trip(&mut self, wire: &Wire, envelope: &Json, wait: Wait) -> SaltResult<Json>;
    /// The TCP socket underneath.
    fn socket(&self) -> &TcpStream;
}

/// Idle connections of one transport.
pub(super) struct Pool<C> {
    idle: Mutex<Vec<C>>,
}

impl<C: Connection> Pool<C> {
    /// An empty pool.
    pub(super) fn new() -> Pool<C> {
        Pool {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// One round trip on a kept connection that is still open, or on a new one. A
    /// connection that failed is dropped.
    pub(super) async fn send(&self, wire: &Wire, envelope: &Json, wait: Wait) -> SaltResult<Json> {
        let mut conn = match self.take() {
            Some(c) => c,
            None => C::open(wire).await?,
        };
        let reply = conn.round_trip(wire, envelope, wait).await?;
        self.give_back(conn);
        Ok(reply)
    }

    /// The newest idle connection that is still open; closed ones are dropped.
    fn take(&self) -> Option<C> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(conn) = idle.pop() {
            if quiet_and_open(conn.socket()) {
                return Some(conn);
            }
        }
        None
    }

    fn give_back(&self, conn: C) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < POOL_SIZE
        {
            idle.push(conn);
        }
    }
}

/// True when nothing is waiting to be read on an idle connection and the peer has not
/// closed it: `recv(MSG_PEEK | MSG_DONTWAIT)` would block. End of stream, an error, or
/// bytes nobody asked for (a late or unsolicited message) make the connection unusable.
fn quiet_and_open(socket: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: the descriptor is open for as long as `socket` is borrowed, and the buffer is
    // one valid, writable byte.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            (&raw mut byte).cast::<libc::c_void>(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && {
        let err = std::io::Error::last_os_error();
        err.kind() == std::io::ErrorKind::WouldBlock
    }
}
