//! The audit log: one JSON line per request, and one per lowstate chunk, to a file
//! (reopened on SIGHUP or when it was rotated away), stderr, or syslog.
//!
//! What a request did is noted as it goes (a task-local [`Note`]: user, eauth backend,
//! token, each chunk's job) and written when it ends. Secrets never reach a line: a token is
//! written as its HMAC-SHA256 under `audit_hmac_key_file`'s key; passwords and arguments are
//! never read here. With `audit_fail_closed`, a `received` line is written before anything
//! else happens, and a request whose line cannot be written answers 503.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{Map, Value as Json};
use sha2::Sha256;

use crate::salt::clock::civil_from_days;
use crate::settings::AuditOptions;

/// The front end of this process (`cgi`, `fastcgi`, `http`), for the audit lines.
static FRONTEND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Names this process's front end (once, at start).
pub(crate) fn set_frontend(name: &'static str) {
    let _ = FRONTEND.set(name);
}

/// This process's front end.
pub(crate) fn frontend() -> &'static str {
    FRONTEND.get().copied().unwrap_or("-")
}

/// Set by SIGHUP: the audit file is reopened before the next line.
static REOPEN: AtomicBool = AtomicBool::new(false);

/// Asks every audit file to be reopened before its next line (SIGHUP, after `logrotate`).
pub(crate) fn reopen() {
    REOPEN.store(true, Ordering::Release);
}

/// Where audit lines go.
enum Sink {
    /// Appended to a file, reopened when asked to or when the path names another file.
    File {
        /// The configured path.
        path: PathBuf,
        /// The open file and its (device, inode).
        open: Option<(File, (u64, u64))>,
    },
    /// One `write` per line to stderr.
    Stderr,
    /// One datagram per line to the local syslog socket (`/dev/log`), facility authpriv.
    Syslog(Option<UnixDatagram>),
}

/// The audit log of one process.
pub(crate) struct Audit {
    sink: Option<Mutex<Sink>>,
    fail_closed: bool,
    key: Vec<u8>,
}

impl Audit {
    /// The audit log `options` describe (off when `audit_log` is not set).
    pub(crate) fn new(options: &AuditOptions) -> Audit {
        let sink = match options.destination.as_deref() {
            None | Some("") => None,
            Some("stderr") => Some(Sink::Stderr),
            Some("syslog") => Some(Sink::Syslog(None)),
            Some(path) => Some(Sink::File {
                path: PathBuf::from(path),
                open: None,
            }),
        };
        // The key (a file read or /dev/urandom) only for an audit that writes: a CGI
        // process without one would pay it on every request.
        let key = if sink.is_some() {
            hmac_key(options)
        } else {
            Vec::new()
        };
        Audit {
            sink: sink.map(Mutex::new),
            fail_closed: options.fail_closed,
            key,
        }
    }

    /// Whether lines are written at all.
    pub(crate) fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Whether a request must be refused (503) when its line cannot be written.
    pub(crate) fn fail_closed(&self) -> bool {
        self.fail_closed && self.enabled()
    }

    /// `hmac-sha256:<hex>` of `secret` under the audit key.
    pub(crate) fn hmac(&self, secret: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(secret.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("hmac-sha256:{hex}")
    }

    /// Writes one line; the error says why it could not be written.
    pub(crate) fn write(&self, line: &Json) -> io::Result<()> {
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let mut text = serde_json::to_vec(line).map_err(io::Error::other)?;
        text.push(b'\n');
        let mut sink = sink
            .lock()
            .map_err(|_| io::Error::other("audit log lock poisoned"))?;
        sink.write_line(&text)
    }
}

impl Sink {
    /// Writes `text` (one line, newline included) with one `write`.
    fn write_line(&mut self, text: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stderr => io::stderr().lock().write_all(text),
            Sink::File { path, open } => {
                let reopen = REOPEN.swap(false, Ordering::AcqRel);
                let current = std::fs::metadata(&*path).ok().map(|m| (m.dev(), m.ino()));
                if reopen || open.as_ref().map(|(_, id)| Some(*id)) != Some(current) {
                    *open = None;
                    let file = OpenOptions::new()
                        .append(true)
                        .create(true)
                        .mode(0o640)
                        .open(&*path)?;
                    let meta = file.metadata()?;
                    *open = Some((file, (meta.dev(), meta.ino())));
                }
                let (file, _) = open
                    .as_mut()
                    .ok_or_else(|| io::Error::other("audit file not open"))?;
                file.write_all(text)
            }
            Sink::Syslog(socket) => {
                // authpriv (10) * 8 + info (6); the JSON without its newline.
                let body = text.strip_suffix(b"\n").unwrap_or(text);
                let mut msg = format!("<86>salt-fcgi-audit[{}]: ", std::process::id()).into_bytes();
                msg.extend_from_slice(body);
                if let Some(s) = socket.as_ref()
                    && s.send(&msg).is_ok()
                {
                    return Ok(());
                }
                let s = UnixDatagram::unbound()?;
                s.connect("/dev/log")?;
                s.send(&msg)?;
                *socket = Some(s);
                Ok(())
            }
        }
    }
}

/// The HMAC key: the contents of `audit_hmac_key_file`, else one made for this process
/// (its hashes then match only within the process; the docs say to set the file).
fn hmac_key(options: &AuditOptions) -> Vec<u8> {
    if let Some(path) = &options.hmac_key_file {
        match std::fs::read(path) {
            Ok(key) if !key.is_empty() => return key,
            Ok(_) => crate::log!(error, "audit_hmac_key_file {} is empty", path.display()),
            Err(e) => crate::log!(
                error,
                "cannot read audit_hmac_key_file {}: {e}",
                path.display()
            ),
        }
    }
    let mut key = vec![0u8; 32];
    let read = File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut key));
    if read.is_err() {
        key = crate::api::request_id::generate().into_bytes();
    }
    key
}

/// What one request did, noted as it runs.
#[derive(Debug, Default)]
pub(crate) struct Note {
    /// The eauth user name, when the request named one or logged in.
    pub user: Option<String>,
    /// The eauth backend.
    pub eauth: Option<String>,
    /// The token used or issued (written only as its HMAC).
    pub token: Option<String>,
    /// One line per chunk run.
    pub chunks: Vec<Map<String, Json>>,
}

tokio::task_local! {
    static NOTE: RefCell<Note>;
}

/// Runs `work` with an empty note; returns its output and what was noted.
pub(crate) async fn noting<F: std::future::Future>(work: F) -> (F::Output, Note) {
    NOTE.scope(RefCell::new(Note::default()), async move {
        let out = work.await;
        let note = NOTE.with(std::cell::RefCell::take);
        (out, note)
    })
    .await
}

/// Changes the running request's note (nothing outside a request).
fn with_note(change: impl FnOnce(&mut Note)) {
    let _ = NOTE.try_with(|n| change(&mut n.borrow_mut()));
}

/// The request acts as `user` of eauth backend `eauth` (a field left as it is when `None`).
pub(crate) fn note_user(user: Option<&str>, eauth: Option<&str>) {
    with_note(|n| {
        if let Some(u) = user {
            n.user = Some(u.to_string());
        }
        if let Some(e) = eauth {
            n.eauth = Some(e.to_string());
        }
    });
}

/// The request used or was issued `token`.
pub(crate) fn note_token(token: &str) {
    with_note(|n| n.token = Some(token.to_string()));
}

/// A chunk began: its client, fun, tgt and tgt_type (as given; never its arguments).
pub(crate) fn note_chunk_start(chunk: &Map<String, Json>) {
    let mut line = Map::new();
    for key in ["client", "fun", "tgt", "tgt_type"] {
        let value = match chunk.get(key) {
            Some(Json::String(s)) => Json::from(s.as_str()),
            Some(Json::Array(items)) if key == "tgt" => Json::from(items.clone()),
            _ => Json::Null,
        };
        line.insert(key.into(), value);
    }
    for key in ["jid", "minions_targeted", "minions_returned", "outcome"] {
        line.insert(key.into(), Json::Null);
    }
    with_note(|n| n.chunks.push(line));
}

/// Sets `key` of the running chunk's line.
fn set_chunk(key: &str, value: Json) {
    with_note(|n| {
        if let Some(line) = n.chunks.last_mut() {
            line.insert(key.into(), value);
        }
    });
}

/// The running chunk published job `jid` to `targeted` minions.
pub(crate) fn note_job(jid: &str, targeted: usize) {
    set_chunk("jid", Json::from(jid));
    set_chunk("minions_targeted", Json::from(targeted));
}

/// `returned` minions answered the running chunk.
pub(crate) fn note_returned(returned: usize) {
    set_chunk("minions_returned", Json::from(returned));
}

/// How the running chunk ended: `ok`, or the status and kind of its error.
pub(crate) fn note_outcome(outcome: &str) {
    set_chunk("outcome", Json::from(outcome));
}

/// Now, as RFC 3339 UTC with milliseconds (`2026-12-03T12:46:46.123Z`).
pub(crate) fn now_rfc3339() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_790), (2026, 12, 3));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(now_rfc3339().len(), 24);
    }

    #[test]
    fn hmac_is_keyed_and_never_the_token() {
        let dir = std::env::temp_dir().join(format!("salt-fcgi-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let key = dir.join("key");
        std::fs::write(&key, "k1").expect("write");
        let options = |f: Option<PathBuf>| AuditOptions {
            destination: Some(dir.join("audit.log").display().to_string()),
            fail_closed: false,
            hmac_key_file: f,
        };
        let a = Audit::new(&options(Some(key.clone())));
        let b = Audit::new(&options(Some(key)));
        let c = Audit::new(&options(None));
        let token = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(a.hmac(token), b.hmac(token));
        assert_ne!(a.hmac(token), c.hmac(token));
        assert!(!a.hmac(token).contains(token));
        // Rotation: the file moved away is replaced by a new one on the next line.
        a.write(&serde_json::json!({"n": 1})).expect("write");
        std::fs::rename(dir.join("audit.log"), dir.join("audit.log.1")).expect("rotate");
        a.write(&serde_json::json!({"n": 2})).expect("write");
        let now = std::fs::read_to_string(dir.join("audit.log")).expect("read");
        assert_eq!(now, "{\"n\":2}\n");
        std::fs::remove_dir_all(&dir).ok();
    }
}
