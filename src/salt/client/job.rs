//! The job a `local*` chunk publishes: reading the chunk, the publish load, and sending it.
//!
//! The publish load is LocalClient's (`_prep_pub`): credentials inside `kwargs`, `key: ""`,
//! nodegroups expanded (see `nodegroup`) because minions never see nodegroup names.

use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use super::nodegroup::{expand_compound, resolve_nodegroup};
use super::{Chunk, arg_list};
use crate::salt::channel::check_reply;
use crate::salt::credentials::Credentials;
use crate::salt::error::{SaltError, SaltResult};
use crate::salt::master::Master;
use crate::settings::Settings;

/// Chunk keys the master reads from a publish's `kwargs`; everything else stays here.
/// (Python forwards every unknown key; `auth_list` there even crashes the master's handler.)
const FORWARDED_KWARGS: [&str; 11] = [
    "delimiter",
    "nocache",
    "metadata",
    "module_executors",
    "executor_opts",
    "ret_config",
    "ret_kwargs",
    "master_id",
    "start_event",
    "gather_job_timeout",
    "expect_minions",
];

/// What to publish: the parts of a chunk that become the publish load.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Target (string, or list for `tgt_type: list`).
    pub tgt: Json,
    /// Function name (or list for compound commands).
    pub fun: Json,
    /// Positional args, already conditioned (`__kwarg__` dict last).
    pub arg: Vec<Json>,
    /// Matcher.
    pub tgt_type: String,
    /// Returners.
    pub ret: String,
    /// Caller-chosen jid, usually empty.
    pub jid: String,
    /// Extra master-level keys (see `FORWARDED_KWARGS`).
    pub extra: Map<String, Json>,
}

/// A published job: its jid and the minions the master expects to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// Job id.
    pub jid: String,
    /// Minions the master published to.
    pub minions: Vec<String>,
    /// Targeted minions the master does not know (`missing` of the reply).
    pub missing: Vec<String>,
}

impl Job {
    /// Reads a `local*` chunk.
    pub(crate) fn from_chunk(chunk: &Chunk, settings: &Settings) -> SaltResult<Job> {
        let tgt = match chunk.get("tgt") {
            Some(t @ Json::String(s)) if !s.is_empty() => t.clone(),
            Some(t @ Json::Array(items)) if items.iter().all(Json::is_string) => t.clone(),
            None | Some(Json::Null) => return Err(missing("tgt")),
            Some(_) => {
                return Err(SaltError::Invocation(
                    "'tgt' must be a string, or a list of minion ids".into(),
                ));
            }
        };
        let fun = match chunk.get("fun") {
            Some(f @ Json::String(s)) if !s.is_empty() => f.clone(),
            Some(f @ Json::Array(items))
                if !items.is_empty() && items.iter().all(Json::is_string) =>
            {
                f.clone()
            }
            None | Some(Json::Null) => return Err(missing("fun")),
            Some(_) => {
                return Err(SaltError::Invocation(
                    "'fun' must be a non-empty string".into(),
                ));
            }
        };
        let tgt_type = match chunk.get("tgt_type") {
            None | Some(Json::Null) => "glob".to_string(),
            Some(Json::String(s)) => s.clone(),
            Some(_) => return Err(SaltError::Invocation("'tgt_type' must be a string".into())),
        };
        let ret = match chunk.get("ret") {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(_) => return Err(SaltError::Invocation("'ret' must be a string".into())),
        };
        let jid = match chunk.get("jid") {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(Json::Number(n)) => n.to_string(),
            Some(_) => return Err(SaltError::Invocation("'jid' must be a string".into())),
        };
        if !jid.is_empty() && !settings.netapi.allow_caller_jid {
            // Another user's running job could be joined: its returns would be reported.
            return Err(SaltError::Forbidden(
                "A caller-chosen 'jid' is not allowed (salt_fcgi: allow_caller_jid)".into(),
            ));
        }
        let extra = FORWARDED_KWARGS
            .iter()
            .filter_map(|k| chunk.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        let mut job = Job {
            tgt,
            fun,
            arg: condition_input(arg_list(chunk.get("arg")), chunk.get("kwarg")),
            tgt_type,
            ret,
            jid,
            extra,
        };
        job.expand_targets(settings)?;
        if !settings.calls.ext_job_cache.is_empty() {
            job.ret = if job.ret.is_empty() {
                settings.calls.ext_job_cache.clone()
            } else {
                format!("{},{}", job.ret, settings.calls.ext_job_cache)
            };
        }
        Ok(job)
    }

    /// A job with the same credentials' context: `fun` on the listed minions, returning
    /// only to the `ext_job_cache` (as every publish of Salt's client without `ret` does).
    pub(crate) fn on_list(
        minions: &[String],
        fun: &str,
        arg: Vec<Json>,
        settings: &Settings,
    ) -> Job {
        Job {
            tgt: Json::from(minions.to_vec()),
            fun: Json::from(fun),
            arg,
            tgt_type: "list".into(),
            ret: settings.calls.ext_job_cache.clone(),
            jid: String::new(),
            extra: Map::new(),
        }
    }

    /// The probe Salt runs before a batch or subset (`test.ping`, `sys.list_functions`) on
    /// this job's target: no arguments, none of the caller's returners (only the
    /// `ext_job_cache`), and never the caller's jid (minions drop a jid they have seen, so
    /// the real job would not run).
    pub(crate) fn probe(&self, fun: &str, settings: &Settings) -> Job {
        Job {
            fun: Json::from(fun),
            arg: Vec::new(),
            ret: settings.calls.ext_job_cache.clone(),
            jid: String::new(),
            ..self.clone()
        }
    }

    /// Nodegroups and `N@` words become compound expressions (minions never see the names).
    fn expand_targets(&mut self, settings: &Settings) -> SaltResult<()> {
        let Json::String(tgt) = &self.tgt else {
            return Ok(());
        };
        let expanded = match self.tgt_type.as_str() {
            "nodegroup" => {
                let words = resolve_nodegroup(tgt, &settings.calls.nodegroups)?;
                expand_compound(&words.join(" "), &settings.calls.nodegroups)?
            }
            "compound" => expand_compound(tgt, &settings.calls.nodegroups)?,
            _ => return Ok(()),
        };
        self.tgt = Json::from(expanded);
        self.tgt_type = "compound".into();
        Ok(())
    }

    /// The publish load, credentials inside `kwargs`.
    fn load(&self, creds: &Credentials, client: &str) -> Json {
        let mut kwargs = self.extra.clone();
        kwargs.insert("client".into(), Json::from(client));
        creds.write_to(&mut kwargs);
        json!({
            "cmd": "publish",
            "tgt": self.tgt,
            "fun": self.fun,
            "arg": self.arg,
            "key": "",
            "tgt_type": self.tgt_type,
            "ret": self.ret,
            "jid": self.jid,
            "kwargs": kwargs,
            "user": super::os_user(),
        })
    }
}

fn missing(key: &str) -> SaltError {
    SaltError::Invocation(format!(
        "Missing '{key}': the local clients require 'tgt' and 'fun'"
    ))
}

/// Salt's `condition_input`: 20-digit integers become strings (jids); a non-empty `kwarg`
/// object is appended as `{"__kwarg__": true, …}`.
pub(crate) fn condition_input(args: Vec<Json>, kwarg: Option<&Json>) -> Vec<Json> {
    let mut out: Vec<Json> = args
        .into_iter()
        .map(|a| match &a {
            Json::Number(n) if n.is_u64() && n.to_string().len() == 20 => Json::from(n.to_string()),
            _ => a,
        })
        .collect();
    if let Some(Json::Object(kw)) = kwarg
        && !kw.is_empty()
    {
        let mut kw = kw.clone();
        kw.insert("__kwarg__".into(), Json::Bool(true));
        out.push(Json::Object(kw));
    }
    out
}

/// Sends a publish; `Ok(None)` when no minion matched the target.
pub(crate) async fn publish(
    master: &Master,
    job: &Job,
    creds: &Credentials,
    client: &str,
    timeout: Duration,
) -> SaltResult<Option<Published>> {
    let mut load = job.load(creds, client);
    if master.settings.calls.order_masters {
        // A master of masters passes the timeout on to its syndics (Salt's `_prep_pub`).
        load["to"] = whole_seconds(timeout);
    }
    let reply = check_reply(master.channel.send(load, timeout).await?)?;
    let load = match &reply {
        Json::Object(m) => m.get("load").cloned().unwrap_or(reply.clone()),
        Json::String(s) if s.is_empty() => {
            return Err(SaltError::Authentication(
                "Authentication error occurred.".into(),
            ));
        }
        Json::String(s) => return Err(SaltError::Master(s.clone())),
        other => {
            return Err(SaltError::Master(format!(
                "unexpected publish reply: {other}"
            )));
        }
    };
    let jid = match load.get("jid") {
        Some(Json::String(j)) if !j.is_empty() && j != "0" => j.clone(),
        Some(Json::Number(n)) if n.as_u64() != Some(0) => n.to_string(),
        _ => return Ok(None),
    };
    let ids = |key: &str| -> Vec<String> {
        load.get(key)
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let minions = ids("minions");
    if minions.is_empty() && !master.settings.calls.order_masters {
        return Ok(None);
    }
    Ok(Some(Published {
        jid,
        minions,
        missing: ids("missing"),
    }))
}

/// Seconds as JSON: an integer when whole (as Salt sends them), else a float.
fn whole_seconds(d: Duration) -> Json {
    let secs = d.as_secs_f64();
    if d.subsec_nanos() == 0 {
        Json::from(d.as_secs())
    } else {
        Json::from(secs)
    }
}

/// Tag prefixes a subscription needs before a publish whose jid is not known yet: every
/// job event, and bare `<jid>` events (fired by 3006/3007 masters, not by 3008).
pub(crate) fn prefixes_before_publish() -> Vec<String> {
    vec!["salt/job/".into(), "2".into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_carry_neither_the_callers_returners_nor_its_jid() {
        let m: serde_yaml_ng::Mapping =
            serde_yaml_ng::from_str("ext_job_cache: redis\nsalt_fcgi: {allow_caller_jid: true}\n")
                .expect("yaml");
        let settings = Settings::from_mapping(&m);
        let chunk = json!({"tgt": "*", "fun": "cmd.run", "arg": ["ls"], "ret": "mine", "jid": "20990101000000000000", "metadata": {"a": 1}});
        let job = Job::from_chunk(chunk.as_object().expect("object"), &settings).expect("job");
        assert_eq!(job.ret, "mine,redis");
        let probe = job.probe("test.ping", &settings);
        assert_eq!((probe.ret.as_str(), probe.jid.as_str()), ("redis", ""));
        assert_eq!(
            (probe.fun.clone(), probe.arg.clone()),
            (json!("test.ping"), vec![])
        );
        assert_eq!(probe.extra, job.extra, "master-level keys stay");
        let find = Job::on_list(&["a".into()], "saltutil.find_job", vec![], &settings);
        assert_eq!((find.ret.as_str(), find.jid.as_str()), ("redis", ""));
    }

    #[test]
    fn condition_input_like_salt() {
        let out = condition_input(
            vec![json!(10000000000000000000u64), json!(5), json!("x")],
            Some(&json!({"a": 1})),
        );
        assert_eq!(
            out,
            vec![
                json!("10000000000000000000"),
                json!(5),
                json!("x"),
                json!({"a": 1, "__kwarg__": true})
            ]
        );
        assert_eq!(
            condition_input(vec![], Some(&json!({}))),
            Vec::<Json>::new()
        );
    }

    #[test]
    fn publish_load_keeps_credentials_in_kwargs_only() {
        let settings = Settings::from_mapping(&serde_yaml_ng::Mapping::new());
        let chunk = json!({"client": "local", "tgt": "*", "fun": "test.ping", "eauth": "file",
            "username": "u", "password": "p", "auth_list": ["x"], "service": "login", "delimiter": "|"});
        let chunk = chunk.as_object().cloned().expect("object");
        let job = Job::from_chunk(&chunk, &settings).expect("job");
        let creds = Credentials::from_chunk(&chunk).expect("creds");
        let load = job.load(&creds, "local");
        assert_eq!(
            load["kwargs"],
            json!({"client": "local", "eauth": "file", "username": "u", "password": "p", "delimiter": "|"})
        );
        assert_eq!(load["key"], "");
        assert!(load.get("password").is_none());
        assert_eq!(load["arg"], json!([]));
    }
}
