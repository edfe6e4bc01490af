//! salt-fcgi run as an HTTP or FastCGI server for a test (killed on drop), and free ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::binary;

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Whether something listens on `address`. A connect to a free port in the ephemeral
/// range can pick that same port as its source and connect to itself (TCP simultaneous
/// open), which says nothing about a listener: it does not count.
pub fn tcp_listening(address: impl std::net::ToSocketAddrs) -> bool {
    std::net::TcpStream::connect(address).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

/// A child process killed when the test ends, also when it panics (a process left behind
/// keeps the test run's output pipe open).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// salt-fcgi running as a server; killed (SIGKILL if SIGTERM is not enough) on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT` for HTTP and TCP FastCGI, or a socket path.
    pub address: String,
    socket_dir: Option<PathBuf>,
}

impl Server {
    /// `salt-fcgi --http 127.0.0.1:<free port>`.
    pub fn http(config: &Path) -> Server {
        let address = format!("127.0.0.1:{}", free_port());
        Server::start(config, &["--http", &address], address.clone(), None)
    }

    /// `salt-fcgi --listen unix:<temp>/fcgi.sock`.
    pub fn fastcgi_unix(config: &Path) -> Server {
        Server::fastcgi_unix_logging(config, Stdio::inherit())
    }

    /// `salt-fcgi --listen unix:<temp>/fcgi.sock` with its stderr (the log) sent to `log`.
    pub fn fastcgi_unix_logging(config: &Path, log: Stdio) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "salt-fcgi-sock-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir socket dir");
        let path = dir.join("fcgi.sock");
        let spec = format!("unix:{}", path.display());
        Server::start_logging(
            config,
            &["--listen", &spec],
            path.display().to_string(),
            Some(dir),
            log,
        )
    }

    /// `salt-fcgi` with arbitrary arguments, waiting until `address` accepts connections.
    pub fn start(
        config: &Path,
        args: &[&str],
        address: String,
        socket_dir: Option<PathBuf>,
    ) -> Server {
        Server::start_logging(config, args, address, socket_dir, Stdio::inherit())
    }

    fn start_logging(
        config: &Path,
        args: &[&str],
        address: String,
        socket_dir: Option<PathBuf>,
        log: Stdio,
    ) -> Server {
        let child = Command::new(binary())
            .args(args)
            .env("SALT_MASTER_CONFIG", config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn salt-fcgi server");
        let server = Server {
            child,
            address,
            socket_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.accepts() {
            assert!(
                Instant::now() < deadline,
                "salt-fcgi did not start listening on {}",
                server.address
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn accepts(&self) -> bool {
        if self.address.starts_with('/') {
            std::os::unix::net::UnixStream::connect(&self.address).is_ok()
        } else {
            tcp_listening(&self.address)
        }
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.socket_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
