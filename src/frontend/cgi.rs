//! CGI: one request from the environment and stdin, the response on stdout (the
//! variables and the response head are `cgi_dialect.rs`, shared with FastCGI).

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::cgi_dialect::{CgiVars, read_body, request_from_vars};
use super::cgi_response::{self, Delivery, ResponseSink, response_bytes};
use crate::api::{Api, ApiResponse, Body};
use crate::settings::Settings;

/// The process environment as CGI variables (values that are not UTF-8 left out).
fn environment() -> CgiVars {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// stdin with a deadline: each read waits only until `body_read_timeout` after the
/// process started reading, so a client that trickles its body (through a web server that
/// passes it on as it comes) cannot hold the CGI process.
struct DeadlineStdin {
    deadline: std::time::Instant,
    limit: std::time::Duration,
}

impl Read for DeadlineStdin {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        if !stdin_ready_within(left) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the body did not arrive within body_read_timeout ({} s)",
                    self.limit.as_secs_f64()
                ),
            ));
        }
        std::io::stdin().lock().read(buf)
    }
}

/// Waits until stdin has bytes or its end (true), or `wait` has passed (false).
fn stdin_ready_within(wait: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut pfd = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for fd 0.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            0 => return false,
            n if n > 0 => return true,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            // Not pollable: let the read itself tell.
            _ => return true,
        }
    }
}

/// Serves the one CGI request of this process.
pub fn run(config: Option<&Path>) -> ExitCode {
    crate::audit::set_frontend("cgi");
    let written = match Settings::load(config) {
        Ok(settings) => serve(settings),
        Err(e) => {
            crate::log::error(&e.to_string());
            write_whole(&ApiResponse::error(
                500,
                "500: salt-fcgi cannot read the master configuration (see the server's error log)",
            ))
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// Writes a whole response to stdout.
fn write_whole(response: &ApiResponse) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(&response_bytes(response))?;
    out.flush()
}

/// CGI's stdout, through tokio: a client that stops reading blocks a pool thread, not an
/// event stream, so once the stream has ended (token, falling behind) the write is
/// abandoned after `stream_end_grace` and the process exits. A client that is gone makes
/// the write fail (EPIPE: Rust programs ignore SIGPIPE).
struct Stdout(tokio::io::Stdout);

impl ResponseSink for Stdout {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.0.write_all(bytes).await?;
        self.0.flush().await
    }
}

fn serve(settings: Settings) -> std::io::Result<()> {
    let max = settings.limits.max_body_bytes;
    let limit = settings.limits.body_read_timeout;
    let stdin_is_tty = unsafe { libc::isatty(0) } == 1;
    let request = request_from_vars(
        &environment(),
        |declared| {
            if declared.is_none() && stdin_is_tty {
                // Run by hand without CONTENT_LENGTH: do not wait for a terminal.
                return Ok(Vec::new());
            }
            let stdin = DeadlineStdin {
                deadline: std::time::Instant::now() + limit,
                limit,
            };
            read_body(stdin, declared, max)
        },
        max,
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::log!(error, "cannot start the runtime: {e}");
            return write_whole(&ApiResponse::error(500, "500: internal error in salt-fcgi"));
        }
    };
    let api = Arc::new(Api::new(settings));
    let response = runtime.block_on(super::handle_guarded(&api, request));
    if !stdin_is_tty {
        drain_stdin(limit);
    }
    // A whole body is one plain write; only a stream goes through tokio's stdout (a
    // blocking-pool thread), which it needs to be abandoned when its client stops reading.
    let written = if matches!(response.body, Body::Full(_)) {
        write_whole(&response)
    } else {
        let mut stdout = Stdout(tokio::io::stdout());
        let delivered = runtime.block_on(cgi_response::write_response(&mut stdout, response));
        if delivered.as_ref().is_ok_and(|d| *d == Delivery::Abandoned) {
            crate::log::warn("CGI stream abandoned: its client stopped reading");
        }
        delivered.map(|_| ())
    };
    // A blocking ZeroMQ wait that outlived its request (deadline hit) must not hold the exit.
    runtime.shutdown_background();
    written
}

/// Most bytes of an unread body consumed before answering.
const DRAIN_CAP: usize = 64 << 20;
/// Longest wait for more body bytes while draining.
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and discards what is left on stdin, for at most `limit` in all. mod_cgid writes
/// the whole request body before it reads the response: answering a body we refused (413)
/// without consuming it would leave Apache with a broken pipe and the client with no
/// response at all.
fn drain_stdin(limit: std::time::Duration) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    let mut stdin = std::io::stdin().lock();
    let deadline = std::time::Instant::now() + limit;
    while total < DRAIN_CAP {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || !stdin_ready_within(left.min(DRAIN_IDLE)) {
            return;
        }
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}
