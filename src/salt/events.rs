//! The master event bus: one reader per process, fanning events out to waiting requests.
//!
//! The master pushes every event to every subscriber of `<sock_dir>/master_event_pub.ipc`
//! (or TCP `tcp_master_pub_port` with `ipc_mode: tcp`); filtering is ours. A frame is a
//! msgpack map `{"head": {}, "body": <bin>}`, bare (3006.0-3006.25, 3007, 3008) or after a
//! u32 big-endian length (3006.26+): a first byte 0x82 means bare. The body is
//! `tag + "\n\n" + msgpack(data)`; data is decoded only when some subscription wants the tag.
//!
//! A request subscribes *before* it sends its publish or runner call, so no event of its
//! job can be missed. If the connection drops (master restart), every subscription ends
//! and the next `subscribe` connects again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::error::{SaltError, SaltResult};
use super::payload;
use super::redact::{self, PublicEvent};
use crate::settings::{IpcMode, Settings};

/// One event from the master bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The tag, e.g. `salt/job/20240101000000000000/ret/web1`.
    pub tag: String,
    /// The event data (a JSON object for every event Salt fires).
    pub data: Json,
}

/// Where the event bus is.
#[derive(Debug, Clone)]
enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

/// Connects subscriptions to the master event bus; cheap to share.
pub struct EventBus {
    endpoint: Endpoint,
    max_frame: usize,
    reader: tokio::sync::Mutex<Option<Arc<Reader>>>,
}

/// The state shared between the reading task and the subscriptions.
struct Reader {
    alive: AtomicBool,
    next_id: AtomicU64,
    subscribers: Mutex<HashMap<u64, Subscriber>>,
}

struct Subscriber {
    prefixes: Vec<String>,
    queue: Queue,
}

/// Where a subscriber's events go.
enum Queue {
    /// A request waiting for its job's events: it reads them all, so the queue need not be
    /// bounded (its deadline bounds it).
    Job(mpsc::UnboundedSender<Arc<Event>>),
    /// A client's event stream: every event as public JSON text, credentials redacted, at
    /// most the channel's capacity behind; a stream that falls further behind is closed.
    Stream(mpsc::Sender<Arc<PublicEvent>>),
}

/// Every event of the bus for one client (`/events`, `/ws`), with every credential field
/// redacted.
pub struct EventStream {
    id: u64,
    reader: Arc<Reader>,
    rx: mpsc::Receiver<Arc<PublicEvent>>,
}

/// Events whose tag starts with one of a set of prefixes, in bus order.
pub struct Subscription {
    id: u64,
    reader: Arc<Reader>,
    rx: mpsc::UnboundedReceiver<Arc<Event>>,
}

impl EventBus {
    /// An event bus handle for the master in `settings`; connects on first `subscribe`.
    pub fn new(settings: &Settings) -> Arc<EventBus> {
        let endpoint = match settings.ipc_mode {
            IpcMode::Ipc => Endpoint::Unix(settings.sock_dir.join("master_event_pub.ipc")),
            IpcMode::Tcp => {
                let host = if settings.ipv6 { "[::1]" } else { "127.0.0.1" };
                Endpoint::Tcp(format!("{host}:{}", settings.tcp_master_pub_port))
            }
        };
        Arc::new(EventBus {
            endpoint,
            max_frame: settings.limits.max_reply_bytes,
            reader: tokio::sync::Mutex::new(None),
        })
    }

    /// Starts receiving events whose tag starts with any of `prefixes` (empty: all events).
    /// Returns once the bus connection is up, so an event fired afterwards is not missed.
    pub async fn subscribe(&self, prefixes: Vec<String>) -> SaltResult<Subscription> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (id, reader) = self.register(prefixes, Queue::Job(tx)).await?;
        Ok(Subscription { id, reader, rx })
    }

    /// Starts a client's stream of every event; it ends when it falls more than
    /// `capacity` events behind, or when the bus connection ends.
    pub async fn stream(&self, capacity: usize) -> SaltResult<EventStream> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (id, reader) = self.register(Vec::new(), Queue::Stream(tx)).await?;
        Ok(EventStream { id, reader, rx })
    }

    /// Registers a subscriber with a live reader.
    async fn register(
        &self,
        prefixes: Vec<String>,
        queue: Queue,
    ) -> SaltResult<(u64, Arc<Reader>)> {
        let mut queue = Some(queue);
        // A reader may die between being handed out and the registration; then connect
        // again (once: a bus that drops every new connection is down).
        for _ in 0..2 {
            let reader = self.connected_reader().await?;
            match Reader::register(&reader, prefixes.clone(), &mut queue) {
                Some(id) => return Ok((id, reader)),
                None => continue,
            }
        }
        Err(SaltError::NotRunning(
            "Salt Master is not available: the event bus connection was lost.".into(),
        ))
    }

    /// The live reader, connecting (again) if there is none.
    async fn connected_reader(&self) -> SaltResult<Arc<Reader>> {
        let mut slot = self.reader.lock().await;
        if let Some(r) = slot.as_ref().filter(|r| r.alive.load(Ordering::Acquire)) {
            return Ok(Arc::clone(r));
        }
        let stream = self.connect().await?;
        let reader = Arc::new(Reader {
            alive: AtomicBool::new(true),
            next_id: AtomicU64::new(0),
            subscribers: Mutex::new(HashMap::new()),
        });
        tokio::spawn(read_loop(stream, Arc::clone(&reader), self.max_frame));
        *slot = Some(Arc::clone(&reader));
        Ok(reader)
    }

    async fn connect(&self) -> SaltResult<Box<dyn AsyncRead + Send + Unpin>> {
        let result = match &self.endpoint {
            Endpoint::Unix(path) => tokio::net::UnixStream::connect(path)
                .await
                .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
            Endpoint::Tcp(addr) => tokio::net::TcpStream::connect(addr)
                .await
                .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
        };
        result.map_err(|e| self.connect_error(&e))
    }

    /// A clear error for the caller; the path goes only to the log.
    fn connect_error(&self, e: &std::io::Error) -> SaltError {
        let place = match &self.endpoint {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Tcp(a) => a.clone(),
        };
        crate::log::error(&format!(
            "cannot connect to the master event bus {place}: {e}"
        ));
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            SaltError::EventBus(
                "salt-fcgi may not read the master event bus (permission denied): run it as \
                 the salt-master's user or group"
                    .into(),
            )
        } else {
            SaltError::NotRunning(
                "Salt Master is not available: its event bus does not accept connections.".into(),
            )
        }
    }
}

impl Reader {
    /// Adds a subscription, unless the connection is already gone: liveness is checked
    /// under the same lock the dying reader clears the list under, so a subscription is
    /// either ended by `shut_down` or never registered.
    fn register(reader: &Reader, prefixes: Vec<String>, queue: &mut Option<Queue>) -> Option<u64> {
        let mut subscribers = lock(&reader.subscribers);
        if !reader.alive.load(Ordering::Acquire) {
            return None;
        }
        let id = reader.next_id.fetch_add(1, Ordering::Relaxed);
        subscribers.insert(
            id,
            Subscriber {
                prefixes,
                queue: queue.take()?,
            },
        );
        Some(id)
    }

    /// Marks the connection gone and ends every subscription (their `recv` gives `None`).
    fn shut_down(&self) {
        let mut subscribers = lock(&self.subscribers);
        self.alive.store(false, Ordering::Release);
        subscribers.clear();
    }
}

impl Subscription {
    /// Replaces the tag prefixes this subscription receives from now on.
    pub fn narrow(&self, prefixes: Vec<String>) {
        if let Some(s) = lock(&self.reader.subscribers).get_mut(&self.id) {
            s.prefixes = prefixes;
        }
    }

    /// The next matching event; `None` once the bus connection is gone.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        self.rx.recv().await
    }

    /// A matching event that has already arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Event>> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.reader.subscribers).remove(&self.id);
    }
}

impl EventStream {
    /// The next event, redacted; `None` once the stream was closed (it fell
    /// behind, or the bus connection is gone).
    pub async fn recv(&mut self) -> Option<Arc<PublicEvent>> {
        self.rx.recv().await
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        lock(&self.reader.subscribers).remove(&self.id);
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Capacity the frame buffer keeps; the memory of a bigger frame is given back after it.
const FRAME_BUF_KEEP: usize = 64 * 1024;

/// Reads frames until the connection ends, dispatching each event to its subscribers.
async fn read_loop(mut stream: Box<dyn AsyncRead + Send + Unpin>, reader: Arc<Reader>, max: usize) {
    let mut buf: Vec<u8> = Vec::with_capacity(FRAME_BUF_KEEP);
    // Bytes of an oversized event still to be thrown away as they arrive.
    let mut skip = 0usize;
    let outcome = loop {
        if skip > 0 {
            let n = skip.min(buf.len());
            buf.drain(..n);
            skip -= n;
        }
        if skip == 0 {
            if let Some(total) = oversized_frame(&buf, max) {
                // One huge event must not close the bus for every request in flight.
                crate::log::warn(&format!(
                    "skipped an event of {total} bytes (over max_reply_bytes)"
                ));
                skip = total;
                continue;
            }
            match next_frame(&buf, max) {
                Ok(Some((frame, used))) => {
                    dispatch(&reader, frame);
                    buf.drain(..used);
                    if buf.capacity() > 4 * FRAME_BUF_KEEP && buf.len() <= FRAME_BUF_KEEP {
                        buf.shrink_to(FRAME_BUF_KEEP);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => break e,
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => break "the master closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    reader.shut_down();
    crate::log::warn(&format!("master event bus connection lost: {outcome}"));
}

/// Decodes one frame and hands the event to every subscription that wants its tag.
fn dispatch(reader: &Reader, frame: &[u8]) {
    let Some((tag, data)) = split_frame(frame) else {
        crate::log::warn("ignored a malformed event-bus frame");
        return;
    };
    let mut subscribers = lock(&reader.subscribers);
    let mut event: Option<Arc<Event>> = None;
    let mut public: Option<Arc<PublicEvent>> = None;
    subscribers.retain(|_, sub| {
        if !sub.prefixes.is_empty() && !sub.prefixes.iter().any(|p| tag.starts_with(p.as_str())) {
            return true;
        }
        let ev = event.get_or_insert_with(|| {
            let data = payload::decode(data).unwrap_or(Json::Null);
            Arc::new(Event {
                tag: tag.clone(),
                data,
            })
        });
        match &sub.queue {
            // A closed receiver means the request is gone: drop its subscription.
            Queue::Job(tx) => tx.send(Arc::clone(ev)).is_ok(),
            Queue::Stream(tx) => {
                let text = public.get_or_insert_with(|| redact::public_event(&ev.tag, &ev.data));
                match tx.try_send(Arc::clone(text)) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        crate::log::warn(&format!(
                            "an event stream fell {} events behind (a slow or stalled client): closed",
                            tx.max_capacity()
                        ));
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            }
        }
    });
}

/// Splits a frame (`{"head": …, "body": bin}`) into the tag and the raw data bytes.
pub fn split_frame(frame: &[u8]) -> Option<(String, &[u8])> {
    let body = frame_body(frame)?;
    let at = body.windows(2).position(|w| w == b"\n\n")?;
    let tag = String::from_utf8_lossy(&body[..at]).into_owned();
    Some((tag, &body[at + 2..]))
}

/// Finds the `body` value's bytes inside the frame map without copying it.
fn frame_body(frame: &[u8]) -> Option<&[u8]> {
    let mut pos = 0;
    let entries = map_len(frame, &mut pos)?;
    for _ in 0..entries {
        let key_start = pos;
        let key_len = msgpack_size(&frame[pos..]).ok()??;
        pos += key_len;
        let key = str_value(&frame[key_start..pos]);
        if key == Some(b"body".as_slice()) {
            return bin_or_str_value(&frame[pos..]);
        }
        pos += msgpack_size(&frame[pos..]).ok()??;
    }
    None
}

fn map_len(buf: &[u8], pos: &mut usize) -> Option<usize> {
    let first = *buf.first()?;
    match first {
        0x80..=0x8f => {
            *pos = 1;
            Some(usize::from(first & 0x0f))
        }
        0xde => {
            *pos = 3;
            Some(usize::from(u16::from_be_bytes([
                *buf.get(1)?,
                *buf.get(2)?,
            ])))
        }
        _ => None,
    }
}

/// The payload of a str or bin value at the start of `buf`.
fn bin_or_str_value(buf: &[u8]) -> Option<&[u8]> {
    let (header, len): (usize, usize) = match *buf.first()? {
        b @ 0xa0..=0xbf => (1, usize::from(b & 0x1f)),
        0xc4 | 0xd9 => (2, usize::from(*buf.get(1)?)),
        0xc5 | 0xda => (
            3,
            usize::from(u16::from_be_bytes([*buf.get(1)?, *buf.get(2)?])),
        ),
        0xc6 | 0xdb => (5, be_u32(buf.get(1..5)?) as usize),
        _ => return None,
    };
    buf.get(header..header.checked_add(len)?)
}

fn str_value(buf: &[u8]) -> Option<&[u8]> {
    bin_or_str_value(buf)
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The whole length (length prefix included) of the frame starting `buf` when it is over
/// `max` and its size is already known from its first bytes: the reader skips it. (A bare
/// frame whose size shows only after `max` bytes is still an error, as before.)
pub(crate) fn oversized_frame(buf: &[u8], max: usize) -> Option<usize> {
    let first = *buf.first()?;
    if first & 0xf0 == 0x80 || first == 0xde {
        let size = measure(buf, true).ok()??;
        return (size > max).then_some(size);
    }
    let len = be_u32(buf.get(..4)?) as usize;
    (len > max).then(|| len.saturating_add(4))
}

/// The next complete frame in `buf` and how many bytes it used (prefix included);
/// `Ok(None)` if more bytes are needed; `Err` if the stream cannot be a Salt event stream.
pub fn next_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, String> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first & 0xf0 == 0x80 || first == 0xde {
        // A bare msgpack map (3006.0-3006.25, 3007, 3008).
        return match msgpack_size(buf)? {
            Some(n) if n <= max => Ok(Some((&buf[..n], n))),
            Some(n) => Err(format!("event of {n} bytes is over max_reply_bytes")),
            None if buf.len() > max => Err("event over max_reply_bytes".into()),
            None => Ok(None),
        };
    }
    // A u32 big-endian length, then the map (3006.26+).
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = be_u32(&buf[..4]) as usize;
    if len > max {
        return Err(format!("event of {len} bytes is over max_reply_bytes"));
    }
    Ok(buf.get(4..4 + len).map(|f| (f, 4 + len)))
}

/// Size in bytes of the msgpack value at the start of `buf`: `Ok(None)` if it is cut
/// short, `Err` on a byte that starts no msgpack value anywhere in `buf`. Iterative:
/// nesting costs no stack, and each step consumes a byte, so the work is bounded by `buf`.
pub fn msgpack_size(buf: &[u8]) -> Result<Option<usize>, String> {
    measure(buf, false)
}

/// `msgpack_size`; with `declared`, also the size of a value whose last payload (a str,
/// bin or ext body) is not all in `buf` yet, as its header declares it.
fn measure(buf: &[u8], declared: bool) -> Result<Option<usize>, String> {
    let mut pos = 0usize;
    let mut pending = 1usize;
    while pending > 0 {
        let Some(&b) = buf.get(pos) else {
            return Ok(None);
        };
        pending -= 1;
        let be = |n: usize| -> Option<usize> {
            let bytes = buf.get(pos + 1..pos + 1 + n)?;
            Some(
                bytes
                    .iter()
                    .fold(0usize, |acc, &x| (acc << 8) | usize::from(x)),
            )
        };
        // (header bytes, payload bytes, child values)
        let (head, body, children) = match b {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * usize::from(b & 0x0f)),
            0x90..=0x9f => (1, 0, usize::from(b & 0x0f)),
            0xa0..=0xbf => (1, usize::from(b & 0x1f), 0),
            0xc4 | 0xd9 => match be(1) {
                Some(n) => (2, n, 0),
                None => return Ok(None),
            },
            0xc5 | 0xda => match be(2) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc6 | 0xdb => match be(4) {
                Some(n) => (5, n, 0),
                None => return Ok(None),
            },
            0xc7 => match be(1) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc8 => match be(2) {
                Some(n) => (4, n, 0),
                None => return Ok(None),
            },
            0xc9 => match be(4) {
                Some(n) => (6, n, 0),
                None => return Ok(None),
            },
            0xca => (5, 0, 0),
            0xcb => (9, 0, 0),
            0xcc | 0xd0 => (2, 0, 0),
            0xcd | 0xd1 => (3, 0, 0),
            0xce | 0xd2 => (5, 0, 0),
            0xcf | 0xd3 => (9, 0, 0),
            0xd4 => (3, 0, 0),
            0xd5 => (4, 0, 0),
            0xd6 => (6, 0, 0),
            0xd7 => (10, 0, 0),
            0xd8 => (18, 0, 0),
            0xdc => match be(2) {
                Some(n) => (3, 0, n),
                None => return Ok(None),
            },
            0xdd => match be(4) {
                Some(n) => (5, 0, n),
                None => return Ok(None),
            },
            0xde => match be(2) {
                Some(n) => (3, 0, 2 * n),
                None => return Ok(None),
            },
            0xdf => match be(4) {
                Some(n) => (5, 0, 2 * n),
                None => return Ok(None),
            },
            0xc1 => return Err("byte 0xc1 starts no msgpack value".into()),
        };
        pos = pos.checked_add(head + body).ok_or("size overflow")?;
        pending = pending.checked_add(children).ok_or("size overflow")?;
    }
    Ok((declared || pos <= buf.len()).then_some(pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A frame as the master writes it: `{"head": {}, "body": bin(tag + "\n\n" + data)}`.
    pub(crate) fn frame(tag: &str, data: &Json) -> Vec<u8> {
        let mut body = tag.as_bytes().to_vec();
        body.extend_from_slice(b"\n\n");
        body.extend(payload::encode(data));
        let map = rmpv::Value::Map(vec![
            (rmpv::Value::from("head"), rmpv::Value::Map(vec![])),
            (rmpv::Value::from("body"), rmpv::Value::Binary(body)),
        ]);
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &map).expect("encode");
        out
    }

    #[test]
    fn bare_and_prefixed_frames() {
        let f = frame("salt/job/1/new", &json!({"minions": ["a"]}));
        assert_eq!(f[0], 0x82);
        let mut prefixed = (f.len() as u32).to_be_bytes().to_vec();
        prefixed.extend(&f);
        for stream in [f.clone(), prefixed] {
            for cut in 0..stream.len() {
                assert_eq!(
                    next_frame(&stream[..cut], 1 << 20),
                    Ok(None),
                    "cut at {cut}"
                );
            }
            let (frame, used) = next_frame(&stream, 1 << 20).expect("ok").expect("complete");
            assert_eq!(used, stream.len());
            let (tag, data) = split_frame(frame).expect("split");
            assert_eq!(tag, "salt/job/1/new");
            assert_eq!(
                payload::decode(data).expect("data"),
                json!({"minions": ["a"]})
            );
        }
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors() {
        let f = frame("t", &json!({"x": "y".repeat(100)}));
        assert!(next_frame(&f, 50).is_err());
        assert!(next_frame(&[0, 0, 1, 0], 100).is_err());
        assert!(msgpack_size(&[0xc1]).is_err());
        // A claimed 4-billion-element array in a short buffer is "incomplete", not a hang.
        assert_eq!(msgpack_size(&[0xdd, 0xff, 0xff, 0xff, 0xff, 1]), Ok(None));
    }

    #[test]
    fn sizes_of_every_kind() {
        let v = rmpv::Value::Array(vec![
            rmpv::Value::from(1),
            rmpv::Value::from(-100_000),
            rmpv::Value::from(1.5f64),
            rmpv::Value::from("x".repeat(300)),
            rmpv::Value::Binary(vec![1; 70_000]),
            rmpv::Value::Ext(78, b"20240101T00:00:00.1".to_vec()),
            rmpv::Value::Map(vec![(rmpv::Value::Nil, rmpv::Value::Boolean(true))]),
        ]);
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &v).expect("encode");
        assert_eq!(msgpack_size(&out), Ok(Some(out.len())));
        out.push(0);
        assert_eq!(msgpack_size(&out), Ok(Some(out.len() - 1)));
    }

    /// A job subscription on `reader`, if it is alive.
    fn register(reader: &Arc<Reader>) -> Option<Subscription> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = Reader::register(reader, vec![], &mut Some(Queue::Job(tx)))?;
        Some(Subscription {
            id,
            reader: Arc::clone(reader),
            rx,
        })
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_closed_and_others_go_on() {
        let reader = new_reader();
        let stream = |capacity| {
            let (tx, rx) = mpsc::channel(capacity);
            let id =
                Reader::register(&reader, vec![], &mut Some(Queue::Stream(tx))).expect("alive");
            EventStream {
                id,
                reader: Arc::clone(&reader),
                rx,
            }
        };
        let mut slow = stream(2);
        let mut fast = stream(100);
        let mut job = register(&reader).expect("alive");
        for n in 0..3 {
            dispatch(
                &reader,
                &frame(&format!("t/{n}"), &json!({"password": "pw", "n": n})),
            );
        }
        assert_eq!(slow.recv().await.expect("first").tag, "t/0");
        assert_eq!(slow.recv().await.expect("second").tag, "t/1");
        assert!(
            slow.recv().await.is_none(),
            "closed when the third did not fit"
        );
        for n in 0..3 {
            let ev = fast.recv().await.expect("every event");
            assert_eq!(
                ev.json,
                format!(r#"{{"data":{{"n":{n},"password":"**redacted**"}},"tag":"t/{n}"}}"#)
            );
            assert_eq!(job.recv().await.expect("job event").data["password"], "pw");
        }
        assert_eq!(
            lock(&reader.subscribers).len(),
            2,
            "the slow stream is gone"
        );
    }

    fn new_reader() -> Arc<Reader> {
        Arc::new(Reader {
            alive: AtomicBool::new(true),
            next_id: AtomicU64::new(0),
            subscribers: Mutex::new(HashMap::new()),
        })
    }

    #[tokio::test]
    async fn a_dead_reader_takes_no_new_subscription() {
        let reader = new_reader();
        let mut before = register(&reader).expect("alive: registered");
        reader.shut_down();
        assert!(before.recv().await.is_none(), "ended by the shutdown");
        // Issue 13 item 10: registering after the list was cleared must fail, not hang.
        assert!(register(&reader).is_none());
        assert!(lock(&reader.subscribers).is_empty());
    }

    #[tokio::test]
    async fn an_oversized_event_is_skipped_not_fatal() {
        let small = |tag: &str| frame(tag, &json!({"x": 1}));
        let big = frame("salt/job/1/ret/big", &json!({"x": "y".repeat(5000)}));
        let max = 1000;
        assert_eq!(oversized_frame(&big[..40], max), Some(big.len()));
        assert_eq!(oversized_frame(&small("a"), max), None);
        let mut prefixed = (big.len() as u32).to_be_bytes().to_vec();
        prefixed.extend(&big);
        assert_eq!(oversized_frame(&prefixed[..4], max), Some(prefixed.len()));
        for (huge, prefix) in [(big.clone(), false), (prefixed, true)] {
            let reader = new_reader();
            let mut sub = register(&reader).expect("registered");
            let (mut server, client) = tokio::io::duplex(256);
            let task = tokio::spawn(read_loop(Box::new(client), Arc::clone(&reader), max));
            use tokio::io::AsyncWriteExt;
            let mut stream = Vec::new();
            for part in [small("first"), huge, small("second")] {
                if prefix {
                    stream.extend((part.len() as u32).to_be_bytes());
                    if part.len() > max {
                        // `huge` already carries its prefix.
                        stream.truncate(stream.len() - 4);
                    }
                }
                stream.extend(part);
            }
            let writer = tokio::spawn(async move {
                server.write_all(&stream).await.expect("write");
                server
            });
            assert_eq!(sub.recv().await.expect("first").tag, "first");
            assert_eq!(sub.recv().await.expect("second").tag, "second");
            assert!(reader.alive.load(Ordering::Acquire), "still connected");
            drop(writer.await.expect("writer"));
            task.await.expect("reader task");
            assert!(sub.recv().await.is_none());
        }
    }

    #[tokio::test]
    async fn reader_fans_out_by_prefix_and_ends_subscriptions_on_eof() {
        let (mut server, client) = tokio::io::duplex(1 << 16);
        let reader = Arc::new(Reader {
            alive: AtomicBool::new(true),
            next_id: AtomicU64::new(0),
            subscribers: Mutex::new(HashMap::new()),
        });
        let (tx_a, rx_a) = mpsc::unbounded_channel();
        let (tx_b, rx_b) = mpsc::unbounded_channel();
        lock(&reader.subscribers).insert(
            1,
            Subscriber {
                prefixes: vec!["salt/job/1/".into()],
                queue: Queue::Job(tx_a),
            },
        );
        lock(&reader.subscribers).insert(
            2,
            Subscriber {
                prefixes: vec![],
                queue: Queue::Job(tx_b),
            },
        );
        let mut a = Subscription {
            id: 1,
            reader: Arc::clone(&reader),
            rx: rx_a,
        };
        let mut b = Subscription {
            id: 2,
            reader: Arc::clone(&reader),
            rx: rx_b,
        };
        let task = tokio::spawn(read_loop(Box::new(client), Arc::clone(&reader), 1 << 20));
        use tokio::io::AsyncWriteExt;
        server
            .write_all(&frame("salt/job/2/new", &json!({})))
            .await
            .expect("write");
        server
            .write_all(&frame("salt/job/1/ret/m", &json!({"return": true})))
            .await
            .expect("write");
        drop(server);
        task.await.expect("reader task");
        let got = a.recv().await.expect("event for a");
        assert_eq!(got.tag, "salt/job/1/ret/m");
        assert!(
            a.recv().await.is_none(),
            "subscription ends with the connection"
        );
        assert_eq!(b.recv().await.expect("first").tag, "salt/job/2/new");
        assert_eq!(b.recv().await.expect("second").tag, "salt/job/1/ret/m");
        assert!(!reader.alive.load(Ordering::Acquire));
    }
}
