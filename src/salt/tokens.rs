//! Salt eauth tokens, the session of the rest_cherrypy dialect. The master makes, keeps and
//! checks them (`mk_token`, `get_token`, its `eauth_tokens` backend), so salt-fcgi keeps
//! no session state: any process on any host that reaches the master shares every session.
//!
//! Revocation has no request-server command; like rest_cherrypy's `LoadAuth.rm_token`, it
//! removes the token from the master's store itself: `localfs` (`<cachedir>/tokens`, which
//! needs the master's user or group, as the event bus does) or a Redis (`super::redis`).

use std::io;
use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use super::channel::check_reply;
use super::credentials::Secret;
pub(crate) use super::credentials::is_token_shaped;
use super::error::{SaltError, SaltResult};
use super::master::Master;
use crate::settings::Settings;

/// Longest wait for the master's answer to a token request.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A token as the master describes it (`mk_token` / `get_token` replies).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    /// The token itself (hex).
    pub token: Secret,
    /// Creation time, epoch seconds.
    pub start: f64,
    /// Expiry time, epoch seconds.
    pub expire: f64,
    /// The user name the backend authenticated.
    pub name: String,
    /// The eauth backend.
    pub eauth: String,
    /// The master's whole reply (`groups`, `auth_list`, …).
    pub data: Map<String, Json>,
}

impl Token {
    /// Whether this token's user is named in `entries`: the user name, `*`, or one of the
    /// token's groups as `group%` (as `external_auth` names them).
    pub(crate) fn is_listed_in(&self, entries: &[String]) -> bool {
        let groups: Vec<&str> = match self.data.get("groups") {
            Some(Json::Array(groups)) => groups.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        };
        entries.iter().any(|entry| match entry.strip_suffix('%') {
            Some(group) => groups.contains(&group),
            None => entry == "*" || *entry == self.name,
        })
    }
}

impl Token {
    /// Reads a master reply; `None` for the empty answers of a failed login or an unknown
    /// or expired token.
    fn from_reply(reply: Json) -> Option<Token> {
        let Json::Object(data) = reply else {
            return None;
        };
        let text = |k: &str| data.get(k).and_then(Json::as_str).map(str::to_string);
        let time = |k: &str| data.get(k).and_then(Json::as_f64);
        Some(Token {
            token: Secret::new(text("token")?),
            start: time("start")?,
            expire: time("expire")?,
            name: text("name")?,
            eauth: text("eauth").unwrap_or_default(),
            data,
        })
    }
}

/// The master's `mk_token`: a new token for these credentials, or an authentication error.
/// `token_expire` is honoured only where the master's `token_expire_user_override` allows.
/// The caller has checked that the master runs (`/login` does that before it reads the
/// credentials, as rest_cherrypy does).
pub(crate) async fn mk_token(
    master: &Master,
    eauth: &str,
    username: &str,
    password: &Secret,
    token_expire: Option<&Json>,
) -> SaltResult<Token> {
    let mut load = json!({"cmd": "mk_token", "eauth": eauth, "username": username,
        "password": password.expose()});
    if let Some(expire) = token_expire.filter(|v| v.is_number()) {
        load["token_expire"] = expire.clone();
    }
    let reply = master.channel.send(load, TOKEN_REQUEST_TIMEOUT).await?;
    let reply = check_reply(reply).map_err(|e| match e {
        // 3006 masters fail a login without username/password with a generic exception.
        SaltError::Master(_) => SaltError::Authentication(LOGIN_FAILED.into()),
        other => other,
    })?;
    Token::from_reply(reply).ok_or_else(|| SaltError::Authentication(LOGIN_FAILED.into()))
}

/// What a failed login answers (rest_cherrypy's words).
pub(crate) const LOGIN_FAILED: &str = "Could not authenticate using provided credentials";

/// The master's `get_token`: the token if it exists and has not expired.
pub(crate) async fn get_token(master: &Master, token: &str) -> SaltResult<Option<Token>> {
    if !is_token_shaped(token) {
        return Ok(None);
    }
    super::netapi::check_master_running(master)?;
    let reply = master
        .channel
        .send(
            json!({"cmd": "get_token", "token": token}),
            TOKEN_REQUEST_TIMEOUT,
        )
        .await?;
    Ok(Token::from_reply(check_reply(reply)?))
}

/// What revoking a token did.
#[derive(Debug, PartialEq)]
pub(crate) enum Revocation {
    /// The token's file or Redis entry was removed: no process can use it any more.
    Removed,
    /// There was no such token (already expired, revoked, or never made).
    Unknown,
    /// The master keeps tokens in a backend salt-fcgi cannot reach (`eauth_tokens`).
    Unsupported(String),
}

/// Removes `token` from the master's token store: its Redis (3006/3007 `rediscluster`,
/// 3008's `redis` cache driver), else `localfs` (3006/3007 `<token>`, 3008's cache
/// `<token>.p`).
pub(crate) async fn revoke(settings: &Settings, token: &str) -> io::Result<Revocation> {
    if !is_token_shaped(token) {
        return Ok(Revocation::Unknown);
    }
    if let Some(redis) = &settings.auth.redis_tokens {
        let removed = super::redis::remove_token(redis, token)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("Redis at {}: {e}", redis.address)))?;
        return Ok(if removed {
            Revocation::Removed
        } else {
            Revocation::Unknown
        });
    }
    if settings.auth.eauth_tokens != "localfs" {
        return Ok(Revocation::Unsupported(settings.auth.eauth_tokens.clone()));
    }
    let mut removed = false;
    for name in [token.to_string(), format!("{token}.p")] {
        match std::fs::remove_file(settings.auth.token_dir.join(name)) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(if removed {
        Revocation::Removed
    } else {
        Revocation::Unknown
    })
}

/// The login answer's `perms`, as rest_cherrypy computes them: the token's `auth_list`
/// for the `rest` and `django` backends, else the `external_auth` entries of the user,
/// of `*` and of each of the token's groups (`group%`); strings sorted, then the rest,
/// without duplicates.
pub(crate) fn perms(settings: &Settings, token: &Token) -> Vec<Json> {
    if matches!(token.eauth.as_str(), "rest" | "django")
        && let Some(Json::Array(list)) = token.data.get("auth_list")
    {
        return list.clone();
    }
    let backend = settings.auth.external_auth.get(&token.eauth);
    let entries = |key: &str| -> Vec<Json> {
        match backend.and_then(|b| b.get(key)) {
            Some(Json::Array(items)) => items.clone(),
            _ => Vec::new(),
        }
    };
    let mut all = entries(&token.name);
    all.extend(entries("*"));
    if let Some(Json::Array(groups)) = token.data.get("groups") {
        for group in groups.iter().filter_map(Json::as_str) {
            all.extend(entries(&format!("{group}%")));
        }
    }
    sorted_permissions(all)
}

/// Strings first, sorted; then every other entry in a stable order; no duplicates.
fn sorted_permissions(all: Vec<Json>) -> Vec<Json> {
    let (mut strings, mut others): (Vec<Json>, Vec<Json>) =
        all.into_iter().partition(Json::is_string);
    strings.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    strings.dedup();
    others.sort_by_key(Json::to_string);
    others.dedup();
    strings.extend(others);
    strings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> Settings {
        let m: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(yaml).expect("yaml");
        Settings::from_mapping(&m)
    }

    fn token(v: Json) -> Token {
        Token::from_reply(v).expect("token")
    }

    #[test]
    fn replies_become_tokens() {
        let t =
            token(json!({"token": "ab", "start": 1.5, "expire": 2.5, "name": "u", "eauth": "pam"}));
        assert_eq!((t.start, t.expire, t.name.as_str()), (1.5, 2.5, "u"));
        assert_eq!(Token::from_reply(json!("")), None);
        assert_eq!(Token::from_reply(json!({})), None);
    }

    #[test]
    fn perms_like_rest_cherrypy() {
        let s = settings(
            "external_auth:\n  pam:\n    u: ['test.*', {ms-0: ['x']}, '@wheel']\n    '*': ['@jobs', 'test.*']\n    admins%: ['.*']\n",
        );
        let t = token(
            json!({"token": "ab", "start": 1, "expire": 2, "name": "u", "eauth": "pam",
            "groups": ["admins", "users"]}),
        );
        assert_eq!(
            perms(&s, &t),
            vec![
                json!(".*"),
                json!("@jobs"),
                json!("@wheel"),
                json!("test.*"),
                json!({"ms-0": ["x"]})
            ]
        );
        let rest = token(json!({"token": "ab", "start": 1, "expire": 2, "name": "u",
            "eauth": "rest", "auth_list": ["a"]}));
        assert_eq!(perms(&s, &rest), vec![json!("a")]);
        let nobody =
            token(json!({"token": "ab", "start": 1, "expire": 2, "name": "v", "eauth": "ldap"}));
        assert!(perms(&s, &nobody).is_empty());
    }

    #[tokio::test]
    async fn revocation_removes_only_token_files() {
        let dir = std::env::temp_dir().join(format!("salt-fcgi-tokens-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tokens")).expect("mkdir");
        let s = settings(&format!("cachedir: {}", dir.display()));
        std::fs::write(dir.join("tokens/abc1"), b"x").expect("write");
        assert_eq!(
            revoke(&s, "abc1").await.expect("revoke"),
            Revocation::Removed
        );
        assert!(!dir.join("tokens/abc1").exists());
        assert_eq!(
            revoke(&s, "abc1").await.expect("again"),
            Revocation::Unknown
        );
        assert_eq!(
            revoke(&s, "../x").await.expect("traversal"),
            Revocation::Unknown
        );
        let other = settings("eauth_tokens: mystore");
        assert_eq!(
            revoke(&other, "ab").await.expect("other"),
            Revocation::Unsupported("mystore".into())
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
