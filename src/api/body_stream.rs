//! A response body that arrives over time (`/events`, `/ws`): chunks from a producer task,
//! and a signal that the producer has ended.
//!
//! A client that stops reading leaves the front end's write pending forever, out of reach
//! of the producer's token checks, the slow-client rule and SIGTERM. So the producer's end
//! is a signal of its own: once it has ended, whatever is still being written gets
//! `stream_end_grace` more, and then the front end abandons the connection
//! ([`BodyStream::bounded`], [`ProducerEnd::and_grace`]).
//!
//! The channel is a small one of its own, because every open stream holds one: a mutex
//! over a queue that keeps no buffer while empty, and one waker per kind of waiter, about
//! 150 bytes. A tokio `mpsc` (its cache-padded halves and first block of 32 slots) plus a
//! `oneshot` for the end held about 1.5 KB per stream (heaptrack, 10,000 streams).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// What the two halves share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Chunks the front end has not taken yet (at most `capacity`).
    chunks: VecDeque<Bytes>,
    capacity: usize,
    producer_gone: bool,
    consumer_gone: bool,
    /// The front end, waiting for a chunk.
    consumer: Option<Waker>,
    /// The producer, waiting for room.
    room: Option<Waker>,
    /// The producer, waiting for the front end to go.
    closed: Option<Waker>,
    /// Whoever waits for the producer's end ([`ProducerEnd`]).
    end: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps `cx`'s waker in `slot` (not cloned again when it is the same task's).
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// Wakes the taken wakers, outside the lock.
fn wake(wakers: impl IntoIterator<Item = Option<Waker>>) {
    wakers.into_iter().flatten().for_each(Waker::wake);
}

/// The producer's half: dropping it ends the body.
#[derive(Debug)]
pub(crate) struct BodySender {
    shared: Arc<Shared>,
}

/// The front end's half: the chunks, and when the producer ended.
#[derive(Debug)]
pub struct BodyStream {
    chunks: ChunkReceiver,
    end: ProducerEnd,
    /// When a write must give up: set once the producer has ended.
    give_up_at: Option<Instant>,
}

/// The chunks of a [`BodyStream`]; dropping it tells the producer the client is gone.
#[derive(Debug)]
pub struct ChunkReceiver {
    shared: Arc<Shared>,
}

/// Resolves once the producer of a [`BodyStream`] has ended.
#[derive(Debug)]
pub struct ProducerEnd {
    shared: Arc<Shared>,
    grace: Duration,
}

/// A body stream of at most `capacity` chunks in flight; writes outlive the producer by
/// at most `grace`.
pub(crate) fn channel(capacity: usize, grace: Duration) -> (BodySender, BodyStream) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            capacity: capacity.max(1),
            ..State::default()
        }),
    });
    let stream = BodyStream {
        chunks: ChunkReceiver {
            shared: Arc::clone(&shared),
        },
        end: ProducerEnd {
            shared: Arc::clone(&shared),
            grace,
        },
        give_up_at: None,
    };
    (BodySender { shared }, stream)
}

impl BodySender {
    /// Whether a chunk fits now (false also once the front end is gone).
    pub(crate) fn has_room(&self) -> bool {
        let state = self.shared.lock();
        !state.consumer_gone && state.chunks.len() < state.capacity
    }

    /// Waits until a chunk fits (true) or the front end is gone (false).
    pub(crate) async fn room(&self) -> bool {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.consumer_gone {
                Poll::Ready(false)
            } else if state.chunks.len() < state.capacity {
                Poll::Ready(true)
            } else {
                register(&mut state.room, cx);
                Poll::Pending
            }
        })
        .await
    }

    /// Queues `chunk` if it fits; false when the channel is full or the front end is gone.
    pub(crate) fn try_send(&self, chunk: Bytes) -> bool {
        let mut state = self.shared.lock();
        if state.consumer_gone || state.chunks.len() >= state.capacity {
            return false;
        }
        state.chunks.push_back(chunk);
        let consumer = state.consumer.take();
        drop(state);
        wake([consumer]);
        true
    }

    /// Resolves once the front end is gone (the client left).
    pub(crate) async fn closed(&self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.consumer_gone {
                Poll::Ready(())
            } else {
                register(&mut state.closed, cx);
                Poll::Pending
            }
        })
        .await;
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.producer_gone = true;
        let woken = [state.consumer.take(), state.end.take()];
        drop(state);
        wake(woken);
    }
}

impl ChunkReceiver {
    /// The next chunk, or `None` once the producer has ended and every chunk was taken.
    pub fn poll_next(&self, cx: &Context<'_>) -> Poll<Option<Bytes>> {
        let mut state = self.shared.lock();
        if state.chunks.is_empty() {
            if state.producer_gone {
                return Poll::Ready(None);
            }
            register(&mut state.consumer, cx);
            return Poll::Pending;
        }
        Poll::Ready(Self::take(state))
    }

    /// A chunk that is already waiting.
    fn try_next(&self) -> Option<Bytes> {
        Self::take(self.shared.lock())
    }

    /// Takes the first chunk and wakes a producer waiting for room; an emptied queue lets
    /// its buffer go (an idle stream holds none).
    fn take(mut state: MutexGuard<'_, State>) -> Option<Bytes> {
        let chunk = state.chunks.pop_front()?;
        if state.chunks.is_empty() {
            state.chunks = VecDeque::new();
        }
        let room = state.room.take();
        drop(state);
        wake([room]);
        Some(chunk)
    }
}

impl Drop for ChunkReceiver {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.consumer_gone = true;
        state.chunks.clear();
        let woken = [state.room.take(), state.closed.take()];
        drop(state);
        wake(woken);
    }
}

impl BodyStream {
    /// The next chunk; `None` once the producer has ended and every chunk was taken.
    pub async fn next(&mut self) -> Option<Bytes> {
        poll_fn(|cx| self.chunks.poll_next(cx)).await
    }

    /// A chunk that is already waiting.
    pub fn try_next(&mut self) -> Option<Bytes> {
        self.chunks.try_next()
    }

    /// Runs `work` (a write to the client); `None` when it was abandoned because the
    /// producer ended more than the grace period ago and the client still had not taken it.
    pub async fn bounded<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        if self.give_up_at.is_none() {
            tokio::select! {
                done = &mut work => return Some(done),
                () = self.end.ended() => {
                    self.give_up_at = Some(Instant::now() + self.end.grace);
                }
            }
        }
        let deadline = self.give_up_at.unwrap_or_else(Instant::now);
        tokio::time::timeout_at(deadline, work).await.ok()
    }

    /// The chunks and the end signal apart, for a front end whose writes happen elsewhere
    /// (hyper writes the body itself; the connection task watches the end).
    pub fn into_parts(self) -> (ChunkReceiver, ProducerEnd) {
        (self.chunks, self.end)
    }
}

impl ProducerEnd {
    /// Resolves once the producer has ended.
    async fn ended(&self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.producer_gone {
                Poll::Ready(())
            } else {
                register(&mut state.end, cx);
                Poll::Pending
            }
        })
        .await;
    }

    /// Waits until the producer has ended, then the grace period.
    pub async fn and_grace(self) {
        self.ended().await;
        tokio::time::sleep(self.grace).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_is_abandoned_only_after_the_producer_ends() {
        let (tx, mut body) = channel(4, Duration::from_secs(2));
        assert!(tx.try_send(Bytes::from_static(b"a")));
        assert_eq!(body.next().await.as_deref(), Some(&b"a"[..]));
        // A write that never completes, while the producer lives: still waiting at 60 s.
        let stalled = body.bounded(std::future::pending::<()>());
        let waited = tokio::time::timeout(Duration::from_secs(60), stalled).await;
        assert!(waited.is_err(), "no give-up while the producer lives");
        // The producer ends: the write gets the grace period, then is abandoned.
        drop(tx);
        let started = Instant::now();
        assert_eq!(body.bounded(std::future::pending::<()>()).await, None);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        // A write that completes is not cut short; later writes share the same deadline.
        assert_eq!(body.bounded(async { 5 }).await, Some(5));
        assert_eq!(body.next().await, None);
    }

    #[tokio::test]
    async fn a_full_channel_waits_for_the_front_end_and_keeps_order() {
        let (tx, mut body) = channel(2, Duration::from_secs(1));
        assert!(tx.try_send(Bytes::from_static(b"1")) && tx.try_send(Bytes::from_static(b"2")));
        assert!(!tx.has_room() && !tx.try_send(Bytes::from_static(b"x")));
        let producer = tokio::spawn(async move {
            for chunk in [&b"3"[..], b"4", b"5"] {
                assert!(tx.room().await, "the front end is there");
                assert!(tx.try_send(Bytes::from_static(chunk)));
            }
        });
        let mut got = Vec::new();
        while let Some(chunk) = body.next().await {
            got.push(chunk);
        }
        producer.await.expect("producer");
        assert_eq!(got, ["1", "2", "3", "4", "5"].map(Bytes::from));
        assert_eq!(body.try_next(), None);
    }

    #[tokio::test]
    async fn the_producer_learns_that_the_front_end_left() {
        let (tx, body) = channel(1, Duration::from_secs(1));
        assert!(tx.try_send(Bytes::from_static(b"a")));
        let waiting = tokio::spawn(async move {
            let room = tx.room().await;
            tx.closed().await;
            (room, tx.has_room(), tx.try_send(Bytes::from_static(b"b")))
        });
        tokio::task::yield_now().await;
        drop(body);
        let seen = tokio::time::timeout(Duration::from_secs(60), waiting).await;
        let seen = seen.expect("the producer was woken").expect("producer");
        assert_eq!(seen, (false, false, false));
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_is_seen_apart_from_the_chunks() {
        let (tx, body) = channel(1, Duration::from_secs(3));
        let (chunks, end) = body.into_parts();
        assert!(tx.try_send(Bytes::from_static(b"a")));
        let start = Instant::now();
        let watched = tokio::spawn(end.and_grace());
        drop(tx);
        watched.await.expect("end");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        // The chunk sent before the end is still there, then the body ends.
        let waker = Waker::noop();
        let cx = Context::from_waker(waker);
        assert_eq!(
            chunks.poll_next(&cx),
            Poll::Ready(Some(Bytes::from_static(b"a")))
        );
        assert_eq!(chunks.poll_next(&cx), Poll::Ready(None));
    }
}
