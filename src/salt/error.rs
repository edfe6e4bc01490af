//! Every way a Salt call fails, as one enum.
//!
//! The variants group Salt's exception names by what the caller should do about them; the
//! HTTP layer maps each variant to one status in one place (`api::dispatch`).

use std::fmt;

/// A failed Salt call. The message is safe to show to the caller (no secrets, no paths).
#[derive(Debug, Clone, PartialEq)]
pub enum SaltError {
    /// The master is not running or does not accept connections.
    NotRunning(String),
    /// The master (or a runner job) did not answer in time.
    Timeout(String),
    /// Credentials missing or rejected (`AuthenticationError`, `EauthAuthenticationError`,
    /// `TokenAuthenticationError`).
    Authentication(String),
    /// Valid credentials, but the ACL forbids this (`AuthorizationError`).
    Authorization(String),
    /// Refused by configuration, whoever asks: a client disabled in
    /// `netapi_enable_clients`, a caller-chosen `jid` without `allow_caller_jid`.
    Forbidden(String),
    /// The request itself is wrong (`SaltInvocationError`, a load the master calls bad).
    Invocation(String),
    /// The master's event bus cannot be used by this process (permissions, wrong mode).
    EventBus(String),
    /// Anything else the master or the wire reported.
    Master(String),
}

impl SaltError {
    /// The variant's name for counters (`/metrics`): `not_running`, `timeout`, …
    pub fn kind(&self) -> &'static str {
        match self {
            SaltError::NotRunning(_) => "not_running",
            SaltError::Timeout(_) => "timeout",
            SaltError::Authentication(_) => "authentication",
            SaltError::Authorization(_) => "authorization",
            SaltError::Forbidden(_) => "forbidden",
            SaltError::Invocation(_) => "invocation",
            SaltError::EventBus(_) => "event_bus",
            SaltError::Master(_) => "master",
        }
    }

    /// Maps a Salt exception class name and message (from an `{"error": …}` reply) to a variant.
    pub fn from_exception(name: &str, message: &str) -> SaltError {
        let message = message.to_string();
        match name {
            "AuthenticationError" | "EauthAuthenticationError" | "TokenAuthenticationError" => {
                SaltError::Authentication(message)
            }
            "AuthorizationError" => SaltError::Authorization(message),
            "SaltInvocationError" => SaltError::Invocation(message),
            "SaltDaemonNotRunning" => SaltError::NotRunning(message),
            "SaltReqTimeoutError" | "SaltClientTimeout" => SaltError::Timeout(message),
            _ if message.is_empty() => SaltError::Master(format!("{name} occurred")),
            _ => SaltError::Master(message),
        }
    }

    /// The message shown to the caller.
    pub fn message(&self) -> &str {
        match self {
            SaltError::NotRunning(m)
            | SaltError::Timeout(m)
            | SaltError::Authentication(m)
            | SaltError::Authorization(m)
            | SaltError::Forbidden(m)
            | SaltError::Invocation(m)
            | SaltError::EventBus(m)
            | SaltError::Master(m) => m,
        }
    }
}

impl fmt::Display for SaltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for SaltError {}

/// `Exception occurred in runner f: Traceback … KeyError: 'f'` → the first and last line
/// (`Exception occurred in runner f: KeyError: 'f'`); `None` if there is no traceback.
pub(crate) fn without_traceback(text: &str) -> Option<String> {
    let at = text.find("Traceback (most recent call last)")?;
    let head = text[..at].trim_end();
    let last = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    Some(format!("{head} {last}").trim().to_string())
}

/// Shorthand for results of Salt calls.
pub(crate) type SaltResult<T> = Result<T, SaltError>;
