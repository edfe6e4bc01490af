//! Whether the request being served has handed the master anything it may act on.
//!
//! salt-fcgi answers 503 only when the master did nothing for the request, so a web server
//! may send the same request to another salt-fcgi (nginx `fastcgi_next_upstream http_503`,
//! `nginx/salt-fcgi-cluster.conf`). A request that already reached the master (a publish,
//! a runner or wheel call, a login) and then lost it must not say 503: the request channel
//! marks the request once the master took such a load, and `api::dispatch` turns a later
//! 503 into a 502. The mark lives in a task-local flag; tasks a request spawns
//! ([`inherit`]) share it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

tokio::task_local! {
    static SENT: Arc<AtomicBool>;
}

/// Runs `work` (one request) with a fresh flag; returns its output and whether anything
/// that may act reached the master.
pub(crate) async fn track<F: Future>(work: F) -> (F::Output, bool) {
    let flag = Arc::new(AtomicBool::new(false));
    let out = SENT.scope(Arc::clone(&flag), work).await;
    (out, flag.load(Ordering::Acquire))
}

/// Marks the current request: the master took a load it may act on.
pub(crate) fn mark() {
    let _ = SENT.try_with(|flag| flag.store(true, Ordering::Release));
}

/// `work` with the current request's flag, for a task the request spawns.
pub(crate) fn inherit<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let flag = SENT.try_with(Arc::clone).ok();
    async move {
        match flag {
            Some(flag) => SENT.scope(flag, work).await,
            None => work.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn marks_reach_the_request_from_spawned_tasks() {
        let ((), sent) = track(async {}).await;
        assert!(!sent);
        let ((), sent) = track(async {
            let task = tokio::spawn(inherit(async { mark() }));
            task.await.expect("task");
        })
        .await;
        assert!(sent, "a task the request spawned marked it");
        // Outside a request, marking does nothing (and does not panic).
        mark();
    }
}
