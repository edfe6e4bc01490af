//! `wheel` and `wheel_async`: master-side key and config management.
//!
//! Salt sends the whole chunk as the clear load (`cmd: wheel`) and returns the reply as is.
//! The master then checks the caller's ACL against the load's `kwarg` but runs the
//! function with its top-level keys, so an argument-restricted ACL could be bypassed.
//! salt-fcgi sends the chunk's arguments in both places, identical, refuses a chunk whose
//! `kwarg` contradicts them, and never forwards `auth_list`, `key`, `user` (root-key
//! authentication), `print_event` or `__`-keys (the job's event tag). `wheel_async` sends
//! the same request with a job id of ours and answers as soon as the master has started
//! the job (or replied), or with the master's error: unlike Python's salt-api the caller
//! learns when the credentials were refused.

use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use tokio::sync::oneshot;

use super::{Chunk, arg_list, required_str};
use crate::salt::channel::check_reply;
use crate::salt::clock::new_jid;
use crate::salt::credentials::Credentials;
use crate::salt::error::{SaltError, SaltResult, without_traceback};
use crate::salt::events::Subscription;
use crate::salt::master::Master;
use crate::settings::seconds;

/// Chunk keys that are never wheel arguments: the request's own keys, the credentials,
/// and keys that would steer the master (`auth_list`, `key`, `user` select its root-key
/// authentication; `print_event` its event printing). Keys starting with `__` (`__jid__`,
/// `__tag__`, `__user__`) are never forwarded either: they would choose the tag the job's
/// events are fired under.
const NOT_ARGUMENTS: [&str; 13] = [
    "client",
    "fun",
    "cmd",
    "arg",
    "kwarg",
    "auth_list",
    "key",
    "user",
    "print_event",
    "eauth",
    "username",
    "password",
    "token",
];

fn is_argument(key: &str) -> bool {
    !NOT_ARGUMENTS.contains(&key) && !key.starts_with("__")
}

/// The keyword arguments a chunk's `kwarg` gives: either Salt's ACL shape
/// `{"arg": [...], "kwarg": {...}}` or a plain object of keyword arguments.
fn given_kwarg(value: Option<&Json>) -> SaltResult<(Vec<Json>, Map<String, Json>)> {
    let bad = || SaltError::Invocation("'kwarg' must be an object".into());
    let obj = match value {
        None | Some(Json::Null) => return Ok((Vec::new(), Map::new())),
        Some(Json::Object(obj)) => obj,
        Some(_) => return Err(bad()),
    };
    let salt_shape = !obj.is_empty() && obj.keys().all(|k| k == "arg" || k == "kwarg");
    if !salt_shape {
        return Ok((Vec::new(), obj.clone()));
    }
    let kwargs = match obj.get("kwarg") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(kw)) => kw.clone(),
        Some(_) => return Err(bad()),
    };
    Ok((arg_list(obj.get("arg")), kwargs))
}

/// The wheel arguments of a chunk: its top-level keys (what the master runs the function
/// with) merged with its `kwarg` (what the master checks the ACL against). A chunk where
/// the two disagree, or with positional arguments (the master would not run them, but
/// would check an ACL against them), is refused.
fn wheel_arguments(chunk: &Chunk) -> SaltResult<Map<String, Json>> {
    let mut kwargs: Map<String, Json> = chunk
        .iter()
        .filter(|(k, _)| is_argument(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (mut positional, given) = given_kwarg(chunk.get("kwarg"))?;
    positional.extend(arg_list(chunk.get("arg")));
    if !positional.is_empty() {
        return Err(SaltError::Invocation(
            "wheel functions take keyword arguments only: pass them as top-level keys \
             (e.g. \"match\": \"web1\")"
                .into(),
        ));
    }
    for (k, v) in given {
        if !is_argument(&k) {
            return Err(SaltError::Invocation(format!("'kwarg' may not set '{k}'")));
        }
        match kwargs.get(&k) {
            Some(top) if *top != v => {
                return Err(SaltError::Invocation(format!(
                    "'kwarg' disagrees with the top-level argument '{k}'"
                )));
            }
            Some(_) => {}
            None => {
                kwargs.insert(k, v);
            }
        }
    }
    Ok(kwargs)
}

/// What a `wheel` or `wheel_async` chunk runs.
#[derive(Debug, Clone)]
pub(crate) struct WheelArgs {
    /// The wheel function.
    pub(crate) fun: String,
    /// Its keyword arguments (wheel functions take no positional ones).
    pub(crate) kwargs: Map<String, Json>,
}

impl WheelArgs {
    /// Reads a `wheel*` chunk.
    pub(crate) fn parse(chunk: &Chunk) -> SaltResult<WheelArgs> {
        Ok(WheelArgs {
            fun: required_str(chunk, "fun", "wheel")?.to_string(),
            kwargs: wheel_arguments(chunk)?,
        })
    }

    /// The clear load for `client`: the arguments at the top level, where the master runs
    /// the function with them, and the very same arguments as `kwarg: {"arg": [],
    /// "kwarg": {...}}`, where the master checks the caller's ACL (`ClearFuncs.wheel`
    /// checks only `kwarg`).
    fn load(&self, creds: &Credentials, client: &str) -> Chunk {
        let mut load = self.kwargs.clone();
        load.insert("client".into(), Json::from(client));
        load.insert("fun".into(), Json::from(self.fun.as_str()));
        load.insert("kwarg".into(), json!({"arg": [], "kwarg": self.kwargs}));
        creds.write_to(&mut load);
        load.insert("cmd".into(), Json::from("wheel"));
        load
    }
}

/// `wheel`: one request, the master's reply (`{"tag", "data": {…, "return", "success"}}`).
/// A function that raised keeps Salt's shape (`success: false`, the exception as the
/// return), but its traceback (the master's file paths) goes to the log, not the caller.
pub(crate) async fn wheel(
    master: &Master,
    args: &WheelArgs,
    creds: &Credentials,
) -> SaltResult<Json> {
    let load = args.load(creds, "wheel");
    let wait = seconds(master.settings.calls.rest_timeout);
    let mut reply = check_reply(master.channel.send(Json::Object(load), wait).await?)?;
    shorten_exception(&mut reply);
    Ok(reply)
}

/// `data.return` of a wheel function that raised, without its traceback (logged whole).
fn shorten_exception(reply: &mut Json) {
    let Some(data) = reply.get_mut("data") else {
        return;
    };
    if data.get("success") != Some(&Json::Bool(false)) {
        return;
    }
    let Some(Json::String(text)) = data.get_mut("return") else {
        return;
    };
    if !text.starts_with("Exception occurred in wheel ") {
        return;
    }
    if let Some(short) = without_traceback(text) {
        crate::log!(warn, "{text}");
        *text = short;
    }
}

/// `wheel_async`: `{"tag", "jid"}` once the master started the job (or finished it).
///
/// 3006/3007 masters run the job under the `__jid__`/`__tag__` given here (its events, its
/// job-cache entry) and fire its `new` event before running it: the answer comes then. 3008
/// masters (every setup: the default synchronous worker and `master_async_mworker`, with or
/// without `cluster_id`) overwrite both with a jid of their own and reply once the function
/// has run, so no event ever comes under our tag: there the answer depends on the master's
/// reply, which names the jid that really ran, and is waited for up to `rest_timeout` like
/// `wheel`. A 3006/3007 master's reply names a jid too, one it made for its own events,
/// under which nothing is stored: see [`started_under`] for telling the two apart.
pub(crate) async fn wheel_async(
    master: &Master,
    args: &WheelArgs,
    creds: &Credentials,
) -> SaltResult<Json> {
    let mut load = args.load(creds, "wheel_async");
    let jid = new_jid();
    let tag = format!("salt/wheel/{jid}");
    load.insert("__jid__".into(), Json::from(jid.as_str()));
    load.insert("__tag__".into(), Json::from(tag.as_str()));
    load.insert("__user__".into(), Json::from("UNKNOWN"));
    let mut sub = master.bus.subscribe(vec!["salt/wheel/".into()]).await?;
    let channel = std::sync::Arc::clone(&master.channel);
    let run = seconds(master.settings.calls.rest_timeout);
    // The request goes on in the background; its reply (or error) comes back here.
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(crate::salt::sent::inherit(async move {
        let reply = channel
            .send(Json::Object(load), run)
            .await
            .and_then(check_reply);
        if let Err(e) = &reply {
            crate::log::warn(&format!("wheel_async job failed: {e}"));
        }
        let _ = tx.send(reply);
    }));
    started_under(&mut sub, rx, &tag, &jid).await
}

/// How long after a master's reply that names a jid other than ours the events it fired
/// before replying may take to reach this process (they normally take milliseconds).
const REPLY_EVENTS_WAIT: Duration = Duration::from_secs(10);

/// The tag and jid a `wheel_async` job runs under: ours (`tag`, `jid`) as soon as an event under
/// it arrives; else the one the master's reply names, once that jid's `ret` event arrived
/// without one of ours. The master fires every event of the job before it replies and the
/// bus keeps their order, so a 3006/3007 master, which replies with a jid of its own but
/// runs (and stores) the job under ours, is never mistaken for a 3008 master, even when the
/// reply arrives before the events.
async fn started_under(
    sub: &mut Subscription,
    mut reply: oneshot::Receiver<SaltResult<Json>>,
    tag: &str,
    jid: &str,
) -> SaltResult<Json> {
    let ours = format!("{tag}/");
    let accepted = json!({"tag": tag, "jid": jid});
    // The master's reply, when it named another jid: that jid's `ret` tag, and the answer.
    let mut theirs: Option<(String, Json)> = None;
    let give_up = tokio::time::sleep(Duration::MAX);
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            replied = &mut reply, if theirs.is_none() => match replied {
                Ok(Ok(reply)) => match (reply.get("tag"), reply.pointer("/data/jid")) {
                    (Some(Json::String(t)), Some(jid)) if t != tag => {
                        theirs = Some((format!("{t}/ret"), json!({"tag": t, "jid": jid})));
                        give_up.as_mut().reset(tokio::time::Instant::now() + REPLY_EVENTS_WAIT);
                    }
                    _ => return Ok(accepted),
                },
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(SaltError::Master("wheel_async request was dropped".into())),
            },
            event = sub.recv() => match (event, &theirs) {
                (Some(ev), _) if ev.tag.starts_with(&ours)
                    && (ev.tag.ends_with("/new") || ev.tag.ends_with("/ret")) => return Ok(accepted),
                (Some(ev), Some((ret_tag, answer))) if ev.tag == *ret_tag => return Ok(answer.clone()),
                (Some(_), _) => {}
                (None, Some((_, answer))) => return Ok(answer.clone()),
                (None, None) => return Err(SaltError::NotRunning(
                    "Salt Master is not available: the event bus connection was lost.".into(),
                )),
            },
            () = &mut give_up, if theirs.is_some() => {
                return Ok(theirs.map(|(_, answer)| answer).unwrap_or(accepted));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(v: Json) -> Chunk {
        v.as_object().cloned().expect("object")
    }

    /// The `wheel` load of a chunk.
    fn wheel_load(chunk: &Chunk, creds: &Credentials) -> SaltResult<Chunk> {
        Ok(WheelArgs::parse(chunk)?.load(creds, "wheel"))
    }

    #[test]
    fn a_raising_wheel_function_shows_no_traceback() {
        let text = "Exception occurred in wheel key.gen_accept: Traceback (most recent call last):\n  File \"/srv/venv/lib/python3.11/site-packages/salt/wheel/key.py\", line 1\nValueError: bad id";
        let mut reply = json!({"tag": "t", "data": {"success": false, "return": text}});
        shorten_exception(&mut reply);
        assert_eq!(
            reply["data"]["return"],
            "Exception occurred in wheel key.gen_accept: ValueError: bad id"
        );
        let mut fine = json!({"data": {"success": true, "return": text}});
        shorten_exception(&mut fine);
        assert_eq!(fine["data"]["return"], text);
    }

    #[test]
    fn wheel_load_forwards_chunk_minus_steering_keys() {
        let chunk = chunk(
            json!({"client": "wheel", "fun": "key.accept", "match": "m1", "token": "ab",
            "eauth": "pam", "auth_list": [".*"], "key": "root", "user": "root",
            "__jid__": "1", "__tag__": "salt/run/1/ret", "__user__": "root", "print_event": true}),
        );
        let creds = Credentials::from_chunk(&chunk).expect("creds");
        let load = wheel_load(&chunk, &creds).expect("load");
        assert_eq!(
            Json::Object(load),
            json!({"client": "wheel", "fun": "key.accept", "match": "m1", "token": "ab", "cmd": "wheel",
                "kwarg": {"arg": [], "kwarg": {"match": "m1"}}})
        );
    }

    #[test]
    fn the_checked_kwarg_is_what_runs() {
        let creds = Credentials::Token(crate::salt::credentials::Secret::new("ab".into()));
        // Issue 13 item 1: top-level match "*", kwarg saying "ms-0".
        let forged = chunk(json!({"fun": "key.print", "match": "*",
            "kwarg": {"kwarg": {"match": "ms-0"}}}));
        assert!(matches!(
            wheel_load(&forged, &creds),
            Err(SaltError::Invocation(m)) if m.contains("disagrees")
        ));
        let forged = chunk(json!({"fun": "key.print", "match": "*", "kwarg": {"match": "ms-0"}}));
        assert!(wheel_load(&forged, &creds).is_err());
        // Arguments only in kwarg run too (at the top level), in either shape.
        for kwarg in [
            json!({"kwarg": {"match": "ms-0"}}),
            json!({"match": "ms-0"}),
        ] {
            let c = chunk(json!({"fun": "key.print", "kwarg": kwarg}));
            let load = wheel_load(&c, &creds).expect("load");
            assert_eq!(load["match"], "ms-0");
            assert_eq!(
                load["kwarg"],
                json!({"arg": [], "kwarg": {"match": "ms-0"}})
            );
        }
        // Agreeing values are fine.
        let c = chunk(
            json!({"fun": "key.print", "match": "ms-0", "kwarg": {"kwarg": {"match": "ms-0"}}}),
        );
        assert_eq!(wheel_load(&c, &creds).expect("load")["match"], "ms-0");
        // Positional arguments, steering keys inside kwarg, a non-object kwarg: refused.
        for bad in [
            json!({"fun": "key.print", "arg": ["ms-0"]}),
            json!({"fun": "key.print", "kwarg": {"arg": ["*"], "kwarg": {}}}),
            json!({"fun": "key.print", "kwarg": {"__tag__": "salt/run/1/ret"}}),
            json!({"fun": "key.print", "kwarg": {"print_event": true}}),
            json!({"fun": "key.print", "kwarg": {"kwarg": {"user": "root"}}}),
            json!({"fun": "key.print", "kwarg": "match=*"}),
        ] {
            assert!(
                matches!(
                    wheel_load(&chunk(bad.clone()), &creds),
                    Err(SaltError::Invocation(_))
                ),
                "{bad}"
            );
        }
        // An empty arg list is no argument.
        let c = chunk(json!({"fun": "key.list_all", "arg": []}));
        assert!(wheel_load(&c, &creds).is_ok());
    }
}
