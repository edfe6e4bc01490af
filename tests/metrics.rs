//! `GET /metrics` against the real master: off by default, open to listed users' tokens or
//! listed addresses, and text that Prometheus' own parser (the `prometheus_client` package
//! from PyPI, scripts/install-clients) reads, with counters that follow the requests made.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Front, OpenStream, Req, Response, Server, env};
use serde_json::{Value as Json, json};

/// The Python of the prometheus-client venv (scripts/install-clients).
fn parser_python() -> PathBuf {
    let dir = std::env::var_os("SALT_FCGI_CLIENTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".salt/clients"),
        PathBuf::from,
    );
    let python = dir.join("prometheus-client/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-clients (scripts/test does)",
        python.display()
    );
    python
}

/// The samples of an exposition text as Prometheus' parser reads them: one JSON object per
/// sample, `{"family", "type", "name", "labels", "value"}`; panics when it cannot parse.
fn parse(text: &str) -> Vec<Json> {
    let code = "import json, sys\n\
                from prometheus_client.parser import text_string_to_metric_families\n\
                out = []\n\
                for f in text_string_to_metric_families(sys.stdin.read()):\n\
                \x20   for s in f.samples:\n\
                \x20       out.append({'family': f.name, 'type': f.type, 'name': s.name, 'labels': s.labels, 'value': s.value})\n\
                print(json.dumps(out))\n";
    let mut child = Command::new(parser_python())
        .args(["-c", code])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "Prometheus' parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// The value of the sample `name` with `labels` (a subset), if present.
fn value(samples: &[Json], name: &str, labels: &Json) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s["name"] == name)
        .find(|s| {
            labels
                .as_object()
                .is_none_or(|want| want.iter().all(|(k, v)| &s["labels"][k] == v))
        })
        .and_then(|s| s["value"].as_f64())
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn login(front: &Front, user: &str, password: &str) -> String {
    let r = front.send(
        &Req::new("POST", "/login")
            .json(&json!({"username": user, "password": password, "eauth": "file"})),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    r.json()["return"][0]["token"]
        .as_str()
        .expect("token")
        .to_string()
}

fn scrape(front: &Front, token: Option<&str>) -> Response {
    let mut req = Req::new("GET", "/metrics");
    if let Some(token) = token {
        req = req.header("X-Auth-Token", token);
    }
    front.send(&req)
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn metrics_are_off_by_default() {
    let e = env();
    let server = Server::http(&e.config);
    let http = Front::Http(&server.address);
    let token = login(&http, &e.user, &e.password);
    let r = scrape(&http, Some(&token));
    assert_eq!(r.status, 404, "{}", text(&r));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn listed_users_read_counters_prometheus_can_parse() {
    let e = env();
    let config = e.config_variant(
        "metrics-users",
        &format!(
            "salt_fcgi:\n  metrics_users: [{}]\n  metrics_addresses: [192.0.2.0/24]\n",
            e.user
        ),
    );
    let server = Server::http(&config);
    let http = Front::Http(&server.address);
    // Not a listed address: a token is needed, and it must be a listed user's.
    assert_eq!(scrape(&http, None).status, 401);
    let other = login(&http, &e.restricted_user, &e.restricted_password);
    let r = scrape(&http, Some(&other));
    assert_eq!(r.status, 403, "{}", text(&r));
    assert!(text(&r).contains("metrics_users"), "{}", text(&r));
    let token = login(&http, &e.user, &e.password);
    let before = scrape(&http, Some(&token));
    assert_eq!(before.status, 200, "{}", text(&before));
    assert!(
        before
            .headers
            .get("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        before.headers
    );
    let before = parse(&text(&before));
    // An event stream open during the call: each of its events' delay is counted.
    let stream = OpenStream::open(&server.address, "/events", &[("X-Auth-Token", &token)]);
    // One synchronous call to every minion: a request, master round trips, bus events.
    let ping = http.send(
        &Req::new("POST", "/")
            .header("X-Auth-Token", &token)
            .json(&json!([{"client": "local", "tgt": "*", "fun": "test.ping"}])),
    );
    assert_eq!(ping.status, 200, "{}", text(&ping));
    let has_every_return =
        |seen: &str| (e.minions.iter()).all(|m| seen.contains(&format!("/ret/{m}\n")));
    let (seen, _) = stream.read_until(has_every_return, Duration::from_secs(60));
    assert!(has_every_return(&seen), "{seen}");
    let after = parse(&text(&scrape(&http, Some(&token))));
    let root_200 = json!({"endpoint": "root", "status": "200"});
    let count = |s: &[Json], name: &str, labels: &Json| value(s, name, labels).unwrap_or(0.0);
    assert_eq!(
        count(&after, "salt_fcgi_requests_total", &root_200),
        count(&before, "salt_fcgi_requests_total", &root_200) + 1.0
    );
    // The refusals above were counted by endpoint and status.
    let metrics_403 = json!({"endpoint": "metrics", "status": "403"});
    assert_eq!(count(&after, "salt_fcgi_requests_total", &metrics_403), 1.0);
    let root = json!({"endpoint": "root"});
    assert_eq!(
        count(&after, "salt_fcgi_request_duration_seconds_count", &root),
        count(&after, "salt_fcgi_requests_total", &root_200)
    );
    let inf = json!({"endpoint": "root", "le": "+Inf"});
    assert_eq!(
        count(&after, "salt_fcgi_request_duration_seconds_bucket", &inf),
        count(&after, "salt_fcgi_request_duration_seconds_count", &root)
    );
    for (name, at_least) in [
        ("salt_fcgi_master_requests_total", 1.0),
        ("salt_fcgi_bus_events_total", e.minions.len() as f64),
    ] {
        let (was, now) = (
            count(&before, name, &Json::Null),
            count(&after, name, &Json::Null),
        );
        assert!(now - was >= at_least, "{name}: {was} -> {now}");
    }
    // The stream's events (at least every return) went through the delay histogram.
    let delays = "salt_fcgi_stream_event_delay_seconds";
    let counted = count(&after, &format!("{delays}_count"), &Json::Null)
        - count(&before, &format!("{delays}_count"), &Json::Null);
    assert!(
        counted >= e.minions.len() as f64,
        "{counted} delays counted"
    );
    assert_eq!(
        count(&after, &format!("{delays}_bucket"), &json!({"le": "+Inf"})),
        count(&after, &format!("{delays}_count"), &Json::Null)
    );
    for name in [
        "salt_fcgi_open_streams",
        "salt_fcgi_streams_fell_behind_total",
        "process_open_fds",
    ] {
        assert!(value(&after, name, &Json::Null).is_some(), "{name} missing");
    }
    assert!(count(&after, "salt_fcgi_requests_in_flight", &Json::Null) >= 1.0);
    assert!(count(&after, "process_resident_memory_bytes", &Json::Null) > 1e6);
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn listed_addresses_need_no_token() {
    let e = env();
    let config = e.config_variant(
        "metrics-addresses",
        "salt_fcgi:\n  metrics_addresses: [127.0.0.0/8]\n",
    );
    let server = Server::http(&config);
    let http = Front::Http(&server.address);
    let r = scrape(&http, None);
    assert_eq!(r.status, 200, "{}", text(&r));
    // The first scrape is counted once answered: the second one sees it.
    let r = scrape(&http, None);
    assert_eq!(r.status, 200, "{}", text(&r));
    let samples = parse(&text(&r));
    let scrapes = json!({"endpoint": "metrics", "status": "200"});
    assert_eq!(
        value(&samples, "salt_fcgi_requests_total", &scrapes),
        Some(1.0),
        "{samples:?}"
    );
}
