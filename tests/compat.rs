//! Issue 18: what salt-api clients send gets Salt's answer. Integers past 64 bits, runner
//! keywords the function does not take, and key order, each against the real master and,
//! where Salt can answer the same chunk, against Salt's own `NetapiClient` (what
//! rest_cherrypy runs). The 401 for an ACL denial is checked in `errors`, `reference` and
//! `security`; the clients themselves in `client_matrix`.

use crate::common;

use std::time::{Duration, Instant};

use common::{Front, Req, cgi_post, env, normalize_job, salt_netapi_all, salt_netapi_text};
use serde_json::{Value as Json, json};

/// A 20-digit integer, like a job id (past u64::MAX).
const BIG: &str = "20261203072555932498";

/// The test user's credentials as JSON text to splice into a hand-written body.
fn creds_text() -> String {
    let e = env();
    format!(
        r#""eauth":"file","username":{},"password":{}"#,
        json!(e.user),
        json!(e.password)
    )
}

/// POSTs `body` of `content_type` to `path` through CGI; the response must be a 200.
fn post(path: &str, content_type: &str, body: &str) -> common::Response {
    let r =
        Front::Cgi(&env().config).send(&Req::new("POST", path).body(content_type, body.as_bytes()));
    assert_eq!(
        r.status,
        200,
        "{body}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r
}

/// Item 1: pepper (`jid=<jid>`) and guajillo send a 20-digit jid as a bare JSON number;
/// it must find the job (it became 2.0261203072555934e+19 and an empty return).
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn a_jid_sent_as_a_bare_number_finds_the_job() {
    let e = env();
    let started = cgi_post(
        &e.config,
        &json!([e.auth(
            json!({"client": "local_async", "tgt": "ms-0", "fun": "test.echo", "arg": ["found"]})
        )]),
    );
    let jid = started.ret()[0]["jid"].as_str().expect("jid").to_string();
    assert!(jid.len() == 20 && jid.parse::<u64>().is_err(), "{jid}");
    let body = format!(
        r#"[{{"client":"runner","fun":"jobs.lookup_jid","jid":{jid},{}}}]"#,
        creds_text()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ret = post("/", "application/json", &body).ret();
        if ret == json!([{"ms-0": "found"}]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs.lookup_jid with a bare jid never found the job: {ret}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Item 1: integers past 64 bits travel as Salt sends them (their decimal text), from JSON
/// (pepper, guajillo), YAML and form bodies alike, and come back as Salt's answer.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn integers_past_64_bits_reach_the_minion_as_salt_sends_them() {
    let e = env();
    let text = format!(
        r#"[{{"client":"local","tgt":"ms-0","fun":"test.echo","arg":[{BIG}],{c}}},
            {{"client":"local","tgt":"ms-0","fun":"test.arg","arg":[-{BIG}, 18446744073709551616, 18446744073709551615, -0],{c}}},
            {{"client":"runner","fun":"test.arg","arg":[1180591620717411303424],"kwarg":{{"jid":{BIG}}},{c}}}]"#,
        c = creds_text()
    );
    let ours = post("/", "application/json", &text).ret();
    let salt: Vec<Json> = salt_netapi_text(&text)
        .into_iter()
        .map(|r| r.unwrap_or_else(|(n, m)| panic!("Salt raised {n}: {m}")))
        .collect();
    assert_eq!(ours[0], json!({"ms-0": BIG}));
    // u64::MAX has 20 digits: Salt's condition_input takes it for a jid (a string).
    assert_eq!(
        ours[1]["ms-0"]["args"],
        json!([
            format!("-{BIG}"),
            "18446744073709551616",
            "18446744073709551615",
            0
        ])
    );
    assert_eq!(
        ours[2],
        json!({"args": ["1180591620717411303424"], "kwargs": {"jid": BIG}})
    );
    assert_eq!(normalize_job(&ours), normalize_job(&Json::from(salt)));
    // The same jid in a YAML and in a form body.
    let yaml = format!(
        "client: runner\nfun: test.arg\narg: [{BIG}]\nbig: {BIG}\neauth: file\nusername: {}\npassword: {}\n",
        e.user, e.password
    );
    assert_eq!(
        post("/", "application/x-yaml", &yaml).ret(),
        json!([{"args": [BIG], "kwargs": {"big": BIG}}])
    );
    let form = format!(
        "client=runner&fun=test.arg&arg={BIG}&big={BIG}&eauth=file&username={}&password={}",
        e.user, e.password
    );
    assert_eq!(
        post("/run", "application/x-www-form-urlencoded", &form).ret(),
        json!([{"args": [BIG], "kwargs": {"big": BIG}}])
    );
}

/// Item 3: a runner chunk's keys the function does not take are dropped, as Salt's API
/// drops them (`expr_form` on `manage.up` answered "Passed invalid arguments").
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn runner_keywords_the_function_does_not_take_are_dropped_like_salt() {
    let e = env();
    let form = format!(
        "client=runner&fun=manage.up&expr_form=glob&tgt=*&eauth=file&username={}&password={}",
        e.user, e.password
    );
    let ours = post("/run", "application/x-www-form-urlencoded", &form).ret();
    let chunks = [
        e.auth(json!({"client": "runner", "fun": "manage.up", "expr_form": "glob", "tgt": "*"})),
        e.auth(
            json!({"client": "runner", "fun": "jobs.list_job", "jid": BIG, "expr_form": "glob",
            "kwarg": {"bogus": 1}}),
        ),
    ];
    let salt: Vec<Json> = salt_netapi_all(&chunks)
        .into_iter()
        .map(|r| r.unwrap_or_else(|(n, m)| panic!("Salt raised {n}: {m}")))
        .collect();
    assert_eq!(ours, json!([e.minions]));
    assert_eq!(ours[0], salt[0]);
    let ours = cgi_post(&e.config, &json!([chunks[1]]));
    assert_eq!(ours.status, 200, "{}", ours.ret());
    assert_eq!(normalize_job(&ours.ret()[0]), normalize_job(&salt[1]));
}

/// Item 3, wheel: Salt's wheel client does not drop keys (the master matches the load's
/// top-level keys against the function and fails the job on an unknown one); salt-fcgi
/// gives the same answer (with the traceback cut to its message: docs/api.md), and its ACL
/// still sees every argument that runs.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn wheel_extra_keys_get_salts_answer() {
    let e = env();
    let chunks = [
        e.auth(json!({"client": "wheel", "fun": "key.list_all", "expr_form": "glob"})),
        e.auth(
            json!({"client": "wheel", "fun": "key.finger", "match": "ms-0", "expr_form": "glob"}),
        ),
        e.auth(json!({"client": "wheel", "fun": "key.list_all", "arg": []})),
    ];
    let salt = salt_netapi_all(&chunks);
    for (chunk, salt) in chunks.iter().zip(salt).take(2) {
        let salt = salt.unwrap_or_else(|(n, m)| panic!("Salt raised {n}: {m}"));
        let ours = cgi_post(&e.config, &json!([chunk]));
        assert_eq!(ours.status, 200, "{}", ours.ret());
        let (ours, salt) = (normalize_job(&ours.ret()[0]), normalize_job(&salt));
        assert_eq!(ours["data"]["success"], salt["data"]["success"], "{chunk}");
        let want = salt["data"]["return"].as_str().map_or_else(
            || salt["data"]["return"].clone(),
            |text| Json::from(without_traceback(text)),
        );
        assert_eq!(ours["data"]["return"], want, "{chunk}");
    }
    // Item 5: `"arg": []` (a CLI sends it) works here; Salt fails it (documented).
    let ours = cgi_post(&e.config, &json!([chunks[2]]));
    assert_eq!(ours.status, 200, "{}", ours.ret());
    assert_eq!(ours.ret()[0]["data"]["success"], json!(true));
}

/// Salt's error text as salt-fcgi answers it: a traceback cut to the text before it and
/// the exception's line (the last one).
fn without_traceback(text: &str) -> String {
    match text.split_once("Traceback (most recent call last):") {
        Some((head, rest)) => {
            let last = rest.lines().rev().find(|l| !l.trim().is_empty());
            format!("{head}{}", last.unwrap_or_default())
        }
        None => text.to_string(),
    }
}

/// The keys of an object, in order.
fn keys(v: &Json) -> Vec<&str> {
    v.as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Item 4: a function's own dict order comes back as the master sent it (it was sorted),
/// in JSON and in YAML, from local and runner alike, as from Salt.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn key_order_is_the_masters() {
    let e = env();
    let kwarg = json!({"zeta": 1, "alpha": 2, "mid": 3});
    let chunks = [
        e.auth(json!({"client": "local", "tgt": "ms-0", "fun": "test.arg", "kwarg": kwarg})),
        e.auth(json!({"client": "runner", "fun": "test.arg", "kwarg": kwarg})),
    ];
    let salt: Vec<Json> = salt_netapi_all(&chunks)
        .into_iter()
        .map(|r| r.unwrap_or_else(|(n, m)| panic!("Salt raised {n}: {m}")))
        .collect();
    let want = ["zeta", "alpha", "mid"];
    assert_eq!(keys(&salt[1]["kwargs"]), want, "Salt: {}", salt[1]);
    let ours = cgi_post(&e.config, &json!(chunks)).ret();
    let local_kwargs: Vec<&str> = keys(&ours[0]["ms-0"]["kwargs"])
        .into_iter()
        .filter(|k| !k.starts_with("__pub_"))
        .collect();
    assert_eq!(local_kwargs, want, "{}", ours[0]);
    assert_eq!(keys(&ours[1]["kwargs"]), want, "{}", ours[1]);
    assert_eq!(keys(&ours[1]), keys(&salt[1]), "{}", ours[1]);
    // YAML output keeps it too.
    let r = Front::Cgi(&e.config).send(
        &Req::new("POST", "/")
            .json(&json!([chunks[1]]))
            .header("Accept", "application/x-yaml"),
    );
    let text = String::from_utf8_lossy(&r.body);
    let at = |k: &str| text.find(&format!("{k}: ")).unwrap_or(usize::MAX);
    assert!(
        at("zeta") < at("alpha") && at("alpha") < at("mid") && at("mid") < usize::MAX,
        "{text}"
    );
}
