//! The master event bus: one reader per process, fanning events out to waiting requests.
//!
//! The master pushes every event to every subscriber of `<sock_dir>/master_event_pub.ipc`
//! (or TCP `tcp_master_pub_port` with `ipc_mode: tcp`); filtering is ours. A frame is a
//! msgpack map `{"head": {}, "body": <bin>}`, bare (3006.0-3006.25, 3007, 3008) or after a
//! u32 big-endian length (3006.26+): a first byte 0x82 means bare. The body is
//! `tag + "\n\n" + msgpack(data)`; data is decoded only when some subscription wants the tag.
//!
//! Frames are cut from the byte stream by `event_frame`. A request subscribes *before* it
//! sends its publish or runner call, so no event of its job can be missed. If the
//! connection drops (master restart), every subscription ends and the next `subscribe`
//! connects again.
//!
//! The reading task hands each event to the requests waiting for it, then to a second
//! task that fans it out to the clients' event streams: with 10,000 streams that fan-out
//! takes milliseconds per event, and a synchronous call must not wait behind it for its
//! minions' returns. Should the fan-out fall `stream_queue_events` events behind the bus,
//! every stream has, and all are closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::bus_socket::{BusSocket, BusStream};
use super::error::{SaltError, SaltResult};
use super::event_frame::{FrameBuffer, Piece, split_frame};
use super::payload;
use super::redact::{self, PublicEvent};
use crate::settings::Settings;
use crate::small_channel::{self, SendError};

/// One event from the master bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The tag, e.g. `salt/job/20240101000000000000/ret/web1`.
    pub tag: String,
    /// The event data (a JSON object for every event Salt fires).
    pub data: Json,
}

/// Connects subscriptions to the master event bus; cheap to share.
pub struct EventBus {
    socket: BusSocket,
    max_frame: usize,
    /// How far the stream fan-out may fall behind the bus (`stream_queue_events`).
    fan_out_backlog: usize,
    reader: tokio::sync::Mutex<Option<Arc<Reader>>>,
}

/// The state shared between the reading task, the fan-out task and the subscriptions.
struct Reader {
    alive: AtomicBool,
    next_id: AtomicU64,
    jobs: Mutex<HashMap<u64, JobQueue>>,
    /// Each client's event stream: every event as public JSON text, credentials redacted,
    /// at most the channel's capacity behind; a stream that falls further behind is
    /// closed. Dropping a sender tells its stream, even while its reader is not reading.
    streams: Mutex<HashMap<u64, StreamQueue>>,
    /// `streams.len()`, read by the reading task without taking the lock.
    stream_count: AtomicUsize,
    /// Events read so far on this connection: an event's number is the count before it.
    events_seen: AtomicU64,
}

/// A stream's queue, and the number of the first event it gets: one read off the bus
/// before it opened may still wait in the fan-out's queue, and is not its to see.
struct StreamQueue {
    tx: small_channel::Sender<Arc<PublicEvent>>,
    first: u64,
}

/// A request waiting for its job's events: it reads them all, so the queue need not be
/// bounded (its deadline bounds it).
struct JobQueue {
    prefixes: Vec<String>,
    tx: mpsc::UnboundedSender<Arc<Event>>,
}

/// An event on its way to the streams: the event, its number, and when it was read.
type ForStreams = (Arc<Event>, u64, std::time::Instant);

/// A stream's queue as the bus holds it, and the stream's end of it until the queue is
/// registered.
fn stream_queue(capacity: usize) -> (small_channel::Sender<Arc<PublicEvent>>, StreamEnd) {
    let (tx, rx) = small_channel::channel(capacity);
    (tx, StreamEnd { rx })
}

/// The receiving end of a stream's queue, not yet registered with a reader.
struct StreamEnd {
    rx: small_channel::Receiver<Arc<PublicEvent>>,
}

impl StreamEnd {
    /// The stream, once its queue is registered as `id` with `reader`.
    fn attach(self, id: u64, reader: Arc<Reader>) -> EventStream {
        EventStream {
            id,
            reader,
            rx: self.rx,
        }
    }
}

/// Every event of the bus for one client (`/events`, `/ws`), with every credential field
/// redacted.
pub struct EventStream {
    id: u64,
    reader: Arc<Reader>,
    rx: small_channel::Receiver<Arc<PublicEvent>>,
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
        Arc::new(EventBus {
            socket: BusSocket::publisher(settings),
            max_frame: settings.limits.max_reply_bytes,
            fan_out_backlog: settings.limits.stream_queue_events,
            reader: tokio::sync::Mutex::new(None),
        })
    }

    /// Starts receiving events whose tag starts with any of `prefixes` (empty: all events).
    /// Returns once the bus connection is up, so an event fired afterwards is not missed.
    pub async fn subscribe(&self, prefixes: Vec<String>) -> SaltResult<Subscription> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut job = Some(JobQueue { prefixes, tx });
        let (id, reader) = self
            .register(|reader| Reader::register_job(reader, &mut job))
            .await?;
        Ok(Subscription { id, reader, rx })
    }

    /// Starts a client's stream of every event; it ends when it falls more than
    /// `capacity` events behind, or when the bus connection ends.
    pub async fn stream(&self, capacity: usize) -> SaltResult<EventStream> {
        let (tx, end) = stream_queue(capacity);
        let mut tx = Some(tx);
        let (id, reader) = self
            .register(|reader| Reader::register_stream(reader, &mut tx))
            .await?;
        Ok(end.attach(id, reader))
    }

    /// Registers a subscriber with a live reader (`add` gives its id, or `None` where the
    /// reader died meanwhile).
    async fn register(
        &self,
        mut add: impl FnMut(&Reader) -> Option<u64>,
    ) -> SaltResult<(u64, Arc<Reader>)> {
        // A reader may die between being handed out and the registration; then connect
        // again (once: a bus that drops every new connection is down).
        for _ in 0..2 {
            let reader = self.connected_reader().await?;
            if let Some(id) = add(&reader) {
                return Ok((id, reader));
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
        let reader = Reader::new();
        let streams = fan_out_task(Arc::clone(&reader), self.fan_out_backlog);
        tokio::spawn(read_loop(
            stream,
            Arc::clone(&reader),
            self.max_frame,
            streams,
        ));
        *slot = Some(Arc::clone(&reader));
        Ok(reader)
    }

    async fn connect(&self) -> SaltResult<Box<dyn BusStream>> {
        self.socket
            .connect()
            .await
            .map_err(|e| self.connect_error(&e))
    }

    /// A clear error for the caller; the path goes only to the log.
    fn connect_error(&self, e: &std::io::Error) -> SaltError {
        if matches!(self.socket, BusSocket::Absent) {
            return BusSocket::absent_error();
        }
        crate::log!(
            error,
            "cannot connect to the master event bus {}: {e}",
            self.socket
        );
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
    fn new() -> Arc<Reader> {
        Arc::new(Reader {
            alive: AtomicBool::new(true),
            next_id: AtomicU64::new(0),
            jobs: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            stream_count: AtomicUsize::new(0),
            events_seen: AtomicU64::new(0),
        })
    }

    /// Adds a job's subscription, unless the connection is already gone: liveness is
    /// checked under the same lock the dying reader clears the list under, so a
    /// subscription is either ended by `shut_down` or never registered.
    fn register_job(&self, job: &mut Option<JobQueue>) -> Option<u64> {
        let mut jobs = lock(&self.jobs);
        if !self.alive.load(Ordering::Acquire) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        jobs.insert(id, job.take()?);
        Some(id)
    }

    /// Adds a stream's queue, on the same terms (`shut_down` clears the streams after it
    /// marked the reader dead).
    fn register_stream(
        &self,
        tx: &mut Option<small_channel::Sender<Arc<PublicEvent>>>,
    ) -> Option<u64> {
        let mut streams = lock(&self.streams);
        if !self.alive.load(Ordering::Acquire) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let first = self.events_seen.load(Ordering::Acquire);
        streams.insert(
            id,
            StreamQueue {
                tx: tx.take()?,
                first,
            },
        );
        self.stream_count.store(streams.len(), Ordering::Release);
        Some(id)
    }

    /// Removes a stream's queue.
    fn remove_stream(&self, id: u64) {
        let mut streams = lock(&self.streams);
        streams.remove(&id);
        self.stream_count.store(streams.len(), Ordering::Release);
    }

    /// Closes every stream (their `recv` gives `None`); how many there were.
    fn close_streams(&self) -> usize {
        let mut streams = lock(&self.streams);
        let closed = streams.len();
        streams.clear();
        self.stream_count.store(0, Ordering::Release);
        closed
    }

    /// Marks the connection gone and ends every subscription (their `recv` gives `None`).
    fn shut_down(&self) {
        let mut jobs = lock(&self.jobs);
        self.alive.store(false, Ordering::Release);
        jobs.clear();
        drop(jobs);
        self.close_streams();
    }
}

impl Subscription {
    /// Replaces the tag prefixes this subscription receives from now on.
    pub fn narrow(&self, prefixes: Vec<String>) {
        if let Some(s) = lock(&self.reader.jobs).get_mut(&self.id) {
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
        lock(&self.reader.jobs).remove(&self.id);
    }
}

impl EventStream {
    /// The next event, redacted; `None` once the stream was closed (it fell
    /// behind, or the bus connection is gone).
    pub async fn recv(&self) -> Option<Arc<PublicEvent>> {
        self.rx.recv().await
    }

    /// An event that has already arrived, without waiting.
    pub fn try_recv(&self) -> Option<Arc<PublicEvent>> {
        self.rx.try_recv()
    }

    /// Resolves while this stream's queue holds at least half its capacity.
    pub async fn half_full(&self) {
        self.rx.half_full().await;
    }

    /// Resolves once the bus has closed this stream (it fell behind, or the bus
    /// connection is gone), whether or not its events were read.
    pub async fn closed(&self) {
        self.rx.producer_gone().await;
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.reader.remove_stream(self.id);
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads frames until the connection ends, dispatching each event to its subscribers
/// (the streams' through `streams`, the fan-out task's queue).
async fn read_loop(
    mut stream: Box<dyn AsyncRead + Send + Unpin>,
    reader: Arc<Reader>,
    max: usize,
    streams: mpsc::Sender<ForStreams>,
) {
    let mut frames = FrameBuffer::new(max);
    let outcome = loop {
        let cut = frames.drain(|piece| match piece {
            Piece::Frame(frame) => {
                if let Some(event) = dispatch(&reader, frame) {
                    hand_to_streams(&reader, &streams, event);
                }
            }
            // One huge event must not close the bus for every request in flight.
            Piece::Skipped(total) => crate::log!(
                warn,
                "skipped an event of {total} bytes (over max_reply_bytes)"
            ),
        });
        if let Err(e) = cut {
            break e;
        }
        match stream.read_buf(frames.buffer()).await {
            Ok(0) => break "the master closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    reader.shut_down();
    crate::log!(warn, "master event bus connection lost: {outcome}");
}

/// Queues an event for the fan-out task; if that is a whole backlog behind, every stream
/// is, and all are closed.
fn hand_to_streams(reader: &Reader, streams: &mpsc::Sender<ForStreams>, event: ForStreams) {
    if let Err(mpsc::error::TrySendError::Full(_)) = streams.try_send(event) {
        let closed = reader.close_streams();
        STREAMS_FELL_BEHIND.fetch_add(closed as u64, Ordering::Relaxed);
        crate::log!(
            warn,
            "the event streams fell {} events behind the bus (salt-fcgi could not keep up): \
             closed all {closed}",
            streams.max_capacity()
        );
    }
}

/// Starts the task that fans events out to the streams; its queue holds `backlog` events.
fn fan_out_task(reader: Arc<Reader>, backlog: usize) -> mpsc::Sender<ForStreams> {
    let (tx, mut rx) = mpsc::channel::<ForStreams>(backlog.max(1));
    tokio::spawn(async move {
        while let Some((event, number, read_at)) = rx.recv().await {
            fan_out(&reader, &event, number, read_at);
        }
    });
    tx
}

/// Events read from the bus by this process (`/metrics`).
static EVENTS_READ: AtomicU64 = AtomicU64::new(0);
/// Event streams this process closed for falling behind (`/metrics`).
static STREAMS_FELL_BEHIND: AtomicU64 = AtomicU64::new(0);

/// Events read from the master bus by this process so far.
pub(crate) fn events_read() -> u64 {
    EVENTS_READ.load(Ordering::Relaxed)
}

/// Event streams this process closed so far because their client fell behind.
pub(crate) fn streams_fell_behind() -> u64 {
    STREAMS_FELL_BEHIND.load(Ordering::Relaxed)
}

/// Decodes one frame and hands the event to every job subscription that wants its tag;
/// the event for the streams, if there are any.
fn dispatch(reader: &Reader, frame: &[u8]) -> Option<ForStreams> {
    EVENTS_READ.fetch_add(1, Ordering::Relaxed);
    let number = reader.events_seen.fetch_add(1, Ordering::AcqRel);
    let read_at = std::time::Instant::now();
    let Some((tag, data)) = split_frame(frame) else {
        crate::log::warn("ignored a malformed event-bus frame");
        return None;
    };
    let mut event: Option<Arc<Event>> = None;
    let decoded = |event: &mut Option<Arc<Event>>| {
        Arc::clone(event.get_or_insert_with(|| {
            let data = payload::decode(data).unwrap_or(Json::Null);
            Arc::new(Event {
                tag: tag.clone(),
                data,
            })
        }))
    };
    lock(&reader.jobs).retain(|_, job| {
        if !job.prefixes.is_empty() && !job.prefixes.iter().any(|p| tag.starts_with(p.as_str())) {
            return true;
        }
        // A closed receiver means the request is gone: drop its subscription.
        job.tx.send(decoded(&mut event)).is_ok()
    });
    (reader.stream_count.load(Ordering::Acquire) > 0)
        .then(|| (decoded(&mut event), number, read_at))
}

/// Hands event `number`, as public text, to every stream opened before it was read;
/// closes those it does not fit.
fn fan_out(reader: &Reader, event: &Event, number: u64, read_at: std::time::Instant) {
    let public = redact::public_event(&event.tag, &event.data, read_at);
    let mut streams = lock(&reader.streams);
    streams.retain(|_, StreamQueue { tx, first }| {
        if number < *first {
            return true;
        }
        stream_gets(tx, &public)
    });
    reader.stream_count.store(streams.len(), Ordering::Release);
}

/// Queues an event for one stream; false where the stream is to go (it fell behind, or
/// its client left).
fn stream_gets(tx: &small_channel::Sender<Arc<PublicEvent>>, public: &Arc<PublicEvent>) -> bool {
    match tx.try_send(Arc::clone(public)) {
        Ok(()) => true,
        Err(SendError::Full) => {
            STREAMS_FELL_BEHIND.fetch_add(1, Ordering::Relaxed);
            crate::log!(
                warn,
                "an event stream fell {} events behind (a slow or stalled client): closed",
                tx.capacity()
            );
            false
        }
        Err(SendError::Closed) => false,
    }
}

/// A stream of `capacity` events registered with `reader` (alive), for tests.
#[cfg(test)]
fn open_stream(reader: &Arc<Reader>, capacity: usize) -> EventStream {
    let (tx, end) = stream_queue(capacity);
    let id = reader
        .register_stream(&mut Some(tx))
        .expect("the reader is alive");
    end.attach(id, Arc::clone(reader))
}

/// A stream fed by hand, for tests of what consumes streams: the stream, and a function
/// that puts one event on its bus.
#[cfg(test)]
pub(crate) fn test_stream(capacity: usize) -> (EventStream, impl Fn(&str, &Json)) {
    let bus = Reader::new();
    let stream = open_stream(&bus, capacity);
    let fire = move |tag: &str, data: &Json| {
        deliver(&bus, &super::event_frame::tests::frame(tag, data));
    };
    (stream, fire)
}

/// What the two tasks do with one frame, done in order at once (for tests).
#[cfg(test)]
fn deliver(reader: &Reader, frame: &[u8]) {
    if let Some((event, number, read_at)) = dispatch(reader, frame) {
        fan_out(reader, &event, number, read_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salt::event_frame::oversized_frame;
    use crate::salt::event_frame::tests::frame;
    use serde_json::json;

    /// A job subscription on `reader`, if it is alive.
    fn register(reader: &Arc<Reader>) -> Option<Subscription> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = reader.register_job(&mut Some(JobQueue {
            prefixes: vec![],
            tx,
        }))?;
        Some(Subscription {
            id,
            reader: Arc::clone(reader),
            rx,
        })
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_closed_and_others_go_on() {
        let reader = Reader::new();
        let slow = open_stream(&reader, 2);
        let slow_closed = slow.closed();
        tokio::pin!(slow_closed);
        let fast = open_stream(&reader, 100);
        let fast_closed = fast.closed();
        tokio::pin!(fast_closed);
        let mut job = register(&reader).expect("alive");
        for n in 0..3 {
            deliver(
                &reader,
                &frame(&format!("t/{n}"), &json!({"password": "pw", "n": n})),
            );
        }
        // Closed as soon as the third did not fit, before anything was read.
        tokio::time::timeout(std::time::Duration::from_secs(5), &mut slow_closed)
            .await
            .expect("the slow stream knows it was closed");
        let open = tokio::time::timeout(std::time::Duration::from_millis(10), &mut fast_closed);
        assert!(open.await.is_err(), "the fast one is open");
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
                format!(r#"{{"data":{{"password":"**redacted**","n":{n}}},"tag":"t/{n}"}}"#)
            );
            assert_eq!(job.recv().await.expect("job event").data["password"], "pw");
        }
        assert_eq!(
            (lock(&reader.streams).len(), lock(&reader.jobs).len()),
            (1, 1),
            "the slow stream is gone"
        );
        assert_eq!(reader.stream_count.load(Ordering::Acquire), 1);
    }

    #[tokio::test]
    async fn streams_are_fanned_out_apart_and_closed_when_the_fan_out_falls_behind() {
        let reader = Reader::new();
        let (a, b) = (open_stream(&reader, 100), open_stream(&reader, 100));
        let mut job = register(&reader).expect("alive");
        // A fan-out task that has not caught up: its queue holds one event.
        let (streams, mut pending) = mpsc::channel(1);
        for n in 0..2 {
            let frame = frame(&format!("t/{n}"), &json!({"n": n}));
            if let Some(event) = dispatch(&reader, &frame) {
                hand_to_streams(&reader, &streams, event);
            }
        }
        // The job had both at once, the streams neither yet.
        assert_eq!(job.recv().await.expect("job").tag, "t/0");
        assert_eq!(job.recv().await.expect("job").tag, "t/1");
        assert!(a.try_recv().is_none());
        // The second did not fit the fan-out's queue: every stream fell behind.
        a.closed().await;
        b.closed().await;
        assert!(a.recv().await.is_none() && b.recv().await.is_none());
        assert_eq!(reader.stream_count.load(Ordering::Acquire), 0);
        let (queued, number, _) = pending.recv().await.expect("the first is queued");
        assert_eq!(number, 0);
        assert_eq!(queued.tag, "t/0");
        // With no stream left, the reader hands nothing to the fan-out.
        assert!(dispatch(&reader, &frame("t/2", &json!({}))).is_none());
    }

    #[tokio::test]
    async fn a_stream_gets_no_event_read_before_it_opened() {
        let reader = Reader::new();
        let early = open_stream(&reader, 10);
        // Read while only `early` was open, and still waiting for the fan-out ...
        let before = dispatch(&reader, &frame("t/before", &json!({}))).expect("for streams");
        let late = open_stream(&reader, 10);
        let after = dispatch(&reader, &frame("t/after", &json!({}))).expect("for streams");
        // ... which then delivers both.
        for (event, number, read_at) in [before, after] {
            fan_out(&reader, &event, number, read_at);
        }
        assert_eq!(early.try_recv().expect("first").tag, "t/before");
        assert_eq!(early.try_recv().expect("second").tag, "t/after");
        assert_eq!(late.try_recv().expect("only the later").tag, "t/after");
        assert!(late.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_dead_reader_takes_no_new_subscription() {
        let reader = Reader::new();
        let mut before = register(&reader).expect("alive: registered");
        reader.shut_down();
        assert!(before.recv().await.is_none(), "ended by the shutdown");
        // Issue 13 item 10: registering after the list was cleared must fail, not hang.
        assert!(register(&reader).is_none());
        assert!(
            reader
                .register_stream(&mut Some(stream_queue(1).0))
                .is_none()
        );
        assert!(lock(&reader.jobs).is_empty() && lock(&reader.streams).is_empty());
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
            let reader = Reader::new();
            let mut sub = register(&reader).expect("registered");
            let (mut server, client) = tokio::io::duplex(256);
            let streams = fan_out_task(Arc::clone(&reader), 10);
            let task = tokio::spawn(read_loop(
                Box::new(client),
                Arc::clone(&reader),
                max,
                streams,
            ));
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
        let reader = Reader::new();
        let (tx_a, rx_a) = mpsc::unbounded_channel();
        let (tx_b, rx_b) = mpsc::unbounded_channel();
        lock(&reader.jobs).insert(
            1,
            JobQueue {
                prefixes: vec!["salt/job/1/".into()],
                tx: tx_a,
            },
        );
        lock(&reader.jobs).insert(
            2,
            JobQueue {
                prefixes: vec![],
                tx: tx_b,
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
        let streams = fan_out_task(Arc::clone(&reader), 10);
        let task = tokio::spawn(read_loop(
            Box::new(client),
            Arc::clone(&reader),
            1 << 20,
            streams,
        ));
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
