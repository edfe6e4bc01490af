//! The API's routes in one table: a method, a path pattern and the endpoint it runs. A
//! request's method and path are resolved against it once; 404, 405 with `Allow`, and the
//! endpoint's name in `/metrics` all come from that one answer.

/// What a route runs (the dispatcher calls the endpoint's function).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `GET /`: the welcome, a health check.
    Welcome,
    /// `GET /login`: rest_cherrypy's "Please log in".
    LoginPage,
    /// `POST /` and `POST /run`: lowstate chunks.
    Lowstate,
    /// `POST /login`.
    Login,
    /// `POST /logout`.
    Logout,
    /// `POST /token`.
    Token,
    /// `GET /stats`.
    Stats,
    /// `GET /metrics`.
    Metrics,
    /// `GET /minions[/<id>]`: grains.
    MinionGrains,
    /// `POST /minions`: a job started asynchronously.
    StartJob,
    /// `GET /jobs[/<jid>]`.
    Jobs,
    /// `GET /keys[/<id>]`.
    Keys,
    /// `POST /keys`: a key pair generated and accepted.
    GenKey,
    /// `POST <webhook_url>[/<path>]`.
    Hook,
    /// `GET /events`: server-sent events.
    Events,
    /// `GET /ws[/<token>]`: the events over a WebSocket.
    Ws,
}

/// One row of the table.
struct Route {
    method: &'static str,
    /// `/name` exactly, or `/name/*` with a non-empty rest captured; `@hook` stands for
    /// the configured `webhook_url`.
    path: &'static str,
    endpoint: Endpoint,
}

const fn route(method: &'static str, path: &'static str, endpoint: Endpoint) -> Route {
    Route {
        method,
        path,
        endpoint,
    }
}

/// Every route of the API, in the order `Allow` lists their methods.
const ROUTES: &[Route] = &[
    route("GET", "/", Endpoint::Welcome),
    route("POST", "/", Endpoint::Lowstate),
    route("POST", "/run", Endpoint::Lowstate),
    route("GET", "/login", Endpoint::LoginPage),
    route("POST", "/login", Endpoint::Login),
    route("POST", "/logout", Endpoint::Logout),
    route("POST", "/token", Endpoint::Token),
    route("GET", "/stats", Endpoint::Stats),
    route("GET", "/metrics", Endpoint::Metrics),
    route("GET", "/minions", Endpoint::MinionGrains),
    route("POST", "/minions", Endpoint::StartJob),
    route("GET", "/minions/*", Endpoint::MinionGrains),
    route("GET", "/jobs", Endpoint::Jobs),
    route("GET", "/jobs/*", Endpoint::Jobs),
    route("GET", "/keys", Endpoint::Keys),
    route("POST", "/keys", Endpoint::GenKey),
    route("GET", "/keys/*", Endpoint::Keys),
    route("POST", "@hook", Endpoint::Hook),
    route("POST", "@hook/*", Endpoint::Hook),
    route("GET", "/events", Endpoint::Events),
    route("GET", "/ws", Endpoint::Ws),
    route("GET", "/ws/*", Endpoint::Ws),
];

/// Where a request's method and path lead.
#[derive(Debug, PartialEq)]
pub(crate) struct Resolved {
    /// The endpoint's name in `/metrics` (`not_found` for a path no route has).
    pub(crate) name: &'static str,
    /// The route for this method: its endpoint and what the path's `*` captured.
    pub(crate) found: Option<(Endpoint, Option<String>)>,
    /// The methods the path answers, for `Allow` (empty for a path no route has).
    pub(crate) allow: String,
}

impl Resolved {
    /// What `/ws/<token>` captured, for a log or audit line that must not show it.
    pub(crate) fn carries_token(&self) -> bool {
        matches!(&self.found, Some((Endpoint::Ws, Some(_))))
    }
}

/// Resolves `method` and `path` (below the mount point; leading and trailing `/` ignored).
pub(crate) fn resolve(method: &str, path: &str, webhook_url: &str) -> Resolved {
    let path = path.trim_matches('/');
    let hook = webhook_url.trim_matches('/');
    let mut resolved = Resolved {
        name: "not_found",
        found: None,
        allow: String::new(),
    };
    for row in ROUTES {
        let Some(param) = capture(row.path, path, hook) else {
            continue;
        };
        resolved.name = name(row.path);
        if !resolved.allow.split(", ").any(|m| m == row.method) {
            if !resolved.allow.is_empty() {
                resolved.allow.push_str(", ");
            }
            resolved.allow.push_str(row.method);
        }
        if resolved.found.is_none() && row.method == method {
            resolved.found = Some((row.endpoint, param));
        }
    }
    resolved
}

/// Whether `path` (without its outer `/`) matches `pattern`: `Some(None)` exactly,
/// `Some(Some(rest))` below a `/*` pattern.
fn capture(pattern: &str, path: &str, hook: &str) -> Option<Option<String>> {
    let pattern = pattern.trim_start_matches('/');
    let (base, below) = match pattern.strip_suffix("/*") {
        Some(base) => (base, true),
        None => (pattern, false),
    };
    let base = if base == "@hook" { hook } else { base };
    if !below {
        return (path == base).then_some(None);
    }
    let rest = path.strip_prefix(base)?.strip_prefix('/')?;
    (!rest.is_empty()).then(|| Some(rest.to_string()))
}

/// A pattern's first word (`root` for `/`, `hook` for the webhook).
fn name(pattern: &'static str) -> &'static str {
    match pattern.trim_start_matches(['/', '@']).split('/').next() {
        Some("") | None => "root",
        Some(word) => word,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: &str, path: &str) -> Option<(Endpoint, Option<String>)> {
        resolve(method, path, "/hook").found
    }

    #[test]
    fn paths_lead_to_their_endpoints() {
        assert_eq!(found("GET", ""), Some((Endpoint::Welcome, None)));
        assert_eq!(found("POST", "/"), Some((Endpoint::Lowstate, None)));
        assert_eq!(found("GET", "/login/"), Some((Endpoint::LoginPage, None)));
        assert_eq!(
            found("GET", "/jobs/123"),
            Some((Endpoint::Jobs, Some("123".into())))
        );
        assert_eq!(found("GET", "/keys"), Some((Endpoint::Keys, None)));
        assert_eq!(found("POST", "/keys"), Some((Endpoint::GenKey, None)));
        assert_eq!(
            found("POST", "/hook/a/b"),
            Some((Endpoint::Hook, Some("a/b".into())))
        );
        assert_eq!(found("POST", "/hook"), Some((Endpoint::Hook, None)));
        assert_eq!(
            resolve("POST", "/gitlab/x", "/gitlab/").found,
            Some((Endpoint::Hook, Some("x".into())))
        );
        assert_eq!(
            found("GET", "/ws/tok"),
            Some((Endpoint::Ws, Some("tok".into())))
        );
        for nowhere in [
            "/hookx",
            "/static/salt-motd.txt",
            "/login/x",
            "/runs",
            "/events/x",
        ] {
            let r = resolve("GET", nowhere, "/hook");
            assert_eq!((r.name, r.found, r.allow.as_str()), ("not_found", None, ""));
        }
    }

    #[test]
    fn allow_lists_the_methods_of_the_path() {
        let allow = |method, path| resolve(method, path, "/hook").allow;
        assert_eq!(allow("DELETE", "/"), "GET, POST");
        assert_eq!(allow("GET", "/logout"), "POST");
        assert_eq!(allow("POST", "/minions/ms-0"), "GET");
        assert_eq!(allow("PUT", "/minions"), "GET, POST");
        assert_eq!(resolve("POST", "/minions/ms-0", "/hook").found, None);
    }

    #[test]
    fn names_leave_ids_out() {
        let name = |path| resolve("GET", path, "/hook").name;
        assert_eq!(name("/"), "root");
        assert_eq!(name("/jobs/20261203"), "jobs");
        assert_eq!(name("/hook/ci/deploy"), "hook");
        assert_eq!(name("/ws/secret-token"), "ws");
        assert!(resolve("GET", "/ws/t", "/hook").carries_token());
        assert!(!resolve("GET", "/ws", "/hook").carries_token());
    }
}
