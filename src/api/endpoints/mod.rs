//! The endpoints: each parses what it needs from a [`Call`], asks the master, and shapes
//! the answer. `lowstate` serves `POST /` and `/run` (both dialects), `session` the
//! login/logout/token trio, `resources` the convenience URLs, the webhook and `/stats`.

mod events;
mod resources;
mod session;
mod stream_timers;

pub(crate) use events::{Streams, events, websocket};
pub(crate) use resources::{gen_key, hook, jobs, keys, minion_grains, start_job, stats};
pub(crate) use session::{login, logout, token};

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::body;
use super::error::{ApiError, status_of};
use super::lowstate;
use super::request::ApiRequest;
use super::response::ApiResponse;
use crate::salt::client::Chunk;
use crate::salt::credentials::CredentialSource;
use crate::salt::netapi::Answer;
use crate::salt::tokens::is_token_shaped;
use crate::salt::{Master, SaltError, netapi};

/// One request as the endpoints see it: its head, raw and parsed body, and the session
/// token (from `X-Auth-Token`, else the `session_id` cookie; an empty header is absent).
pub(crate) struct Call {
    /// The request (its body taken out).
    pub req: ApiRequest,
    /// The body as it arrived.
    pub raw: Vec<u8>,
    /// The body parsed by its Content-Type (`None`: empty).
    pub data: Option<Json>,
    /// The session token as sent; [`Call::session`] checks its shape.
    pub session: Option<String>,
}

impl Call {
    /// A call. The session token is only looked at by the endpoints that use it (a stale
    /// or foreign `session_id` cookie does not stand in the way of `/login`).
    pub(crate) fn new(req: ApiRequest, raw: Vec<u8>, data: Option<Json>) -> Call {
        let token = req
            .header("x-auth-token")
            .filter(|t| !t.trim().is_empty())
            .or_else(|| req.cookie("session_id").filter(|t| !t.is_empty()))
            .map(|t| t.trim().to_string());
        Call {
            req,
            raw,
            data,
            session: token,
        }
    }

    /// The session token; 401 when there is none, or when it cannot be a Salt token (it is
    /// never used then).
    pub(crate) fn session(&self) -> Result<&str, ApiError> {
        match self.session.as_deref() {
            Some(t) if is_token_shaped(t) => Ok(t),
            Some(_) => Err(ApiError::unauthorized("Invalid token")),
            None => Err(ApiError::unauthorized(
                "No session: log in at /login and send X-Auth-Token or the session_id cookie",
            )),
        }
    }

    /// The body's chunks (one object or a list of them), taken out of the call (a body
    /// is not copied on its way to the master).
    pub(crate) fn chunks(&mut self, master: &Arc<Master>) -> Result<Vec<Chunk>, ApiError> {
        let Some(data) = self.data.take() else {
            return Err(ApiError::new(
                400,
                "400: request body is empty; expected a JSON list of lowstate chunks",
            ));
        };
        Ok(lowstate::from_value(data, &master.settings.limits)?)
    }

    /// A successful answer, JSON or YAML as `Accept` asks.
    pub(crate) fn answer(&self, status: u16, value: &Json) -> ApiResponse {
        body::answer(status, value, self.req.header("accept"))
    }

    /// The client's address for log lines.
    pub(crate) fn remote(&self) -> &str {
        self.req.remote_addr.as_deref().unwrap_or("-")
    }
}

/// `POST /` and `POST /run`: run every chunk; a chunk without credentials of its own runs
/// with the session token (the chunk itself is not changed).
pub(crate) async fn lowstate(
    master: &Arc<Master>,
    call: &mut Call,
) -> Result<ApiResponse, ApiError> {
    let chunks = call.chunks(master)?;
    let results = run_chunks(master, call, chunks).await?;
    Ok(call.answer(200, &json!({ "return": results })))
}

/// Runs chunks in order within `request_deadline`; the first failure ends the request.
/// A `local_batch` chunk's `{minion: return}` items go into the result list one by one, as
/// rest_cherrypy yields them (so pepper's `--batch` prints every minion).
pub(crate) async fn run_chunks(
    master: &Arc<Master>,
    call: &Call,
    chunks: Vec<Chunk>,
) -> Result<Vec<Json>, ApiError> {
    let session = call.session.as_deref();
    let deadline = master.settings.limits.request_deadline;
    let run_all = async {
        let mut results = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            crate::audit::note_chunk_start(chunk);
            let result = netapi::run(master, chunk, session).await;
            crate::audit::note_outcome(&match &result {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("error {}", status_of(e)),
            });
            match result {
                Ok(Answer::Many(items)) => {
                    crate::audit::note_returned(items.len());
                    results.extend(items);
                }
                Ok(Answer::One(r)) => results.push(r),
                Err(e) => return Err((e, chunk)),
            }
        }
        Ok(results)
    };
    match tokio::time::timeout(deadline, run_all).await {
        Ok(Ok(results)) => Ok(results),
        Ok(Err((e, chunk))) => {
            let status = status_of(&e);
            if status == 401 || status == 403 {
                log_refusal(status, &e, chunk, session.is_some(), call.remote());
            }
            Err(ApiError::from(e))
        }
        Err(_) => {
            crate::audit::note_outcome("error 504");
            Err(ApiError::from(SaltError::Timeout(format!(
                "request_deadline of {:.0} s exceeded",
                deadline.as_secs_f64()
            ))))
        }
    }
}

/// Runs one chunk made by an endpoint (`/minions`, `/jobs`, `/keys`) with the session.
async fn run_one(master: &Arc<Master>, call: &Call, chunk: Json) -> Result<Json, ApiError> {
    let Json::Object(chunk) = chunk else {
        return Err(ApiError::new(
            500,
            "internal error: a chunk must be an object",
        ));
    };
    call.session()?;
    let mut results = run_chunks(master, call, vec![chunk]).await?;
    Ok(results.pop().unwrap_or(Json::Null))
}

/// One log line per refused request, for the operator and for fail2ban: who (user name,
/// eauth backend, or that a token was used), from where, and why. Never the secret itself.
/// Caller-chosen fields are quoted with `log::quoted`, so none can forge the address.
fn log_refusal(status: u16, e: &SaltError, chunk: &Chunk, has_session: bool, remote: &str) {
    let text = |k: &str| crate::log::quoted(chunk.get(k).and_then(Json::as_str).unwrap_or("-"));
    let who = if CredentialSource::of(chunk, has_session).is_token() {
        "token".to_string()
    } else {
        format!("user {} eauth {}", text("username"), text("eauth"))
    };
    // An ACL denial and a failed login are both 401s: the line says which it was.
    let why = match e {
        SaltError::Authorization(_) => " (authorization denied)",
        _ => "",
    };
    // crate::log escapes every character that could end or disguise the line.
    crate::log!(
        warn,
        "{status}{why} for {who} client {} from {remote}: {}",
        text("client"),
        e.message()
    );
}
