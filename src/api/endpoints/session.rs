//! `POST /login`, `/logout` and `/token`: sessions that are the master's eauth tokens.
//!
//! Login asks the master for a token (`mk_token`) and hands it out as rest_cherrypy hands
//! out its session id: in the body, as `X-Auth-Token` and as the `session_id` cookie.
//! Nothing is stored here; logout removes the token from the master's token store.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use super::Call;
use crate::api::error::ApiError;
use crate::api::response::ApiResponse;
use crate::salt::clock::civil_from_days;
use crate::salt::credentials::Secret;
use crate::salt::tokens::{self, Revocation, Token};
use crate::salt::{Master, SaltError, netapi};

/// `POST /login {username, password, eauth[, token_expire]}`.
pub(crate) async fn login(master: &Arc<Master>, call: &Call) -> Result<ApiResponse, ApiError> {
    netapi::check_master_running(master)?;
    let creds = first_object(call)?;
    let token = make_token(master, &creds)
        .await
        .inspect_err(|e| log_refused("login", e, &creds, call))?;
    crate::audit::note_user(Some(&token.name), Some(&token.eauth));
    crate::audit::note_token(token.token.expose());
    let perms = tokens::perms(&master.settings, &token);
    let body = json!({"return": [{
        "token": token.token.expose(),
        "expire": token.expire,
        "start": token.start,
        "user": token.name,
        "eauth": token.eauth,
        "perms": perms,
    }]});
    Ok(call
        .answer(200, &body)
        .with_header("X-Auth-Token", token.token.expose())
        .with_header(
            "Set-Cookie",
            &session_cookie(call, token.token.expose(), token.expire),
        )
        .with_header("Cache-Control", "no-store"))
}

/// `POST /logout`: revoke the session's token and expire the cookie.
///
/// The token is removed from the master's token store: from its Redis (`eauth_tokens:
/// rediscluster`, 3008's `redis` cache driver), which this process must reach, or as a
/// file when this process may write there (it runs as the master's user, with the master's
/// `cachedir`); otherwise the master's own `auth.del_token` runner removes the file, with
/// the token itself as the credentials (the user's ACL must allow it). Either way the
/// master is asked afterwards whether the token still works: "cleared" is said only when
/// it does not; otherwise the answer (a 500) and the log say that it stays valid until it
/// expires.
pub(crate) async fn logout(master: &Arc<Master>, call: &Call) -> Result<ApiResponse, ApiError> {
    let token = call.session()?;
    let cookie = session_cookie(call, "", 0.0);
    let auth = &master.settings.auth;
    let store = match &auth.redis_tokens {
        Some(_) => "the master's Redis".to_string(),
        None => auth.token_dir.display().to_string(),
    };
    let local = match tokens::revoke(&master.settings, token).await {
        Ok(Revocation::Removed) => None,
        Ok(Revocation::Unknown) => Some(format!("no such token in {store}")),
        Ok(Revocation::Unsupported(backend)) => Some(format!(
            "eauth_tokens backend '{backend}' is not a token directory"
        )),
        Err(e) => Some(format!("cannot remove it from {store} ({e})")),
    };
    let mut why = local.clone().unwrap_or_default();
    if local.is_some()
        && let Err(e) = del_token_on_master(master, token).await
    {
        why = format!("{why}; the master's auth.del_token runner: {e}");
    }
    match tokens::get_token(master, token).await {
        Ok(None) => Ok(call
            .answer(200, &json!({"return": "Your token has been cleared"}))
            .with_header("Set-Cookie", &cookie)),
        still => {
            let state = match still {
                Ok(Some(t)) => format!("it stays valid until {}", http_date(t.expire)),
                Err(e) => format!("the master could not confirm it is gone ({e})"),
                Ok(None) => String::new(),
            };
            crate::log!(
                warn,
                "logout from {}: the token was not revoked ({why}); {state}",
                call.remote()
            );
            let message = format!(
                "500: the session cookie is cleared, but the master did not revoke the \
                 token: {state}"
            );
            Ok(ApiResponse::error(500, &message).with_header("Set-Cookie", &cookie))
        }
    }
}

/// The master's `auth.del_token` runner for `token`, authenticated by the token itself:
/// its return waited for on the event bus, or, on a host without the bus, started with
/// `runner_async` and followed by asking the master for the token until it is gone; either
/// for at most `logout_timeout`.
async fn del_token_on_master(master: &Arc<Master>, token: &str) -> Result<(), SaltError> {
    let bus = master.settings.addresses.event_bus;
    let wait = master.settings.limits.logout_timeout;
    let client = if bus { "runner" } else { "runner_async" };
    let Json::Object(chunk) = json!({"client": client, "fun": "auth.del_token",
        "kwarg": {"token": token}, "timeout": wait.as_secs_f64()})
    else {
        return Ok(());
    };
    netapi::run(master, &chunk, Some(token)).await?;
    if !bus {
        wait_until_unknown(master, token, wait).await;
    }
    Ok(())
}

/// Asks the master about `token` (every 0.1 s, doubling to 1 s) until it no longer knows
/// it or `limit` has passed.
async fn wait_until_unknown(master: &Master, token: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(100);
    while !matches!(tokens::get_token(master, token).await, Ok(None)) {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// `POST /token`: one token per credentials chunk, as a bare list (pepper's `-r`).
pub(crate) async fn token(master: &Arc<Master>, call: &mut Call) -> Result<ApiResponse, ApiError> {
    netapi::check_master_running(master)?;
    let mut out = Vec::new();
    for creds in call.chunks(master)? {
        let required = ["username", "password", "eauth"];
        if required
            .iter()
            .any(|k| !creds.get(*k).is_some_and(Json::is_string))
        {
            return Err(ApiError::new(
                400,
                "400: Require \"username\", \"password\", and \"eauth\" params",
            ));
        }
        let t = make_token(master, &creds)
            .await
            .inspect_err(|e| log_refused("token", e, &creds, call))?;
        out.push(
            json!({"token": t.token.expose(), "start": t.start, "expire": t.expire,
            "name": t.name, "eauth": t.eauth}),
        );
    }
    Ok(call.answer(200, &Json::Array(out)))
}

/// The login object: the body itself, or the first chunk of a list.
fn first_object(call: &Call) -> Result<Map<String, Json>, ApiError> {
    match &call.data {
        Some(Json::Object(m)) => Ok(m.clone()),
        Some(Json::Array(items)) => match items.first() {
            Some(Json::Object(m)) => Ok(m.clone()),
            _ => Err(ApiError::new(400, "400: send {username, password, eauth}")),
        },
        _ => Err(ApiError::new(400, "400: send {username, password, eauth}")),
    }
}

/// Asks the master for a token; missing or non-string credentials fail like a bad password.
async fn make_token(master: &Arc<Master>, creds: &Map<String, Json>) -> Result<Token, SaltError> {
    let text = |k: &str| creds.get(k).and_then(Json::as_str);
    let (Some(eauth), Some(username), Some(password)) =
        (text("eauth"), text("username"), text("password"))
    else {
        return Err(SaltError::Authentication(tokens::LOGIN_FAILED.into()));
    };
    let password = Secret::new(password.to_string());
    tokens::mk_token(
        master,
        eauth,
        username,
        &password,
        creds.get("token_expire"),
    )
    .await
}

/// One log line for a refused login (fail2ban-ready): who, which backend, from where.
fn log_refused(what: &str, e: &SaltError, creds: &Map<String, Json>, call: &Call) {
    if matches!(e, SaltError::Authentication(_)) {
        crate::log!(
            warn,
            "401 {what} for user {} eauth {} from {}",
            shown(creds, "username"),
            shown(creds, "eauth"),
            call.remote()
        );
    }
}

/// A credential field for a log line, quoted (`crate::log` escapes the rest).
fn shown(creds: &Map<String, Json>, key: &str) -> String {
    crate::log::quoted(creds.get(key).and_then(Json::as_str).unwrap_or("-"))
}

/// `session_id=<token>` for the mount point, expiring with the token (an empty token at
/// epoch 0 deletes the cookie).
fn session_cookie(call: &Call, token: &str, expire: f64) -> String {
    let path = if call.req.mount.is_empty() {
        "/"
    } else {
        call.req.mount.as_str()
    };
    let secure = if call.req.https { "; Secure" } else { "" };
    format!(
        "session_id={token}; Path={path}; Expires={}; HttpOnly; SameSite=Lax{secure}",
        http_date(expire)
    )
}

/// Epoch seconds as an HTTP date (`Thu, 01 Jan 1970 00:00:00 GMT`).
fn http_date(epoch: f64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = if epoch.is_finite() {
        epoch.clamp(0.0, 253_402_300_799.0) as i64
    } else {
        0
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m as usize).saturating_sub(1).min(11)],
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::ApiRequest;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0.0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000.5), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(f64::NAN), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn cookies_follow_mount_and_tls() {
        let mut req = ApiRequest::new("POST", "/login", None, vec![]);
        req.mount = "/api".into();
        req.https = true;
        let call = Call::new(req, vec![], None);
        assert_eq!(
            session_cookie(&call, "ab", 0.0),
            "session_id=ab; Path=/api; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax; Secure"
        );
        let call = Call::new(
            ApiRequest::new("POST", "/login", None, vec![]),
            vec![],
            None,
        );
        assert!(session_cookie(&call, "ab", 0.0).contains("Path=/;"));
        assert!(!session_cookie(&call, "ab", 0.0).contains("Secure"));
    }
}
