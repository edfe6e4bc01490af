//! The pepper CLI from PyPI (salt-pepper), run as a user would.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::env;

/// What one run of the pepper CLI (salt-pepper from PyPI, in the Salt venv) did.
#[derive(Debug)]
pub struct PepperRun {
    /// Exit code (-1 when killed).
    pub code: i32,
    /// Every JSON document pepper printed (`--out=json`), merged into one object.
    pub out: Json,
    /// stdout and stderr, for messages.
    pub text: String,
}

/// Runs `pepper --out=json <args>` against `url` as `user`/`password` (eauth `file`), with
/// `home` as its home directory (where `-T` keeps `.peppercache`).
pub fn pepper_cli(url: &str, user: &str, password: &str, home: &Path, args: &[&str]) -> PepperRun {
    let e = env();
    std::fs::create_dir_all(home).expect("pepper home");
    let out = Command::new("timeout")
        .arg("120")
        .arg(e.venv.join("bin").join("pepper"))
        .arg("--out=json")
        .args(args)
        .env("HOME", home)
        .env("SALTAPI_URL", url)
        .env("SALTAPI_USER", user)
        .env("SALTAPI_PASS", password)
        .env("SALTAPI_EAUTH", "file")
        .current_dir(home)
        .output()
        .expect("run pepper");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut merged = serde_json::Map::new();
    for doc in serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Json>()
        .flatten()
    {
        if let Json::Object(m) = doc {
            merged.extend(m);
        }
    }
    PepperRun {
        code: out.status.code().unwrap_or(-1),
        out: Json::Object(merged),
        text: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// The pepper CLI's everyday uses against `url` (`extra` goes before every command, e.g.
/// `--ignore-ssl-errors`): login and `local`, `local_async`, `runner`, `wheel`, `-r`
/// (/token + /run), `--fail-if-incomplete`, the `-T` token cache, and "Authentication
/// denied" for a wrong password and for a cached token the master no longer knows.
pub fn pepper_cli_everyday(url: &str, extra: &[&str], home: &Path) {
    let e = env();
    let run = |args: &[&str]| {
        let all: Vec<&str> = extra.iter().chain(args).copied().collect();
        pepper_cli(url, &e.user, &e.password, home, &all)
    };
    let r = run(&["*", "test.ping"]);
    assert_eq!((r.code, &r.out), (0, &e.all_true()), "{}", r.text);
    let r = run(&["--client", "local_async", "*", "test.ping"]);
    assert!(
        r.out["jid"].as_str().is_some_and(|j| j.len() == 20),
        "{}",
        r.text
    );
    let r = run(&["--client", "runner", "test.arg", "a", "b=1"]);
    assert_eq!(
        r.out,
        json!({"args": ["a"], "kwargs": {"b": 1}}),
        "{}",
        r.text
    );
    let r = run(&["--client", "wheel", "key.list_all"]);
    assert!(r.text.contains("ms-0") && r.code == 0, "{}", r.text);
    let r = run(&["-r", "*", "test.ping"]);
    assert_eq!((r.code, &r.out), (0, &e.all_true()), "-r: {}", r.text);
    // --batch: pepper prints each item of `return` (one per minion, as rest_cherrypy
    // yields them).
    let r = run(&["--batch", "1", "*", "test.ping"]);
    assert_eq!((r.code, &r.out), (0, &e.all_true()), "--batch: {}", r.text);
    let r = run(&["--fail-if-incomplete", "--timeout", "30", "*", "test.ping"]);
    assert_eq!(
        (r.code, &r.out),
        (0, &e.all_true()),
        "--fail-if-incomplete: {}",
        r.text
    );
    // -T: the token is cached and reused.
    let cache = home.join(".peppercache");
    let _ = std::fs::remove_file(&cache);
    let r = run(&["-T", "ms-0", "test.ping"]);
    assert_eq!(r.out, json!({"ms-0": true}), "-T: {}", r.text);
    let cached: Json =
        serde_json::from_str(&std::fs::read_to_string(&cache).expect(".peppercache"))
            .expect("json");
    assert!(
        cached["expire"].as_f64().is_some_and(|x| x > 0.0),
        "{cached}"
    );
    let r = run(&["-T", "ms-1", "test.ping"]);
    assert_eq!(r.out, json!({"ms-1": true}), "-T again: {}", r.text);
    let again: Json = serde_json::from_str(&std::fs::read_to_string(&cache).expect(".peppercache"))
        .expect("json");
    assert_eq!(
        again["token"], cached["token"],
        "the cached token was reused"
    );
    // A cached token the master does not know (expired, revoked): Authentication denied.
    let mut stale = cached.clone();
    stale["token"] = json!("ab".repeat(32));
    std::fs::write(&cache, stale.to_string()).expect("write cache");
    let r = run(&["-T", "*", "test.ping"]);
    assert!(
        r.code != 0 && r.text.contains("Authentication denied"),
        "stale token: {}",
        r.text
    );
    let _ = std::fs::remove_file(&cache);
    // A wrong password.
    let all: Vec<&str> = extra.iter().chain(&["*", "test.ping"]).copied().collect();
    let r = pepper_cli(url, &e.user, "wrong", home, &all);
    assert!(
        r.code != 0 && r.text.contains("Authentication denied"),
        "wrong password: {}",
        r.text
    );
    // An ACL denial is a 401 too ("Uncaught Pepper error" on a 403).
    let all: Vec<&str> = extra
        .iter()
        .chain(&["ms-1", "test.ping"])
        .copied()
        .collect();
    let r = pepper_cli(url, &e.restricted_user, &e.restricted_password, home, &all);
    assert!(
        r.code != 0 && r.text.contains("Authentication denied"),
        "ACL denial: {}",
        r.text
    );
    // A job id as pepper sends it: `jid=<20 digits>` becomes a bare JSON number.
    let r = run(&["--client", "local_async", "ms-0", "test.echo", "found"]);
    let jid = r.out["jid"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = run(&[
            "--client",
            "runner",
            "jobs.lookup_jid",
            &format!("jid={jid}"),
        ]);
        if r.out == json!({"ms-0": "found"}) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs.lookup_jid jid={jid}: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
