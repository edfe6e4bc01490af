//! A real-world client: salt-pepper from PyPI against salt-fcgi's HTTP server. Its library
//! (`pepper.libpepper.Pepper`) sending lowstate with eauth credentials in each chunk (the
//! rest_wsgi way), and its CLI, which logs in through `/login` (rest_cherrypy's way).
//! `tests/deploy.rs` runs the same CLI checks through nginx → FastCGI.

use crate::common;

use common::{Server, env, python};
use serde_json::{Value as Json, json};

/// Runs `calls` (a Python list of `(lowstate, path)`) through `Pepper(url).low()` and
/// returns one JSON result per call: the parsed response, or `{"error": <exception text>}`.
fn pepper(url: &str, calls: &Json) -> Vec<Json> {
    let code = format!(
        "import json\n\
         from pepper.libpepper import Pepper\n\
         api = Pepper({url:?})\n\
         out = []\n\
         for low, path in json.loads({calls:?}):\n\
         \x20   try:\n\
         \x20       out.append(api.low(low, path=path))\n\
         \x20   except Exception as exc:\n\
         \x20       out.append({{'error': type(exc).__name__ + ': ' + str(exc)}})\n\
         print(json.dumps(out))",
        calls = calls.to_string()
    );
    let text = python(&code);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("pepper output is not JSON ({e}): {text}"))
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn pepper_library_runs_every_kind_of_client() {
    let e = env();
    let server = Server::http(&e.config);
    let url = format!("http://{}", server.address);
    let calls = json!([
        [[e.auth(json!({"client": "local", "tgt": "*", "fun": "test.ping"}))], "/"],
        [[e.auth(json!({"client": "local", "tgt": "ms-0", "fun": "test.echo", "arg": ["héllo ☃"]}))], "/run"],
        [[e.auth(json!({"client": "runner", "fun": "test.arg", "arg": ["a", "b=1"]}))], "/"],
        [[e.auth(json!({"client": "wheel", "fun": "key.list_all"}))], "/"],
        [[e.auth(json!({"client": "local_async", "tgt": "ms-1", "fun": "test.ping"}))], "/"],
        [[{"client": "local", "tgt": "*", "fun": "test.ping", "eauth": "file", "username": e.user, "password": "wrong"}], "/"],
    ]);
    let out = pepper(&url, &calls);
    assert_eq!(out.len(), 6, "{out:?}");
    assert_eq!(out[0], json!({"return": [e.all_true()]}));
    assert_eq!(out[1], json!({"return": [{"ms-0": "héllo ☃"}]}));
    assert_eq!(
        out[2],
        json!({"return": [{"args": ["a"], "kwargs": {"b": 1}}]})
    );
    let keys = &out[3]["return"][0]["data"]["return"]["minions"];
    assert_eq!(keys, &json!(e.minions), "{}", out[3]);
    assert_eq!(
        out[4]["return"][0]["minions"],
        json!(["ms-1"]),
        "{}",
        out[4]
    );
    assert!(
        out[4]["return"][0]["jid"]
            .as_str()
            .is_some_and(|j| j.len() == 20),
        "{}",
        out[4]
    );
    // libpepper turns a 401 into PepperException("Authentication denied").
    assert_eq!(
        out[5],
        json!({"error": "PepperException: Authentication denied"}),
        "{}",
        out[5]
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn pepper_cli_through_the_http_server() {
    let e = env();
    let server = Server::http(&e.config);
    let home = e.dir.join(format!("pepper-home-{}", std::process::id()));
    common::pepper_cli_everyday(&format!("http://{}/", server.address), &[], &home);
}
