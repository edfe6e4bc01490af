//! `runner` and `runner_async`: master-side functions started over the request channel.
//!
//! The load is RunnerClient's: credentials at the top level, arguments as
//! `kwarg: {"arg": [...], "kwarg": {...}}` so the master's ACL check sees them. String
//! arguments go through Salt's `parse_input`: `name=value` becomes a keyword argument and
//! values are YAML-typed (`yamlify_arg`). Keyword arguments come from `name=value` strings,
//! `kwarg` and the chunk's other top-level keys; like Salt's API process, salt-fcgi then
//! drops those the function does not accept (`runner_signatures.json`, made from Salt's
//! runner loader by `scripts/runner-signatures`; a function that is not in it takes them
//! all). `runner` then waits on the event bus for `salt/run/<jid>/ret`.

use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use super::local::truthy;
use super::{Chunk, arg_list, required_str};
use crate::salt::channel::check_reply;
use crate::salt::credentials::Credentials;
use crate::salt::error::{SaltError, SaltResult, without_traceback};
use crate::salt::master::Master;
use crate::salt::yamlify::parse_input;
use crate::settings::{Settings, seconds};

/// Chunk keys that are not runner arguments (`user`/`key` are never forwarded: they
/// would select the master's root-key authentication).
const NOT_ARGUMENTS: [&str; 13] = [
    "client",
    "fun",
    "arg",
    "kwarg",
    "timeout",
    "full_return",
    "eauth",
    "username",
    "password",
    "token",
    "user",
    "key",
    "auth_list",
];

/// What a `runner` or `runner_async` chunk runs.
#[derive(Debug, Clone)]
pub(crate) struct RunnerArgs {
    /// The runner function.
    pub(crate) fun: String,
    /// Positional arguments, YAML-typed.
    pub(crate) args: Vec<Json>,
    /// Keyword arguments the function takes.
    pub(crate) kwargs: Map<String, Json>,
    /// `full_return`: answer the whole return event, not only its `return`.
    pub(crate) full_return: bool,
    /// How long `runner` waits for the return (the chunk's `timeout`, else `rest_timeout`).
    pub(crate) wait: Duration,
}

impl RunnerArgs {
    /// Reads a chunk of `client` (`runner` or `runner_async`); `timeout` is the chunk's
    /// own, if it gave one.
    pub(crate) fn parse(
        chunk: &Chunk,
        client: &str,
        timeout: Option<f64>,
        settings: &Settings,
    ) -> SaltResult<RunnerArgs> {
        let fun = required_str(chunk, "fun", client)?;
        let (args, mut kwargs) = parse_input(arg_list(chunk.get("arg")));
        match chunk.get("kwarg") {
            None | Some(Json::Null) => {}
            Some(Json::Object(kw)) => kwargs.extend(kw.clone()),
            Some(_) => return Err(SaltError::Invocation("'kwarg' must be an object".into())),
        }
        // Old-style lowstate: other keys are keyword arguments ({"fun": "jobs.lookup_jid", "jid": …}).
        // Keys starting with `__` (`__jid__`, `__tag__`, …) are the master's own: never forwarded.
        for (k, v) in chunk {
            if !NOT_ARGUMENTS.contains(&k.as_str()) && !k.starts_with("__") {
                kwargs.insert(k.clone(), v.clone());
            }
        }
        // Salt's `load_args_and_kwargs(…, ignore_invalid=True)`: a keyword the function does
        // not take is dropped (a client's `expr_form` on `manage.up`), not passed to fail.
        if let Some(accepted) = accepted_keywords(fun) {
            kwargs.retain(|k, _| accepted.iter().any(|a| a == k));
        }
        Ok(RunnerArgs {
            fun: fun.to_string(),
            args,
            kwargs,
            full_return: chunk.get("full_return").is_some_and(truthy),
            wait: seconds(timeout.unwrap_or(settings.calls.rest_timeout)),
        })
    }

    /// The runner load: RunnerClient's, for `client`.
    fn load(&self, creds: &Credentials, client: &str) -> Json {
        let mut load = Map::new();
        load.insert("fun".into(), Json::from(self.fun.as_str()));
        load.insert(
            "kwarg".into(),
            json!({"arg": self.args, "kwarg": self.kwargs}),
        );
        creds.write_to(&mut load);
        load.insert("client".into(), Json::from(client));
        load.insert("cmd".into(), Json::from("runner"));
        Json::Object(load)
    }
}

/// The keyword arguments `fun` accepts, if it is one of Salt's runner functions without
/// `**kwargs`; `None` (take every keyword) for the others and for unknown functions.
fn accepted_keywords(fun: &str) -> Option<&'static [String]> {
    static TABLE: std::sync::OnceLock<std::collections::HashMap<String, Vec<String>>> =
        std::sync::OnceLock::new();
    TABLE
        .get_or_init(|| {
            serde_json::from_str(include_str!("runner_signatures.json")).unwrap_or_default()
        })
        .get(fun)
        .map(Vec::as_slice)
}

/// Sends the runner load; returns the master's `{"tag", "jid"}`.
async fn start(
    master: &Master,
    args: &RunnerArgs,
    creds: &Credentials,
    client: &str,
) -> SaltResult<Json> {
    let load = args.load(creds, client);
    let wait = seconds(master.settings.calls.publish_timeout);
    let reply = check_reply(master.channel.send(load, wait).await?)?;
    match reply.get("tag").and_then(Json::as_str) {
        Some(_) => Ok(reply),
        None => Err(SaltError::Master(format!(
            "unexpected runner reply: {reply}"
        ))),
    }
}

/// `runner_async`: start the job and return `{"tag", "jid"}`.
pub(crate) async fn runner_async(
    master: &Master,
    args: &RunnerArgs,
    creds: &Credentials,
) -> SaltResult<Json> {
    start(master, args, creds, "runner_async").await
}

/// `runner`: start the job and wait for its return (`timeout`, else `rest_timeout`).
pub(crate) async fn runner(
    master: &Master,
    args: &RunnerArgs,
    creds: &Credentials,
) -> SaltResult<Json> {
    let mut sub = master.bus.subscribe(vec!["salt/run/".into()]).await?;
    let reply = start(master, args, creds, "runner").await?;
    let tag = reply
        .get("tag")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    let jid = reply
        .get("jid")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    let ret_tag = format!("{tag}/ret");
    sub.narrow(vec![ret_tag.clone()]);
    let deadline = tokio::time::Instant::now() + args.wait;
    loop {
        let event = match tokio::time::timeout_at(deadline, sub.recv()).await {
            Err(_) => {
                return Err(SaltError::Timeout(format!(
                    "RunnerClient job '{jid}' timed out"
                )));
            }
            Ok(None) => {
                return Err(SaltError::NotRunning(
                    "Salt Master is not available: the event bus connection was lost while the runner ran."
                        .into(),
                ));
            }
            Ok(Some(ev)) => ev,
        };
        if !event.tag.starts_with(&ret_tag) {
            continue;
        }
        let ret = event.data.get("return").cloned().unwrap_or(Json::Null);
        if let Some(message) = runner_exception(&event.data) {
            // The runner raised: an error for the caller, not a traceback with the
            // master's file paths in a 200 body.
            return Err(SaltError::Master(message));
        }
        return Ok(if args.full_return {
            json!({"tag": event.tag, "data": event.data})
        } else {
            ret
        });
    }
}

/// The message of a runner that raised, from its `ret` event data: only the master's own
/// shape counts (`success: false` and a return text starting `Exception occurred in
/// runner`); a successful return that merely contains a traceback's text is a result.
fn runner_exception(data: &Json) -> Option<String> {
    if data.get("success") != Some(&Json::Bool(false)) {
        return None;
    }
    let text = match data.get("return")? {
        Json::String(s) => s.as_str(),
        Json::Array(items) if items.len() == 1 => items[0].as_str()?,
        _ => return None,
    };
    if !text.starts_with("Exception occurred in runner ") {
        return None;
    }
    without_traceback(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `runner` load of a chunk given as JSON.
    fn runner_load(chunk: &Json, creds: &Credentials) -> Json {
        let settings = Settings::from_mapping(&serde_yaml_ng::Mapping::new());
        let chunk = chunk.as_object().expect("object");
        let args = RunnerArgs::parse(chunk, "runner", None, &settings).expect("runner arguments");
        args.load(creds, "runner")
    }

    #[test]
    fn tracebacks_are_cut_to_their_message() {
        let t = "Exception occurred in runner nope.fun: Traceback (most recent call last):\n  File \"/srv/venv/salt/client/mixins.py\", line 1, in low\n    x\nKeyError: 'nope.fun'\n";
        assert_eq!(
            without_traceback(t),
            Some("Exception occurred in runner nope.fun: KeyError: 'nope.fun'".into())
        );
        assert_eq!(without_traceback("fine"), None);
        let raised = json!({"success": false, "return": t});
        assert!(runner_exception(&raised).is_some());
        // Issue 13 item 6: a successful return that quotes a traceback is a result.
        let quoted = "app log: Traceback (most recent call last):\n  File \"x.py\"\nValueError: x";
        for data in [
            json!({"success": true, "return": quoted}),
            json!({"return": quoted}),
            json!({"success": true, "return": t}),
            json!({"success": false, "return": quoted}),
        ] {
            assert_eq!(runner_exception(&data), None, "{data}");
        }
    }

    /// Issue 18 item 3: keywords a runner without `**kwargs` does not take are dropped, as
    /// Salt's API drops them; positional arguments and open-ended functions are untouched.
    #[test]
    fn keywords_the_runner_does_not_take_are_dropped() {
        let creds = Credentials::Token(crate::salt::credentials::Secret::new("ab".into()));
        let load = |v: Json| runner_load(&v, &creds)["kwarg"].clone();
        assert_eq!(
            load(json!({"fun": "manage.up", "expr_form": "glob", "tgt": "*",
                "kwarg": {"bogus": 1, "timeout": 5}, "arg": ["x", "tgt_type=glob", "nope=1"]})),
            json!({"arg": ["x"], "kwarg": {"tgt_type": "glob", "timeout": 5, "tgt": "*"}})
        );
        assert_eq!(
            load(json!({"fun": "test.arg", "expr_form": "glob", "kwarg": {"z": 1}})),
            json!({"arg": [], "kwarg": {"z": 1, "expr_form": "glob"}})
        );
        assert_eq!(
            load(json!({"fun": "custom.runner", "x": 1})),
            json!({"arg": [], "kwarg": {"x": 1}})
        );
        let table = accepted_keywords("jobs.lookup_jid").expect("a Salt runner");
        assert!(table.iter().any(|k| k == "jid"), "{table:?}");
    }

    #[test]
    fn runner_load_shape() {
        let chunk = json!({"client": "runner", "fun": "jobs.lookup_jid", "jid": "1", "arg": ["a=1", "b"], "__tag__": "x",
            "eauth": "file", "username": "u", "password": "p", "key": "root", "user": "root", "timeout": 3});
        let creds = Credentials::from_chunk(chunk.as_object().expect("object")).expect("creds");
        let load = runner_load(&chunk, &creds);
        assert_eq!(
            load,
            json!({"fun": "jobs.lookup_jid", "kwarg": {"arg": ["b"], "kwarg": {"jid": "1"}},
            "eauth": "file", "username": "u", "password": "p", "client": "runner", "cmd": "runner"})
        );
    }
}
