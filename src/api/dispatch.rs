//! Routes a request, runs its chunks, and maps every error to one status, in one place.

use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::lowstate;
use super::request::{ApiRequest, BodyError};
use super::response::ApiResponse;
use crate::salt::netapi::{self, CLIENTS};
use crate::salt::{Master, SaltError};
use crate::settings::Settings;

/// The API: shared by every request of a process.
pub struct Api {
    master: Arc<Master>,
}

impl Api {
    /// An API serving the master described by `settings`.
    pub fn new(settings: Settings) -> Api {
        Api {
            master: Arc::new(Master::new(Arc::new(settings))),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.master.settings
    }

    /// Handles one request. Never panics on input; every failure is a JSON error.
    pub async fn handle(&self, req: ApiRequest) -> ApiResponse {
        match req.method.as_str() {
            "GET" => ApiResponse::json(200, &json!({"return": "Welcome", "clients": CLIENTS})),
            "POST" => self.post(req).await,
            _ => {
                ApiResponse::error(405, "405: Method Not Allowed").with_header("Allow", "GET, POST")
            }
        }
    }

    async fn post(&self, req: ApiRequest) -> ApiResponse {
        if !is_json(req.content_type.as_deref()) {
            return ApiResponse::error(406, "406: JSON required");
        }
        let limits = &self.master.settings.limits;
        let body = match req.body {
            Ok(body) => body,
            Err(e) => return body_error(&e, limits.max_body_bytes),
        };
        if body.len() > limits.max_body_bytes {
            return body_error(&BodyError::TooLarge(body.len()), limits.max_body_bytes);
        }
        let chunks = match lowstate::parse(&body, limits) {
            Ok(chunks) => chunks,
            Err(e) => return ApiResponse::error(e.status, &e.message),
        };
        let run_all = async {
            let mut results = Vec::with_capacity(chunks.len());
            for chunk in &chunks {
                match netapi::run(&self.master, chunk).await {
                    Ok(r) => results.push(r),
                    Err(e) => return Err((e, chunk)),
                }
            }
            Ok(results)
        };
        match tokio::time::timeout(limits.request_deadline, run_all).await {
            Ok(Ok(results)) => ApiResponse::ok(results),
            Ok(Err((e, chunk))) => {
                let status = status_of(&e);
                if status == 401 || status == 403 {
                    log_refusal(status, &e, chunk, req.remote_addr.as_deref());
                }
                salt_error(&e)
            }
            Err(_) => salt_error(&SaltError::Timeout(format!(
                "request_deadline of {:.0} s exceeded",
                limits.request_deadline.as_secs_f64()
            ))),
        }
    }
}

/// `application/json`, with or without parameters such as `; charset=utf-8`.
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// One log line per refused request, for the operator and for fail2ban: who (user name,
/// eauth backend, or that a token was used), from where, and why. Never the secret itself.
fn log_refusal(status: u16, e: &SaltError, chunk: &crate::salt::Chunk, remote: Option<&str>) {
    let text = |k: &str| chunk.get(k).and_then(Json::as_str).unwrap_or("-");
    let user: String = text("username").chars().take(64).collect();
    let who = if chunk.contains_key("token") {
        "token".to_string()
    } else {
        format!("user '{user}' eauth '{}'", text("eauth"))
    };
    // crate::log escapes every character that could end or disguise the line.
    crate::log::warn(&format!(
        "{status} for {who} client '{}' from {}: {}",
        text("client"),
        remote.unwrap_or("-"),
        e.message()
    ));
}

fn body_error(e: &BodyError, max: usize) -> ApiResponse {
    match e {
        BodyError::TooLarge(n) if *n > max.saturating_add(1) => ApiResponse::error(
            413,
            &format!("413: request body of {n} bytes is over max_body_bytes ({max})"),
        ),
        BodyError::TooLarge(_) => ApiResponse::error(
            413,
            &format!("413: request body is over max_body_bytes ({max})"),
        ),
        BodyError::Truncated { expected, got } => ApiResponse::error(
            400,
            &format!("400: request body ended after {got} of {expected} bytes (Content-Length)"),
        ),
        BodyError::BadLength => ApiResponse::error(400, "400: Content-Length is not a number"),
        BodyError::Io(m) => ApiResponse::error(400, &format!("400: cannot read request body: {m}")),
    }
}

/// The HTTP status for a Salt error.
pub fn status_of(e: &SaltError) -> u16 {
    match e {
        SaltError::Invocation(_) => 400,
        SaltError::Authentication(_) => 401,
        SaltError::Authorization(_) => 403,
        SaltError::NotRunning(_) | SaltError::EventBus(_) => 503,
        SaltError::Timeout(_) => 504,
        SaltError::Master(_) => 500,
    }
}

fn salt_error(e: &SaltError) -> ApiResponse {
    let status = status_of(e);
    if status >= 500 {
        crate::log::error(&format!("{status}: {e}"));
    }
    ApiResponse::error(status, e.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(extra: &str) -> Api {
        let yaml = format!(
            "sock_dir: /nonexistent/salt-fcgi-test\nnetapi_enable_clients: [local]\n{extra}"
        );
        let m: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&yaml).expect("yaml");
        Api::new(Settings::from_mapping("/x".into(), &m))
    }

    fn post(body: &str, ct: Option<&str>) -> ApiRequest {
        ApiRequest::new("POST", "/", ct, body.as_bytes().to_vec())
    }

    fn body(r: &ApiResponse) -> Json {
        serde_json::from_slice(&r.body).expect("json body")
    }

    #[tokio::test]
    async fn statuses_without_a_master() {
        let api = api("");
        let json = Some("application/json; charset=utf-8");
        let r = api.handle(ApiRequest::new("GET", "/", None, vec![])).await;
        assert_eq!(
            (r.status, body(&r)["return"].clone()),
            (200, json!("Welcome"))
        );
        let r = api
            .handle(ApiRequest::new("DELETE", "/", None, vec![]))
            .await;
        assert_eq!(r.status, 405);
        assert_eq!(api.handle(post("[]", Some("text/plain"))).await.status, 406);
        assert_eq!(api.handle(post("[]", None)).await.status, 406);
        let r = api.handle(post("[]", json)).await;
        assert_eq!((r.status, body(&r)), (200, json!({"return": []})));
        assert_eq!(api.handle(post("[1]", json)).await.status, 400);
        let r = api
            .handle(post(
                r#"[{"client":"local","tgt":"*","fun":"test.ping","eauth":"x"}]"#,
                json,
            ))
            .await;
        assert_eq!(
            (r.status, body(&r)),
            (503, json!({"return": "Salt Master is not available."}))
        );
    }

    #[tokio::test]
    async fn body_limits() {
        let api = api("salt_fcgi: {max_body_bytes: 4}");
        let r = api.handle(post("[  ]  ", Some("application/json"))).await;
        assert_eq!(r.status, 413);
        let mut req = post("", Some("application/json"));
        req.body = Err(BodyError::Truncated {
            expected: 10,
            got: 2,
        });
        assert_eq!(api.handle(req).await.status, 400);
    }

    #[test]
    fn every_error_has_one_status() {
        assert_eq!(status_of(&SaltError::Authentication(String::new())), 401);
        assert_eq!(status_of(&SaltError::Authorization(String::new())), 403);
        assert_eq!(status_of(&SaltError::Timeout(String::new())), 504);
        assert_eq!(status_of(&SaltError::EventBus(String::new())), 503);
    }
}
