//! Front ends: CGI, FastCGI and HTTP each turn their input into an [`ApiRequest`] and
//! write the [`ApiResponse`] back. Shared here: the panic guard, the CGI-style header
//! block (CGI and FastCGI both speak it), and the server lifecycle (connection limit,
//! SIGTERM with a grace period, max-requests and idle exit).

pub mod cgi;
pub mod fastcgi;
pub mod http;
pub mod listener;
pub mod record_check;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, watch};

use crate::api::{Api, ApiRequest, ApiResponse};
use listener::{Listener, Stream};

/// Runs the API on one request in its own task, so a panic answers 500 instead of
/// taking the connection or the process down.
pub async fn handle_guarded(api: &Arc<Api>, req: ApiRequest) -> ApiResponse {
    let api = Arc::clone(api);
    guarded(async move { api.handle(req).await }).await
}

/// Awaits `work` in its own task; a panic in it becomes a 500 response.
pub async fn guarded<F>(work: F) -> ApiResponse
where
    F: std::future::Future<Output = ApiResponse> + Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(resp) => resp,
        Err(e) => {
            crate::log::error(&format!("request handler failed: {e}"));
            ApiResponse::error(
                500,
                "500: internal error in salt-fcgi (see the server's error log)",
            )
        }
    }
}

/// Accepts connections until shutdown, at most `max_connections` at once, running
/// `serve_one` on each in its own task; then waits (up to `shutdown_grace`) for the
/// requests in flight. Shared by the FastCGI and HTTP servers.
pub async fn accept_loop<F, Fut>(listener: Listener, api: &Api, life: &Lifecycle, serve_one: F)
where
    F: Fn(Stream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let limits = api.settings().limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut stop = life.subscribe();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        match accepted {
            Ok(stream) => {
                let work = serve_one(stream);
                tokio::spawn(async move {
                    work.await;
                    drop(permit);
                });
            }
            Err(e) => {
                crate::log::warn(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    api.stop_streams();
    life.drain(limits.shutdown_grace).await;
}

/// The CGI response: `Status:` line, headers, blank line, body.
pub fn cgi_response_bytes(resp: &ApiResponse) -> Vec<u8> {
    let mut out = cgi_response_head(resp);
    out.extend_from_slice(&resp.body);
    out
}

/// The CGI response without its body: `Status:` line, headers, blank line. A streamed
/// body has no Content-Length (the web server chunks it).
pub fn cgi_response_head(resp: &ApiResponse) -> Vec<u8> {
    let mut head = format!(
        "Status: {} {}\r\nContent-Type: {}\r\n",
        resp.status,
        resp.reason(),
        resp.content_type,
    );
    if resp.stream.is_none() {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    for (name, value) in &resp.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// How a long-running server ends.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Exit after this many requests (mod_fcgid's `FcgidMaxRequestsPerProcess`).
    pub max_requests: Option<u64>,
    /// Exit after this long without a request.
    pub idle_timeout: Option<Duration>,
}

/// Shared state of a running server: in-flight requests and the shutdown signal.
pub struct Lifecycle {
    shutdown: watch::Sender<bool>,
    in_flight: AtomicUsize,
    drained: Notify,
    served: AtomicU64,
    last_request: std::sync::Mutex<Instant>,
    options: ServeOptions,
}

/// Marks one request in flight until dropped.
pub struct InFlight<'a>(&'a Lifecycle);

impl Lifecycle {
    /// A lifecycle with no request served yet.
    pub fn new(options: ServeOptions) -> Arc<Lifecycle> {
        Arc::new(Lifecycle {
            shutdown: watch::channel(false).0,
            in_flight: AtomicUsize::new(0),
            drained: Notify::new(),
            served: AtomicU64::new(0),
            last_request: std::sync::Mutex::new(Instant::now()),
            options,
        })
    }

    /// A receiver that changes to `true` when the server should stop.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Asks the server to stop accepting and finish what is in flight.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// True once shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Counts a request as started; stops the server after `max_requests`.
    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let served = self.served.fetch_add(1, Ordering::AcqRel) + 1;
        if let Ok(mut t) = self.last_request.lock() {
            *t = Instant::now();
        }
        if self.options.max_requests.is_some_and(|max| served >= max) {
            self.shut_down();
        }
        InFlight(self)
    }

    /// Waits until no request is in flight, or `grace` has passed.
    pub async fn drain(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while self.in_flight.load(Ordering::Acquire) > 0 {
            let notified = self.drained.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                crate::log::warn("shutdown grace period over; requests still in flight are cut");
                break;
            }
        }
    }

    /// Stops the server on SIGTERM/SIGINT, and after `idle_timeout` without requests.
    pub fn watch_signals_and_idle(self: &Arc<Self>) {
        let life = Arc::clone(self);
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                crate::log::error("cannot install SIGTERM/SIGINT handlers");
                return;
            };
            tokio::select! {
                _ = term.recv() => crate::log::info("SIGTERM: finishing requests in flight, then exiting"),
                _ = int.recv() => crate::log::info("SIGINT: finishing requests in flight, then exiting"),
            }
            life.shut_down();
        });
        if let Some(idle) = self.options.idle_timeout {
            let life = Arc::clone(self);
            tokio::spawn(async move {
                loop {
                    let last = life
                        .last_request
                        .lock()
                        .map(|t| *t)
                        .unwrap_or_else(|_| Instant::now());
                    let quiet_for = last.elapsed();
                    if quiet_for >= idle && life.in_flight.load(Ordering::Acquire) == 0 {
                        crate::log::info("idle timeout: exiting");
                        life.shut_down();
                        return;
                    }
                    tokio::time::sleep(
                        idle.saturating_sub(quiet_for)
                            .max(Duration::from_millis(100)),
                    )
                    .await;
                }
            });
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_headers_are_byte_accurate() {
        let resp = ApiResponse::error(405, "é").with_header("Allow", "GET, POST");
        let bytes = cgi_response_bytes(&resp);
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(text.starts_with("Status: 405 Method Not Allowed\r\n"));
        assert!(text.contains("Content-Length: 15\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{\"return\":\"é\"}"));
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500() {
        let resp = guarded(async { panic!("boom") }).await;
        assert_eq!(resp.status, 500);
        assert!(!String::from_utf8_lossy(&resp.body).contains("boom"));
        assert_eq!(guarded(async { ApiResponse::ok(vec![]) }).await.status, 200);
    }

    #[tokio::test]
    async fn max_requests_triggers_shutdown_and_drain_waits() {
        let life = Lifecycle::new(ServeOptions {
            max_requests: Some(2),
            idle_timeout: None,
        });
        {
            let _a = life.begin();
            assert!(!life.is_shutting_down());
            let _b = life.begin();
            assert!(life.is_shutting_down());
        }
        life.drain(Duration::from_secs(1)).await;
        assert_eq!(life.in_flight.load(Ordering::Acquire), 0);
    }
}
