//! Routes a request to its endpoint and turns every failure into one JSON error, in one
//! place; adds the CORS headers of allowed origins and counts requests for `/stats`.
//!
//! Paths are relative to where the API is mounted. The rest_wsgi dialect is `POST /` with
//! credentials in each chunk; the rest_cherrypy dialect adds the endpoints below, with the
//! master's eauth token as the session (`X-Auth-Token`, else the `session_id` cookie).

use std::sync::Arc;

use std::time::Instant;

use serde_json::{Map, Value as Json, json};

use super::body;
use super::endpoints::{self, Call, Streams};
use super::error::ApiError;
use super::metrics;
use super::request::ApiRequest;
use super::request_id;
use super::response::ApiResponse;
use super::routes::{self, Endpoint, Resolved};
use super::stats::Stats;
use crate::audit::{self, Audit};
use crate::salt::Master;
use crate::settings::Settings;

/// The API: shared by every request of a process.
pub struct Api {
    master: Arc<Master>,
    stats: Stats,
    /// The open event streams (counted, and ended all at once when the server stops).
    streams: Arc<Streams>,
    /// The audit log (off unless `audit_log` is set).
    audit: Audit,
}

/// Request headers a browser may send cross-origin (SaltGUI sends `Cache-Control`).
const CORS_ALLOW_HEADERS: &str = "Content-Type, X-Auth-Token, X-Requested-With, Cache-Control";

impl Api {
    /// An API serving the master described by `settings`.
    pub fn new(settings: Settings) -> Api {
        Api {
            audit: Audit::new(&settings.audit),
            master: Arc::new(Master::new(Arc::new(settings))),
            stats: Stats::new(),
            streams: Arc::new(Streams::new()),
        }
    }

    /// Ends every event stream (the server is stopping; their requests then finish).
    pub fn stop_streams(&self) {
        self.streams.stop_all();
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.master.settings
    }

    /// Handles one request. Never panics on input; every failure is a JSON error. The
    /// answer carries the request's id as `X-Request-Id`, and so does every log line.
    pub async fn handle(&self, mut req: ApiRequest) -> ApiResponse {
        let id = request_id::choose(&req);
        req.request_id = Some(id.clone());
        let started = Instant::now();
        let resolved = routes::resolve(&req.method, &req.path, &self.settings().api.webhook_url);
        // Only an audit that writes lines pays for their fields.
        let head = self
            .audit
            .enabled()
            .then(|| self.audit_head(&req, &resolved, &id));
        let work = async {
            let (resp, note) = audit::noting(self.audited(req, resolved, head.as_ref())).await;
            if let Some(head) = head {
                self.write_audit(head, &note, resp.status, started);
            }
            resp
        };
        // Boxed: the nested request futures would otherwise exceed the compiler's depth.
        let resp = Box::pin(crate::log::with_request_id(id.clone(), work)).await;
        resp.with_header("X-Request-Id", &id)
    }

    /// With `audit_fail_closed`, writes the `received` line first: a request whose line
    /// cannot be written answers 503 and nothing of it reaches the master.
    async fn audited(
        &self,
        req: ApiRequest,
        resolved: Resolved,
        head: Option<&Map<String, Json>>,
    ) -> ApiResponse {
        if let Some(head) = head
            && self.audit.fail_closed()
        {
            let mut line = head.clone();
            line.insert("stage".into(), json!("received"));
            if let Err(e) = self.audit.write(&Json::Object(line)) {
                crate::log!(error, "503: the audit log cannot be written: {e}");
                return ApiResponse::error(
                    503,
                    "503: the audit log cannot be written, so the request was not run",
                );
            }
        }
        self.handle_with_id(req, resolved).await
    }

    /// The fields of every audit line of `req`. The path of `/ws/<token>` loses its token.
    fn audit_head(&self, req: &ApiRequest, resolved: &Resolved, id: &str) -> Map<String, Json> {
        let path = if resolved.carries_token() {
            "/ws/(token)".to_string()
        } else {
            req.path.clone()
        };
        let mut head = Map::new();
        head.insert("time".into(), json!(audit::now_rfc3339()));
        head.insert("type".into(), json!("request"));
        head.insert("request_id".into(), json!(id));
        head.insert("client_addr".into(), json!(req.remote_addr));
        head.insert("method".into(), json!(req.method));
        head.insert("path".into(), json!(path));
        head.insert("frontend".into(), json!(audit::frontend()));
        head
    }

    /// Writes a request's chunk lines and its own line (a failure is logged).
    fn write_audit(&self, head: Map<String, Json>, note: &audit::Note, status: u16, t: Instant) {
        let mut who = Map::new();
        who.insert("user".into(), json!(note.user));
        who.insert("eauth".into(), json!(note.eauth));
        let token = note.token.as_deref().map(|t| self.audit.hmac(t));
        who.insert("token_hmac".into(), json!(token));
        let mut lines = Vec::with_capacity(note.chunks.len() + 1);
        for (index, chunk) in note.chunks.iter().enumerate() {
            let mut line = head.clone();
            line.insert("type".into(), json!("chunk"));
            line.insert("chunk".into(), json!(index));
            line.extend(who.clone());
            line.extend(chunk.clone());
            lines.push(line);
        }
        let mut line = head;
        line.insert("stage".into(), json!("completed"));
        line.insert("status".into(), json!(status));
        line.insert(
            "duration_ms".into(),
            json!((t.elapsed().as_secs_f64() * 1e6).round() / 1e3),
        );
        line.extend(who);
        line.insert("chunks".into(), json!(note.chunks.len()));
        lines.push(line);
        for line in lines {
            if let Err(e) = self.audit.write(&Json::Object(line)) {
                crate::log!(error, "cannot write the audit log: {e}");
                return;
            }
        }
    }

    /// [`Api::handle`] once the request has its id.
    async fn handle_with_id(&self, req: ApiRequest, resolved: Resolved) -> ApiResponse {
        let _counted = self.stats.begin();
        let started = Instant::now();
        let endpoint = resolved.name;
        let cors = self.cors_headers(&req);
        let mut resp = if req.method == "OPTIONS" {
            self.preflight(&req, cors.is_some())
        } else {
            match crate::salt::sent::track(self.route(req, resolved)).await {
                (Ok(resp), _) => resp,
                (Err(e), sent) => e.after_sent(sent).into_response(),
            }
        };
        if let Some(headers) = cors {
            resp.headers.extend(headers);
        } else if !self.settings().api.cors_origins.is_empty() {
            resp.headers.push(("Vary", "Origin".into()));
        }
        // Answers carry tokens, keys, job results: no cache keeps any of them.
        if !resp.headers.iter().any(|(k, _)| *k == "Cache-Control") {
            resp.headers.push(("Cache-Control", "no-store".into()));
        }
        self.stats.end_on(endpoint, resp.status, started.elapsed());
        resp
    }

    /// Runs the endpoint `resolved` found (404 and 405 when it found none).
    async fn route(&self, req: ApiRequest, resolved: Resolved) -> Result<ApiResponse, ApiError> {
        let Some((endpoint, param)) = resolved.found else {
            if resolved.allow.is_empty() {
                return Err(ApiError::new(404, "404: Not Found"));
            }
            return Ok(ApiResponse::error(405, "405: Method Not Allowed")
                .with_header("Allow", &resolved.allow));
        };
        // The two pages read neither body nor session.
        match endpoint {
            Endpoint::Welcome => return Ok(welcome()),
            Endpoint::LoginPage => return Ok(login_page()),
            _ => {}
        }
        self.refuse_cross_site(&req, endpoint, param.is_some())?;
        let mut call = self.call(req, endpoint)?;
        let master = &self.master;
        match endpoint {
            Endpoint::Welcome => Ok(welcome()),
            Endpoint::LoginPage => Ok(login_page()),
            Endpoint::Lowstate => endpoints::lowstate(master, &mut call).await,
            Endpoint::Login => endpoints::login(master, &call).await,
            Endpoint::Logout => endpoints::logout(master, &call).await,
            Endpoint::Token => endpoints::token(master, &mut call).await,
            Endpoint::Stats => endpoints::stats(master, &call, &self.stats).await,
            Endpoint::Metrics => self.metrics(&call).await,
            Endpoint::MinionGrains => endpoints::minion_grains(master, &call, param).await,
            Endpoint::StartJob => endpoints::start_job(master, &mut call).await,
            Endpoint::Jobs => endpoints::jobs(master, &call, param).await,
            Endpoint::Keys => endpoints::keys(master, &call, param).await,
            Endpoint::GenKey => endpoints::gen_key(master, &mut call).await,
            Endpoint::Hook => endpoints::hook(master, &call, param.as_deref().unwrap_or("")).await,
            Endpoint::Events => endpoints::events(master, &call, &self.streams).await,
            Endpoint::Ws => endpoints::websocket(master, &call, param, &self.streams).await,
        }
    }

    /// `GET /metrics`: 404 unless `metrics_users` or `metrics_addresses` is set; then the
    /// counters for a listed address, or for a valid token of a listed user (401 without
    /// one, 403 for another user).
    async fn metrics(&self, call: &Call) -> Result<ApiResponse, ApiError> {
        let api = &self.settings().api;
        if api.metrics_users.is_empty() && api.metrics_addresses.is_empty() {
            return Err(ApiError::new(404, "404: Not Found"));
        }
        let from_listed = call
            .req
            .remote_addr
            .as_deref()
            .is_some_and(|addr| crate::address_block::listed(addr, &api.metrics_addresses));
        if !from_listed {
            let token = call.session()?;
            let Some(valid) = crate::salt::tokens::get_token(&self.master, token).await? else {
                return Err(ApiError::unauthorized("Invalid or expired token"));
            };
            if !valid.is_listed_in(&api.metrics_users) {
                return Err(ApiError::new(
                    403,
                    "403: this user may not read the metrics (metrics_users)",
                ));
            }
        }
        let gauges = metrics::Gauges {
            open_streams: self.streams.open_count(),
        };
        let text = metrics::render(&self.stats, &self.master, &gauges);
        Ok(ApiResponse::bytes(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            text.into_bytes(),
        ))
    }

    /// Takes the body (the front end bounded it) and the session token into a [`Call`].
    fn call(&self, mut req: ApiRequest, endpoint: Endpoint) -> Result<Call, ApiError> {
        let limits = &self.settings().limits;
        // The front end read at most `max_body_bytes` (frontend/cgi_dialect.rs, http.rs)
        // or said why not.
        let raw = match std::mem::replace(&mut req.body, Ok(Vec::new())) {
            Ok(body) => body,
            Err(error) => {
                let max = limits.max_body_bytes;
                return Err(ApiError::Body { error, max });
            }
        };
        let data = body::parse(req.content_type.as_deref(), &raw, limits)?;
        let call = Call::new(req, raw, data);
        note_who(&call, endpoint);
        Ok(call)
    }

    /// Refuses (403) a request that rides on the session cookie alone and that another site
    /// could have made: a POST, or any `/events` and `/ws`, whose `Origin` (else `Referer`)
    /// is present and is neither this API's own origin nor in `cors_origins`. `SameSite=Lax`
    /// alone lets any same-site origin (a sibling subdomain, another port) through.
    /// Requests with `X-Auth-Token` (no browser adds it cross-site unasked) pass.
    fn refuse_cross_site(
        &self,
        req: &ApiRequest,
        endpoint: Endpoint,
        with_param: bool,
    ) -> Result<(), ApiError> {
        let by_cookie = req.cookie("session_id").is_some_and(|c| !c.is_empty())
            && req
                .header("x-auth-token")
                .is_none_or(|t| t.trim().is_empty());
        let stream = endpoint == Endpoint::Events || (endpoint == Endpoint::Ws && !with_param);
        let guarded = req.method == "POST" || stream;
        if !by_cookie || !guarded {
            return Ok(());
        }
        let Some(origin) = request_origin(req) else {
            return Ok(());
        };
        let allowed =
            is_own_origin(req, &origin) || self.settings().api.cors_origins.contains(&origin);
        if allowed {
            return Ok(());
        }
        crate::log!(
            warn,
            "403 cross-site request refused: {} {} from origin {} (remote {})",
            req.method,
            req.path,
            crate::log::quoted(&origin),
            req.remote_addr.as_deref().unwrap_or("-")
        );
        Err(ApiError::new(
            403,
            "403: cross-site request refused: its Origin is neither this API nor in cors_origins; \
             send the token as X-Auth-Token",
        ))
    }

    /// `Access-Control-*` headers for a request from an allowed origin.
    fn cors_headers(&self, req: &ApiRequest) -> Option<Vec<(&'static str, String)>> {
        let origin = req.header("origin")?;
        let allowed = &self.settings().api.cors_origins;
        if !allowed.iter().any(|o| o == origin) {
            return None;
        }
        Some(vec![
            ("Access-Control-Allow-Origin", origin.to_string()),
            ("Access-Control-Allow-Credentials", "true".into()),
            ("Access-Control-Expose-Headers", "X-Auth-Token".into()),
            ("Vary", "Origin".into()),
        ])
    }

    /// `OPTIONS`: a CORS preflight answer for an allowed origin, the methods otherwise.
    fn preflight(&self, req: &ApiRequest, allowed_origin: bool) -> ApiResponse {
        let resp = ApiResponse::empty(204).with_header("Allow", "GET, POST, OPTIONS");
        if !allowed_origin || req.header("access-control-request-method").is_none() {
            return resp;
        }
        resp.with_header("Access-Control-Allow-Methods", "GET, POST")
            .with_header("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS)
            .with_header("Access-Control-Max-Age", "1400")
    }
}

/// Notes for the audit who a request says it is: the session token, and the first chunk's
/// `username`, `eauth` and `token` (a webhook's body is the sender's data, not credentials).
fn note_who(call: &Call, endpoint: Endpoint) {
    if let Some(token) = &call.session {
        audit::note_token(token);
    }
    if endpoint == Endpoint::Hook {
        return;
    }
    let first = match &call.data {
        Some(Json::Array(items)) => items.first(),
        other => other.as_ref(),
    };
    if let Some(Json::Object(chunk)) = first {
        let text = |k: &str| chunk.get(k).and_then(Json::as_str);
        audit::note_user(text("username"), text("eauth"));
        if let Some(token) = text("token") {
            audit::note_token(token);
        }
    }
}

/// The origin a browser says a request comes from: `Origin`, else the scheme, host and
/// port of `Referer` (`null` and anything unparsable count as an origin of their own).
fn request_origin(req: &ApiRequest) -> Option<String> {
    if let Some(origin) = req.header("origin") {
        return Some(origin.trim().to_string());
    }
    let referer = req.header("referer")?.trim();
    let Some((scheme, rest)) = referer.split_once("://") else {
        return Some(referer.to_string());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    Some(format!("{scheme}://{authority}"))
}

/// Whether `origin` is the API's own: the request's scheme, `Host`'s host, and `Host`'s
/// port — or, when `Host` has none (Debian's nginx passes `$host`), the scheme's default
/// port or the port the web server took the request on.
fn is_own_origin(req: &ApiRequest, origin: &str) -> bool {
    let scheme = if req.https { "https" } else { "http" };
    let default_port = if req.https { 443 } else { 80 };
    let Some(authority) = origin
        .split_once("://")
        .filter(|(s, _)| s.eq_ignore_ascii_case(scheme))
        .map(|(_, a)| a)
    else {
        return false;
    };
    let Some(host) = req.header("host") else {
        return false;
    };
    let (origin_host, origin_port) = host_and_port(authority);
    let (host, port) = host_and_port(host);
    if !origin_host.eq_ignore_ascii_case(host) {
        return false;
    }
    let origin_port = origin_port.unwrap_or(Some(default_port));
    match port {
        Some(port) => origin_port == port,
        None => origin_port == Some(default_port) || origin_port == req.server_port,
    }
}

/// `host[:port]` (IPv6 in brackets) → the host and, when given, the port (`Some(None)` for
/// a port that is not a number).
fn host_and_port(authority: &str) -> (&str, Option<Option<u16>>) {
    let split = match authority.rfind(':') {
        Some(at) if !authority[at..].contains(']') => Some(at),
        _ => None,
    };
    match split {
        Some(at) => (&authority[..at], Some(authority[at + 1..].parse().ok())),
        None => (authority, None),
    }
}

/// `GET /login`: rest_cherrypy's answer, asking for a session.
fn login_page() -> ApiResponse {
    ApiResponse::json(200, &json!({"return": "Please log in"}))
        .with_header("WWW-Authenticate", "Session")
}

/// `GET /`: rest_cherrypy's welcome, a health check for API clients.
fn welcome() -> ApiResponse {
    ApiResponse::json(
        200,
        &json!({"return": "Welcome", "clients": crate::salt::netapi::client_names()}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BodyError;
    use serde_json::Value as Json;

    fn api(extra: &str) -> Api {
        let yaml = format!(
            "sock_dir: /nonexistent/salt-fcgi-test\nnetapi_enable_clients: [local]\n{extra}"
        );
        let m: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&yaml).expect("yaml");
        Api::new(Settings::from_mapping(&m))
    }

    fn post(path: &str, body: &str, ct: Option<&str>) -> ApiRequest {
        ApiRequest::new("POST", path, ct, body.as_bytes().to_vec())
    }

    fn body(r: &ApiResponse) -> Json {
        serde_json::from_slice(r.whole_body()).expect("json body")
    }

    #[tokio::test]
    async fn every_answer_carries_its_request_id() {
        let api = api("");
        let r = api
            .handle(ApiRequest::new("GET", "/", None, vec![]).with_header("X-Request-Id", "rid-1"))
            .await;
        let id = |r: &ApiResponse| {
            r.headers
                .iter()
                .find(|(k, _)| *k == "X-Request-Id")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(id(&r).as_deref(), Some("rid-1"));
        let r = api
            .handle(ApiRequest::new("GET", "/nowhere", None, vec![]))
            .await;
        assert_eq!((r.status, id(&r).map(|v| v.len())), (404, Some(32)));
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
        let r = api
            .handle(ApiRequest::new(
                "GET",
                "/static/salt-motd.txt",
                None,
                vec![],
            ))
            .await;
        assert_eq!(
            (r.status, body(&r)),
            (404, json!({"return": "404: Not Found"}))
        );
        assert_eq!(
            api.handle(post("/", "[]", Some("image/png"))).await.status,
            406
        );
        assert_eq!(api.handle(post("/", "[]", None)).await.status, 406);
        let r = api.handle(post("/", "[]", json)).await;
        assert_eq!((r.status, body(&r)), (200, json!({"return": []})));
        assert_eq!(api.handle(post("/", "[1]", json)).await.status, 400);
        let r = api
            .handle(post(
                "/",
                r#"[{"client":"local","tgt":"*","fun":"test.ping","eauth":"x"}]"#,
                json,
            ))
            .await;
        assert_eq!(r.status, 503);
        assert!(
            body(&r)["return"]
                .as_str()
                .is_some_and(|m| m.starts_with("Salt Master is not available: no workers.ipc")),
            "{:?}",
            body(&r)
        );
        let r = api
            .handle(ApiRequest::new("GET", "/stats", None, vec![]))
            .await;
        assert_eq!(r.status, 401);
        let r = api
            .handle(
                ApiRequest::new("GET", "/stats", None, vec![])
                    .with_header("X-Auth-Token", "../etc"),
            )
            .await;
        assert_eq!(
            (r.status, body(&r)),
            (401, json!({"return": "Invalid token"}))
        );
        let r = api
            .handle(post("/login", r#"{"username":"u"}"#, json))
            .await;
        assert_eq!(r.status, 503);
    }

    #[tokio::test]
    async fn body_errors_of_the_front_end() {
        let api = api("salt_fcgi: {max_body_bytes: 4}");
        let mut req = post("/", "", Some("application/json"));
        req.body = Err(BodyError::TooLarge(6));
        assert_eq!(api.handle(req).await.status, 413);
        let mut req = post("/", "", Some("application/json"));
        req.body = Err(BodyError::Truncated {
            expected: 10,
            got: 2,
        });
        assert_eq!(api.handle(req).await.status, 400);
    }

    #[tokio::test]
    async fn cookie_requests_from_other_sites_are_refused() {
        let api = api("salt_fcgi: {cors_origins: ['https://gui.example']}");
        let cookie = "session_id=abcd";
        let req = |method: &str, path: &str| {
            ApiRequest::new(method, path, Some("text/plain"), b"[]".to_vec())
                .with_header("Host", "salt.example")
                .with_header("Cookie", cookie)
        };
        let status = |r: ApiRequest| async { api.handle(r).await.status };
        let evil = req("POST", "/").with_header("Origin", "https://evil.example");
        assert_eq!(status(evil).await, 403);
        let sibling = req("POST", "/minions").with_header("Origin", "http://salt.example:8080");
        assert_eq!(status(sibling).await, 403);
        let null = req("POST", "/logout").with_header("Origin", "null");
        assert_eq!(status(null).await, 403);
        let referer = req("GET", "/events").with_header("Referer", "https://evil.example/x?y");
        assert_eq!(status(referer).await, 403);
        let ws = req("GET", "/ws").with_header("Origin", "https://evil.example");
        assert_eq!(status(ws).await, 403);
        // Host without a port (Debian's nginx passes `$host`): the port the server took
        // the request on, or the scheme's default, is the API's own; any other is not.
        let on_port = |origin: &str, server_port: u16| {
            let mut r = req("POST", "/").with_header("Origin", origin);
            r.https = true;
            r.server_port = Some(server_port);
            r
        };
        assert_ne!(
            status(on_port("https://salt.example:8443", 8443)).await,
            403
        );
        assert_ne!(status(on_port("https://salt.example", 8443)).await, 403);
        assert_eq!(
            status(on_port("https://salt.example:9443", 8443)).await,
            403
        );
        assert_eq!(status(on_port("http://salt.example:8443", 8443)).await, 403);
        // Not refused: the API's own origin, a listed one, no origin at all, a header
        // token, no cookie, a GET of a resource, /ws/<token>.
        let mut own = req("POST", "/").with_header("Origin", "https://salt.example");
        own.https = true;
        let passing = [
            own,
            req("POST", "/").with_header("Origin", "https://gui.example"),
            req("POST", "/"),
            req("POST", "/")
                .with_header("Origin", "https://evil.example")
                .with_header("X-Auth-Token", "abcd"),
            ApiRequest::new("POST", "/", Some("text/plain"), b"[]".to_vec())
                .with_header("Origin", "https://evil.example"),
            req("GET", "/jobs").with_header("Referer", "https://evil.example/"),
            req("GET", "/ws/abcd").with_header("Origin", "https://evil.example"),
        ];
        for r in passing {
            let shown = format!("{} {} {:?}", r.method, r.path, r.headers);
            assert_ne!(status(r).await, 403, "{shown}");
        }
    }

    #[tokio::test]
    async fn no_answer_is_cached() {
        let api = api("");
        for r in [
            ApiRequest::new("GET", "/", None, vec![]),
            post("/token", "[]", Some("application/json")),
            ApiRequest::new("GET", "/nowhere", None, vec![]),
        ] {
            let resp = api.handle(r).await;
            let cache = resp.headers.iter().find(|(k, _)| *k == "Cache-Control");
            assert_eq!(cache.map(|(_, v)| v.as_str()), Some("no-store"));
        }
    }

    #[tokio::test]
    async fn cors_only_for_listed_origins() {
        let api = api("salt_fcgi: {cors_origins: ['https://gui.example']}");
        let pre = |origin: &str| {
            ApiRequest::new("OPTIONS", "/login", None, vec![])
                .with_header("Origin", origin)
                .with_header("Access-Control-Request-Method", "POST")
        };
        let r = api.handle(pre("https://gui.example")).await;
        let h = |r: &ApiResponse, n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(r.status, 204);
        assert_eq!(
            h(&r, "Access-Control-Allow-Origin").as_deref(),
            Some("https://gui.example")
        );
        assert_eq!(
            h(&r, "Access-Control-Allow-Credentials").as_deref(),
            Some("true")
        );
        assert!(h(&r, "Access-Control-Allow-Headers").is_some_and(|v| v.contains("Cache-Control")));
        let r = api.handle(pre("https://evil.example")).await;
        assert_eq!(h(&r, "Access-Control-Allow-Origin"), None);
        assert_eq!(h(&r, "Access-Control-Allow-Credentials"), None);
        assert_eq!(h(&r, "Vary").as_deref(), Some("Origin"));
    }
}
