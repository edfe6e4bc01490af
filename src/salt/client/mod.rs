//! The netapi clients: what each lowstate `client` sends to the master and returns, one
//! module each, and the chunk readers they share (`Chunk` is one lowstate chunk, a JSON
//! object). Each client module owns a `parse`/`run` pair: `parse` reads a chunk once into
//! the client's typed arguments (every refusal a `SaltError`), `run` sends them.

pub(crate) mod batch;
pub(crate) mod collect;
pub(crate) mod job;
pub(crate) mod local;
mod nodegroup;
pub(crate) mod runner;
pub(crate) mod wheel;

use std::sync::OnceLock;

use serde_json::{Map, Value as Json};

use super::error::{SaltError, SaltResult};

/// One lowstate chunk: `{"client": …, "fun": …, …}`.
pub(crate) type Chunk = Map<String, Json>;

/// Salt's `_get_timeout` reading: a number (or numeric string) of seconds, not negative.
pub(crate) fn given_seconds(value: Option<&Json>) -> Option<f64> {
    let secs = match value {
        Some(Json::Number(n)) => n.as_f64(),
        Some(Json::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    secs.filter(|s| s.is_finite() && *s >= 0.0)
}

/// Salt's `_get_timeout`: a number (or numeric string) of seconds, else `default`.
pub(crate) fn timeout_of(value: Option<&Json>, default: f64) -> f64 {
    given_seconds(value).unwrap_or(default)
}

/// Python truthiness of a JSON value.
pub(crate) fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64() != Some(0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// `arg` as a list: a scalar or object is wrapped (rest_cherrypy does this; rest_wsgi
/// iterated a string character by character).
pub(crate) fn arg_list(value: Option<&Json>) -> Vec<Json> {
    match value {
        None | Some(Json::Null) => vec![],
        Some(Json::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// A required string key, or an invocation error naming it.
pub(crate) fn required_str<'a>(chunk: &'a Chunk, key: &str, client: &str) -> SaltResult<&'a str> {
    match chunk.get(key) {
        Some(Json::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Json::Null) => Err(SaltError::Invocation(format!(
            "Missing '{key}': client '{client}' requires it"
        ))),
        Some(_) => Err(SaltError::Invocation(format!(
            "'{key}' must be a non-empty string"
        ))),
    }
}

/// The OS user this process runs as (the publish `user` field), looked up once.
pub(crate) fn os_user() -> &'static str {
    static USER: OnceLock<String> = OnceLock::new();
    USER.get_or_init(|| {
        // SAFETY: getpwuid_r writes only into the buffers we pass and returns a pointer into them.
        unsafe {
            let uid = libc::geteuid();
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut buf = vec![0 as libc::c_char; 4096];
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
            if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
                std::ffi::CStr::from_ptr(pwd.pw_name)
                    .to_string_lossy()
                    .into_owned()
            } else {
                uid.to_string()
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timeouts_and_args() {
        assert_eq!(timeout_of(Some(&json!(7)), 5.0), 7.0);
        assert_eq!(timeout_of(Some(&json!("9")), 5.0), 9.0);
        assert_eq!(timeout_of(Some(&json!("x")), 5.0), 5.0);
        assert_eq!(timeout_of(None, 5.0), 5.0);
        assert_eq!(arg_list(Some(&json!("ls -l"))), vec![json!("ls -l")]);
        assert_eq!(arg_list(Some(&json!([1, 2]))), vec![json!(1), json!(2)]);
    }
}
