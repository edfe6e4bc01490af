//! The audit log (docs/audit.md) and request ids against the real master: one line per
//! request and per chunk with every field, rotation with SIGHUP, `trusted_proxies`,
//! fail-closed, and that no secret of these requests appears in any audit line.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Front, Req, Response, Server, env};
use serde_json::{Value as Json, json};

/// Every audit line in `path` (each must be one JSON object).
fn lines(path: &Path) -> Vec<Json> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The lines of request `id`.
fn of(all: &[Json], id: &str) -> Vec<Json> {
    all.iter()
        .filter(|l| l["request_id"] == id)
        .cloned()
        .collect()
}

/// A config whose audit goes to `<dir>/audit.log`, with `extra` YAML under `salt_fcgi:`.
fn audited_config(name: &str, extra: &str) -> (PathBuf, PathBuf) {
    let probe = env().config_variant(name, "");
    let dir = probe.parent().expect("config dir").to_path_buf();
    std::fs::write(dir.join("audit.key"), "test-audit-key").expect("key");
    let log = dir.join("audit.log");
    let yaml = format!(
        "salt_fcgi:\n  audit_log: {}\n  audit_hmac_key_file: {}\n  trusted_proxies: [127.0.0.1]\n{extra}",
        log.display(),
        dir.join("audit.key").display()
    );
    std::fs::write(dir.join("master.d/override.conf"), yaml).expect("override");
    (probe, log)
}

fn header(r: &Response, name: &str) -> String {
    r.headers.get(name).cloned().unwrap_or_default()
}

/// Polls until `path` holds a line of request `id` (the line follows the response).
fn wait_for(path: &Path, id: &str) -> Vec<Json> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = lines(path);
        if all
            .iter()
            .any(|l| l["request_id"] == id && l["stage"] == "completed")
        {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "no audit line for {id} in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn request_and_chunk_lines_carry_every_field_and_no_secret() {
    let e = env();
    let (config, log) = audited_config("audit-fields", "");
    let server = Server::http(&config);
    let http = Front::Http(&server.address);
    let login = http.send(
        &Req::new("POST", "/login")
            .json(&json!({"username": e.user, "password": e.password, "eauth": "file"}))
            .header("X-Request-Id", "audit-login-1")
            .header("X-Forwarded-For", "203.0.113.9"),
    );
    assert_eq!(login.status, 200);
    assert_eq!(header(&login, "x-request-id"), "audit-login-1");
    let token = header(&login, "x-auth-token");
    let ping = http.send(
        &Req::new("POST", "/")
            .json(&json!([{"client": "local", "tgt": "*", "fun": "test.ping"},
                          {"client": "local_async", "tgt": e.minions[0], "fun": "test.arg",
                           "arg": ["secret-argument-x1"]}]))
            .header("X-Auth-Token", &token),
    );
    assert_eq!(ping.status, 200, "{:?}", ping.json());
    let ping_id = header(&ping, "x-request-id");
    assert_eq!(ping_id.len(), 32, "a generated id");
    let bad = http.send(&Req::new("POST", "/run").json(
        &json!([{"client": "local", "tgt": "*", "fun": "test.ping", "eauth": "file",
                 "username": e.user, "password": "wrong-Password-77"}]),
    ));
    assert_eq!(bad.status, 401);
    let bad_id = header(&bad, "x-request-id");
    let all = wait_for(&log, &bad_id);

    let login_line = &of(&all, "audit-login-1")[0];
    for (k, v) in [
        ("type", json!("request")),
        ("stage", json!("completed")),
        ("client_addr", json!("203.0.113.9")),
        ("method", json!("POST")),
        ("path", json!("/login")),
        ("status", json!(200)),
        ("frontend", json!("http")),
        ("user", json!(e.user)),
        ("eauth", json!("file")),
        ("chunks", json!(0)),
    ] {
        assert_eq!(login_line[k], v, "{k} in {login_line}");
    }
    assert!(login_line["duration_ms"].as_f64().is_some_and(|d| d > 0.0));
    assert!(
        login_line["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24)
    );
    let hmac = login_line["token_hmac"]
        .as_str()
        .expect("token_hmac")
        .to_string();
    assert!(
        hmac.starts_with("hmac-sha256:") && hmac.len() == 12 + 64,
        "{hmac}"
    );

    let ping_lines = of(&all, &ping_id);
    assert_eq!(
        ping_lines.len(),
        3,
        "two chunk lines and the request's: {ping_lines:?}"
    );
    let (local, async_, request) = (&ping_lines[0], &ping_lines[1], &ping_lines[2]);
    assert_eq!(
        request["token_hmac"],
        json!(hmac),
        "the same token, the same HMAC"
    );
    assert_eq!(
        (request["status"].clone(), request["chunks"].clone()),
        (json!(200), json!(2))
    );
    assert_eq!(request["client_addr"], json!("127.0.0.1"));
    for (k, v) in [
        ("type", json!("chunk")),
        ("chunk", json!(0)),
        ("client", json!("local")),
        ("fun", json!("test.ping")),
        ("tgt", json!("*")),
        ("minions_targeted", json!(e.minions.len())),
        ("minions_returned", json!(e.minions.len())),
        ("outcome", json!("ok")),
    ] {
        assert_eq!(local[k], v, "{k} in {local}");
    }
    assert!(
        local["jid"].as_str().is_some_and(|j| j.len() == 20),
        "{local}"
    );
    assert_eq!(async_["client"], "local_async");
    assert_eq!(async_["minions_targeted"], json!(1));
    assert_eq!(async_["jid"], ping.ret()[1]["jid"]);

    let bad_lines = of(&all, &bad_id);
    assert_eq!(bad_lines[0]["outcome"], json!("error 401"));
    assert_eq!(bad_lines[1]["status"], json!(401));
    assert_eq!(bad_lines[1]["user"], json!(e.user));

    let text = std::fs::read_to_string(&log).expect("read audit");
    for secret in [
        e.password.as_str(),
        "wrong-Password-77",
        &token,
        "secret-argument-x1",
        "test-audit-key",
    ] {
        // The test env's password may equal its user name, which a line does hold.
        if secret == e.user {
            continue;
        }
        assert!(
            !text.contains(secret),
            "a secret in the audit log: {secret}"
        );
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn sighup_reopens_a_rotated_file_and_ids_reach_the_error_log() {
    let (config, log) = audited_config("audit-rotate", "");
    let server = Server::http(&config);
    let http = Front::Http(&server.address);
    let first = http.send(&Req::new("GET", "/").header("X-Request-Id", "rot-1"));
    wait_for(&log, "rot-1");
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let second = http.send(&Req::new("GET", "/").header("X-Request-Id", "rot-2"));
    assert_eq!(
        (first.status, second.status),
        (200, 200),
        "still serving after SIGHUP"
    );
    let now = wait_for(&log, "rot-2");
    assert!(of(&now, "rot-1").is_empty());
    assert_eq!(of(&lines(&rotated), "rot-1").len(), 1);
    assert!(of(&lines(&rotated), "rot-2").is_empty());
    // A forged id is replaced, never written.
    let forged = http.send(&Req::new("GET", "/").header("X-Request-Id", "x\"y z"));
    assert_eq!(header(&forged, "x-request-id").len(), 32);
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn fail_closed_refuses_with_503_and_nothing_reaches_the_master() {
    let e = env();
    let touched = std::env::temp_dir().join(format!("salt-fcgi-audit-fc-{}", std::process::id()));
    let _ = std::fs::remove_file(&touched);
    let chunk = e.auth(
        json!({"client": "local", "tgt": e.minions[0], "fun": "file.touch",
                              "arg": [touched.display().to_string()]}),
    );
    let config = env().config_variant(
        "audit-fail-closed",
        "salt_fcgi:\n  audit_log: /nonexistent/salt-fcgi-audit/audit.log\n  audit_fail_closed: true\n",
    );
    let server = Server::http(&config);
    let r = Front::Http(&server.address).send(&Req::new("POST", "/").json(&json!([chunk])));
    assert_eq!(r.status, 503, "{:?}", r.json());
    assert!(r.ret().as_str().is_some_and(|m| m.contains("audit log")));
    let login = Front::Http(&server.address).send(
        &Req::new("POST", "/login")
            .json(&json!({"username": e.user, "password": e.password, "eauth": "file"})),
    );
    assert_eq!(
        (login.status, header(&login, "x-auth-token")),
        (503, String::new())
    );
    assert!(
        !touched.exists(),
        "the job ran although its audit line was not written"
    );
    // The same request with an audit that can be written does run (the check above can fail).
    let (config, _) = audited_config("audit-fail-closed-ok", "  audit_fail_closed: true\n");
    let ok = Server::http(&config);
    let r = Front::Http(&ok.address).send(&Req::new("POST", "/").json(&json!([chunk])));
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(touched.exists());
    let _ = std::fs::remove_file(&touched);
}
