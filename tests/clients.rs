//! Every netapi client against the real master, cross-checked with Salt's own CLI.

use crate::common;

use common::{cgi_post, env, mk_token, salt_cli};
use serde_json::{Value as Json, json};

fn run(chunk: Json) -> Json {
    let e = env();
    let resp = cgi_post(&e.config, &json!([e.auth(chunk)]));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.ret()[0].clone()
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn local_returns_every_minion() {
    let e = env();
    assert_eq!(
        run(json!({"client": "local", "tgt": "*", "fun": "test.ping"})),
        e.all_true()
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn local_full_return_and_string_arg() {
    let r = run(
        json!({"client": "local", "tgt": "ms-0", "fun": "test.echo", "arg": "héllo ☃ wörld", "full_return": true}),
    );
    assert_eq!(
        r["ms-0"]["ret"], "héllo ☃ wörld",
        "a string arg is one argument: {r}"
    );
    assert_eq!(r["ms-0"]["retcode"], 0);
    assert_eq!(r["ms-0"]["jid"].as_str().map(str::len), Some(20));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn local_kwarg_and_list_target() {
    let r = run(
        json!({"client": "local", "tgt": ["ms-0", "ms-1"], "tgt_type": "list", "fun": "test.arg",
        "arg": ["a", 1], "kwarg": {"k": "v"}}),
    );
    for m in ["ms-0", "ms-1"] {
        assert_eq!(r[m]["args"], json!(["a", 1]), "{r}");
        assert_eq!(r[m]["kwargs"]["k"], "v", "{r}");
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn float_args_come_back_bit_exact() {
    // 17-digit floats that a fast, inexact JSON parser reads one ULP off.
    let texts = [
        "-113.22589111328125",
        "124.23332112876233",
        "1.30918652314081e-309",
    ];
    let body = format!(
        r#"[{{"client": "local", "tgt": "ms-0", "fun": "test.arg", "arg": [{}]}}]"#,
        texts.join(",")
    );
    let e = env();
    let chunk: Json = serde_json::from_str(&body).expect("test body");
    let resp = cgi_post(&e.config, &json!([e.auth(chunk[0].clone())]));
    let text = String::from_utf8_lossy(&resp.body);
    assert_eq!(resp.status, 200, "{text}");
    for t in texts {
        assert!(text.contains(t), "{t} changed on the way: {text}");
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn nodegroups_are_expanded() {
    let r = run(
        json!({"client": "local", "tgt": "group0", "tgt_type": "nodegroup", "fun": "test.ping"}),
    );
    assert_eq!(r, json!({"ms-0": true}));
    let r =
        run(json!({"client": "local", "tgt": "both", "tgt_type": "nodegroup", "fun": "test.ping"}));
    assert_eq!(r, json!({"ms-0": true, "ms-1": true}));
    let r = run(
        json!({"client": "local", "tgt": "N@group0 and not ms-1", "tgt_type": "compound", "fun": "test.ping"}),
    );
    assert_eq!(r, json!({"ms-0": true}));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn local_with_no_matching_minion_is_empty() {
    assert_eq!(
        run(json!({"client": "local", "tgt": "no-such-minion-*", "fun": "test.ping"})),
        json!({})
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn multi_chunk_requests_run_in_order() {
    let e = env();
    let body = json!([
        e.auth(json!({"client": "local", "tgt": "ms-0", "fun": "test.echo", "arg": ["first"]})),
        e.auth(json!({"client": "wheel", "fun": "key.list_all"})),
        e.auth(json!({"client": "runner", "fun": "test.arg", "arg": ["third"]})),
    ]);
    let resp = cgi_post(&e.config, &body);
    assert_eq!(resp.status, 200);
    let ret = resp.ret();
    assert_eq!(ret.as_array().map(Vec::len), Some(3));
    assert_eq!(ret[0], json!({"ms-0": "first"}));
    assert_eq!(ret[1]["data"]["success"], true);
    assert_eq!(ret[2]["args"], json!(["third"]));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn local_async_job_is_known_to_the_master() {
    let r = run(
        json!({"client": "local_async", "tgt": "*", "fun": "test.echo", "arg": ["async-check"]}),
    );
    let jid = r["jid"].as_str().expect("jid").to_string();
    let mut minions: Vec<String> = serde_json::from_value(r["minions"].clone()).expect("minions");
    minions.sort();
    assert_eq!(minions, env().minions);
    // The master's own job cache has the job, and the returns arrive there.
    let mut found = Json::Null;
    for _ in 0..50 {
        found = salt_cli("salt-run", &["jobs.lookup_jid", &jid]);
        if found.as_object().is_some_and(|m| m.len() == minions.len()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for m in &minions {
        assert_eq!(found[m], "async-check", "jobs.lookup_jid {jid}: {found}");
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn local_subset_picks_the_requested_number() {
    let r = run(json!({"client": "local_subset", "tgt": "*", "fun": "test.ping", "sub": 1}));
    let m = r.as_object().expect("object");
    assert_eq!(m.len(), 1, "{r}");
    assert!(env().minions.contains(m.keys().next().expect("one")));
}

/// As rest_cherrypy yields them: each `{minion: ret}` of a batch is its own item of
/// `return`, and the next chunk's result follows them.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn local_batch_items_join_the_return_list() {
    let e = env();
    let batch =
        e.auth(json!({"client": "local_batch", "tgt": "*", "fun": "test.ping", "batch": "1"}));
    let local = e.auth(json!({"client": "local", "tgt": "*", "fun": "test.ping"}));
    let resp = cgi_post(&e.config, &json!([batch, local]));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let items = resp.ret().as_array().cloned().expect("a list");
    assert_eq!(items.len(), e.minions.len() + 1, "{items:?}");
    let mut seen: Vec<String> = items[..e.minions.len()]
        .iter()
        .map(|i| {
            let one = i
                .as_object()
                .filter(|o| o.len() == 1)
                .expect("{minion: ret}");
            let (k, v) = one.iter().next().expect("one entry");
            assert_eq!(*v, json!(true));
            k.clone()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, e.minions);
    assert_eq!(items[e.minions.len()], e.all_true());
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn runner_sync_and_old_style_kwargs() {
    let r =
        run(json!({"client": "runner", "fun": "test.arg", "arg": ["a", "n=5"], "kwarg": {"k": 1}}));
    assert_eq!(r["args"], json!(["a"]));
    assert_eq!(r["kwargs"]["n"], 5);
    assert_eq!(r["kwargs"]["k"], 1);
    let jobs = run(json!({"client": "runner", "fun": "jobs.list_jobs"}));
    assert!(jobs.is_object(), "{jobs}");
    let full =
        run(json!({"client": "runner", "fun": "test.arg", "arg": ["x"], "full_return": true}));
    assert!(
        full["tag"]
            .as_str()
            .is_some_and(|t| t.starts_with("salt/run/")),
        "{full}"
    );
    assert_eq!(full["data"]["return"]["args"], json!(["x"]));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn runner_async_returns_tag_and_jid() {
    let r = run(json!({"client": "runner_async", "fun": "test.arg", "arg": ["x"]}));
    let jid = r["jid"].as_str().expect("jid");
    assert_eq!(r["tag"], format!("salt/run/{jid}"));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn wheel_lists_keys_like_salt_key() {
    let r = run(json!({"client": "wheel", "fun": "key.list_all"}));
    assert_eq!(r["data"]["success"], true);
    let cli = salt_cli("salt-key", &["-L"]);
    assert_eq!(
        r["data"]["return"]["minions"], cli["minions"],
        "wheel vs salt-key -L"
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn wheel_async_returns_tag_and_jid() {
    let r = run(json!({"client": "wheel_async", "fun": "key.list_all"}));
    let jid = r["jid"].as_str().expect("jid");
    assert_eq!(r["tag"], format!("salt/wheel/{jid}"));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn tokens_from_mk_token_work_for_local_runner_and_wheel() {
    let e = env();
    let token = mk_token(&e.user, &e.password);
    let body = json!([
        {"client": "local", "tgt": "*", "fun": "test.ping", "token": token},
        {"client": "runner", "fun": "test.arg", "arg": ["t"], "token": token},
        {"client": "wheel", "fun": "key.list_all", "token": token},
    ]);
    let resp = cgi_post(&e.config, &body);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let ret = resp.ret();
    assert_eq!(ret[0], e.all_true());
    assert_eq!(ret[1]["args"], json!(["t"]));
    assert_eq!(ret[2]["data"]["user"], e.user.as_str());
}
