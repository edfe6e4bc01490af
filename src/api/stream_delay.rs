//! How long events take from the master bus to each stream's connection: one histogram
//! for the process (`/metrics`: `salt_fcgi_stream_event_delay_seconds`), lock-free.
//!
//! One observation per event and stream, taken when the stream's task hands the event to
//! the connection, which writes it as soon as the client's socket takes it. The delay
//! includes `stream_write_interval` holds and a client's own slowness (its stream waits
//! while the connection's few chunks in flight are not taken).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::stats::{LATENCY_BUCKETS, latency_bucket as bucket};

/// Observations per bucket of [`LATENCY_BUCKETS`] (not cumulative; the last is `+Inf`),
/// and their sum in microseconds.
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

static DELAYS: Histogram = Histogram {
    buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64::new(0),
};

/// The histogram as it is now: the counts per bucket (not cumulative) and the sum, seconds.
pub(crate) fn snapshot() -> ([u64; LATENCY_BUCKETS.len() + 1], f64) {
    let counts = std::array::from_fn(|i| DELAYS.buckets[i].load(Ordering::Relaxed));
    let sum = DELAYS.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    (counts, sum)
}

/// The delays of one hand-over of events to a connection, added to the histogram at once
/// when dropped (one atomic add per bucket used, not per event).
pub(crate) struct Handover {
    now: Instant,
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum_micros: u64,
}

impl Handover {
    /// A hand-over happening now.
    pub(crate) fn now() -> Handover {
        Handover {
            now: Instant::now(),
            counts: [0; LATENCY_BUCKETS.len() + 1],
            sum_micros: 0,
        }
    }

    /// One event read off the bus at `read_at` is handed over.
    pub(crate) fn event(&mut self, read_at: Instant) {
        let delay = self.now.saturating_duration_since(read_at);
        self.counts[bucket(delay)] += 1;
        self.sum_micros += u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
    }

    /// Whether any event was handed over.
    pub(crate) fn has_events(&self) -> bool {
        self.counts.iter().any(|n| *n > 0)
    }
}

impl Drop for Handover {
    fn drop(&mut self) {
        for (i, n) in self.counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            DELAYS.buckets[i].fetch_add(*n, Ordering::Relaxed);
        }
        if self.sum_micros > 0 {
            DELAYS
                .sum_micros
                .fetch_add(self.sum_micros, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_delay_lands_in_its_bucket() {
        assert_eq!(bucket(Duration::ZERO), 0);
        assert_eq!(bucket(Duration::from_millis(5)), 0);
        assert_eq!(bucket(Duration::from_millis(6)), 1);
        assert_eq!(bucket(Duration::from_millis(300)), 6);
        assert_eq!(bucket(Duration::from_secs(3600)), LATENCY_BUCKETS.len());
        let (before, sum_before) = snapshot();
        {
            let mut handover = Handover::now();
            let read = handover.now;
            handover.now = read + Duration::from_millis(300);
            handover.event(read);
            handover.event(read);
            handover.now = read + Duration::from_secs(3600);
            handover.event(read);
        }
        let (after, sum_after) = snapshot();
        // Other tests may observe too (one process-wide histogram): at least these.
        assert!(after[6] >= before[6] + 2);
        assert!(after[LATENCY_BUCKETS.len()] > before[LATENCY_BUCKETS.len()]);
        assert!(sum_after - sum_before >= 3600.6 - 1e-3);
    }
}
