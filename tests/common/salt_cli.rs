//! Salt's own side, to cross-check answers: its CLI, Python with the test master's venv, `mk_token`, and its `NetapiClient`.

use std::path::Path;
use std::process::Command;

use serde_json::Value as Json;

use super::env;

/// Runs a Salt CLI tool from the venv (`salt`, `salt-run`, `salt-key`) with `--out=json`.
pub fn salt_cli(tool: &str, args: &[&str]) -> Json {
    let e = env();
    let out = Command::new(e.venv.join("bin").join(tool))
        .arg("-c")
        .arg(&e.dir)
        .args(args)
        .arg("--out=json")
        .output()
        .expect("run salt CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|_| {
        // `salt` prints one JSON document per minion: merge them.
        let mut merged = serde_json::Map::new();
        for doc in serde_json::Deserializer::from_str(&text)
            .into_iter::<Json>()
            .flatten()
        {
            if let Json::Object(m) = doc {
                merged.extend(m);
            }
        }
        Json::Object(merged)
    })
}

/// Runs a Python snippet with the venv's interpreter and returns its stdout.
pub fn python(code: &str) -> String {
    let e = env();
    let out = Command::new(e.venv.join("bin").join("python"))
        .arg("-c")
        .arg(code)
        .env("SALT_MASTER_CONFIG", &e.config)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh eauth token for `user` made by the master's own `mk_token` (LoadAuth).
pub fn mk_token(user: &str, password: &str) -> String {
    let code = format!(
        "import os, salt.config, salt.auth\n\
         opts = salt.config.master_config(os.environ['SALT_MASTER_CONFIG'])\n\
         tok = salt.auth.LoadAuth(opts).mk_token({{'eauth': 'file', 'username': {user:?}, 'password': {password:?}}})\n\
         print(tok['token'])"
    );
    let token = python(&code);
    assert!(
        token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "bad token {token:?}"
    );
    token
}

/// What Salt itself does with one lowstate chunk: `salt.netapi.NetapiClient(opts).run(chunk)`
/// in the venv's Python (the code path of rest_wsgi and rest_cherrypy) against the same
/// master. `Ok(return)` (a generator, as `local_batch` returns, becomes a list), or
/// `Err((exception class name, message))`.
pub fn salt_netapi(chunk: &Json) -> Result<Json, (String, String)> {
    salt_netapi_all(std::slice::from_ref(chunk))
        .pop()
        .expect("one result")
}

/// [`salt_netapi`] for several chunks, one after the other in one Python process.
pub fn salt_netapi_all(chunks: &[Json]) -> Vec<Result<Json, (String, String)>> {
    salt_netapi_on(&env().config, chunks)
}

/// [`salt_netapi_all`] against the master of `config`.
pub fn salt_netapi_on(config: &Path, chunks: &[Json]) -> Vec<Result<Json, (String, String)>> {
    let results = salt_netapi_text_on(config, &Json::from(chunks.to_vec()).to_string());
    assert_eq!(results.len(), chunks.len(), "one result per chunk");
    results
}

/// [`salt_netapi_all`] for chunks given as JSON text (read by Python's `json`, so an
/// integer past 64 bits stays one, as rest_cherrypy reads it).
pub fn salt_netapi_text(chunks: &str) -> Vec<Result<Json, (String, String)>> {
    salt_netapi_text_on(&env().config, chunks)
}

/// [`salt_netapi_text`] against the master of `config`.
fn salt_netapi_text_on(config: &Path, chunks: &str) -> Vec<Result<Json, (String, String)>> {
    let e = env();
    let code = "import json, os, sys, types\n\
                import salt.config, salt.netapi\n\
                opts = salt.config.client_config(os.environ['SALT_MASTER_CONFIG'])\n\
                client = salt.netapi.NetapiClient(opts)\n\
                results = []\n\
                for low in json.loads(os.environ['SALT_FCGI_CHUNKS']):\n\
                \x20   try:\n\
                \x20       ret = client.run(low)\n\
                \x20       if isinstance(ret, types.GeneratorType):\n\
                \x20           ret = list(ret)\n\
                \x20       results.append({'return': ret})\n\
                \x20   except Exception as exc:\n\
                \x20       results.append({'exception': type(exc).__name__, 'message': str(exc)})\n\
                sys.stdout.write('\\n' + json.dumps(results, default=str))\n";
    let out = Command::new(e.venv.join("bin").join("python"))
        .arg("-c")
        .arg(code)
        .env("SALT_MASTER_CONFIG", config)
        .env("SALT_FCGI_CHUNKS", chunks)
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    let results: Vec<Json> = serde_json::from_str(last).unwrap_or_else(|err| {
        panic!(
            "Salt's NetapiClient printed no result ({err}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    results
        .into_iter()
        .map(|v| match v.get("exception") {
            Some(name) => Err((
                name.as_str().unwrap_or_default().to_string(),
                v["message"].as_str().unwrap_or_default().to_string(),
            )),
            None => Ok(v["return"].clone()),
        })
        .collect()
}

/// A copy of `v` without what differs between two runs of the same job: job ids (any run of
/// 20 digits, also inside tags and `__pub_jid`) become `<jid>`, `_stamp` and `StartTime`
/// are dropped, and a `Minions` list is sorted.
pub fn normalize_job(v: &Json) -> Json {
    match v {
        Json::String(s) => Json::String(mask_jids(s)),
        Json::Array(items) => Json::Array(items.iter().map(normalize_job).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "_stamp" && k.as_str() != "StartTime")
                .map(|(k, v)| {
                    let mut v = normalize_job(v);
                    if let (true, Json::Array(items)) = (k == "Minions", &mut v) {
                        items.sort_by_key(std::string::ToString::to_string);
                    }
                    (mask_jids(k), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn mask_jids(s: &str) -> String {
    fn flush(out: &mut String, digits: &mut String) {
        out.push_str(if digits.len() == 20 { "<jid>" } else { digits });
        digits.clear();
    }
    let mut out = String::with_capacity(s.len());
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut out, &mut digits);
            out.push(c);
        }
    }
    flush(&mut out, &mut digits);
    out
}
