//! Listening sockets: inherited on fd 0 (mod_fcgid, spawn-fcgi, systemd with
//! `StandardInput=socket`) or bound from `--listen unix:/path` / `--listen host:port`.

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// A listening socket of either family.
pub enum Listener {
    /// TCP (`127.0.0.1:9000`).
    Tcp(TcpListener),
    /// Unix stream socket; the path is removed on drop when we created it.
    Unix(UnixListener, Option<PathBuf>),
}

/// An accepted connection.
pub enum Stream {
    /// TCP connection.
    Tcp(TcpStream),
    /// Unix connection.
    Unix(UnixStream),
}

/// True if `fd` is a socket in the listening state. A connected socket (mod_cgid hands
/// CGI one) or a pipe is not.
pub fn is_listening_socket(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    rc == 0 && value != 0
}

/// Address family of a socket fd.
fn family(fd: RawFd) -> io::Result<libc::sa_family_t> {
    // SAFETY: sockaddr_storage is large enough for any address; getsockname fills `len` bytes.
    unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, (&raw mut addr).cast(), &mut len) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(addr.ss_family)
    }
}

impl Listener {
    /// Takes over the listening socket on `fd` (normally 0). Call inside a tokio runtime.
    pub fn inherit(fd: RawFd) -> io::Result<Listener> {
        let fam = family(fd)?;
        if fam == libc::AF_UNIX as libc::sa_family_t {
            // SAFETY: fd is an open listening socket we now own.
            let std = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            std.set_nonblocking(true)?;
            Ok(Listener::Unix(UnixListener::from_std(std)?, None))
        } else {
            // SAFETY: as above, an AF_INET/AF_INET6 listening socket.
            let std = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            std.set_nonblocking(true)?;
            Ok(Listener::Tcp(TcpListener::from_std(std)?))
        }
    }

    /// Binds `unix:/path` (mode `socket_mode`) or `host:port`. Call inside a tokio runtime.
    /// An error names what it tried to bind (and, for a socket path, what is missing).
    pub async fn bind(spec: &str, socket_mode: u32) -> io::Result<Listener> {
        if let Some(path) = spec.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            Listener::bind_unix(&path, socket_mode).map_err(|e| unix_bind_error(&path, e))
        } else {
            match TcpListener::bind(spec).await {
                Ok(l) => Ok(Listener::Tcp(l)),
                Err(e) => Err(io::Error::new(e.kind(), format!("{spec}: {e}"))),
            }
        }
    }

    fn bind_unix(path: &std::path::Path, socket_mode: u32) -> io::Result<Listener> {
        remove_stale_socket(path)?;
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket_mode))?;
        Ok(Listener::Unix(listener, Some(path.to_path_buf())))
    }

    /// Accepts the next connection.
    pub async fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Listener::Unix(l, _) => Ok(Stream::Unix(l.accept().await?.0)),
        }
    }

    /// What it listens on, for the log.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp".into(), |a| a.to_string()),
            Listener::Unix(_, Some(p)) => format!("unix:{}", p.display()),
            Listener::Unix(_, None) => "unix socket on fd 0".into(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `e` from binding the socket `path`, with the path and, when its directory is missing or
/// closed to this user, that directory.
fn unix_bind_error(path: &std::path::Path, e: io::Error) -> io::Error {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let hint = match e.kind() {
        io::ErrorKind::NotFound if !dir.is_dir() => format!(
            " (the directory {} does not exist: create it first; systemd's \
             RuntimeDirectory= does that for the shipped unit)",
            dir.display()
        ),
        io::ErrorKind::PermissionDenied => {
            format!(" (this user may not create a socket in {})", dir.display())
        }
        _ => String::new(),
    };
    io::Error::new(e.kind(), format!("unix:{}: {e}{hint}", path.display()))
}

/// A socket file left by a dead process is removed; a live one is an error.
fn remove_stale_socket(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "a live socket there is in use by another process",
                ));
            }
            std::fs::remove_file(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        )),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_missing_socket_directory_is_named() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!("salt-fcgi-nodir-{}", std::process::id()));
        let spec = format!("unix:{}/salt-fcgi.sock", dir.display());
        let Err(e) = rt.block_on(Listener::bind(&spec, 0o660)) else {
            panic!("bound a socket in a missing directory");
        };
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{spec}: "))
                && text.contains(&format!("the directory {} does not exist", dir.display())),
            "{text}"
        );
        let Err(e) = rt.block_on(Listener::bind("256.0.0.1:80", 0o660)) else {
            panic!("bound an impossible address");
        };
        assert!(e.to_string().starts_with("256.0.0.1:80: "), "{e}");
    }

    #[test]
    fn listening_detection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        assert!(is_listening_socket(l.as_raw_fd()));
        let c = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        assert!(
            !is_listening_socket(c.as_raw_fd()),
            "a connected socket is not a listener"
        );
        let f = std::fs::File::open("/dev/null").expect("open");
        assert!(!is_listening_socket(f.as_raw_fd()));
    }
}
