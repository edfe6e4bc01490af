//! A response body that arrives over time (`/events`, `/ws`): chunks from a producer task,
//! and a signal that the producer has ended.
//!
//! A client that stops reading leaves the front end's write pending forever, out of reach
//! of the producer's token checks, the slow-client rule and SIGTERM. So the producer's end
//! is a signal of its own: once it has ended, whatever is still being written gets
//! `stream_end_grace` more, and then the front end abandons the connection
//! ([`BodyStream::bounded`], [`ProducerEnd::and_grace`]). The chunks travel in a
//! [`small_channel`](crate::small_channel), since every open stream holds one.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::small_channel::{self, ProducerGone, Receiver, Sender};

/// The producer's half: dropping it ends the body.
pub(crate) type BodySender = Sender<Bytes>;

/// The front end's half: the chunks, and when the producer ended.
#[derive(Debug)]
pub struct BodyStream {
    chunks: ChunkReceiver,
    end: ProducerEnd,
    /// When a write must give up: set once the producer has ended.
    give_up_at: Option<Instant>,
}

/// The chunks of a [`BodyStream`]; dropping it tells the producer the client is gone.
pub(crate) type ChunkReceiver = Receiver<Bytes>;

/// Resolves once the producer of a [`BodyStream`] has ended.
#[derive(Debug)]
pub(crate) struct ProducerEnd {
    gone: ProducerGone<Bytes>,
    grace: Duration,
}

/// A body stream of at most `capacity` chunks in flight; writes outlive the producer by
/// at most `grace`.
pub(crate) fn channel(capacity: usize, grace: Duration) -> (BodySender, BodyStream) {
    let (tx, rx) = small_channel::channel(capacity);
    let stream = BodyStream {
        end: ProducerEnd {
            gone: rx.end_watch(),
            grace,
        },
        chunks: rx,
        give_up_at: None,
    };
    (tx, stream)
}

impl BodyStream {
    /// The next chunk; `None` once the producer has ended and every chunk was taken.
    pub async fn next(&mut self) -> Option<Bytes> {
        self.chunks.recv().await
    }

    /// A chunk that is already waiting.
    pub fn try_next(&mut self) -> Option<Bytes> {
        self.chunks.try_recv()
    }

    /// Runs `work` (a write to the client); `None` when it was abandoned because the
    /// producer ended more than the grace period ago and the client still had not taken it.
    pub async fn bounded<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        if self.give_up_at.is_none() {
            tokio::select! {
                done = &mut work => return Some(done),
                () = self.end.gone.wait() => {
                    self.give_up_at = Some(Instant::now() + self.end.grace);
                }
            }
        }
        let deadline = self.give_up_at.unwrap_or_else(Instant::now);
        tokio::time::timeout_at(deadline, work).await.ok()
    }

    /// The chunks and the end signal apart, for a front end whose writes happen elsewhere
    /// (hyper writes the body itself; the connection task watches the end).
    pub(crate) fn into_parts(self) -> (ChunkReceiver, ProducerEnd) {
        (self.chunks, self.end)
    }
}

impl ProducerEnd {
    /// Waits until the producer has ended, then the grace period.
    pub(crate) async fn and_grace(self) {
        self.gone.wait().await;
        tokio::time::sleep(self.grace).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Poll, Waker};

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_is_abandoned_only_after_the_producer_ends() {
        let (tx, mut body) = channel(4, Duration::from_secs(2));
        assert!(tx.try_send(Bytes::from_static(b"a")).is_ok());
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

    #[tokio::test(start_paused = true)]
    async fn the_end_is_seen_apart_from_the_chunks() {
        let (tx, body) = channel(1, Duration::from_secs(3));
        let (chunks, end) = body.into_parts();
        assert!(tx.try_send(Bytes::from_static(b"a")).is_ok());
        let start = Instant::now();
        let watched = tokio::spawn(end.and_grace());
        drop(tx);
        watched.await.expect("end");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        // The chunk sent before the end is still there, then the body ends.
        let cx = Context::from_waker(Waker::noop());
        let a = Bytes::from_static(b"a");
        assert_eq!(chunks.poll_recv(&cx), Poll::Ready(Some(a)));
        assert_eq!(chunks.poll_recv(&cx), Poll::Ready(None));
    }
}
