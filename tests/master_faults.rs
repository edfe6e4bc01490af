//! Faults of a real master, on a private master this test starts (so the shared one the
//! other tests use is never disturbed): master killed while a synchronous `local` waits,
//! master down, master restarted under a running FastCGI process, a minion that stopped.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{self, PrivateMaster, Server, env, fastcgi_post};
use serde_json::{Value as Json, json};

fn chunk(extra: Json) -> Json {
    let mut c = env().auth(json!({"client": "local", "tgt": "ms-0"}));
    c.as_object_mut()
        .expect("obj")
        .extend(extra.as_object().expect("obj").clone());
    json!([c])
}

fn timed(socket: &str, body: &Json) -> (common::Response, Duration) {
    let start = Instant::now();
    let resp = fastcgi_post(socket, body);
    (resp, start.elapsed())
}

fn assert_fast_503(resp: &common::Response, took: Duration, what: &str) {
    assert_eq!(
        resp.status,
        503,
        "{what}: {}",
        String::from_utf8_lossy(&resp.body)
    );
    assert!(took < Duration::from_secs(5), "{what} took {took:?}");
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn master_kill_restart_and_a_stopped_minion() {
    let master = PrivateMaster::start();
    let server = Server::fastcgi_unix(&master.config());
    let socket = server.address.clone();
    let ping = chunk(json!({"fun": "test.ping"}));
    assert_eq!(fastcgi_post(&socket, &ping).ret(), json!([{"ms-0": true}]));

    // Killed while a synchronous local waits: the event bus closes, 502 at once (the job
    // was published: not a 503, which a web server may send to another salt-fcgi).
    let sleeper = {
        let socket = socket.clone();
        std::thread::spawn(move || {
            timed(
                &socket,
                &chunk(json!({"fun": "test.sleep", "arg": [20], "timeout": 60})),
            )
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    master.kill_master();
    let (resp, took) = sleeper.join().expect("sleeper");
    assert_eq!(
        resp.status,
        502,
        "sync local when the master died: {}",
        String::from_utf8_lossy(&resp.body)
    );
    assert!(
        took < Duration::from_secs(7),
        "sync local when the master died took {took:?}"
    );

    // Down: sync and async clients both answer 503 quickly.
    let (resp, took) = timed(&socket, &ping);
    assert_fast_503(&resp, took, "sync local with the master down");
    let (resp, took) = timed(
        &socket,
        &chunk(json!({"client": "local_async", "fun": "test.ping"})),
    );
    assert_fast_503(&resp, took, "local_async with the master down");

    // Restarted: the same FastCGI process reconnects its event bus and request sockets.
    master.start_master();
    assert_eq!(fastcgi_post(&socket, &ping).ret(), json!([{"ms-0": true}]));
    let wheel = json!([env().auth(json!({"client": "wheel", "fun": "key.list_all"}))]);
    assert_eq!(
        fastcgi_post(&socket, &wheel).ret()[0]["data"]["success"],
        true
    );

    // A stopped minion: Salt's "did not return" semantics within timeout + gather_job_timeout.
    master.stop_minion();
    let (resp, took) = timed(
        &socket,
        &chunk(json!({"fun": "test.ping", "timeout": 2, "gather_job_timeout": 2})),
    );
    assert_eq!(resp.status, 200);
    let value = resp.ret()[0]["ms-0"].clone();
    if env().is_3008() {
        assert!(
            value
                .as_str()
                .is_some_and(|s| s.starts_with("Minion did not return")),
            "{value}"
        );
    } else {
        assert_eq!(value, json!(false));
    }
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "{took:?}"
    );
    drop(server);
    check_not_running(&master.config());
}

/// Without the master's socket files the pre-check answers at once.
fn check_not_running(config: &Path) {
    let sock = config.parent().expect("dir").join("sock/workers.ipc");
    if !sock.exists() {
        let resp = common::cgi_post(config, &chunk(json!({"fun": "test.ping"})));
        assert_eq!(resp.status, 503);
    }
}
