//! `local`, `local_async` and `local_subset`: publish a job (`job`), then collect minion
//! returns (`collect`) and shape them as LocalClient does.

use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use super::Chunk;
use super::collect::{CollectOptions, collect, collect_options, no_response};
use super::job::{Job, prefixes_before_publish, publish};
use crate::salt::credentials::Credentials;
use crate::salt::error::{SaltError, SaltResult};
use crate::salt::master::Master;
use crate::settings::{Settings, seconds};

pub(crate) use super::truthy;

/// What a `local*` chunk runs: the job, how its returns are collected, and how long the
/// master may take to take the publish (the chunk's `timeout`, else `publish_timeout`).
#[derive(Debug, Clone)]
pub(crate) struct LocalArgs {
    /// What to publish.
    pub(crate) job: Job,
    /// How returns are collected.
    pub(crate) collect: CollectOptions,
    /// The wait for the master's reply to the publish.
    pub(crate) publish_wait: Duration,
}

impl LocalArgs {
    /// Reads a `local*` chunk; `timeout` is the chunk's own, if it gave one.
    pub(crate) fn parse(
        chunk: &Chunk,
        timeout: Option<f64>,
        settings: &Settings,
    ) -> SaltResult<LocalArgs> {
        Ok(LocalArgs {
            job: Job::from_chunk(chunk, settings)?,
            collect: collect_options(chunk, timeout, settings),
            publish_wait: seconds(timeout.unwrap_or(settings.calls.publish_timeout)),
        })
    }
}

/// What a `local_subset` chunk runs: a `local` job on `size` minions that have `fun`.
#[derive(Debug, Clone)]
pub(crate) struct SubsetArgs {
    /// The job as given (its target is narrowed to the chosen minions).
    pub(crate) local: LocalArgs,
    /// The function, which the chosen minions must have.
    pub(crate) fun: String,
    /// How many minions run it (`subset`, alias `sub`, default 3).
    pub(crate) size: u64,
}

impl SubsetArgs {
    /// Reads a `local_subset` chunk.
    pub(crate) fn parse(
        chunk: &Chunk,
        timeout: Option<f64>,
        settings: &Settings,
    ) -> SaltResult<SubsetArgs> {
        let local = LocalArgs::parse(chunk, timeout, settings)?;
        let Json::String(fun) = &local.job.fun else {
            return Err(SaltError::Invocation(
                "local_subset needs 'fun' as a string".into(),
            ));
        };
        let size = chunk
            .get("sub")
            .or_else(|| chunk.get("subset"))
            .map_or(Some(3), Json::as_u64)
            .ok_or_else(|| SaltError::Invocation("'subset' must be a number".into()))?;
        Ok(SubsetArgs {
            fun: fun.clone(),
            local,
            size,
        })
    }
}

/// `local`: publish, collect, and shape `{minion: return}` as LocalClient.cmd does.
pub(crate) async fn local(
    master: &Master,
    args: &LocalArgs,
    creds: &Credentials,
) -> SaltResult<Json> {
    let (job, wait) = (&args.job, args.publish_wait);
    run_and_collect(master, job, creds, "local", wait, &args.collect).await
}

/// Publishes `job` and collects its returns into one `{minion: ret}` object.
pub(crate) async fn run_and_collect(
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
    crate::audit::note_job(&published.jid, published.minions.len());
    let mut out = Map::new();
    let full = opts.full_return;
    let seen = collect(master, &mut sub, &published, creds, opts, |id, entry| {
        let value = if full {
            entry
        } else {
            // Moved out, not copied: a big return exists once.
            match entry {
                Json::Object(mut m) => m.remove("ret").unwrap_or(json!({})),
                other => other,
            }
        };
        out.insert(id.to_string(), value);
    })
    .await?;
    crate::audit::note_returned(seen.found.len());
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
pub(crate) async fn local_async(
    master: &Master,
    args: &LocalArgs,
    creds: &Credentials,
) -> SaltResult<Json> {
    Ok(
        match publish(master, &args.job, creds, "local_async", args.publish_wait).await? {
            Some(p) => {
                crate::audit::note_job(&p.jid, p.minions.len());
                json!({"jid": p.jid, "minions": p.minions})
            }
            None => json!({}),
        },
    )
}

/// `local_subset`: run `fun` on `subset` (alias `sub`, default 3) random minions of the
/// target that have the function.
pub(crate) async fn local_subset(
    master: &Master,
    args: &SubsetArgs,
    creds: &Credentials,
) -> SaltResult<Json> {
    let (job, opts, wait) = (
        &args.local.job,
        &args.local.collect,
        args.local.publish_wait,
    );
    let fun = args.fun.as_str();
    let size = args.size;
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
    run_and_collect(master, &run, creds, "local_subset", wait, opts).await
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
