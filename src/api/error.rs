//! The one error type of the HTTP side: a status and a message safe to show, made from
//! every kind of failure in one place.

use super::lowstate::LowstateError;
use super::request::BodyError;
use super::response::ApiResponse;
use crate::salt::SaltError;

/// Why a request failed. Each kind knows its status ([`ApiError::status`]) and its
/// message; [`ApiError::into_response`] is the one place that renders the JSON body and
/// logs a 5xx with its cause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApiError {
    /// The front end could not deliver the body: 413 over `max`, else 400.
    Body { error: BodyError, max: usize },
    /// The body or a chunk is not what the API takes (400, or 413 past a size limit).
    Lowstate(LowstateError),
    /// Salt refused or failed ([`status_of`]).
    Salt(SaltError),
    /// The master went away after it took part of the request, which may have been
    /// carried out: 502, whatever the failure that followed.
    LostAfterSent(Box<ApiError>),
    /// Refused by this API's own rules: no such route, no session, a content type, a limit.
    Refused { status: u16, message: String },
}

impl ApiError {
    /// A refusal with this status and message.
    pub(crate) fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError::Refused {
            status,
            message: message.into(),
        }
    }

    /// 401 with a message.
    pub(crate) fn unauthorized(message: &str) -> ApiError {
        ApiError::new(401, message)
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> u16 {
        match self {
            ApiError::Body {
                error: BodyError::TooLarge(_),
                ..
            } => 413,
            ApiError::Body { .. } => 400,
            ApiError::Lowstate(e) => e.status,
            ApiError::Salt(e) => status_of(e),
            ApiError::LostAfterSent(_) => 502,
            ApiError::Refused { status, .. } => *status,
        }
    }

    /// The `return` of the JSON body: safe to show (no secrets, no paths).
    pub(crate) fn message(&self) -> String {
        match self {
            ApiError::Body { error, max } => body_message(error, *max),
            ApiError::Lowstate(e) => e.message.clone(),
            ApiError::Salt(e) => e.message().to_string(),
            ApiError::LostAfterSent(cause) => format!(
                "502: the master went away after it took this request, which may have been \
                 carried out (look the job up before sending it again): {}",
                cause.message()
            ),
            ApiError::Refused { message, .. } => message.clone(),
        }
    }

    /// A 503 says that the master did nothing for the request (a web server may send it
    /// to another salt-fcgi); once the master took part of it (`sent`), the same failure
    /// is a 502: what was sent may have been carried out.
    pub(crate) fn after_sent(self, sent: bool) -> ApiError {
        if sent && self.status() == 503 {
            ApiError::LostAfterSent(Box::new(self))
        } else {
            self
        }
    }

    /// The JSON error response; a 5xx is also one line in the error log.
    pub(crate) fn into_response(self) -> ApiResponse {
        let (status, message) = (self.status(), self.message());
        if status >= 500 {
            // Most messages already start with their status ("503: …"): not twice.
            let prefix = format!("{status}: ");
            let text = message.strip_prefix(&prefix).unwrap_or(&message);
            crate::log!(error, "{prefix}{text}");
        }
        ApiResponse::error(status, &message)
    }
}

/// The HTTP status for a Salt error. An ACL denial is a 401 like a failed login, as
/// rest_cherrypy and rest_wsgi answer it (pepper, salt-mill and others only know 401); a
/// refusal by configuration (disabled client, caller jid) is a 403.
pub(crate) fn status_of(e: &SaltError) -> u16 {
    match e {
        SaltError::Invocation(_) => 400,
        SaltError::Authentication(_) | SaltError::Authorization(_) => 401,
        SaltError::Forbidden(_) => 403,
        // Only ever for a request the master did nothing for (`after_sent`).
        SaltError::NotRunning(_) | SaltError::EventBus(_) => 503,
        SaltError::Timeout(_) => 504,
        SaltError::Master(_) => 500,
    }
}

impl From<SaltError> for ApiError {
    fn from(e: SaltError) -> ApiError {
        ApiError::Salt(e)
    }
}

impl From<LowstateError> for ApiError {
    fn from(e: LowstateError) -> ApiError {
        ApiError::Lowstate(e)
    }
}

/// What the client reads of a body the front end could not deliver.
fn body_message(e: &BodyError, max: usize) -> String {
    match e {
        BodyError::TooLarge(n) if *n > max.saturating_add(1) => {
            format!("413: request body of {n} bytes is over max_body_bytes ({max})")
        }
        BodyError::TooLarge(_) => format!("413: request body is over max_body_bytes ({max})"),
        BodyError::Truncated { expected, got } => {
            format!("400: request body ended after {got} of {expected} bytes (Content-Length)")
        }
        BodyError::BadLength => "400: Content-Length is not a number".into(),
        BodyError::Io(m) => format!("400: cannot read request body: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(error: BodyError) -> ApiError {
        ApiError::Body { error, max: 4 }
    }

    #[test]
    fn every_error_has_one_status() {
        let salt = |e: SaltError| ApiError::from(e).status();
        assert_eq!(salt(SaltError::Authentication(String::new())), 401);
        assert_eq!(salt(SaltError::Authorization(String::new())), 401);
        assert_eq!(salt(SaltError::Forbidden(String::new())), 403);
        assert_eq!(salt(SaltError::Timeout(String::new())), 504);
        assert_eq!(salt(SaltError::EventBus(String::new())), 503);
        assert_eq!(body(BodyError::TooLarge(5)).status(), 413);
        assert_eq!(body(BodyError::BadLength).status(), 400);
        assert_eq!(
            body(BodyError::TooLarge(9)).message(),
            "413: request body of 9 bytes is over max_body_bytes (4)"
        );
    }

    #[test]
    fn a_503_after_the_master_took_the_request_is_a_502() {
        let lost = ApiError::from(SaltError::NotRunning("gone".into()));
        assert_eq!(lost.clone().after_sent(false), lost);
        let after = lost.after_sent(true);
        assert_eq!(after.status(), 502);
        assert!(after.message().ends_with(": gone"), "{}", after.message());
        let timeout = ApiError::from(SaltError::Timeout("t".into()));
        assert_eq!(timeout.clone().after_sent(true), timeout);
    }
}
