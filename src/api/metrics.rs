//! `GET /metrics`: this process's counters in the Prometheus text format (version 0.0.4).
//!
//! Off unless `metrics_users` or `metrics_addresses` is set; then open to a request from a
//! listed address, or with a valid token of a listed user. Per process, as `/stats`: each
//! FastCGI or `--http` process is scraped on its own (a CGI process lives for one request
//! and has nothing to count: the audit log is CGI's record).

use std::fmt::Write;

use super::stats::{LATENCY_BUCKETS, Stats};
use super::stream_delay;
use crate::salt::Master;

/// What the text shows besides the request counters.
pub(crate) struct Gauges {
    /// Event streams open now.
    pub(crate) open_streams: usize,
}

/// The whole exposition text.
pub(crate) fn render(stats: &Stats, master: &Master, gauges: &Gauges) -> String {
    let mut out = String::new();
    requests(&mut out, stats);
    master_counters(&mut out, master);
    let streams = gauges.open_streams as f64;
    one(
        &mut out,
        "salt_fcgi_open_streams",
        "gauge",
        "Event streams (/events, /ws) open now.",
        streams,
    );
    one(
        &mut out,
        "salt_fcgi_streams_fell_behind_total",
        "counter",
        "Event streams closed because their client fell stream_queue_events behind.",
        crate::salt::events::streams_fell_behind() as f64,
    );
    stream_delays(&mut out);
    one(
        &mut out,
        "salt_fcgi_requests_in_flight",
        "gauge",
        "Requests being answered now (this scrape included).",
        stats.in_flight() as f64,
    );
    process(&mut out);
    out
}

/// Requests by endpoint and status, and the latency histogram by endpoint.
fn requests(out: &mut String, stats: &Stats) {
    let endpoints = stats.endpoints();
    head(
        out,
        "salt_fcgi_requests_total",
        "counter",
        "Requests answered, by endpoint and status.",
    );
    for (endpoint, counters) in &endpoints {
        for (status, n) in &counters.by_status {
            let _ = writeln!(
                out,
                "salt_fcgi_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
    }
    let name = "salt_fcgi_request_duration_seconds";
    head(
        out,
        name,
        "histogram",
        "Time from a request's arrival to its answer's head, by endpoint.",
    );
    for (endpoint, counters) in &endpoints {
        let label = format!("endpoint=\"{endpoint}\"");
        histogram(out, name, &label, &counters.buckets, counters.seconds);
    }
}

/// One histogram's `_bucket` (cumulative, by [`LATENCY_BUCKETS`]), `_sum` and `_count`
/// lines; `label` (`key="value"`, or empty) is on each.
fn histogram(out: &mut String, name: &str, label: &str, counts: &[u64], sum: f64) {
    let sep = if label.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (i, n) in counts.iter().enumerate() {
        cumulative += n;
        let le = LATENCY_BUCKETS
            .get(i)
            .map_or("+Inf".to_string(), std::string::ToString::to_string);
        let _ = writeln!(out, "{name}_bucket{{{label}{sep}le=\"{le}\"}} {cumulative}");
    }
    let braced = if label.is_empty() {
        String::new()
    } else {
        format!("{{{label}}}")
    };
    let _ = writeln!(out, "{name}_sum{braced} {sum}");
    let _ = writeln!(out, "{name}_count{braced} {cumulative}");
}

/// The delay of events from the bus to each stream's connection (one histogram).
fn stream_delays(out: &mut String) {
    let name = "salt_fcgi_stream_event_delay_seconds";
    head(
        out,
        name,
        "histogram",
        "Time from an event's read off the master bus to its hand-over to each event \
         stream's connection (stream_write_interval and slow clients included).",
    );
    let (counts, sum) = stream_delay::snapshot();
    histogram(out, name, "", &counts, sum);
}

/// Round trips to the master, failures by kind, and events read from its bus.
fn master_counters(out: &mut String, master: &Master) {
    one(
        out,
        "salt_fcgi_master_requests_total",
        "counter",
        "Requests the master answered on its request port.",
        master.channel.round_trips() as f64,
    );
    head(
        out,
        "salt_fcgi_master_failures_total",
        "counter",
        "Requests to the master that failed on the way, by kind.",
    );
    for (kind, n) in master.channel.failures() {
        let _ = writeln!(
            out,
            "salt_fcgi_master_failures_total{{kind=\"{kind}\"}} {n}"
        );
    }
    one(
        out,
        "salt_fcgi_bus_events_total",
        "counter",
        "Events read from the master event bus.",
        crate::salt::events::events_read() as f64,
    );
}

/// The process's resident memory and open files, from `/proc/self`.
fn process(out: &mut String) {
    if let Some(kb) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
    {
        one(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            kb * 1024.0,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        one(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds.count() as f64,
        );
    }
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn one(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    head(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let stats = Stats::new();
        stats.end_on("login", 200, Duration::from_millis(3));
        stats.end_on("login", 401, Duration::from_millis(300));
        stats.end_on("run", 200, Duration::from_secs(1000));
        let mut out = String::new();
        requests(&mut out, &stats);
        assert!(out.contains("salt_fcgi_requests_total{endpoint=\"login\",status=\"401\"} 1"));
        assert!(out.contains(
            "salt_fcgi_request_duration_seconds_bucket{endpoint=\"login\",le=\"0.005\"} 1"
        ));
        assert!(out.contains(
            "salt_fcgi_request_duration_seconds_bucket{endpoint=\"login\",le=\"0.5\"} 2"
        ));
        assert!(
            out.contains(
                "salt_fcgi_request_duration_seconds_bucket{endpoint=\"run\",le=\"300\"} 0"
            )
        );
        assert!(
            out.contains(
                "salt_fcgi_request_duration_seconds_bucket{endpoint=\"run\",le=\"+Inf\"} 1"
            )
        );
        assert!(out.contains("salt_fcgi_request_duration_seconds_count{endpoint=\"login\"} 2"));
    }

    #[test]
    fn a_histogram_without_labels() {
        let mut counts = [0; LATENCY_BUCKETS.len() + 1];
        counts[0] = 1;
        counts[LATENCY_BUCKETS.len()] = 2;
        let mut out = String::new();
        histogram(&mut out, "d", "", &counts, 1.5);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "d_bucket{le=\"0.005\"} 1");
        assert_eq!(lines[LATENCY_BUCKETS.len() - 1], "d_bucket{le=\"300\"} 1");
        assert_eq!(lines[LATENCY_BUCKETS.len()], "d_bucket{le=\"+Inf\"} 3");
        assert_eq!(
            lines[LATENCY_BUCKETS.len() + 1..],
            ["d_sum 1.5", "d_count 3"]
        );
    }
}
