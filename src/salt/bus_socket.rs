//! Where the master's event bus sockets are, by `ipc_mode`: the publisher every event
//! comes out of (`master_event_pub.ipc` or TCP `tcp_master_pub_port`) and the puller events
//! are fired into (`master_event_pull.ipc` or TCP `tcp_master_pull_port`), on loopback;
//! or none, on a web host that reaches only `ret_port` (`salt_fcgi: event_bus: false`).

use std::fmt;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};

use super::error::SaltError;
use crate::settings::{IpcMode, Settings};

/// A connected bus socket, Unix or TCP.
pub(crate) trait BusStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> BusStream for T {}

/// The address of one of the master's bus sockets.
#[derive(Debug, Clone)]
pub(crate) enum BusSocket {
    /// A Unix socket in `sock_dir`.
    Unix(PathBuf),
    /// A loopback TCP address (`ipc_mode: tcp`).
    Tcp(String),
    /// None: this host does not reach the master's bus (`event_bus: false`).
    Absent,
}

impl BusSocket {
    /// The publisher the master writes every event to.
    pub(crate) fn publisher(settings: &Settings) -> BusSocket {
        BusSocket::of(
            settings,
            "master_event_pub.ipc",
            settings.addresses.tcp_master_pub_port,
        )
    }

    /// The puller that takes events to fire.
    pub(crate) fn puller(settings: &Settings) -> BusSocket {
        BusSocket::of(
            settings,
            "master_event_pull.ipc",
            settings.addresses.tcp_master_pull_port,
        )
    }

    fn of(settings: &Settings, file: &str, port: u16) -> BusSocket {
        if !settings.addresses.event_bus {
            return BusSocket::Absent;
        }
        match settings.addresses.ipc_mode {
            IpcMode::Ipc => BusSocket::Unix(settings.addresses.sock_dir.join(file)),
            IpcMode::Tcp => {
                let host = if settings.addresses.ipv6 {
                    "[::1]"
                } else {
                    "127.0.0.1"
                };
                BusSocket::Tcp(format!("{host}:{port}"))
            }
        }
    }

    /// Connects to the socket (an `Unsupported` error for [`BusSocket::Absent`]).
    pub(crate) async fn connect(&self) -> std::io::Result<Box<dyn BusStream>> {
        Ok(match self {
            BusSocket::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            BusSocket::Tcp(addr) => Box::new(tokio::net::TcpStream::connect(addr).await?),
            BusSocket::Absent => return Err(std::io::ErrorKind::Unsupported.into()),
        })
    }

    /// The caller's error when this host has no bus: what still works and what to do
    /// (a configuration, not a fault: nothing is logged).
    pub(crate) fn absent_error() -> SaltError {
        SaltError::EventBus(
            "this call needs the master's event bus, and this salt-fcgi has none (salt_fcgi: \
             event_bus: false, a host that reaches only ret_port): here logins, tokens, \
             logout, wheel calls and local_async/runner_async work; run the others through \
             a salt-fcgi on a master host"
                .into(),
        )
    }
}

impl fmt::Display for BusSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusSocket::Unix(path) => write!(f, "{}", path.display()),
            BusSocket::Tcp(addr) => f.write_str(addr),
            BusSocket::Absent => f.write_str("none (event_bus: false)"),
        }
    }
}
