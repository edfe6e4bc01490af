//! `local`, `local_async` and `local_subset`: publish a job, then collect minion returns.
//!
//! The publish load is LocalClient's (`_prep_pub`): credentials inside `kwargs`, `key: ""`,
//! nodegroups expanded here because minions never see nodegroup names. Return collection
//! follows LocalClient's `get_iter_returns`: wait `timeout`, then ask the silent minions
//! with `saltutil.find_job` whether they still run the job, and keep waiting for those
//! that do, up to `gather_job_timeout` between checks.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use tokio::time::Instant;

use super::{Chunk, Credentials, Master, arg_list, seconds, timeout_of};
use crate::salt::channel::check_reply;
use crate::salt::error::{SaltError, SaltResult};
use crate::salt::events::{Event, Subscription};
use crate::settings::{NodegroupDef, Settings};

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
pub struct Job {
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

/// How returns are collected.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Wait for returns (`timeout`).
    pub timeout: Duration,
    /// Wait for `saltutil.find_job` answers (`gather_job_timeout`).
    pub gather_job_timeout: Duration,
    /// Full return entries (`ret`, `retcode`, `jid`) instead of just `ret`.
    pub full_return: bool,
    /// `expect_minions` if the chunk set it (default depends on the master version).
    pub expect_minions: Option<bool>,
}

impl Job {
    /// Reads a `local*` chunk.
    pub fn from_chunk(chunk: &Chunk, settings: &Settings) -> SaltResult<Job> {
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
        if !jid.is_empty() && !settings.limits.allow_caller_jid {
            // Another user's running job could be joined: its returns would be reported.
            return Err(SaltError::Authorization(
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
        if !settings.ext_job_cache.is_empty() {
            job.ret = if job.ret.is_empty() {
                settings.ext_job_cache.clone()
            } else {
                format!("{},{}", job.ret, settings.ext_job_cache)
            };
        }
        Ok(job)
    }

    /// A job with the same credentials' context: `fun` on the listed minions, returning
    /// only to the `ext_job_cache` (as every publish of Salt's client without `ret` does).
    pub fn on_list(minions: &[String], fun: &str, arg: Vec<Json>, settings: &Settings) -> Job {
        Job {
            tgt: Json::from(minions.to_vec()),
            fun: Json::from(fun),
            arg,
            tgt_type: "list".into(),
            ret: settings.ext_job_cache.clone(),
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
            ret: settings.ext_job_cache.clone(),
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
                let words = resolve_nodegroup(tgt, &settings.nodegroups)?;
                expand_compound(&words.join(" "), &settings.nodegroups)?
            }
            "compound" => expand_compound(tgt, &settings.nodegroups)?,
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
pub fn condition_input(args: Vec<Json>, kwarg: Option<&Json>) -> Vec<Json> {
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

const COMPOUND_OPERATORS: [&str; 5] = ["and", "or", "not", "(", ")"];

type Nodegroups = std::collections::BTreeMap<String, NodegroupDef>;

/// A nodegroup named by the caller, as compound words (Salt's `_resolve_nodegroup`): an
/// unknown name is an error here; an unknown group nested inside is dropped, as Salt does.
fn resolve_nodegroup(name: &str, groups: &Nodegroups) -> SaltResult<Vec<String>> {
    if !groups.contains_key(name) {
        return Err(SaltError::Invocation(format!(
            "Node group {name} unavailable in the master config"
        )));
    }
    nodegroup_comp(name, groups, &mut Vec::new(), true)
}

/// Salt's `salt.utils.minions.nodegroup_comp`: the words of a nodegroup with nested `N@`
/// groups expanded (each in parentheses); a group of plain ids becomes one `L@a,b` word
/// (`E@…` if one looks like a regular expression); a top-level group with nothing nested
/// keeps its own words, without parentheses. A group nested in itself is an error.
fn nodegroup_comp(
    name: &str,
    groups: &Nodegroups,
    skip: &mut Vec<String>,
    first_call: bool,
) -> SaltResult<Vec<String>> {
    if skip.iter().any(|s| s == name) {
        return Err(SaltError::Invocation(format!(
            "Node group {name} is nested in itself"
        )));
    }
    let Some(def) = groups.get(name) else {
        // Salt logs "unknown nodegroup" and expands a nested one to nothing.
        return Ok(Vec::new());
    };
    let words: Vec<String> = match def {
        NodegroupDef::Compound(s) => s.split_whitespace().map(str::to_string).collect(),
        NodegroupDef::List(ids) => ids.clone(),
    };
    skip.push(name.to_string());
    let mut ret = Vec::new();
    let mut expanded = false;
    for word in &words {
        match word.strip_prefix("N@") {
            Some(inner) if !COMPOUND_OPERATORS.contains(&word.as_str()) && !inner.is_empty() => {
                expanded = true;
                ret.extend(nodegroup_comp(inner, groups, skip, false)?);
            }
            _ => ret.push(word.clone()),
        }
    }
    skip.pop();
    if (!first_call || !expanded)
        && let Some(joined) = ids_expression(&words)
    {
        return Ok(vec![joined]);
    }
    if !first_call || expanded {
        if !ret.is_empty() {
            ret.insert(0, "(".into());
            ret.push(")".into());
        }
        return Ok(ret);
    }
    Ok(words)
}

/// Salt's `_nodegroup_regex`: words with no operator, no `*` and no `X@` matcher are ids:
/// `L@a,b`, or `E@a,b` when one of them holds a regular-expression character.
fn ids_expression(words: &[String]) -> Option<String> {
    if words
        .iter()
        .any(|w| COMPOUND_OPERATORS.contains(&w.as_str()))
    {
        return None;
    }
    let typed = |w: &String| {
        let b = w.as_bytes();
        b.len() >= 2 && b[0].is_ascii_uppercase() && b[1] == b'@'
    };
    if words.iter().any(|w| w.contains('*') || typed(w)) {
        return None;
    }
    let regex = words
        .iter()
        .any(|w| w.contains(['(', '[', '{', '\\', '?', '}', ']', ')']));
    Some(format!(
        "{}@{}",
        if regex { "E" } else { "L" },
        words.join(",")
    ))
}

/// Replaces each `N@group` word of a compound target by its expansion (Salt's `_prep_pub`).
fn expand_compound(tgt: &str, groups: &Nodegroups) -> SaltResult<String> {
    let mut out = Vec::new();
    for w in tgt.split_whitespace() {
        match w.strip_prefix("N@") {
            Some(g) if !g.is_empty() => out.extend(resolve_nodegroup(g, groups)?),
            _ => out.push(w.to_string()),
        }
    }
    Ok(out.join(" "))
}

/// Sends a publish; `Ok(None)` when no minion matched the target.
pub async fn publish(
    master: &Master,
    job: &Job,
    creds: &Credentials,
    client: &str,
    timeout: Duration,
) -> SaltResult<Option<Published>> {
    let mut load = job.load(creds, client);
    if master.settings.order_masters {
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
    if minions.is_empty() && !master.settings.order_masters {
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
pub fn prefixes_before_publish() -> Vec<String> {
    vec!["salt/job/".into(), "2".into()]
}

/// The reply-wait for a publish: the chunk's timeout, else `publish_timeout`.
pub fn publish_wait(chunk: &Chunk, settings: &Settings) -> Duration {
    seconds(timeout_of(chunk.get("timeout"), settings.publish_timeout))
}

/// Collection options from a chunk.
pub fn collect_options(chunk: &Chunk, settings: &Settings) -> CollectOptions {
    CollectOptions {
        timeout: seconds(timeout_of(chunk.get("timeout"), settings.timeout)),
        gather_job_timeout: seconds(timeout_of(
            chunk.get("gather_job_timeout"),
            settings.gather_job_timeout,
        )),
        full_return: chunk.get("full_return").is_some_and(truthy),
        expect_minions: chunk.get("expect_minions").map(truthy),
    }
}

/// Python truthiness of a JSON value.
pub fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64() != Some(0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// What return collection saw besides the returns themselves.
#[derive(Debug, Default)]
pub struct Collected {
    /// Minions that returned.
    pub found: BTreeSet<String>,
    /// Minions expected (publish reply plus `minions` events).
    pub minions: BTreeSet<String>,
    /// Targeted minions the master does not know (`missing`).
    pub missing: BTreeSet<String>,
    /// A bare `<jid>` event arrived: the master is 3006/3007, not 3008.
    pub pre_3008: bool,
}

/// Collects returns of `job` from `sub` (which must have been subscribed before the
/// publish), calling `on_return(minion, entry)` as each arrives. `entry` is
/// `{"ret", "retcode"?, "jid"?, "out"?}`.
pub async fn collect(
    master: &Master,
    sub: &mut Subscription,
    job: &Published,
    creds: &Credentials,
    opts: &CollectOptions,
    mut on_return: impl FnMut(&str, Json),
) -> SaltResult<Collected> {
    let syndic = master.settings.order_masters;
    let mut state = CollectState::new(job, syndic, opts.timeout);
    sub.narrow(vec![state.job_prefix.clone(), job.jid.clone()]);
    let started = Instant::now();
    let syndic_wait = seconds(master.settings.syndic_wait);
    let mut timeout_at = started + opts.timeout;
    loop {
        // Events already queued count before any deadline is looked at.
        while let Some(event) = sub.try_recv() {
            state.handle(event, &mut on_return);
        }
        let now = Instant::now();
        if state.all_returned() {
            // A master of masters waits `syndic_wait` for the lower masters' minion lists.
            if !syndic || (!state.seen.minions.is_empty() && now > started + syndic_wait) {
                break;
            }
        }
        state.start_minion_timeouts(now);
        if now > timeout_at && state.minions_running {
            let pending: Vec<String> = state.pending().cloned().collect();
            let gather = opts.gather_job_timeout;
            state.find_job_prefix = find_job(master, sub, &job.jid, &pending, creds, gather)
                .await
                .map(|fj| format!("salt/job/{fj}/"));
            let mut prefixes = vec![state.job_prefix.clone(), job.jid.clone()];
            prefixes.extend(state.find_job_prefix.clone());
            sub.narrow(prefixes);
            state.minions_running = false;
            timeout_at = Instant::now() + gather;
            if syndic {
                timeout_at += syndic_wait;
            }
            continue;
        }
        let pending_deadline = state.pending_deadline().unwrap_or(now);
        if now > timeout_at && !state.minions_running && now >= pending_deadline {
            break;
        }
        let wake = if state.minions_running {
            timeout_at
        } else {
            timeout_at.max(pending_deadline)
        };
        let wake = wake.max(now + Duration::from_millis(10));
        match tokio::time::timeout_at(wake, sub.recv()).await {
            Err(_) => {}
            Ok(None) => return Err(bus_lost()),
            Ok(Some(event)) => state.handle(event, &mut on_return),
        }
    }
    Ok(state.seen)
}

/// What return collection tracks between events.
struct CollectState {
    jid: String,
    job_prefix: String,
    ret_prefix: String,
    /// The minions this publish targeted; `None` on a master of masters.
    targeted: Option<BTreeSet<String>>,
    seen: Collected,
    minion_timeouts: HashMap<String, Instant>,
    minions_running: bool,
    find_job_prefix: Option<String>,
    timeout: Duration,
}

impl CollectState {
    fn new(job: &Published, syndic: bool, timeout: Duration) -> CollectState {
        let job_prefix = format!("salt/job/{}/", job.jid);
        CollectState {
            jid: job.jid.clone(),
            ret_prefix: format!("{job_prefix}ret/"),
            job_prefix,
            // Only the minions this publish targeted are reported: another job under the
            // same jid (a caller-chosen one) must not leak its returns. A master of
            // masters learns its minions from the lower masters' events instead.
            targeted: (!syndic).then(|| job.minions.iter().chain(&job.missing).cloned().collect()),
            seen: Collected {
                minions: job.minions.iter().cloned().collect(),
                ..Collected::default()
            },
            minion_timeouts: HashMap::new(),
            minions_running: true,
            find_job_prefix: None,
            timeout,
        }
    }

    fn all_returned(&self) -> bool {
        self.seen.minions.is_subset(&self.seen.found)
    }

    fn pending(&self) -> impl Iterator<Item = &String> {
        self.seen.minions.difference(&self.seen.found)
    }

    fn start_minion_timeouts(&mut self, now: Instant) {
        let pending: Vec<String> = self.pending().cloned().collect();
        for id in pending {
            self.minion_timeouts.entry(id).or_insert(now + self.timeout);
        }
    }

    fn pending_deadline(&self) -> Option<Instant> {
        self.pending()
            .filter_map(|id| self.minion_timeouts.get(id))
            .max()
            .copied()
    }

    /// One event of the job or of its `find_job` probe.
    fn handle(&mut self, event: Arc<Event>, on_return: &mut impl FnMut(&str, Json)) {
        if event.tag == self.jid {
            self.seen.pre_3008 = true;
        }
        if event.tag == self.jid || event.tag.starts_with(&self.job_prefix) {
            let targeted = self.targeted.as_ref();
            if let Some((id, entry)) = job_event(event, &self.ret_prefix, targeted, &mut self.seen)
            {
                on_return(&id, entry);
            }
        } else if self
            .find_job_prefix
            .as_ref()
            .is_some_and(|p| event.tag.starts_with(p.as_str()))
            && let Some(id) = still_running(&event)
            && self.targeted.as_ref().is_none_or(|t| t.contains(&id))
        {
            self.minion_timeouts
                .insert(id.clone(), Instant::now() + self.timeout);
            self.seen.minions.insert(id);
            self.minions_running = true;
        }
    }
}

/// Handles one event of the job: `minions` announcements and returns. With `targeted`,
/// minions outside it are ignored.
fn job_event(
    event: Arc<Event>,
    ret_prefix: &str,
    targeted: Option<&BTreeSet<String>>,
    seen: &mut Collected,
) -> Option<(String, Json)> {
    let data = event.data.as_object()?;
    let wanted = |id: &String| targeted.is_none_or(|t| t.contains(id));
    let ids = |v: &Vec<Json>| -> Vec<String> {
        v.iter()
            .filter_map(|m| m.as_str().map(str::to_string))
            .filter(wanted)
            .collect()
    };
    if let Some(Json::Array(more)) = data.get("minions") {
        seen.minions.extend(ids(more));
        if let Some(Json::Array(miss)) = data.get("missing") {
            seen.missing.extend(ids(miss));
        }
        return None;
    }
    if !event.tag.starts_with(ret_prefix) || !data.contains_key("return") {
        return None;
    }
    let id = data
        .get("resource_id")
        .and_then(Json::as_str)
        .filter(|r| !r.is_empty())
        .or_else(|| data.get("id").and_then(Json::as_str))?
        .to_string();
    if !wanted(&id) || !seen.found.insert(id.clone()) {
        return None;
    }
    let mut entry = Map::new();
    for key in ["out", "retcode", "jid"] {
        if let Some(v) = data.get(key) {
            entry.insert(key.into(), v.clone());
        }
    }
    entry.insert("ret".into(), take_return(event));
    Some((id, Json::Object(entry)))
}

/// The event's `return`, moved out when this is the event's only holder (a big return is
/// not copied), cloned otherwise.
fn take_return(event: Arc<Event>) -> Json {
    match Arc::try_unwrap(event) {
        Ok(mut own) => own.data.get_mut("return").map_or(Json::Null, Json::take),
        Err(shared) => shared.data.get("return").cloned().unwrap_or(Json::Null),
    }
}

/// A `saltutil.find_job` return that says the minion is still running the job.
fn still_running(event: &Event) -> Option<String> {
    if !event.tag.contains("/ret/") {
        return None;
    }
    let data = event.data.as_object()?;
    let ret = data.get("return")?;
    let busy = match ret {
        Json::Object(m) => !m.is_empty() && m.get("return") != Some(&json!({})),
        _ => false,
    };
    busy.then(|| data.get("id")?.as_str().map(str::to_string))
        .flatten()
}

/// Asks `pending` minions whether they still run `jid`; returns the find_job jid.
async fn find_job(
    master: &Master,
    sub: &Subscription,
    jid: &str,
    pending: &[String],
    creds: &Credentials,
    gather: Duration,
) -> Option<String> {
    if pending.is_empty() {
        return None;
    }
    // Widen first: the find_job returns may arrive before its publish reply does.
    sub.narrow(prefixes_before_publish());
    let mut probe = Job::on_list(
        pending,
        "saltutil.find_job",
        vec![Json::from(jid)],
        &master.settings,
    );
    probe
        .extra
        .insert("gather_job_timeout".into(), json!(gather.as_secs_f64()));
    match publish(master, &probe, creds, "local", gather).await {
        Ok(Some(p)) => Some(p.jid),
        Ok(None) => None,
        Err(e) => {
            crate::log::warn(&format!("saltutil.find_job for job {jid} failed: {e}"));
            None
        }
    }
}

fn bus_lost() -> SaltError {
    SaltError::NotRunning(
        "Salt Master is not available: the event bus connection was lost while waiting for returns."
            .into(),
    )
}

/// The `[No response]` text Salt gives for a minion that did not return.
pub fn no_response(jid: &str) -> String {
    format!(
        "Minion did not return. [No response]\nThe minions may not have all finished running and \
         any remaining minions will return upon completion. To look up the return data for this \
         job later, run the following command:\n\nsalt-run jobs.lookup_jid {jid}"
    )
}

/// `local`: publish, collect, and shape `{minion: return}` as LocalClient.cmd does.
pub async fn local(master: &Master, chunk: &Chunk, creds: &Credentials) -> SaltResult<Json> {
    let job = Job::from_chunk(chunk, &master.settings)?;
    let opts = collect_options(chunk, &master.settings);
    run_and_collect(
        master,
        &job,
        creds,
        "local",
        publish_wait(chunk, &master.settings),
        &opts,
    )
    .await
}

/// Publishes `job` and collects its returns into one `{minion: ret}` object.
pub async fn run_and_collect(
    master: &Master,
    job: &Job,
    creds: &Credentials,
    client: &str,
    publish_timeout: Duration,
    opts: &CollectOptions,
) -> SaltResult<Json> {
    let mut sub = master.bus.subscribe(prefixes_before_publish()).await?;
    let Some(published) = publish(master, job, creds, client, publish_timeout).await? else {
        return Ok(json!({}));
    };
    let mut out = Map::new();
    let full = opts.full_return;
    let seen = collect(master, &mut sub, &published, creds, opts, |id, entry| {
        let value = if full {
            entry
        } else {
            entry.get("ret").cloned().unwrap_or(json!({}))
        };
        out.insert(id.to_string(), value);
    })
    .await?;
    let failed = |out: &mut Map<String, Json>, id: &str| {
        let text = no_response(&published.jid);
        let value = if full {
            json!({"out": "no_return", "ret": text, "retcode": 1})
        } else {
            Json::from(text)
        };
        out.insert(id.to_string(), value);
    };
    if opts.expect_minions.unwrap_or(!seen.pre_3008) {
        for id in seen.minions.difference(&seen.found) {
            failed(&mut out, id);
        }
    }
    for id in seen.missing.difference(&seen.found) {
        failed(&mut out, id);
    }
    for id in &published.minions {
        out.entry(id.clone()).or_insert(Json::Bool(false));
    }
    Ok(Json::Object(out))
}

/// `local_async`: publish only; `{"jid", "minions"}` or `{}` if nothing matched.
pub async fn local_async(master: &Master, chunk: &Chunk, creds: &Credentials) -> SaltResult<Json> {
    let job = Job::from_chunk(chunk, &master.settings)?;
    let wait = publish_wait(chunk, &master.settings);
    Ok(
        match publish(master, &job, creds, "local_async", wait).await? {
            Some(p) => json!({"jid": p.jid, "minions": p.minions}),
            None => json!({}),
        },
    )
}

/// `local_subset`: run `fun` on `subset` (alias `sub`, default 3) random minions of the
/// target that have the function.
pub async fn local_subset(master: &Master, chunk: &Chunk, creds: &Credentials) -> SaltResult<Json> {
    let job = Job::from_chunk(chunk, &master.settings)?;
    let Json::String(fun) = &job.fun else {
        return Err(SaltError::Invocation(
            "local_subset needs 'fun' as a string".into(),
        ));
    };
    let size = chunk
        .get("sub")
        .or_else(|| chunk.get("subset"))
        .map_or(Some(3), Json::as_u64)
        .ok_or_else(|| SaltError::Invocation("'subset' must be a number".into()))?;
    let opts = collect_options(chunk, &master.settings);
    let wait = publish_wait(chunk, &master.settings);
    let probe = job.probe("sys.list_functions", &master.settings);
    let listing_opts = CollectOptions {
        full_return: false,
        ..opts.clone()
    };
    let listing =
        run_and_collect(master, &probe, creds, "local_subset", wait, &listing_opts).await?;
    let mut ids: Vec<&String> = listing
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    shuffle(&mut ids);
    let chosen: Vec<String> = ids
        .into_iter()
        .filter(|id| {
            listing[id.as_str()]
                .as_array()
                .is_some_and(|fs| fs.iter().any(|f| f.as_str() == Some(fun)))
        })
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .cloned()
        .collect();
    let mut run = Job::on_list(&chosen, fun, job.arg.clone(), &master.settings);
    run.ret = job.ret.clone();
    run.jid = job.jid.clone();
    run.extra = job.extra.clone();
    run_and_collect(master, &run, creds, "local_subset", wait, &opts).await
}

/// Fisher-Yates with the standard library's randomly seeded hasher as the source.
fn shuffle<T>(items: &mut [T]) {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    for i in (1..items.len()).rev() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        let j = (h.finish() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn groups() -> BTreeMap<String, NodegroupDef> {
        let mut g = BTreeMap::new();
        g.insert("web".into(), NodegroupDef::Compound("L@ms-0".into()));
        g.insert(
            "both".into(),
            NodegroupDef::Compound("N@web or ms-1".into()),
        );
        g.insert(
            "ids".into(),
            NodegroupDef::List(vec!["a".into(), "b".into()]),
        );
        g.insert("loop".into(), NodegroupDef::Compound("N@loop".into()));
        g.insert("plain".into(), NodegroupDef::Compound("ms-0 ms-1".into()));
        g.insert(
            "regex".into(),
            NodegroupDef::Compound("web[0-9] db?".into()),
        );
        g.insert(
            "globbed".into(),
            NodegroupDef::Compound("web* or db*".into()),
        );
        g.insert(
            "nested".into(),
            NodegroupDef::Compound("N@plain and G@os:Debian".into()),
        );
        g.insert(
            "unknown".into(),
            NodegroupDef::Compound("N@nosuch or ms-1".into()),
        );
        g
    }

    fn expand(name: &str) -> SaltResult<String> {
        let g = groups();
        let words = resolve_nodegroup(name, &g)?;
        expand_compound(&words.join(" "), &g)
    }

    #[test]
    fn nodegroups_expand_like_salts_nodegroup_comp() {
        let g = groups();
        // Top-level groups with nothing nested keep their own words, without parentheses;
        // nested groups are parenthesised, and so is a top-level group that nests one.
        assert_eq!(expand("web"), Ok("L@ms-0".into()));
        assert_eq!(expand("both"), Ok("( ( L@ms-0 ) or ms-1 )".into()));
        assert_eq!(expand("ids"), Ok("L@a,b".into()));
        assert_eq!(expand("plain"), Ok("L@ms-0,ms-1".into()));
        assert_eq!(expand("regex"), Ok("E@web[0-9],db?".into()));
        assert_eq!(expand("globbed"), Ok("web* or db*".into()));
        // A nested group of plain ids is one L@ word (no parentheses).
        assert_eq!(
            expand("nested"),
            Ok("( L@ms-0,ms-1 and G@os:Debian )".into())
        );
        // An unknown nested group is dropped, as Salt does.
        assert_eq!(expand("unknown"), Ok("( or ms-1 )".into()));
        assert!(expand("loop").is_err());
        assert!(expand("nope").is_err());
        assert_eq!(
            expand_compound("N@web and G@os:Debian", &g),
            Ok("L@ms-0 and G@os:Debian".into())
        );
        assert_eq!(
            expand_compound("N@plain and ms-0", &g),
            Ok("L@ms-0,ms-1 and ms-0".into())
        );
    }

    #[test]
    fn probes_carry_neither_the_callers_returners_nor_its_jid() {
        let m: serde_yaml_ng::Mapping =
            serde_yaml_ng::from_str("ext_job_cache: redis\nsalt_fcgi: {allow_caller_jid: true}\n")
                .expect("yaml");
        let settings = Settings::from_mapping("/x".into(), &m);
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
        let settings = Settings::from_mapping("/x".into(), &serde_yaml_ng::Mapping::new());
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

    #[test]
    fn a_return_is_moved_out_only_from_an_unshared_event() {
        let event = Arc::new(Event {
            tag: "salt/job/1/ret/a".into(),
            data: json!({"id": "a", "return": "big"}),
        });
        let other = Arc::clone(&event);
        assert_eq!(take_return(event), json!("big"));
        assert_eq!(other.data["return"], "big", "another holder still sees it");
        assert_eq!(take_return(other), json!("big"));
    }

    #[test]
    fn job_events_and_find_job_answers() {
        let mut seen = Collected::default();
        let ev = |tag: &str, data: Json| {
            Arc::new(Event {
                tag: tag.into(),
                data,
            })
        };
        let r = job_event(
            ev(
                "salt/job/1/ret/a",
                json!({"id": "a", "return": true, "retcode": 0, "jid": "1"}),
            ),
            "salt/job/1/ret/",
            None,
            &mut seen,
        );
        assert_eq!(
            r,
            Some(("a".into(), json!({"ret": true, "retcode": 0, "jid": "1"})))
        );
        // Duplicates are ignored.
        assert_eq!(
            job_event(
                ev("salt/job/1/ret/a", json!({"id": "a", "return": 1})),
                "salt/job/1/ret/",
                None,
                &mut seen
            ),
            None
        );
        job_event(
            ev(
                "salt/job/1/new",
                json!({"minions": ["b"], "missing": ["c"]}),
            ),
            "salt/job/1/ret/",
            None,
            &mut seen,
        );
        assert!(seen.minions.contains("b") && seen.missing.contains("c"));
        assert_eq!(
            still_running(&ev(
                "salt/job/2/ret/b",
                json!({"id": "b", "return": {"jid": "1", "fun": "x"}})
            )),
            Some("b".into())
        );
        assert_eq!(
            still_running(&ev("salt/job/2/ret/b", json!({"id": "b", "return": {}}))),
            None
        );
    }
}
