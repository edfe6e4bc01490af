//! This process's own counters for `GET /stats` and `GET /metrics`: requests by status
//! and by endpoint, their latencies, in flight, uptime. Per process, like rest_cherrypy's
//! (each FastCGI or CGI process counts for itself).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

/// Request counters of one process.
pub(crate) struct Stats {
    started: Instant,
    in_flight: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    by_endpoint: Mutex<BTreeMap<&'static str, Endpoint>>,
}

/// The upper bounds (seconds) of the latency histogram's buckets.
pub(crate) const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

/// The bucket of [`LATENCY_BUCKETS`] a duration falls in: the first whose upper bound it
/// does not pass (the last, `+Inf`, past them all).
pub(crate) fn latency_bucket(took: Duration) -> usize {
    let secs = took.as_secs_f64();
    LATENCY_BUCKETS
        .iter()
        .position(|le| secs <= *le)
        .unwrap_or(LATENCY_BUCKETS.len())
}

/// One endpoint's counters: answers by status and a latency histogram.
#[derive(Debug, Clone, Default)]
pub(crate) struct Endpoint {
    /// Answers by status.
    pub by_status: BTreeMap<u16, u64>,
    /// Answers per bucket of [`LATENCY_BUCKETS`] (not cumulative; the last is `+Inf`).
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
    /// The sum of the latencies, seconds.
    pub seconds: f64,
}

/// Counts one request as in flight until dropped.
pub(crate) struct Counted<'a>(&'a Stats);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Stats {
    /// Counters starting now, at zero.
    pub(crate) fn new() -> Stats {
        Stats {
            started: Instant::now(),
            in_flight: AtomicU64::new(0),
            by_status: Mutex::new(BTreeMap::new()),
            by_endpoint: Mutex::new(BTreeMap::new()),
        }
    }

    /// A request to `endpoint` was answered with `status` after `took`.
    pub(crate) fn end_on(&self, endpoint: &'static str, status: u16, took: Duration) {
        self.end(status);
        let mut map = self
            .by_endpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counters = map.entry(endpoint).or_default();
        *counters.by_status.entry(status).or_default() += 1;
        counters.buckets[latency_bucket(took)] += 1;
        counters.seconds += took.as_secs_f64();
    }

    /// A copy of the counters per endpoint.
    pub(crate) fn endpoints(&self) -> BTreeMap<&'static str, Endpoint> {
        self.by_endpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Requests in flight now (the asking one included).
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A request began.
    pub(crate) fn begin(&self) -> Counted<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Counted(self)
    }

    /// A request ended with `status`.
    pub(crate) fn end(&self, status: u16) {
        if let Ok(mut map) = self.by_status.lock() {
            *map.entry(status).or_default() += 1;
        }
    }

    /// The counters as JSON, with the master round trips made so far.
    pub(crate) fn report(&self, master_round_trips: u64) -> Json {
        let by_status: BTreeMap<String, u64> = self
            .by_status
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.to_string(), *v)).collect())
            .unwrap_or_default();
        json!({
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "requests": by_status.values().sum::<u64>(),
            "requests_by_status": by_status,
            // This request is one of them.
            "in_flight": self.in_flight.load(Ordering::Acquire),
            "master_round_trips": master_round_trips,
        })
    }
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_and_in_flight() {
        let s = Stats::new();
        {
            let _a = s.begin();
            s.end(200);
            let _b = s.begin();
            s.end(401);
            s.end(200);
            let r = s.report(7);
            assert_eq!(r["in_flight"], 2);
        }
        let r = s.report(7);
        assert_eq!(r["requests"], 3);
        assert_eq!(r["requests_by_status"], json!({"200": 2, "401": 1}));
        assert_eq!(
            (r["in_flight"].clone(), r["master_round_trips"].clone()),
            (json!(0), json!(7))
        );
    }
}
