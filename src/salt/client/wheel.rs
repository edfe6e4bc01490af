//! `wheel` and `wheel_async`: master-side key and config management.
//!
//! Salt sends the whole chunk as the clear load (`cmd: wheel`) and returns the reply as is.
//! salt-fcgi does the same minus `auth_list`, `key` and `user`, which would otherwise
//! steer the master's authentication. `wheel_async` sends the same request with a job id
//! of ours and answers as soon as the master has started the job, or with the master's
//! error: unlike Python's salt-api the caller learns when the credentials were refused.

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::{Chunk, Credentials, Master, new_jid, required_str, seconds};
use crate::salt::channel::check_reply;
use crate::salt::error::{SaltError, SaltResult};

/// Chunk keys never sent to the master in a wheel load.
const DROPPED: [&str; 7] = [
    "auth_list",
    "key",
    "user",
    "eauth",
    "username",
    "password",
    "token",
];

fn wheel_load(chunk: &Chunk, creds: &Credentials) -> SaltResult<Chunk> {
    required_str(chunk, "fun", "wheel")?;
    let mut load: Chunk = chunk
        .iter()
        .filter(|(k, _)| !DROPPED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    creds.write_to(&mut load);
    load.insert("cmd".into(), Json::from("wheel"));
    Ok(load)
}

/// `wheel`: one request, the master's reply (`{"tag", "data": {…, "return", "success"}}`).
pub async fn wheel(master: &Master, chunk: &Chunk, creds: &Credentials) -> SaltResult<Json> {
    let load = wheel_load(chunk, creds)?;
    let wait = seconds(master.settings.rest_timeout);
    check_reply(master.channel.send(Json::Object(load), wait).await?)
}

/// `wheel_async`: `{"tag", "jid"}` once the master started the job (or finished it).
pub async fn wheel_async(master: &Master, chunk: &Chunk, creds: &Credentials) -> SaltResult<Json> {
    let mut load = wheel_load(chunk, creds)?;
    let jid = new_jid();
    let tag = format!("salt/wheel/{jid}");
    load.insert("__jid__".into(), Json::from(jid.as_str()));
    load.insert("__tag__".into(), Json::from(tag.as_str()));
    load.insert("__user__".into(), Json::from("UNKNOWN"));
    let mut sub = master.bus.subscribe(vec![format!("{tag}/")]).await?;
    let channel = std::sync::Arc::clone(&master.channel);
    let run = seconds(master.settings.rest_timeout);
    // The request goes on in the background; its reply (or error) comes back here.
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let reply = channel
            .send(Json::Object(load), run)
            .await
            .and_then(check_reply);
        if let Err(e) = &reply {
            crate::log::warn(&format!("wheel_async job failed: {e}"));
        }
        let _ = tx.send(reply);
    });
    let accepted = json!({"tag": tag, "jid": jid});
    let wait = Duration::from_secs_f64(master.settings.publish_timeout.max(1.0));
    tokio::select! {
        reply = rx => match reply {
            // 3008 masters use their own jid: report the one that actually ran.
            Ok(Ok(reply)) => Ok(match (reply.get("tag"), reply.pointer("/data/jid")) {
                (Some(tag), Some(jid)) => json!({"tag": tag, "jid": jid}),
                _ => accepted,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SaltError::Master("wheel_async request was dropped".into())),
        },
        started = async {
            while let Some(ev) = sub.recv().await {
                if ev.tag.ends_with("/new") || ev.tag.ends_with("/ret") {
                    return true;
                }
            }
            false
        } => if started { Ok(accepted) } else {
            Err(SaltError::NotRunning("Salt Master is not available: the event bus connection was lost.".into()))
        },
        _ = tokio::time::sleep(wait) => Err(SaltError::Timeout(format!(
            "the master did not start wheel job {jid} within {:.0} s", wait.as_secs_f64()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_load_forwards_chunk_minus_steering_keys() {
        let chunk = json!({"client": "wheel", "fun": "key.accept", "match": "m1", "token": "ab",
            "eauth": "pam", "auth_list": [".*"], "key": "root", "user": "root"});
        let chunk = chunk.as_object().cloned().expect("object");
        let creds = Credentials::from_chunk(&chunk).expect("creds");
        let load = wheel_load(&chunk, &creds).expect("load");
        assert_eq!(
            Json::Object(load),
            json!({"client": "wheel", "fun": "key.accept", "match": "m1", "token": "ab", "cmd": "wheel"})
        );
    }
}
