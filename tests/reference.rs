//! salt-fcgi against Salt itself: the same lowstate chunk goes through Salt's own
//! `NetapiClient` (what rest_wsgi and rest_cherrypy run, in the venv's Python) and through
//! salt-fcgi, against the same master; the results must be the same once job ids and time
//! stamps are masked (`common::normalize_job`). Where docs/api.md fixes a status for one of
//! Salt's exceptions, the status is checked and the message must be the master's.

use crate::common;

use std::time::{Duration, Instant};

use common::{cgi_post, env, normalize_job, salt_cli, salt_netapi, salt_netapi_all};
use serde_json::{Value as Json, json};

/// salt-fcgi's result for one chunk (status 200 expected).
fn fcgi(chunk: &Json) -> Json {
    let resp = cgi_post(&env().config, &json!([chunk]));
    assert_eq!(
        resp.status,
        200,
        "{chunk}: {}",
        String::from_utf8_lossy(&resp.body)
    );
    resp.ret()[0].clone()
}

/// Salt's result for one chunk (no exception expected).
fn salt(chunk: &Json) -> Json {
    salt_netapi(chunk).unwrap_or_else(|(name, msg)| panic!("{chunk}: Salt raised {name}: {msg}"))
}

/// What rest_cherrypy's `lowdata_fmt` hands NetapiClient: a scalar `arg` wrapped into a
/// list (docs/api.md takes that rule; rest_wsgi passed the string on and Salt iterated it).
fn as_rest_cherrypy(chunk: &Json) -> Json {
    let mut chunk = chunk.clone();
    if let Some(arg) = chunk.get_mut("arg")
        && !arg.is_array()
    {
        *arg = json!([arg.take()]);
    }
    chunk
}

/// Runs every chunk through Salt (in one Python process) and through salt-fcgi and
/// compares the results.
fn same(chunks: Vec<Json>) {
    let chunks: Vec<Json> = chunks.into_iter().map(|c| env().auth(c)).collect();
    let reference: Vec<Json> = chunks.iter().map(as_rest_cherrypy).collect();
    for (chunk, salt) in chunks.iter().zip(salt_netapi_all(&reference)) {
        let salt = salt.unwrap_or_else(|(name, msg)| panic!("{chunk}: Salt raised {name}: {msg}"));
        assert_eq!(
            normalize_job(&fcgi(chunk)),
            normalize_job(&salt),
            "salt-fcgi (left) vs Salt's NetapiClient (right) for {chunk}"
        );
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn local_results_are_salts() {
    same(vec![
        json!({"client": "local", "tgt": "*", "fun": "test.ping"}),
        json!({"client": "local", "tgt": "*", "fun": "test.arg", "arg": ["a", 1, "k=v"], "kwarg": {"x": [1, 2]}}),
        json!({"client": "local", "tgt": "ms-0", "fun": "test.echo", "arg": "héllo ☃"}),
        json!({"client": "local", "tgt": "*", "fun": "grains.item", "arg": ["id", "os", "saltversion"]}),
        json!({"client": "local", "tgt": "both", "tgt_type": "nodegroup", "fun": "test.ping"}),
        json!({"client": "local", "tgt": "ms-0,ms-1", "tgt_type": "list", "fun": "test.ping"}),
        json!({"client": "local", "tgt": "G@id:ms-1 or L@ms-0", "tgt_type": "compound", "fun": "test.ping"}),
        json!({"client": "local", "tgt": "*", "fun": "test.ping", "full_return": true}),
        json!({"client": "local", "tgt": "ms-0", "fun": "test.retcode", "arg": [3], "full_return": true}),
        json!({"client": "local", "tgt": "ms-0", "fun": "no_such.function"}),
        json!({"client": "local", "tgt": "nobody-*", "fun": "test.ping"}),
        // pepper's wrappers still send the long-removed `expr_form`.
        json!({"client": "local", "tgt": "ms-*", "expr_form": "glob", "fun": "test.ping"}),
    ]);
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn local_batch_results_are_salts() {
    let chunk =
        env().auth(json!({"client": "local_batch", "tgt": "*", "fun": "test.echo", "arg": ["b"], "batch": "1"}));
    let sorted = |v: Json| {
        let mut items = v
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("a list: {v}"));
        items.sort_by_key(std::string::ToString::to_string);
        items
    };
    // rest_cherrypy puts the batch's items straight into `return` (docs/api.md).
    let resp = cgi_post(&env().config, &json!([chunk]));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(sorted(resp.ret()), sorted(salt(&chunk)));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn runner_and_wheel_results_are_salts() {
    same(vec![
        json!({"client": "runner", "fun": "test.arg", "arg": ["a", "n=5"], "kwarg": {"k": [1]}}),
        json!({"client": "runner", "fun": "test.arg", "arg": ["x"], "full_return": true}),
        json!({"client": "runner", "fun": "manage.present"}),
        json!({"client": "wheel", "fun": "key.list_all"}),
        json!({"client": "wheel", "fun": "key.finger", "match": "ms-0"}),
        json!({"client": "wheel", "fun": "config.values"}),
    ]);
}

/// `jobs.list_job` of a jid once every targeted minion's return is in the job cache.
fn finished_job(jid: &str, minions: usize) -> Json {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = salt_cli("salt-run", &["jobs.list_job", jid]);
        if job["Result"]
            .as_object()
            .is_some_and(|r| r.len() == minions)
        {
            return job;
        }
        assert!(Instant::now() < deadline, "job {jid} did not finish: {job}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn local_async_jobs_are_recorded_like_salts() {
    let e = env();
    let chunk = e.auth(json!({"client": "local_async", "tgt": "ms-*", "fun": "test.arg", "arg": ["x", "k=v"], "kwarg": {"n": 1}}));
    let reference = salt(&chunk);
    let ours = fcgi(&chunk);
    assert_eq!(normalize_job(&ours), normalize_job(&reference));
    let (ours_jid, ref_jid) = (
        ours["jid"].as_str().expect("jid"),
        reference["jid"].as_str().expect("jid"),
    );
    assert_ne!(ours_jid, ref_jid);
    let n = e.minions.len();
    let (ours_job, ref_job) = (finished_job(ours_jid, n), finished_job(ref_jid, n));
    // Function, Arguments, Target, Target-type, User (the eauth user), Minions, Result.
    assert_eq!(ours_job["User"], e.user.as_str(), "{ours_job}");
    assert_eq!(normalize_job(&ours_job), normalize_job(&ref_job));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn authentication_and_authorization_errors_carry_the_masters_message() {
    let e = env();
    let wrong = |mut c: Json| {
        c["password"] = json!("not-the-password");
        c
    };
    let cases = [
        (
            wrong(e.auth(json!({"client": "local", "tgt": "*", "fun": "test.ping"}))),
            401,
        ),
        (
            wrong(e.auth(json!({"client": "local_async", "tgt": "*", "fun": "test.ping"}))),
            401,
        ),
        (
            wrong(e.auth(json!({"client": "runner", "fun": "test.arg"}))),
            401,
        ),
        (
            wrong(e.auth(json!({"client": "runner_async", "fun": "test.arg"}))),
            401,
        ),
        (
            wrong(e.auth(json!({"client": "wheel", "fun": "key.list_all"}))),
            401,
        ),
        (
            e.restricted(json!({"client": "local", "tgt": "ms-1", "fun": "test.ping"})),
            401,
        ),
        (
            e.restricted(
                json!({"client": "local", "tgt": "ms-0", "fun": "cmd.run", "arg": ["id"]}),
            ),
            401,
        ),
        (
            e.restricted(json!({"client": "runner", "fun": "test.arg"})),
            401,
        ),
        (
            e.restricted(json!({"client": "wheel", "fun": "key.list_all"})),
            401,
        ),
        (
            json!({"client": "local", "tgt": "*", "fun": "test.ping", "token": "0123456789abcdef".repeat(4)}),
            401,
        ),
    ];
    let chunks: Vec<Json> = cases.iter().map(|(c, _)| c.clone()).collect();
    for ((chunk, status), salt) in cases.into_iter().zip(salt_netapi_all(&chunks)) {
        let (name, message) = match salt {
            Err(err) => err,
            Ok(ret) => panic!("Salt accepted {chunk}: {ret}"),
        };
        let resp = cgi_post(&e.config, &json!([chunk]));
        let body = String::from_utf8_lossy(&resp.body).into_owned();
        assert_eq!(resp.status, status, "{chunk} (Salt: {name}): {body}");
        assert_eq!(resp.ret(), json!(message), "{chunk} (Salt: {name})");
    }
}
