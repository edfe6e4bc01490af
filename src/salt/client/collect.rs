//! Return collection: the events of a published job, until every minion returned or
//! Salt's deadlines pass.
//!
//! It follows LocalClient's `get_iter_returns`: wait `timeout`, then ask the silent minions
//! with `saltutil.find_job` whether they still run the job, and keep waiting for those
//! that do, up to `gather_job_timeout` between checks.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use tokio::time::Instant;

use super::job::{Job, Published, prefixes_before_publish, publish};
use super::{Chunk, timeout_of, truthy};
use crate::salt::credentials::Credentials;
use crate::salt::error::{SaltError, SaltResult};
use crate::salt::events::{Event, Subscription};
use crate::salt::master::Master;
use crate::settings::Settings;
use crate::settings::seconds;

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

/// Collection options from a chunk whose own `timeout` is `timeout` (else the master's).
pub(crate) fn collect_options(
    chunk: &Chunk,
    timeout: Option<f64>,
    settings: &Settings,
) -> CollectOptions {
    CollectOptions {
        timeout: seconds(timeout.unwrap_or(settings.calls.timeout)),
        gather_job_timeout: seconds(timeout_of(
            chunk.get("gather_job_timeout"),
            settings.calls.gather_job_timeout,
        )),
        full_return: chunk.get("full_return").is_some_and(truthy),
        expect_minions: chunk.get("expect_minions").map(truthy),
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
///
/// Each event costs O(log n) in the number of minions: what is still pending and the
/// latest deadline among them are kept up to date, never recomputed over the fleet.
pub async fn collect(
    master: &Master,
    sub: &mut Subscription,
    job: &Published,
    creds: &Credentials,
    opts: &CollectOptions,
    mut on_return: impl FnMut(&str, Json),
) -> SaltResult<Collected> {
    let syndic_wait = master
        .settings
        .calls
        .order_masters
        .then(|| seconds(master.settings.calls.syndic_wait));
    let mut state = CollectState::new(job, syndic_wait, opts, Instant::now());
    sub.narrow(vec![state.job_prefix.clone(), job.jid.clone()]);
    loop {
        // Events already queued count before any deadline is looked at.
        while let Some(event) = sub.try_recv() {
            state.handle(event, Instant::now(), &mut on_return);
        }
        match state.next(Instant::now()) {
            Next::Done => break,
            Next::FindJob => {
                let pending: Vec<String> = state.waiting.ids().cloned().collect();
                let gather = opts.gather_job_timeout;
                let probe = find_job(master, sub, &job.jid, &pending, creds, gather).await;
                state.probed(probe, Instant::now());
                sub.narrow(state.prefixes());
            }
            Next::Wait(wake) => match tokio::time::timeout_at(wake, sub.recv()).await {
                Err(_) => {}
                Ok(None) => return Err(bus_lost()),
                Ok(Some(event)) => state.handle(event, Instant::now(), &mut on_return),
            },
        }
    }
    Ok(state.seen)
}

/// What the collection loop does next.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Next {
    /// Every minion returned, or every deadline passed.
    Done,
    /// `timeout` passed with minions still running: ask them with `saltutil.find_job`.
    FindJob,
    /// Wait for an event until this instant.
    Wait(Instant),
}

/// Minions expected but not returned yet, and until when each one is waited for
/// (LocalClient's `minions - found` and `minion_timeouts`), kept so that every change
/// costs O(log n).
#[derive(Debug, Default)]
struct Waiting {
    /// Pending minion → its deadline, once its wait started.
    deadlines: HashMap<String, Option<Instant>>,
    /// The deadlines of pending minions whose wait started, in order.
    by_deadline: BTreeSet<(Instant, String)>,
    /// Pending minions whose wait has not started yet.
    unstarted: Vec<String>,
}

impl Waiting {
    /// `id` is expected (not yet returned).
    fn expect(&mut self, id: &str) {
        if !self.deadlines.contains_key(id) {
            self.deadlines.insert(id.to_string(), None);
            self.unstarted.push(id.to_string());
        }
    }

    /// `id` returned: it is no longer waited for.
    fn returned(&mut self, id: &str) {
        if let Some(Some(at)) = self.deadlines.remove(id) {
            self.by_deadline.remove(&(at, id.to_string()));
        }
    }

    /// Starts the wait of every pending minion that has none yet (LocalClient sets
    /// `minion_timeouts[id] = now + timeout` for each new one on every pass).
    fn start(&mut self, at: Instant) {
        for id in std::mem::take(&mut self.unstarted) {
            if let Some(slot @ None) = self.deadlines.get_mut(&id) {
                *slot = Some(at);
                self.by_deadline.insert((at, id));
            }
        }
    }

    /// A pending `id` is waited for until `at` (it said it still runs the job).
    fn wait_until(&mut self, id: &str, at: Instant) {
        if let Some(slot) = self.deadlines.get_mut(id) {
            if let Some(old) = slot.replace(at) {
                self.by_deadline.remove(&(old, id.to_string()));
            }
            self.by_deadline.insert((at, id.to_string()));
        }
    }

    fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    /// The latest deadline of a pending minion.
    fn latest(&self) -> Option<Instant> {
        self.by_deadline.last().map(|(at, _)| *at)
    }

    /// The pending minions.
    fn ids(&self) -> impl Iterator<Item = &String> {
        self.deadlines.keys()
    }
}

/// What return collection tracks between events.
struct CollectState {
    jid: String,
    job_prefix: String,
    ret_prefix: String,
    /// The minions this publish targeted; `None` on a master of masters.
    targeted: Option<BTreeSet<String>>,
    seen: Collected,
    waiting: Waiting,
    minions_running: bool,
    find_job_prefix: Option<String>,
    timeout: Duration,
    gather_job_timeout: Duration,
    /// `syndic_wait` on a master of masters, which waits that long for the lower
    /// masters' minion lists.
    syndic_wait: Option<Duration>,
    started: Instant,
    timeout_at: Instant,
}

impl CollectState {
    fn new(
        job: &Published,
        syndic_wait: Option<Duration>,
        opts: &CollectOptions,
        now: Instant,
    ) -> CollectState {
        let job_prefix = format!("salt/job/{}/", job.jid);
        let mut state = CollectState {
            jid: job.jid.clone(),
            ret_prefix: format!("{job_prefix}ret/"),
            job_prefix,
            // Only the minions this publish targeted are reported: another job under the
            // same jid (a caller-chosen one) must not leak its returns. A master of
            // masters learns its minions from the lower masters' events instead.
            targeted: syndic_wait
                .is_none()
                .then(|| job.minions.iter().chain(&job.missing).cloned().collect()),
            seen: Collected::default(),
            waiting: Waiting::default(),
            minions_running: true,
            find_job_prefix: None,
            timeout: opts.timeout,
            gather_job_timeout: opts.gather_job_timeout,
            syndic_wait,
            started: now,
            timeout_at: now + opts.timeout,
        };
        for id in &job.minions {
            state.expect(id);
        }
        state
    }

    /// `id` is one of the minions expected to answer.
    fn expect(&mut self, id: &str) {
        if self.seen.minions.insert(id.to_string()) && !self.seen.found.contains(id) {
            self.waiting.expect(id);
        }
    }

    /// The prefixes the subscription needs now.
    fn prefixes(&self) -> Vec<String> {
        let mut prefixes = vec![self.job_prefix.clone(), self.jid.clone()];
        prefixes.extend(self.find_job_prefix.clone());
        prefixes
    }

    /// One pass of LocalClient's loop after the queued events were handled.
    fn next(&mut self, now: Instant) -> Next {
        if self.waiting.is_empty() {
            match self.syndic_wait {
                None => return Next::Done,
                Some(wait) if !self.seen.minions.is_empty() && now > self.started + wait => {
                    return Next::Done;
                }
                Some(_) => {}
            }
        }
        self.waiting.start(now + self.timeout);
        if now > self.timeout_at && self.minions_running {
            return Next::FindJob;
        }
        let pending_deadline = self.waiting.latest().unwrap_or(now);
        if now > self.timeout_at && !self.minions_running && now >= pending_deadline {
            return Next::Done;
        }
        let wake = if self.minions_running {
            self.timeout_at
        } else {
            self.timeout_at.max(pending_deadline)
        };
        Next::Wait(wake.max(now + Duration::from_millis(10)))
    }

    /// The `saltutil.find_job` probe was sent (`probe` is its jid, if it went out).
    fn probed(&mut self, probe: Option<String>, now: Instant) {
        self.find_job_prefix = probe.map(|fj| format!("salt/job/{fj}/"));
        self.minions_running = false;
        self.timeout_at = now + self.gather_job_timeout + self.syndic_wait.unwrap_or_default();
    }

    /// One event of the job or of its `find_job` probe, handled at `now`.
    fn handle(&mut self, event: Arc<Event>, now: Instant, on_return: &mut impl FnMut(&str, Json)) {
        if event.tag == self.jid {
            self.seen.pre_3008 = true;
        }
        if event.tag == self.jid || event.tag.starts_with(&self.job_prefix) {
            match job_event(event, &self.ret_prefix, self.targeted.as_ref()) {
                JobEvent::Minions { minions, missing } => {
                    for id in &minions {
                        self.expect(id);
                    }
                    self.seen.missing.extend(missing);
                }
                JobEvent::Return(id, entry) => {
                    if self.seen.found.insert(id.clone()) {
                        self.waiting.returned(&id);
                        on_return(&id, entry);
                    }
                }
                JobEvent::Other => {}
            }
        } else if self
            .find_job_prefix
            .as_ref()
            .is_some_and(|p| event.tag.starts_with(p.as_str()))
            && let Some(id) = still_running(&event)
            && self.targeted.as_ref().is_none_or(|t| t.contains(&id))
        {
            self.expect(&id);
            self.waiting.wait_until(&id, now + self.timeout);
            self.minions_running = true;
        }
    }
}

/// What one event of the job says.
#[derive(Debug, PartialEq)]
enum JobEvent {
    /// The minions expected to answer (and targeted ones the master does not know).
    Minions {
        minions: Vec<String>,
        missing: Vec<String>,
    },
    /// A minion's return entry.
    Return(String, Json),
    /// Nothing collection needs.
    Other,
}

/// Reads one event of the job: `minions` announcements and returns. With `targeted`,
/// minions outside it are ignored.
fn job_event(event: Arc<Event>, ret_prefix: &str, targeted: Option<&BTreeSet<String>>) -> JobEvent {
    let Some(data) = event.data.as_object() else {
        return JobEvent::Other;
    };
    let wanted = |id: &String| targeted.is_none_or(|t| t.contains(id));
    let ids = |v: Option<&Json>| -> Vec<String> {
        v.and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(str::to_string))
            .filter(wanted)
            .collect()
    };
    if let Some(more @ Json::Array(_)) = data.get("minions") {
        return JobEvent::Minions {
            minions: ids(Some(more)),
            missing: ids(data.get("missing")),
        };
    }
    if !event.tag.starts_with(ret_prefix) || !data.contains_key("return") {
        return JobEvent::Other;
    }
    let id = data
        .get("resource_id")
        .and_then(Json::as_str)
        .filter(|r| !r.is_empty())
        .or_else(|| data.get("id").and_then(Json::as_str));
    let Some(id) = id.map(str::to_string).filter(wanted) else {
        return JobEvent::Other;
    };
    let mut entry = Map::new();
    for key in ["out", "retcode", "jid"] {
        if let Some(v) = data.get(key) {
            entry.insert(key.into(), v.clone());
        }
    }
    entry.insert("ret".into(), take_return(event));
    JobEvent::Return(id, Json::Object(entry))
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
pub(crate) fn no_response(jid: &str) -> String {
    format!(
        "Minion did not return. [No response]\nThe minions may not have all finished running and \
         any remaining minions will return upon completion. To look up the return data for this \
         job later, run the following command:\n\nsalt-run jobs.lookup_jid {jid}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn ev(tag: &str, data: Json) -> Arc<Event> {
        Arc::new(Event {
            tag: tag.into(),
            data,
        })
    }

    fn opts(timeout: u64) -> CollectOptions {
        CollectOptions {
            timeout: Duration::from_secs(timeout),
            gather_job_timeout: Duration::from_secs(5),
            full_return: false,
            expect_minions: None,
        }
    }

    fn published(n: usize) -> Published {
        Published {
            jid: "1".into(),
            minions: (0..n).map(|i| format!("m{i}")).collect(),
            missing: vec![],
        }
    }

    #[test]
    fn job_events_and_find_job_answers() {
        let now = Instant::now();
        let mut state = CollectState::new(&published(1), Some(Duration::ZERO), &opts(5), now);
        let mut got = Vec::new();
        let mut keep = |id: &str, entry: Json| got.push((id.to_string(), entry));
        state.handle(
            ev(
                "salt/job/1/ret/a",
                json!({"id": "a", "return": true, "retcode": 0, "jid": "1"}),
            ),
            now,
            &mut keep,
        );
        // Duplicates are ignored.
        state.handle(
            ev("salt/job/1/ret/a", json!({"id": "a", "return": 1})),
            now,
            &mut keep,
        );
        state.handle(
            ev(
                "salt/job/1/new",
                json!({"minions": ["b"], "missing": ["c"]}),
            ),
            now,
            &mut keep,
        );
        assert_eq!(
            got,
            vec![(
                "a".to_string(),
                json!({"ret": true, "retcode": 0, "jid": "1"})
            )]
        );
        assert!(state.seen.minions.contains("b") && state.seen.missing.contains("c"));
        let mut pending: Vec<&String> = state.waiting.ids().collect();
        pending.sort();
        assert_eq!(pending, ["b", "m0"]);
        assert_eq!(
            job_event(
                ev("salt/job/1/new", json!({"fun": "x"})),
                "salt/job/1/ret/",
                None
            ),
            JobEvent::Other
        );
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

    #[test]
    fn silent_minions_get_find_job_then_their_deadline_ends_the_wait() {
        let start = Instant::now();
        let mut state = CollectState::new(&published(3), None, &opts(10), start);
        let mut count = 0;
        let mut on_return = |_: &str, _: Json| count += 1;
        assert_eq!(
            state.next(start),
            Next::Wait(start + Duration::from_secs(10))
        );
        state.handle(
            ev("salt/job/1/ret/m0", json!({"id": "m0", "return": true})),
            start,
            &mut on_return,
        );
        let later = start + Duration::from_secs(11);
        assert_eq!(state.next(later), Next::FindJob);
        state.probed(Some("2".into()), later);
        assert!(state.prefixes().contains(&"salt/job/2/".to_string()));
        // m1 still runs the job: it is waited for `timeout` more; m2 says nothing.
        state.handle(
            ev(
                "salt/job/2/ret/m1",
                json!({"id": "m1", "return": {"jid": "1"}}),
            ),
            later + Duration::from_secs(5),
            &mut on_return,
        );
        let after_gather = later + Duration::from_secs(6);
        assert_eq!(state.next(after_gather), Next::FindJob, "m1 was running");
        state.probed(None, after_gather);
        let m1_deadline = state.waiting.latest().expect("a deadline");
        assert!(m1_deadline > after_gather, "m1's wait was extended");
        assert_eq!(
            state.next(after_gather + Duration::from_secs(6)),
            Next::Wait(m1_deadline)
        );
        assert_eq!(state.next(m1_deadline), Next::Done);
        assert_eq!(count, 1);
        let mut pending: Vec<&String> = state.waiting.ids().collect();
        pending.sort();
        assert_eq!(pending, ["m1", "m2"]);
    }

    /// This thread's CPU time: what a computation costs, whatever else loads the machine
    /// (wall time at load 14 on 2 cores was 10x the CPU time).
    fn thread_cpu() -> Duration {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    }

    /// 10,000 minions returning one after the other: each event must cost O(log n), not a
    /// pass over the fleet (the old loop took ~10 s of CPU here, and grew with the square;
    /// this one takes ~0.3-0.6 s in a debug build, so the bound is 5 s of this thread's CPU).
    #[test]
    fn a_ten_thousand_minion_fleet_is_collected_in_linear_time() {
        const N: usize = 10_000;
        let job = published(N);
        let begun = thread_cpu();
        let now = Instant::now();
        let mut state = CollectState::new(&job, None, &opts(60), now);
        let mut got = 0usize;
        let mut on_return = |_: &str, _: Json| got += 1;
        state.handle(
            ev("salt/job/1/new", json!({"minions": job.minions.clone()})),
            now,
            &mut on_return,
        );
        for (i, id) in job.minions.iter().enumerate() {
            assert!(
                matches!(state.next(now), Next::Wait(_)),
                "waiting before {i}"
            );
            let tag = format!("salt/job/1/ret/{id}");
            state.handle(
                ev(&tag, json!({"id": id, "return": true})),
                now,
                &mut on_return,
            );
            // A duplicate costs nothing and counts once.
            state.handle(
                ev(&tag, json!({"id": id, "return": true})),
                now,
                &mut on_return,
            );
        }
        assert_eq!(state.next(now), Next::Done);
        assert_eq!((got, state.seen.found.len()), (N, N));
        let took = thread_cpu() - begun;
        assert!(
            took < Duration::from_secs(5),
            "10,000 returns took {took:?}"
        );
    }
}
