//! Every error status of docs/api.md, against the real master.

use crate::common;

use common::{cgi, cgi_post, env};
use serde_json::{Value as Json, json};

fn status_and_message(resp: &common::Response) -> (u16, String) {
    let ret = resp.ret();
    (
        resp.status,
        ret.as_str().map_or_else(|| ret.to_string(), str::to_string),
    )
}

fn post(body: &[u8], content_type: Option<&str>) -> common::Response {
    cgi(&env().config, "POST", content_type, body, &[])
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn bad_bodies_are_400() {
    for body in [&b"["[..], b"", b"42", b"[1]", b"[{}, \"x\"]", b"[\"\xff\"]"] {
        let (status, msg) = status_and_message(&post(body, Some("application/json")));
        assert_eq!(status, 400, "{body:?}: {msg}");
        assert!(msg.starts_with("400: "), "{msg}");
    }
    // One object is one chunk (rest_cherrypy's rule): here one without a client.
    let (status, msg) = status_and_message(&post(b"{\"a\":1}", Some("application/json")));
    assert_eq!(
        (status, msg.as_str()),
        (400, "Invalid client specified: 'None'")
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn content_type_other_than_json_is_406_and_json_with_charset_is_fine() {
    assert_eq!(post(b"[]", Some("image/png")).status, 406);
    assert_eq!(post(b"[]", Some("multipart/form-data")).status, 406);
    assert_eq!(post(b"[]", None).status, 406);
    // What browsers label a fetch body without a type (SaltGUI): JSON all the same.
    let resp = post(b"[]", Some("text/plain;charset=UTF-8"));
    assert_eq!((resp.status, resp.json()), (200, json!({"return": []})));
    let resp = post(b"[]", Some("application/json; charset=utf-8"));
    assert_eq!((resp.status, resp.json()), (200, json!({"return": []})));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn methods_other_than_get_and_post_are_405() {
    let resp = cgi(&env().config, "OPTIONS", None, b"", &[]);
    assert_eq!(resp.status, 204, "OPTIONS");
    for method in ["PUT", "DELETE", "PATCH", "HEAD"] {
        let resp = cgi(&env().config, method, Some("application/json"), b"[]", &[]);
        assert_eq!(resp.status, 405, "{method}");
        assert_eq!(
            resp.headers.get("allow").map(String::as_str),
            Some("GET, POST")
        );
    }
    let resp = cgi(&env().config, "GET", None, b"", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["return"], "Welcome");
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn missing_and_wrong_credentials_are_401() {
    let e = env();
    let (s, m) = status_and_message(&cgi_post(
        &e.config,
        &json!([{"client": "local", "tgt": "*", "fun": "test.ping"}]),
    ));
    assert_eq!(
        (s, m.as_str()),
        (401, "No authentication credentials given")
    );
    let wrong = json!({"eauth": "file", "username": e.user, "password": "wrong"});
    for chunk in [
        json!({"client": "local", "tgt": "*", "fun": "test.ping"}),
        json!({"client": "runner", "fun": "test.arg"}),
        json!({"client": "wheel", "fun": "key.list_all"}),
    ] {
        let mut c = chunk.clone();
        c.as_object_mut()
            .expect("obj")
            .extend(wrong.as_object().expect("obj").clone());
        let (s, m) = status_and_message(&cgi_post(&e.config, &json!([c])));
        assert_eq!(s, 401, "{chunk}: {m}");
        assert!(!m.contains("wrong"), "the password is not echoed: {m}");
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn bad_tokens_are_401() {
    let e = env();
    for token in [
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "../../etc/passwd",
        "zz",
    ] {
        let resp = cgi_post(
            &e.config,
            &json!([{"client": "local", "tgt": "*", "fun": "test.ping", "token": token}]),
        );
        assert_eq!(resp.status, 401, "{token}");
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn restricted_user_outside_its_acl_is_401() {
    let e = env();
    let allowed = cgi_post(
        &e.config,
        &json!([e.restricted(json!({"client": "local", "tgt": "ms-0", "fun": "test.ping"}))]),
    );
    assert_eq!(
        (allowed.status, allowed.ret()),
        (200, json!([{"ms-0": true}]))
    );
    for chunk in [
        json!({"client": "local", "tgt": "ms-0", "fun": "cmd.run", "arg": ["id"]}),
        json!({"client": "local", "tgt": "ms-1", "fun": "test.ping"}),
    ] {
        let (s, m) =
            status_and_message(&cgi_post(&e.config, &json!([e.restricted(chunk.clone())])));
        assert_eq!(
            (s, m.as_str()),
            (401, "Authorization error occurred."),
            "{chunk}"
        );
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn disabled_and_unknown_clients() {
    let e = env();
    let config = e.config_variant("disabled", "netapi_enable_clients: [local]\n");
    let (s, m) = status_and_message(&cgi_post(
        &config,
        &json!([e.auth(json!({"client": "runner", "fun": "test.arg"}))]),
    ));
    assert_eq!(s, 403, "{m}");
    assert!(m.starts_with("Client disabled: 'runner'"), "{m}");
    let ok = cgi_post(
        &config,
        &json!([e.auth(json!({"client": "local", "tgt": "ms-0", "fun": "test.ping"}))]),
    );
    assert_eq!(ok.status, 200);
    for client in [json!("nope"), json!("destroy"), json!(5), Json::Null] {
        let (s, m) = status_and_message(&cgi_post(
            &e.config,
            &json!([e.auth(json!({"client": client, "fun": "x"}))]),
        ));
        assert_eq!(s, 400, "{client}: {m}");
        assert!(m.starts_with("Invalid client specified"), "{m}");
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn ssh_and_raw_shell_are_refused() {
    let e = env();
    let (s, m) = status_and_message(&cgi_post(
        &e.config,
        &json!([e.auth(json!({"client": "ssh", "tgt": "*", "fun": "test.ping"}))]),
    ));
    assert_eq!(s, 400);
    assert!(m.contains("not supported"), "{m}");
    let (s, m) = status_and_message(&cgi_post(
        &e.config,
        &json!([
            e.auth(json!({"client": "local", "tgt": "*", "fun": "test.ping", "raw_shell": true}))
        ]),
    ));
    assert_eq!((s, m.as_str()), (401, "Raw shell option not allowed."));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn body_over_max_body_bytes_is_413_and_near_the_limit_works() {
    let e = env();
    let config = e.config_variant("bodylimit", "salt_fcgi:\n  max_body_bytes: 20000\n");
    let pad = "x".repeat(19_000);
    let near =
        json!(
            [e.auth(json!({"client": "local", "tgt": "ms-0", "fun": "test.echo", "arg": [pad]}))]
        );
    let resp = cgi_post(&config, &near);
    assert!(near.to_string().len() < 20_000);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.ret()[0]["ms-0"].as_str().map(str::len), Some(19_000));
    let over = "x".repeat(20_001);
    let resp = cgi(
        &config,
        "POST",
        Some("application/json"),
        over.as_bytes(),
        &[],
    );
    assert_eq!(resp.status, 413);
    let many = json!((0..101).map(|_| json!({})).collect::<Vec<_>>());
    assert_eq!(
        cgi_post(&e.config, &many).status,
        413,
        "more than max_chunks"
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn master_not_running_is_503() {
    let e = env();
    let config = e.config_variant("nomaster", "sock_dir: /nonexistent/salt-fcgi/sock\n");
    let (s, m) = status_and_message(&cgi_post(
        &config,
        &json!([e.auth(json!({"client": "local", "tgt": "*", "fun": "test.ping"}))]),
    ));
    assert_eq!(s, 503, "{m}");
    assert!(
        m.starts_with("Salt Master is not available: no workers.ipc in the master's sock_dir")
            && !m.contains("/nonexistent"),
        "{m}"
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn bad_chunk_fields_are_400() {
    let e = env();
    for chunk in [
        json!({"client": "local", "fun": "test.ping"}),
        json!({"client": "local", "tgt": "*"}),
        json!({"client": "local", "tgt": 5, "fun": "test.ping"}),
        json!({"client": "local", "tgt": "*", "fun": {"a": 1}}),
        json!({"client": "runner"}),
        json!({"client": "wheel", "fun": 7}),
        json!({"client": "wheel", "fun": "key.list_all", "id": 5}),
    ] {
        let (s, m) = status_and_message(&cgi_post(&e.config, &json!([e.auth(chunk.clone())])));
        assert_eq!(s, 400, "{chunk}: {m}");
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn a_failing_chunk_aborts_the_request_with_its_error() {
    let e = env();
    let body = json!([
        e.auth(json!({"client": "local", "tgt": "ms-0", "fun": "test.ping"})),
        {"client": "local", "tgt": "*", "fun": "test.ping"},
    ]);
    let (s, m) = status_and_message(&cgi_post(&e.config, &body));
    assert_eq!(
        (s, m.as_str()),
        (401, "No authentication credentials given")
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn unknown_runner_function_is_an_error_without_a_traceback() {
    let e = env();
    let resp = cgi_post(
        &e.config,
        // Salt's RunnerClient refuses an unknown function before it calls the master; a
        // bounded timeout keeps a wait for a ret event that never comes (the 3008.5 master's
        // runner process dies on it) from costing rest_timeout's 300 s.
        &json!([e.auth(json!({"client": "runner", "fun": "no_such.runner", "timeout": 20}))]),
    );
    let (s, m) = status_and_message(&resp);
    if e.is_3008() {
        // The 3008.5 master's runner process dies on an unknown function and never fires
        // its ret event: salt-fcgi can only time out (a clear 504, no traceback).
        assert_eq!(s, 504, "{m}");
    } else {
        assert_eq!(s, 500, "{m}");
        assert!(
            m.contains("no_such.runner") && m.contains("is not available"),
            "{m}"
        );
    }
    assert!(!m.contains("Traceback") && !m.contains(".py"), "{m}");
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn query_string_words_never_become_options() {
    // RFC 3875 4.4: `GET /?--http+127.0.0.1:1` reaches a CGI program as argv.
    let out = std::process::Command::new(common::binary())
        .args(["--http", "127.0.0.1:1"])
        .env_clear()
        .env("SALT_MASTER_CONFIG", &env().config)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", "GET")
        .env("QUERY_STRING", "--http+127.0.0.1:1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Status: 200 OK\r\n"), "{text}");
}
