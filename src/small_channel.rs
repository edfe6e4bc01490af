//! A bounded channel from one producer to one consumer, small enough that every open event
//! stream holds two: the bus reader's queue for the stream, and the stream's body to its
//! front end.
//!
//! It is a mutex over a queue that keeps no buffer while empty, and one waker per kind of
//! waiter: about 160 bytes. A tokio `mpsc` (cache-padded halves, a first block of 32
//! slots) with a `oneshot` for the producer's end and a `Notify` held 0.9 to 1.9 KB per
//! stream (heaptrack, 10,000 streams). Besides sending and receiving it tells each side
//! when the other has gone, and the consumer when the queue is half full.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// What the halves share.
#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    producer_gone: bool,
    consumer_gone: bool,
    /// The consumer, waiting for an item.
    item: Option<Waker>,
    /// The consumer, waiting for the queue to be half full.
    half: Option<Waker>,
    /// Whoever waits for the producer's end.
    end: Option<Waker>,
    /// The producer, waiting for room.
    room: Option<Waker>,
    /// The producer, waiting for the consumer to go.
    closed: Option<Waker>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> State<T> {
    fn is_half_full(&self) -> bool {
        self.items.len() * 2 >= self.capacity
    }
}

/// Keeps `cx`'s waker in `slot` (not cloned again when it is the same task's).
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// Wakes the taken wakers (after the lock is released).
fn wake<const N: usize>(wakers: [Option<Waker>; N]) {
    wakers.into_iter().flatten().for_each(Waker::wake);
}

/// Waits until `ready` says so, registering in the slot `waiting` picks meanwhile.
async fn wait_for<T, R>(
    shared: &Shared<T>,
    ready: impl Fn(&State<T>) -> Option<R>,
    waiting: impl Fn(&mut State<T>) -> &mut Option<Waker>,
) -> R {
    poll_fn(|cx| {
        let mut state = shared.lock();
        if let Some(r) = ready(&state) {
            return Poll::Ready(r);
        }
        register(waiting(&mut state), cx);
        Poll::Pending
    })
    .await
}

/// Why an item was not sent.
#[derive(Debug, PartialEq)]
pub(crate) enum SendError {
    /// The queue holds `capacity` items.
    Full,
    /// The consumer is gone.
    Closed,
}

/// The producer's half; dropping it ends the channel (after its items).
#[derive(Debug)]
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The consumer's half; dropping it tells the producer.
#[derive(Debug)]
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// Watches the producer's end apart from the items (another task may hold it).
#[derive(Debug)]
pub(crate) struct ProducerGone<T> {
    shared: Arc<Shared<T>>,
}

/// A channel of at most `capacity` items (at least one).
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            producer_gone: false,
            consumer_gone: false,
            item: None,
            half: None,
            end: None,
            room: None,
            closed: None,
        }),
    });
    let receiver = Receiver {
        shared: Arc::clone(&shared),
    };
    (Sender { shared }, receiver)
}

impl<T> Sender<T> {
    /// How many items the channel holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.lock().capacity
    }

    /// Waits until an item fits (true) or the consumer is gone (false).
    pub(crate) async fn room(&self) -> bool {
        let ready = |s: &State<T>| {
            (s.consumer_gone || s.items.len() < s.capacity).then_some(!s.consumer_gone)
        };
        wait_for(&self.shared, ready, |s| &mut s.room).await
    }

    /// Queues `item` unless the channel is full or the consumer is gone.
    pub(crate) fn try_send(&self, item: T) -> Result<(), SendError> {
        let mut state = self.shared.lock();
        if state.consumer_gone {
            return Err(SendError::Closed);
        }
        if state.items.len() >= state.capacity {
            return Err(SendError::Full);
        }
        state.items.push_back(item);
        let half = if state.is_half_full() {
            state.half.take()
        } else {
            None
        };
        let item = state.item.take();
        drop(state);
        wake([item, half]);
        Ok(())
    }

    /// Sends items taken from `next` while there is room, under one lock and with one
    /// wake-up of the consumer, which so sees them all at once: how many were sent, and
    /// whether `next` ran out (rather than the room).
    pub(crate) fn fill(
        &self,
        mut next: impl FnMut() -> Option<T>,
    ) -> Result<(usize, bool), SendError> {
        let mut state = self.shared.lock();
        if state.consumer_gone {
            return Err(SendError::Closed);
        }
        let mut sent = 0;
        let ran_out = loop {
            if state.items.len() >= state.capacity {
                break false;
            }
            let Some(item) = next() else {
                break true;
            };
            state.items.push_back(item);
            sent += 1;
        };
        let half = if state.is_half_full() {
            state.half.take()
        } else {
            None
        };
        let item = if sent > 0 { state.item.take() } else { None };
        drop(state);
        wake([item, half]);
        Ok((sent, ran_out))
    }

    /// Resolves once the consumer is gone.
    pub(crate) async fn closed(&self) {
        wait_for(
            &self.shared,
            |s| s.consumer_gone.then_some(()),
            |s| &mut s.closed,
        )
        .await;
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.producer_gone = true;
        let woken = [state.item.take(), state.end.take(), state.half.take()];
        drop(state);
        wake(woken);
    }
}

impl<T> Receiver<T> {
    /// The next item, or `None` once the producer is gone and every item was taken.
    pub(crate) fn poll_recv(&self, cx: &Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if state.items.is_empty() {
            if state.producer_gone {
                return Poll::Ready(None);
            }
            register(&mut state.item, cx);
            return Poll::Pending;
        }
        Poll::Ready(Self::take(state))
    }

    /// The next item, waiting for it.
    pub(crate) async fn recv(&self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// An item that is already waiting.
    pub(crate) fn try_recv(&self) -> Option<T> {
        Self::take(self.shared.lock())
    }

    /// Takes the first item and wakes a producer waiting for room; an emptied queue lets
    /// its buffer go (an idle channel holds none).
    fn take(mut state: MutexGuard<'_, State<T>>) -> Option<T> {
        let item = state.items.pop_front()?;
        if state.items.is_empty() {
            state.items = VecDeque::new();
        }
        let room = state.room.take();
        drop(state);
        wake([room]);
        Some(item)
    }

    /// Resolves while the queue holds at least half its capacity (or the producer is gone).
    pub(crate) async fn half_full(&self) {
        let ready = |s: &State<T>| (s.producer_gone || s.is_half_full()).then_some(());
        wait_for(&self.shared, ready, |s| &mut s.half).await;
    }

    /// Resolves once the producer is gone, whether or not its items were taken.
    pub(crate) async fn producer_gone(&self) {
        producer_gone(&self.shared).await;
    }

    /// A watch on the producer's end that another task can hold.
    pub(crate) fn end_watch(&self) -> ProducerGone<T> {
        ProducerGone {
            shared: Arc::clone(&self.shared),
        }
    }
}

async fn producer_gone<T>(shared: &Shared<T>) {
    wait_for(shared, |s| s.producer_gone.then_some(()), |s| &mut s.end).await;
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.consumer_gone = true;
        // Items go now, not when the last watch goes.
        let items = std::mem::take(&mut state.items);
        let woken = [state.room.take(), state.closed.take()];
        drop(state);
        drop(items);
        wake(woken);
    }
}

impl<T> ProducerGone<T> {
    /// Resolves once the producer is gone.
    pub(crate) async fn wait(&self) {
        producer_gone(&self.shared).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs `f` with a 60 s limit: a missed wake-up fails instead of hanging the suite.
    async fn within<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("woken")
    }

    #[tokio::test]
    async fn a_full_channel_waits_for_the_consumer_and_keeps_order() {
        let (tx, rx) = channel(2);
        assert_eq!((tx.try_send(1), tx.try_send(2)), (Ok(()), Ok(())));
        assert_eq!(tx.try_send(9), Err(SendError::Full));
        let producer = tokio::spawn(async move {
            for n in 3..=5 {
                assert!(tx.room().await, "the consumer is there");
                assert_eq!(tx.try_send(n), Ok(()));
            }
        });
        let mut got = Vec::new();
        while let Some(n) = within(rx.recv()).await {
            got.push(n);
        }
        producer.await.expect("producer");
        assert_eq!(got, [1, 2, 3, 4, 5]);
        assert_eq!(rx.try_recv(), None);
    }

    #[tokio::test]
    async fn fill_sends_while_there_is_room_and_says_why_it_stopped() {
        let (tx, rx) = channel(3);
        let mut items = 0..5;
        assert_eq!(tx.fill(|| items.next()), Ok((3, false)));
        assert_eq!(items.next(), Some(3), "no item taken without room");
        assert_eq!(rx.try_recv(), Some(0));
        let mut items = 10..11;
        assert_eq!(tx.fill(|| items.next()), Ok((1, false)), "full again");
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got, [1, 2, 10]);
        let mut items = 20..22;
        assert_eq!(tx.fill(|| items.next()), Ok((2, true)), "ran out");
        drop(rx);
        assert_eq!(tx.fill(|| Some(1)), Err(SendError::Closed));
    }

    #[tokio::test]
    async fn the_producer_learns_that_the_consumer_left() {
        let (tx, rx) = channel(1);
        assert_eq!(tx.try_send(1), Ok(()));
        let waiting = tokio::spawn(async move {
            let room = tx.room().await;
            tx.closed().await;
            (room, tx.try_send(2))
        });
        tokio::task::yield_now().await;
        drop(rx);
        let seen = within(waiting).await.expect("producer");
        assert_eq!(seen, (false, Err(SendError::Closed)));
    }

    #[tokio::test]
    async fn the_consumer_learns_of_half_full_and_of_the_end_apart_from_the_items() {
        let (tx, rx) = channel(4);
        let watch = rx.end_watch();
        assert_eq!(tx.try_send(1), Ok(()));
        let half = tokio::spawn(async move {
            rx.half_full().await;
            let first = rx.try_recv();
            rx.producer_gone().await;
            (first, rx.try_recv(), rx.try_recv())
        });
        tokio::task::yield_now().await;
        assert!(!half.is_finished(), "one of four is not half");
        assert_eq!(tx.try_send(2), Ok(()));
        tokio::task::yield_now().await;
        drop(tx);
        within(watch.wait()).await;
        // The end is seen while both items still wait.
        assert_eq!(
            within(half).await.expect("consumer"),
            (Some(1), Some(2), None)
        );
    }
}
