//! The event-bus reader on its own: how many return events a second it takes from a
//! master-like publisher and hands to one waiting request (bench/fleet runs it).
//!
//! `bus_throughput [EVENTS] [BYTES] [collect]` serves EVENTS bare frames (as a 3007 master
//! writes them) of `salt/job/<jid>/ret/<id>` events, each with a `return` of BYTES bytes
//! (0: `true`), on a private `master_event_pub.ipc`, as fast as the socket takes them; one
//! subscription receives them through `EventBus`. With `collect`, the subscription is read
//! by the sync `local` return collection expecting those EVENTS minions, and the time from
//! the last event written to collection's end is reported too. Prints one JSON line:
//! events, seconds, events/s (and `after_last_ms`).

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::time::Instant;

use salt_fcgi::internals::Credentials;
use salt_fcgi::internals::EventBus;
use salt_fcgi::internals::Master;
use salt_fcgi::internals::Published;
use salt_fcgi::internals::Settings;
use salt_fcgi::internals::{CollectOptions, collect};
use serde_json::{Value as Json, json};

/// One frame as the master's event pusher writes it (length-prefixed, which the reader
/// reads like the bare frames of 3007/3008).
fn frame(tag: &str, data: &Json) -> Vec<u8> {
    salt_fcgi::internals::fire_frame(tag, data)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let bytes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let through_collect = args.next().is_some_and(|a| a == "collect");
    let dir = std::env::temp_dir().join(format!("bus-throughput-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let listener = UnixListener::bind(dir.join("master_event_pub.ipc")).expect("bind");
    let jid = "20261130000000000000";
    let value = if bytes == 0 {
        json!(true)
    } else {
        json!("x".repeat(bytes))
    };
    let mut stream_bytes = Vec::new();
    for i in 0..events {
        let id = format!("fleet-{i:05}");
        let data = json!({"id": id, "jid": jid, "fun": "test.ping", "return": value,
            "retcode": 0, "success": true, "_stamp": "2026-11-30T00:00:00.000000"});
        stream_bytes.extend(frame(&format!("salt/job/{jid}/ret/{id}"), &data));
    }
    let (go, subscribed) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        // Events fired before the subscription exists are not for it: start after it.
        subscribed.recv().expect("subscribed");
        let started = Instant::now();
        conn.write_all(&stream_bytes).expect("write");
        (started, Instant::now())
    });
    let yaml = format!("sock_dir: {}\n", dir.display());
    let mapping: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&yaml).expect("yaml");
    let settings = Settings::from_mapping(&mapping);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let settings = std::sync::Arc::new(settings);
    let ids: Vec<String> = (0..events).map(|i| format!("fleet-{i:05}")).collect();
    let received = rt.block_on(async {
        if through_collect {
            let master = Master::new(std::sync::Arc::clone(&settings));
            let mut sub = master
                .bus
                .subscribe(vec![format!("salt/job/{jid}/")])
                .await
                .expect("subscribe");
            go.send(()).expect("writer");
            let job = Published {
                jid: jid.to_string(),
                minions: ids,
                missing: Vec::new(),
            };
            let opts = CollectOptions {
                timeout: std::time::Duration::from_secs(600),
                gather_job_timeout: std::time::Duration::from_secs(10),
                full_return: false,
                expect_minions: None,
            };
            // Never used: every minion returns long before `timeout`, so no find_job is sent.
            let chunk = json!({"eauth": "auto", "username": "bench", "password": "bench"});
            let creds =
                Credentials::from_chunk(chunk.as_object().expect("object")).expect("credentials");
            let mut n = 0usize;
            collect(&master, &mut sub, &job, &creds, &opts, |_, _| n += 1)
                .await
                .expect("collect");
            return (n, Instant::now());
        }
        let bus = EventBus::new(&settings);
        let mut sub = bus
            .subscribe(vec![format!("salt/job/{jid}/")])
            .await
            .expect("subscribe");
        go.send(()).expect("writer");
        let mut n = 0usize;
        while n < events {
            if sub.recv().await.is_none() {
                break;
            }
            n += 1;
        }
        (n, Instant::now())
    });
    let (started, written) = writer.join().expect("writer");
    let secs = received.1.duration_since(started).as_secs_f64();
    let after_last_ms = received.1.duration_since(written).as_secs_f64() * 1000.0;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        json!({"events": received.0, "seconds": secs, "events_per_s": received.0 as f64 / secs,
            "after_last_ms": after_last_ms})
    );
}
