//! `local_batch`: run a job over the target a few minions at a time, like `salt -b`.
//!
//! First `test.ping` finds the minions that are up (with the caller's credentials, so bad
//! credentials stop everything before anything runs: CVE-2017-5192). Then at most `batch`
//! minions (a count or `N%`) run at once; each finished minion frees its slot after
//! `batch_wait` seconds. The result is a flat list of `{minion: return}` in completion
//! order, as rest_cherrypy yields it (the lowstate endpoint puts each item into `return`
//! on its own); a minion that never returned gives `{minion: {}}`.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use super::collect::{self, CollectOptions};
use super::job::{self, Job};
use super::local::{self, LocalArgs};
use super::{Chunk, timeout_of, truthy};
use crate::salt::credentials::Credentials;
use crate::salt::error::{SaltError, SaltResult};
use crate::salt::master::Master;
use crate::settings::{Settings, seconds};

/// What a sub-batch task reports.
enum Report {
    /// A minion finished (return entry with `ret` and maybe `retcode`).
    Returned(String, Json),
    /// The sub-batch is over; these minions never returned.
    Done(Vec<String>),
    /// The sub-batch could not run.
    Failed(SaltError),
}

/// What a `local_batch` chunk runs: a `local` job, `size` minions at a time.
#[derive(Debug, Clone)]
pub(crate) struct BatchArgs {
    /// The job over the whole target.
    pub(crate) local: LocalArgs,
    /// `batch`: how many minions run at once.
    pub(crate) size: BatchSize,
    /// `batch_wait`: how long a finished minion's slot stays empty.
    pub(crate) batch_wait: Duration,
    /// `failhard`: the first failed return ends the run.
    pub(crate) failhard: bool,
}

impl BatchArgs {
    /// Reads a `local_batch` chunk.
    pub(crate) fn parse(
        chunk: &Chunk,
        timeout: Option<f64>,
        settings: &Settings,
    ) -> SaltResult<BatchArgs> {
        let local = LocalArgs::parse(chunk, timeout, settings)?;
        if !local.job.jid.is_empty() {
            // Minions drop a jid they have seen: only the first sub-batch would run.
            return Err(SaltError::Invocation(
                "local_batch publishes one job per sub-batch: a 'jid' cannot be given".into(),
            ));
        }
        Ok(BatchArgs {
            local,
            size: BatchSize::parse(chunk.get("batch"))?,
            batch_wait: seconds(timeout_of(chunk.get("batch_wait"), 0.0)),
            failhard: chunk.get("failhard").is_some_and(truthy),
        })
    }
}

/// Runs a `local_batch` chunk: its `{minion: return}` items in completion order.
pub(crate) async fn local_batch(
    master: &Arc<Master>,
    args: &BatchArgs,
    creds: &Credentials,
) -> SaltResult<Vec<Json>> {
    let (job, opts, wait) = (
        &args.local.job,
        &args.local.collect,
        args.local.publish_wait,
    );
    let up = minions_up(master, job, creds, wait, opts).await?;
    let size = args.size.of(up.len())?;
    let (batch_wait, failhard) = (args.batch_wait, args.failhard);
    let mut queue: VecDeque<String> = up.into();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut active = 0usize;
    let mut cooling: Vec<Instant> = Vec::new();
    let mut out = Vec::new();
    loop {
        let now = Instant::now();
        cooling.retain(|t| *t > now);
        let free = size.saturating_sub(active + cooling.len());
        if free > 0 && !queue.is_empty() {
            let next: Vec<String> = queue.drain(..free.min(queue.len())).collect();
            active += next.len();
            let run = Job {
                tgt: json!(next),
                tgt_type: "list".into(),
                ..job.clone()
            };
            tokio::spawn(crate::salt::sent::inherit(sub_batch(
                Arc::clone(master),
                run,
                creds.clone(),
                wait,
                opts.clone(),
                tx.clone(),
            )));
        }
        if active == 0 && queue.is_empty() {
            break;
        }
        let report = match cooling.iter().min() {
            Some(until) if active == 0 => {
                tokio::time::sleep_until(*until).await;
                continue;
            }
            Some(until) => match tokio::time::timeout_at(*until, rx.recv()).await {
                Ok(r) => r,
                Err(_) => continue,
            },
            None => rx.recv().await,
        };
        match report {
            Some(Report::Returned(id, entry)) => {
                active = active.saturating_sub(1);
                if batch_wait > Duration::ZERO {
                    cooling.push(Instant::now() + batch_wait);
                }
                let failed =
                    failhard && entry.get("retcode").and_then(Json::as_i64).unwrap_or(0) > 0;
                out.push(json!({ id: entry.get("ret").cloned().unwrap_or(json!({})) }));
                if failed {
                    break;
                }
            }
            Some(Report::Done(silent)) => {
                active = active.saturating_sub(silent.len());
                out.extend(silent.into_iter().map(|id| json!({ id: {} })));
            }
            Some(Report::Failed(e)) => return Err(e),
            None => break,
        }
    }
    Ok(out)
}

/// Minions that answer `test.ping`, in target order.
async fn minions_up(
    master: &Master,
    job: &Job,
    creds: &Credentials,
    wait: Duration,
    opts: &CollectOptions,
) -> SaltResult<Vec<String>> {
    let ping = job.probe("test.ping", &master.settings);
    let quiet = CollectOptions {
        full_return: false,
        expect_minions: Some(false),
        ..opts.clone()
    };
    let answers = local::run_and_collect(master, &ping, creds, "local_batch", wait, &quiet).await?;
    Ok(answers
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| **v == Json::Bool(true))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default())
}

/// Salt's batch size: `N%` of the minions (at least 1 when any), or a count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BatchSize {
    /// A share of the minions that are up, in percent.
    Percent(f64),
    /// A number of minions.
    Count(f64),
}

impl BatchSize {
    /// Reads `batch` (default `10%`).
    pub(crate) fn parse(batch: Option<&Json>) -> SaltResult<BatchSize> {
        let text = match batch {
            None | Some(Json::Null) => "10%".to_string(),
            Some(Json::String(s)) => s.trim().to_string(),
            Some(Json::Number(n)) => n.to_string(),
            Some(_) => return Err(invalid_batch()),
        };
        let number = |t: &str| t.trim().parse::<f64>().map_err(|_| invalid_batch());
        Ok(match text.strip_suffix('%') {
            Some(pct) => BatchSize::Percent(number(pct)?),
            None => BatchSize::Count(number(&text)?),
        })
    }

    /// How many of `minions` run at once.
    pub(crate) fn of(self, minions: usize) -> SaltResult<usize> {
        let size = match self {
            BatchSize::Percent(pct) => {
                let share = pct / 100.0 * minions as f64;
                if share < 1.0 {
                    share.ceil()
                } else {
                    share.floor()
                }
            }
            BatchSize::Count(n) => n.floor(),
        };
        if !(size >= 1.0 || minions == 0) {
            return Err(invalid_batch());
        }
        Ok(size.max(1.0) as usize)
    }
}

/// Salt's batch size for `batch` over `minions`.
#[cfg(test)]
fn batch_size(batch: Option<&Json>, minions: usize) -> SaltResult<usize> {
    BatchSize::parse(batch)?.of(minions)
}

fn invalid_batch() -> SaltError {
    SaltError::Invocation(
        "Invalid batch data sent: 'batch' must be a positive count or a percentage".into(),
    )
}

/// Publishes one sub-batch and reports each return as it arrives.
async fn sub_batch(
    master: Arc<Master>,
    job: Job,
    creds: Credentials,
    wait: Duration,
    opts: CollectOptions,
    tx: mpsc::UnboundedSender<Report>,
) {
    let targets: Vec<String> = job
        .tgt
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let result = async {
        let mut sub = master.bus.subscribe(job::prefixes_before_publish()).await?;
        let Some(published) = job::publish(&master, &job, &creds, "local_batch", wait).await?
        else {
            return Ok(Vec::new());
        };
        let seen = collect::collect(&master, &mut sub, &published, &creds, &opts, |id, entry| {
            let _ = tx.send(Report::Returned(id.to_string(), entry));
        })
        .await?;
        Ok::<_, SaltError>(seen.found.into_iter().collect())
    }
    .await;
    let report = match result {
        Ok(found) => Report::Done(targets.into_iter().filter(|t| !found.contains(t)).collect()),
        Err(e) => Report::Failed(e),
    };
    let _ = tx.send(report);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_like_salt() {
        assert_eq!(batch_size(None, 30), Ok(3));
        assert_eq!(batch_size(None, 3), Ok(1));
        assert_eq!(batch_size(Some(&json!("50%")), 3), Ok(1));
        assert_eq!(batch_size(Some(&json!("2")), 3), Ok(2));
        assert_eq!(batch_size(Some(&json!(4)), 3), Ok(4));
        assert!(batch_size(Some(&json!("0")), 3).is_err());
        assert!(batch_size(Some(&json!("x%")), 3).is_err());
        assert!(batch_size(Some(&json!([1])), 3).is_err());
    }
}
