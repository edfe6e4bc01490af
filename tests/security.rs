//! Regressions for salt-api's CVE history (see docs/security.md), against the real master.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{cgi_post, env, mk_token, python};
use serde_json::{Value as Json, json};

const BAD_PASSWORD: &str = "not-the-Password-42";

fn bad_creds(mut chunk: Json) -> Json {
    let c = chunk.as_object_mut().expect("object");
    c.insert("eauth".into(), json!("file"));
    c.insert("username".into(), json!(env().user));
    c.insert("password".into(), json!(BAD_PASSWORD));
    chunk
}

fn unique(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("salt-fcgi-sec-{name}-{}", std::process::id()))
}

/// CVE-2021-25281: wheel_async with bad credentials runs nothing, and the caller knows.
#[test]
fn wheel_async_with_bad_credentials_runs_nothing() {
    let e = env();
    let file = format!("sec-wheel-{}.txt", std::process::id());
    let written = e.dir.join("srv").join(&file);
    let _ = std::fs::remove_file(&written);
    let chunk =
        json!({"client": "wheel_async", "fun": "file_roots.write", "data": "x", "path": file});
    let resp = cgi_post(&e.config, &json!([bad_creds(chunk.clone())]));
    assert_eq!(resp.status, 401, "{}", String::from_utf8_lossy(&resp.body));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !written.exists(),
        "the wheel function ran with bad credentials"
    );
    // Control: with good credentials the same call does write the file.
    let resp = cgi_post(&e.config, &json!([e.auth(chunk)]));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    for _ in 0..50 {
        if written.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        written.exists(),
        "control: wheel_async with good credentials writes the file"
    );
    let _ = std::fs::remove_file(&written);
}

/// CVE-2017-5192: local_batch with bad credentials runs nothing.
#[test]
fn local_batch_with_bad_credentials_runs_nothing() {
    let e = env();
    let marker = unique("batch");
    let _ = std::fs::remove_file(&marker);
    let chunk = json!({"client": "local_batch", "tgt": "*", "fun": "cmd.run", "arg": [format!("touch {}", marker.display())], "batch": "1"});
    let resp = cgi_post(&e.config, &json!([bad_creds(chunk.clone())]));
    assert_eq!(resp.status, 401);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!marker.exists(), "local_batch ran with bad credentials");
    let resp = cgi_post(&e.config, &json!([e.auth(chunk)]));
    assert_eq!(resp.status, 200);
    assert!(
        marker.exists(),
        "control: the batch with good credentials ran"
    );
    let _ = std::fs::remove_file(&marker);
}

/// CVE-2020-25592 / CVE-2019-17361: `ssh` never runs, whatever the credentials.
#[test]
fn ssh_never_runs_with_any_credentials() {
    let e = env();
    let token = mk_token(&e.user, &e.password);
    for creds in [
        json!({"token": token}),
        json!({"eauth": "file", "username": e.user, "password": e.password}),
        json!({"eauth": "anything"}),
    ] {
        let mut chunk = json!({"client": "ssh", "tgt": "*", "fun": "cmd.run", "arg": ["id"], "roster": "flat", "raw_shell": false});
        chunk
            .as_object_mut()
            .expect("obj")
            .extend(creds.as_object().expect("obj").clone());
        let resp = cgi_post(&e.config, &json!([chunk]));
        assert!(resp.status == 400 || resp.status == 401, "{}", resp.status);
    }
}

/// CVE-2021-3144: an expired token is refused.
#[test]
fn expired_tokens_are_refused() {
    let e = env();
    // A token the master itself makes with a 2-second lifetime.
    let token = python(&format!(
        "import os, salt.config, salt.auth\n\
         opts = salt.config.master_config(os.environ['SALT_MASTER_CONFIG'])\n\
         opts['token_expire'] = 2\n\
         print(salt.auth.LoadAuth(opts).mk_token({{'eauth': 'file', 'username': {:?}, 'password': {:?}}})['token'])",
        e.user, e.password
    ));
    let ok = cgi_post(
        &e.config,
        &json!([{"client": "wheel", "fun": "key.list_all", "token": token}]),
    );
    assert_eq!(
        ok.status,
        200,
        "fresh token works: {}",
        String::from_utf8_lossy(&ok.body)
    );
    std::thread::sleep(Duration::from_secs(3));
    let resp = cgi_post(
        &e.config,
        &json!([{"client": "wheel", "fun": "key.list_all", "token": token}]),
    );
    assert_eq!(resp.status, 401, "{}", String::from_utf8_lossy(&resp.body));
    let resp = cgi_post(
        &e.config,
        &json!([{"client": "local", "tgt": "*", "fun": "test.ping", "token": token}]),
    );
    assert_eq!(resp.status, 401);
}

/// CVE-2016-3176 class and the `auth_list` crash: extra keys never reach the master's
/// publish load (where the job cache would also keep them).
#[test]
fn extra_keys_are_not_forwarded_to_the_master() {
    let e = env();
    let chunk = json!({"client": "local_async", "tgt": "ms-0", "fun": "test.ping", "service": "sudo", "auth_list": [".*"], "key": "x", "user": "root"});
    let resp = cgi_post(&e.config, &json!([e.auth(chunk)]));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let jid = resp.ret()[0]["jid"].as_str().expect("jid").to_string();
    let load = python(&format!(
        "import os, json, salt.config, salt.minion\n\
         opts = salt.config.master_config(os.environ['SALT_MASTER_CONFIG'])\n\
         mm = salt.minion.MasterMinion(opts)\n\
         print(json.dumps(mm.returners[opts['master_job_cache'] + '.get_load']({jid:?}), default=str))"
    ));
    let load: Json = serde_json::from_str(&load).expect("job load JSON");
    let kwargs = load.get("kwargs").cloned().unwrap_or(json!({}));
    for key in ["service", "auth_list", "key"] {
        assert!(
            kwargs.get(key).is_none(),
            "{key} reached the master: {kwargs}"
        );
    }
    assert_ne!(
        load["user"], "root",
        "the chunk's user never replaces the publish user"
    );
}

/// CVE-2021-25284 class: passwords and tokens never appear in salt-fcgi's log or in error
/// bodies; error bodies carry no traceback or filesystem path.
#[test]
fn secrets_paths_and_tracebacks_never_leak() {
    let e = env();
    let log = unique("stderr.log");
    let socket_dir = unique("sock");
    std::fs::create_dir_all(&socket_dir).expect("mkdir");
    let socket = socket_dir.join("s");
    let mut child = Command::new(common::binary())
        .args(["--listen", &format!("unix:{}", socket.display())])
        .env("SALT_MASTER_CONFIG", &e.config)
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
        .spawn()
        .expect("spawn");
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let fake_token = "deadbeef".repeat(8);
    let bad_config = e.config_variant("leak", "sock_dir: /nonexistent/secret/path\n");
    let bodies = [
        json!([bad_creds(
            json!({"client": "local", "tgt": "*", "fun": "test.ping"})
        )]),
        json!([bad_creds(json!({"client": "runner", "fun": "test.arg"}))]),
        json!([bad_creds(json!({"client": "wheel", "fun": "key.list_all"}))]),
        json!([bad_creds(
            json!({"client": "wheel_async", "fun": "key.list_all"})
        )]),
        json!([{"client": "local", "tgt": "*", "fun": "test.ping", "token": fake_token}]),
        json!([bad_creds(
            json!({"client": "runner", "fun": "no_such.runner"})
        )]),
        json!([bad_creds(
            json!({"client": "local", "tgt": "*", "fun": "test.ping", "timeout": "x"})
        )]),
    ];
    let mut seen = Vec::new();
    for body in &bodies {
        seen.push(common::fastcgi_post(socket.to_str().expect("utf8"), body));
        seen.push(cgi_post(&bad_config, body));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log).expect("read log");
    assert!(!logged.is_empty(), "the failures were logged");
    for resp in &seen {
        let body = String::from_utf8_lossy(&resp.body);
        for secret in [BAD_PASSWORD, fake_token.as_str()] {
            assert!(!body.contains(secret), "secret in body: {body}");
        }
        for needle in ["Traceback", "/nonexistent", "/tmp/", ".py\"", "File \""] {
            assert!(!body.contains(needle), "{needle:?} in body: {body}");
        }
    }
    for secret in [BAD_PASSWORD, fake_token.as_str()] {
        assert!(!logged.contains(secret), "secret in the log: {logged}");
    }
    // Refusals are logged with who and why (for the operator and fail2ban).
    assert!(
        logged.contains(&format!("401 for user '{}' eauth 'file'", e.user)),
        "{logged}"
    );
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&socket_dir);
}
