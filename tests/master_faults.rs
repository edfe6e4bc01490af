//! Faults of a real master, on a private master this test starts (so the shared one the
//! other tests use is never disturbed): master killed while a synchronous `local` waits,
//! master down, master restarted under a running FastCGI process, a minion that stopped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, env, fastcgi_post};
use serde_json::{Value as Json, json};

/// A master with one minion (ms-0) in its own directory; stopped on drop.
struct PrivateMaster {
    dir: PathBuf,
}

impl PrivateMaster {
    fn start() -> PrivateMaster {
        let base: u16 = std::env::var("SALT_TEST_PORT_BASE")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(14505);
        let dir = std::env::temp_dir().join(format!("salt-fcgi-private-{}", std::process::id()));
        let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/salt-env"))
            .args([
                "up",
                dir.to_str().expect("utf8"),
                "--minions",
                "1",
                "--version",
                &env().version,
            ])
            .env("SALT_TEST_PORT_BASE", (base + 40).to_string())
            .status()
            .expect("run salt-env");
        assert!(status.success(), "private master did not start");
        PrivateMaster { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("master")
    }

    fn kill_master(&self) {
        let pid = std::fs::read_to_string(self.dir.join("master.pid")).expect("master.pid");
        Command::new("kill").arg(pid.trim()).status().expect("kill");
        let pattern = format!("salt-master -c {}", self.dir.display());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Command::new("pgrep")
            .args(["-f", &pattern])
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "master did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_master(&self) {
        let status = Command::new(env().venv.join("bin/salt-master"))
            .args(["-c", self.dir.to_str().expect("utf8"), "-d"])
            .status()
            .expect("start master");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(env().venv.join("bin/salt"))
                .args([
                    "-c",
                    self.dir.to_str().expect("utf8"),
                    "ms-0",
                    "test.ping",
                    "--out=json",
                    "-t",
                    "3",
                ])
                .output()
                .expect("salt");
            if String::from_utf8_lossy(&out.stdout).contains("true") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "minion did not come back after the master restart"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn stop_minion(&self) {
        // SIGKILL the minion and any job process it left (a stopped minion, abruptly).
        let pattern = format!("{}/minions/ms-0", self.dir.display());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Command::new("pgrep")
            .args(["-f", &pattern])
            .status()
            .is_ok_and(|s| s.success())
        {
            Command::new("pkill")
                .args(["-9", "-f", &pattern])
                .status()
                .ok();
            assert!(Instant::now() < deadline, "minion did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateMaster {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/salt-env"))
            .args(["down", self.dir.to_str().unwrap_or("/nonexistent")])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
fn master_kill_restart_and_a_stopped_minion() {
    let master = PrivateMaster::start();
    let server = Server::fastcgi_unix(&master.config());
    let socket = server.address.clone();
    let ping = chunk(json!({"fun": "test.ping"}));
    assert_eq!(fastcgi_post(&socket, &ping).ret(), json!([{"ms-0": true}]));

    // Killed while a synchronous local waits: the event bus closes, 503 at once.
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
    assert_fast_503(
        &resp,
        took - Duration::from_secs(2).min(took),
        "sync local when the master died",
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
