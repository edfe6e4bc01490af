//! The benchmark's "limit" server: the same master requests salt-fcgi makes, sent straight
//! from the library with no HTTP and no web server in between.
//!
//! `master_limit --config MASTER --body BODY.json --concurrency N --seconds S`
//! runs the lowstate list in BODY.json over and over from N tasks for S seconds and prints
//! one JSON line: requests/s, p50/p99 latency (ms), errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use salt_fcgi::internals::Settings;
use salt_fcgi::internals::lowstate;
use salt_fcgi::internals::{Master, netapi};

struct Options {
    config: std::path::PathBuf,
    body: std::path::PathBuf,
    concurrency: usize,
    seconds: f64,
}

fn options() -> Result<Options, lexopt::Error> {
    use lexopt::prelude::*;
    let mut o = Options {
        config: "/etc/salt/master".into(),
        body: "body.json".into(),
        concurrency: 1,
        seconds: 5.0,
    };
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next()? {
        match arg {
            Long("config") => o.config = p.value()?.into(),
            Long("body") => o.body = p.value()?.into(),
            Long("concurrency") => o.concurrency = p.value()?.parse()?,
            Long("seconds") => o.seconds = p.value()?.parse()?,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(o)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = options()?;
    let settings = Settings::load(Some(&o.config))?;
    let body = std::fs::read(&o.body)?;
    let chunks = lowstate::parse(&body, &settings.limits).map_err(|e| e.message)?;
    let master = Arc::new(Master::new(Arc::new(settings)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds);
    let (latencies, errors) = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..o.concurrency {
            let (master, chunks) = (Arc::clone(&master), chunks.clone());
            tasks.push(tokio::spawn(async move {
                let (mut lat, mut err) = (Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let start = Instant::now();
                    for chunk in &chunks {
                        if netapi::run(&master, chunk, None).await.is_err() {
                            err += 1;
                        }
                    }
                    lat.push(start.elapsed());
                }
                (lat, err)
            }));
        }
        let (mut all, mut errors) = (Vec::new(), 0);
        for t in tasks {
            if let Ok((lat, err)) = t.await {
                all.extend(lat);
                errors += err;
            }
        }
        (all, errors)
    });
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        ms.get(((ms.len() as f64 * p) as usize).min(ms.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{{\"requests\": {}, \"rps\": {:.1}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"errors\": {}}}",
        ms.len(),
        ms.len() as f64 / o.seconds,
        pct(0.50),
        pct(0.99),
        errors
    );
    Ok(())
}
