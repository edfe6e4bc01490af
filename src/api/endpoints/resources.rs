//! rest_cherrypy's convenience URLs (`/minions`, `/jobs`, `/keys`), the webhook and
//! `/stats`. Each is a lowstate chunk run with the session, shaped as rest_cherrypy
//! shapes it.

use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use super::{Call, run_chunks, run_one};
use crate::api::Stats;
use crate::api::error::ApiError;
use crate::api::response::ApiResponse;
use crate::salt::{Master, event_fire, redact, tokens};

/// `GET /minions[/<id>]`: `grains.items` of every minion or of one.
pub(crate) async fn minion_grains(
    master: &Arc<Master>,
    call: &Call,
    id: Option<String>,
) -> Result<ApiResponse, ApiError> {
    let tgt = id.unwrap_or_else(|| "*".into());
    let chunk = json!({"client": "local", "tgt": tgt, "fun": "grains.items"});
    let ret = run_one(master, call, chunk).await?;
    Ok(call.answer(200, &json!({"return": [ret]})))
}

/// `POST /minions`: every chunk as `local_async`; 202 with links to the jobs.
pub(crate) async fn start_job(
    master: &Arc<Master>,
    call: &mut Call,
) -> Result<ApiResponse, ApiError> {
    let mut chunks = call.chunks(master)?;
    for chunk in &mut chunks {
        chunk.insert("client".into(), Json::from("local_async"));
    }
    let results = run_chunks(master, call, chunks).await?;
    let links: Vec<Json> = results
        .iter()
        .filter_map(|r| r.get("jid").and_then(Json::as_str))
        .map(|jid| json!({"href": format!("{}/jobs/{jid}", call.req.mount)}))
        .collect();
    Ok(call.answer(202, &json!({"return": results, "_links": {"jobs": links}})))
}

/// `GET /jobs[/<jid>]`: the job cache's list, or one job's `info` and per-minion returns.
pub(crate) async fn jobs(
    master: &Arc<Master>,
    call: &Call,
    jid: Option<String>,
) -> Result<ApiResponse, ApiError> {
    let Some(jid) = jid else {
        let chunk = json!({"client": "runner", "fun": "jobs.list_jobs"});
        let ret = run_one(master, call, chunk).await?;
        return Ok(call.answer(200, &json!({"return": [ret]})));
    };
    let chunk = json!({"client": "runner", "fun": "jobs.list_job", "jid": jid});
    let info = run_one(master, call, chunk).await?;
    let returns: Map<String, Json> = info
        .get("Result")
        .and_then(Json::as_object)
        .map(|result| {
            result
                .iter()
                .map(|(minion, r)| {
                    (
                        minion.clone(),
                        r.get("return").cloned().unwrap_or(Json::Null),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(call.answer(200, &json!({"info": [info], "return": [returns]})))
}

/// `GET /keys[/<id>]`: `key.list_all`, or `key.finger` of one minion.
pub(crate) async fn keys(
    master: &Arc<Master>,
    call: &Call,
    id: Option<String>,
) -> Result<ApiResponse, ApiError> {
    let chunk = match id {
        Some(id) => json!({"client": "wheel", "fun": "key.finger", "match": id}),
        None => json!({"client": "wheel", "fun": "key.list_all"}),
    };
    let ret = run_one(master, call, chunk).await?;
    let keys = ret
        .pointer("/data/return")
        .cloned()
        .unwrap_or_else(|| json!({}));
    Ok(call.answer(200, &json!({ "return": keys })))
}

/// `POST /keys {mid, …credentials}`: `key.gen_accept`, answered as a tarball of
/// `minion.pub` and `minion.pem` (the body is a private key: never cached).
pub(crate) async fn gen_key(
    master: &Arc<Master>,
    call: &mut Call,
) -> Result<ApiResponse, ApiError> {
    let mut chunks = call.chunks(master)?;
    let [chunk] = chunks.as_mut_slice() else {
        return Err(ApiError::new(400, "400: send one object with 'mid'"));
    };
    let Some(Json::String(mid)) = chunk.remove("mid") else {
        return Err(ApiError::new(
            400,
            "400: 'mid' (the new minion's id) is required",
        ));
    };
    chunk.insert("client".into(), Json::from("wheel"));
    chunk.insert("fun".into(), Json::from("key.gen_accept"));
    chunk.insert("id_".into(), Json::from(mid.as_str()));
    let mut results = run_chunks(master, call, chunks).await?;
    let ret = results.pop().unwrap_or(Json::Null);
    let text = |k: &str| {
        ret.pointer(&format!("/data/return/{k}"))
            .and_then(Json::as_str)
            .unwrap_or_default()
            .as_bytes()
            .to_vec()
    };
    let (public, private) = (text("pub"), text("priv"));
    if public.is_empty() || private.is_empty() {
        // The wheel's own words, short (a raised exception is already cut to its last
        // line; anything longer stays in the log).
        let why = match ret.pointer("/data/return") {
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        crate::log!(warn, "POST /keys: key.gen_accept made no key: {why}");
        let shown: String = why
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        return Err(ApiError::new(
            400,
            format!("400: key.gen_accept made no key: {shown}"),
        ));
    }
    let tar = tarball(&[("minion.pub", &public), ("minion.pem", &private)]);
    let safe: String = mid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    Ok(ApiResponse::bytes(200, "application/x-tar", tar)
        .with_header(
            "Content-Disposition",
            &format!("attachment; filename=\"saltkeys-{safe}.tar\""),
        )
        .with_header("Cache-Control", "no-store"))
}

/// `POST /hook/<path>`: fires `salt/netapi/hook/<path>` with the parsed body (`post`),
/// the body re-serialised from it with its secrets redacted (`body`: never the raw bytes,
/// which could hold a secret in any shape) and an allow-list of request headers.
pub(crate) async fn hook(
    master: &Arc<Master>,
    call: &Call,
    path: &str,
) -> Result<ApiResponse, ApiError> {
    if !master.settings.api.webhook_disable_auth {
        valid_session(master, call).await?;
    }
    let tag = hook_tag(path)?;
    let post = call.data.clone().unwrap_or_else(|| json!({}));
    let data = json!({
        "body": redact::redacted(&post).to_string(),
        "post": post,
        "headers": hook_headers(call),
    });
    event_fire::fire(&master.settings, &tag, data).await?;
    Ok(call.answer(200, &json!({"success": true})))
}

/// Longest hook path taken into a tag.
const MAX_HOOK_PATH: usize = 256;

/// `salt/netapi/hook/<path>` for a path of printable segments; empty, `.` and `..`
/// segments, control characters and `%` (an encoding the web server left undone) are
/// refused: a tag is matched by reactors, and a line break would split an SSE frame.
fn hook_tag(path: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::new(400, format!("400: hook path refused: {why}"));
    if path.len() > MAX_HOOK_PATH {
        return Err(bad("longer than 256 bytes"));
    }
    let mut tag = "salt/netapi/hook".to_string();
    if path.is_empty() {
        return Ok(tag);
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(bad("empty, '.' or '..' segment"));
        }
        if part
            .chars()
            .any(|c| c.is_control() || c == '%' || c.is_whitespace())
        {
            return Err(bad("control characters, blanks or '%'"));
        }
        tag.push('/');
        tag.push_str(part);
    }
    Ok(tag)
}

/// Request headers a webhook's event carries: what webhook senders use to say what
/// happened, never credentials (`X-Gitlab-Token`, `Authorization`, API keys, cookies):
/// the bus is readable by every event listener and reactor.
const HOOK_HEADERS: [&str; 11] = [
    "accept",
    "user-agent",
    "x-request-id",
    "x-github-event",
    "x-github-delivery",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-gitlab-event",
    "x-gitea-event",
    "x-gitea-delivery",
    "x-event-key",
];

/// Headers as rest_cherrypy's webhook hands them on (`Content-Type`, `X-Github-Event`,
/// …), only those in [`HOOK_HEADERS`].
fn hook_headers(call: &Call) -> Map<String, Json> {
    let mut out = Map::new();
    if let Some(ct) = &call.req.content_type {
        out.insert("Content-Type".into(), Json::from(ct.as_str()));
    }
    out.insert(
        "Content-Length".into(),
        Json::from(call.raw.len().to_string()),
    );
    for (name, value) in &call.req.headers {
        if HOOK_HEADERS.contains(&name.as_str()) {
            out.insert(title_case(name), Json::from(value.as_str()));
        }
    }
    out
}

/// `x-github-event` → `X-Github-Event` (CherryPy's header names).
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// `GET /stats`: this process's counters, for a valid session unless `stats_disable_auth`.
pub(crate) async fn stats(
    master: &Arc<Master>,
    call: &Call,
    stats: &Stats,
) -> Result<ApiResponse, ApiError> {
    if !master.settings.api.stats_disable_auth {
        valid_session(master, call).await?;
    }
    let report = stats.report(master.channel.round_trips());
    Ok(call.answer(200, &json!({ "salt-fcgi": report })))
}

/// The session token, checked with the master (`get_token`); 401 if unknown or expired.
async fn valid_session(master: &Arc<Master>, call: &Call) -> Result<(), ApiError> {
    let token = call.session()?;
    match tokens::get_token(master, token).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::unauthorized("Invalid or expired token")),
    }
}

/// A ustar archive of regular files (mode 0600), as Python's `tarfile` writes one.
fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut head = [0u8; 512];
        head[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
        let octal = |field: &mut [u8], value: u64| {
            let text = format!("{:0width$o}\0", value, width = field.len() - 1);
            field.copy_from_slice(text.as_bytes());
        };
        octal(&mut head[100..108], 0o600);
        octal(&mut head[108..116], 0);
        octal(&mut head[116..124], 0);
        octal(&mut head[124..136], data.len() as u64);
        octal(&mut head[136..148], 0);
        head[148..156].copy_from_slice(b"        ");
        head[156] = b'0';
        head[257..263].copy_from_slice(b"ustar\0");
        head[263..265].copy_from_slice(b"00");
        let sum: u32 = head.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        head[148..156].copy_from_slice(text.as_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarball_layout() {
        let tar = tarball(&[("minion.pub", b"PUB"), ("minion.pem", b"PEM!")]);
        assert_eq!(tar.len(), 512 * 4 + 1024);
        assert_eq!(&tar[..10], b"minion.pub");
        assert_eq!(&tar[124..136], b"00000000003\0");
        assert_eq!(&tar[512..515], b"PUB");
        assert_eq!(&tar[1024..1034], b"minion.pem");
        // The checksum counts the checksum field as spaces.
        let mut head = tar[..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&head[148..154]).expect("utf8"), 8)
            .expect("octal");
        head[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, head.iter().map(|&b| u32::from(b)).sum::<u32>());
    }

    #[test]
    fn hook_paths() {
        assert_eq!(hook_tag("").expect("root"), "salt/netapi/hook");
        assert_eq!(hook_tag("gh/push").expect("ok"), "salt/netapi/hook/gh/push");
        for bad in [
            "a//b",
            "../x",
            "a/./b",
            "a\nb",
            "a%2Fb",
            "a b",
            &"x".repeat(300),
        ] {
            assert_eq!(hook_tag(bad).expect_err(bad).status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn header_names_like_cherrypy() {
        assert_eq!(title_case("x-github-event"), "X-Github-Event");
        assert_eq!(title_case("accept"), "Accept");
    }
}
