//! How the FastCGI and HTTP servers live and end: at most `max_connections` connections,
//! SIGTERM/SIGINT with a grace period for requests in flight (event streams end at once),
//! `--max-requests` and `--idle-timeout`. `main` builds each server's [`ServeOptions`]
//! from the command line and the config's limits; the servers read nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use super::listener::{Listener, Stream};
use crate::api::Api;
use crate::settings::Limits;

/// One of the `max_connections` connection slots. A connection holds it while it lives,
/// and so does anything the connection hands itself over to (a WebSocket after its
/// upgrade): the slot is free again when the last holder drops it.
pub(crate) type Slot = Arc<OwnedSemaphorePermit>;

/// Accepts connections until shutdown, at most `max_connections` at once, running
/// `serve_one` on each in its own task with the connection's [`Slot`]; then waits (up to
/// `shutdown_grace`) for the requests in flight. Shared by the FastCGI and HTTP servers.
pub(crate) async fn accept_loop<F, Fut>(
    listener: Listener,
    api: &Api,
    life: &Lifecycle,
    serve_one: F,
) where
    F: Fn(Stream, Slot) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(life.options.max_connections));
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
                tokio::spawn(serve_one(stream, Arc::new(permit)));
            }
            Err(e) => {
                crate::log!(warn, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    api.stop_streams();
    life.drain(life.options.shutdown_grace).await;
}

/// File descriptors a server needs beyond one per connection: the listener, the master's
/// request channel and event bus, ZeroMQ's own, logs.
const SPARE_FDS: u64 = 128;

/// Makes room for `max_connections` open connections: raises the soft `RLIMIT_NOFILE` up
/// to the hard limit where it is lower than `max_connections` + 128, and warns when even
/// the hard limit is (then `accept` would fail with EMFILE before the slots run out;
/// systemd's `LimitNOFILE=` sets the hard limit).
pub fn ensure_fd_limit(max_connections: usize) {
    let needed = (max_connections as u64).saturating_add(SPARE_FDS);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= needed
    {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: needed.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads one rlimit we own; the soft limit stays within the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 || raised.rlim_cur < needed {
        crate::log!(
            warn,
            "max_connections is {max_connections}, which needs about {needed} open files, but \
             the limit is {}: raise it (systemd LimitNOFILE=, ulimit -n) or lower max_connections",
            raised.rlim_cur.max(limit.rlim_cur)
        );
    }
}

/// What a FastCGI or HTTP server needs to know: how it ends (command line) and its
/// limits (`salt_fcgi:` in the config).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Exit after this many requests (mod_fcgid's `FcgidMaxRequestsPerProcess`).
    pub max_requests: Option<u64>,
    /// Exit after this long without a request.
    pub idle_timeout: Option<Duration>,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long SIGTERM waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Largest request body read.
    pub max_body_bytes: usize,
    /// HTTP: largest request head.
    pub max_header_bytes: usize,
    /// HTTP: time a client may take to send its head, and again its body.
    pub body_read_timeout: Duration,
    /// HTTP: WebSocket ping interval.
    pub stream_heartbeat: Duration,
}

impl ServeOptions {
    /// Options with the config's limits and no exit condition of the command line.
    pub fn new(limits: &Limits) -> ServeOptions {
        ServeOptions {
            max_requests: None,
            idle_timeout: None,
            max_connections: limits.max_connections,
            shutdown_grace: limits.shutdown_grace,
            max_body_bytes: limits.max_body_bytes,
            max_header_bytes: limits.max_header_bytes,
            body_read_timeout: limits.body_read_timeout,
            stream_heartbeat: limits.stream_heartbeat,
        }
    }
}

/// Shared state of a running server: in-flight requests and the shutdown signal.
pub(crate) struct Lifecycle {
    shutdown: watch::Sender<bool>,
    in_flight: AtomicUsize,
    drained: Notify,
    served: AtomicU64,
    last_request: std::sync::Mutex<Instant>,
    /// What this server was started with.
    pub options: ServeOptions,
}

/// Marks one request in flight until dropped.
pub(crate) struct InFlight<'a>(&'a Lifecycle);

impl Lifecycle {
    /// A lifecycle with no request served yet.
    pub(crate) fn new(options: ServeOptions) -> Arc<Lifecycle> {
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
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Asks the server to stop accepting and finish what is in flight.
    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// True once shutdown was asked for.
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Counts a request as started; stops the server after `max_requests`.
    pub(crate) fn begin(&self) -> InFlight<'_> {
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
    pub(crate) async fn drain(&self, grace: Duration) {
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
    pub(crate) fn watch_signals_and_idle(self: &Arc<Self>) {
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
            // SIGHUP (logrotate's postrotate) reopens the audit file instead of ending us.
            if let Ok(mut hup) = signal(SignalKind::hangup()) {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        crate::audit::reopen();
                    }
                });
            }
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
                        .map_or_else(|_| Instant::now(), |t| *t);
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

    #[tokio::test]
    async fn max_requests_triggers_shutdown_and_drain_waits() {
        let limits = crate::settings::Settings::from_mapping(&serde_yaml_ng::Mapping::new()).limits;
        let life = Lifecycle::new(ServeOptions {
            max_requests: Some(2),
            ..ServeOptions::new(&limits)
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
