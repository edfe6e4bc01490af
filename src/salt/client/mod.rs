//! The netapi clients: what each lowstate `client` sends to the master and returns.
//!
//! `Master` bundles what every client needs (settings, request channel, event bus);
//! `Chunk` is one lowstate chunk, a JSON object; `Credentials` are the chunk's secrets,
//! kept in a type that never prints them.

pub mod batch;
pub mod collect;
pub mod job;
pub mod local;
mod nodegroup;
pub mod runner;
pub mod wheel;
mod yaml11;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value as Json};

use super::channel::RequestChannel;
use super::error::{SaltError, SaltResult};
use super::events::EventBus;
use crate::settings::Settings;

/// One lowstate chunk: `{"client": …, "fun": …, …}`.
pub type Chunk = Map<String, Json>;

/// The master as the clients see it: configuration plus the two connections.
pub struct Master {
    /// The master configuration.
    pub settings: Arc<Settings>,
    /// Clear request channel to `ret_port`.
    pub channel: Arc<RequestChannel>,
    /// Event bus subscriber.
    pub bus: Arc<EventBus>,
}

impl Master {
    /// Handles for the master described by `settings`; nothing is connected yet.
    pub fn new(settings: Arc<Settings>) -> Master {
        Master {
            channel: RequestChannel::new(&settings),
            bus: EventBus::new(&settings),
            settings,
        }
    }
}

/// A string that must never be printed (password, token).
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The secret text, for building a load only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The caller's credentials from a chunk. A token wins over eauth, as on the master.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    /// An eauth token (hex).
    Token(Secret),
    /// External authentication: backend, user name, password.
    Eauth {
        /// The eauth backend (`pam`, `file`, …).
        eauth: String,
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

/// Chunk keys that carry credentials; never forwarded anywhere but where Salt reads them.
pub const CREDENTIAL_KEYS: [&str; 4] = ["eauth", "username", "password", "token"];

impl Credentials {
    /// Reads the credentials of a chunk; the caller has checked one of token/eauth exists.
    pub fn from_chunk(chunk: &Chunk) -> SaltResult<Credentials> {
        let text = |key: &str| -> SaltResult<Option<String>> {
            match chunk.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(SaltError::Authentication(format!(
                    "Invalid credentials: '{key}' must be a string"
                ))),
            }
        };
        if let Some(token) = text("token")? {
            if token.is_empty()
                || token.len() > 256
                || !token.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(SaltError::Authentication("Invalid token".into()));
            }
            return Ok(Credentials::Token(Secret(token)));
        }
        let Some(eauth) = text("eauth")?.filter(|e| !e.is_empty()) else {
            return Err(SaltError::Authentication(
                "No authentication credentials given".into(),
            ));
        };
        // Every eauth backend takes both; without them a 3006 master fails the request
        // with a generic exception instead of an authentication error.
        match (text("username")?, text("password")?) {
            (Some(username), Some(password)) => Ok(Credentials::Eauth {
                eauth,
                username,
                password: Secret(password),
            }),
            _ => Err(SaltError::Authentication(
                "Authentication error occurred: eauth needs 'username' and 'password'".into(),
            )),
        }
    }

    /// Writes the credentials into a load (publish `kwargs`, or the top level for
    /// runner/wheel).
    pub fn write_to(&self, load: &mut Chunk) {
        match self {
            Credentials::Token(t) => {
                load.insert("token".into(), Json::from(t.expose()));
            }
            Credentials::Eauth {
                eauth,
                username,
                password,
            } => {
                load.insert("eauth".into(), Json::from(eauth.as_str()));
                load.insert("username".into(), Json::from(username.as_str()));
                load.insert("password".into(), Json::from(password.expose()));
            }
        }
    }
}

/// Salt's `_get_timeout`: a number (or numeric string) of seconds, else `default`.
pub fn timeout_of(value: Option<&Json>, default: f64) -> f64 {
    let secs = match value {
        Some(Json::Number(n)) => n.as_f64(),
        Some(Json::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    secs.filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(default)
}

/// Python truthiness of a JSON value.
pub fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64() != Some(0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// Seconds as a Duration, bounded to something sane.
pub fn seconds(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.clamp(0.0, 1.0e7))
}

/// `arg` as a list: a scalar or object is wrapped (rest_cherrypy does this; rest_wsgi
/// iterated a string character by character).
pub fn arg_list(value: Option<&Json>) -> Vec<Json> {
    match value {
        None | Some(Json::Null) => vec![],
        Some(Json::Array(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// A required string key, or an invocation error naming it.
pub fn required_str<'a>(chunk: &'a Chunk, key: &str, client: &str) -> SaltResult<&'a str> {
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
pub fn os_user() -> &'static str {
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

/// A job id as Salt makes them: UTC `%Y%m%d%H%M%S%f` (20 digits).
pub fn new_jid() -> String {
    let t = UtcNow::read();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{:06}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros
    )
}

/// The current UTC time as Python's `datetime.utcnow().isoformat()` writes it (an
/// event's `_stamp`).
pub fn utc_stamp() -> String {
    let t = UtcNow::read();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros
    )
}

/// The current UTC time in calendar parts.
struct UtcNow {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    micros: u32,
}

impl UtcNow {
    fn read() -> UtcNow {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        UtcNow {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: (rem % 3600) / 60,
            second: rem % 60,
            micros: now.subsec_micros(),
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(v: Json) -> Chunk {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn token_wins_and_must_be_hex() {
        let c = chunk(json!({"token": "abc123", "eauth": "pam"}));
        assert_eq!(
            Credentials::from_chunk(&c),
            Ok(Credentials::Token(Secret("abc123".into())))
        );
        for bad in [json!("../../etc/passwd"), json!(""), json!("zz")] {
            let c = chunk(json!({"token": bad}));
            assert_eq!(
                Credentials::from_chunk(&c),
                Err(SaltError::Authentication("Invalid token".into()))
            );
        }
        let c = chunk(json!({"eauth": "pam", "username": "u", "password": 5}));
        assert!(Credentials::from_chunk(&c).is_err());
        let c = chunk(json!({"eauth": "pam", "username": "u"}));
        assert!(matches!(
            Credentials::from_chunk(&c),
            Err(SaltError::Authentication(_))
        ));
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials::Eauth {
            eauth: "pam".into(),
            username: "u".into(),
            password: Secret("hunter2".into()),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn timeouts_and_args() {
        assert_eq!(timeout_of(Some(&json!(7)), 5.0), 7.0);
        assert_eq!(timeout_of(Some(&json!("9")), 5.0), 9.0);
        assert_eq!(timeout_of(Some(&json!("x")), 5.0), 5.0);
        assert_eq!(timeout_of(None, 5.0), 5.0);
        assert_eq!(arg_list(Some(&json!("ls -l"))), vec![json!("ls -l")]);
        assert_eq!(arg_list(Some(&json!([1, 2]))), vec![json!(1), json!(2)]);
    }

    #[test]
    fn jid_shape_and_calendar() {
        let jid = new_jid();
        assert_eq!(jid.len(), 20);
        assert!(jid.starts_with("20"));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
