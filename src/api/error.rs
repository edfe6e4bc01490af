//! The one error type of the HTTP side: a status and a message safe to show, made from
//! every kind of failure in one place.

use super::lowstate::LowstateError;
use super::request::BodyError;
use super::response::ApiResponse;
use crate::salt::SaltError;

/// A request that fails: the status and the message of its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `return` of the JSON body.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub(crate) fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 401 with a message.
    pub(crate) fn unauthorized(message: &str) -> ApiError {
        ApiError::new(401, message)
    }

    /// A 503 says that the master did nothing for the request (a web server may send it
    /// to another salt-fcgi); once the master took part of it (`sent`), the same failure
    /// is a 502: what was sent may have been carried out.
    pub(crate) fn after_sent(self, sent: bool) -> ApiError {
        if !sent || self.status != 503 {
            return self;
        }
        ApiError::new(
            502,
            format!(
                "502: the master went away after it took this request, which may have been \
                 carried out (look the job up before sending it again): {}",
                self.message
            ),
        )
    }

    /// The JSON error response; a 5xx is also one line in the error log.
    pub(crate) fn into_response(self) -> ApiResponse {
        if self.status >= 500 {
            // Most messages already start with their status ("503: …"): not twice.
            let status = format!("{}: ", self.status);
            let text = self.message.strip_prefix(&status).unwrap_or(&self.message);
            crate::log!(error, "{status}{text}");
        }
        ApiResponse::error(self.status, &self.message)
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
        ApiError::new(status_of(&e), e.message())
    }
}

impl From<LowstateError> for ApiError {
    fn from(e: LowstateError) -> ApiError {
        ApiError::new(e.status, e.message)
    }
}

/// A body the front end could not deliver, against `max_body_bytes`.
pub(crate) fn body_error(e: &BodyError, max: usize) -> ApiError {
    match e {
        BodyError::TooLarge(n) if *n > max.saturating_add(1) => ApiError::new(
            413,
            format!("413: request body of {n} bytes is over max_body_bytes ({max})"),
        ),
        BodyError::TooLarge(_) => ApiError::new(
            413,
            format!("413: request body is over max_body_bytes ({max})"),
        ),
        BodyError::Truncated { expected, got } => ApiError::new(
            400,
            format!("400: request body ended after {got} of {expected} bytes (Content-Length)"),
        ),
        BodyError::BadLength => ApiError::new(400, "400: Content-Length is not a number"),
        BodyError::Io(m) => ApiError::new(400, format!("400: cannot read request body: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_one_status() {
        assert_eq!(status_of(&SaltError::Authentication(String::new())), 401);
        assert_eq!(status_of(&SaltError::Authorization(String::new())), 401);
        assert_eq!(status_of(&SaltError::Forbidden(String::new())), 403);
        assert_eq!(status_of(&SaltError::Timeout(String::new())), 504);
        assert_eq!(status_of(&SaltError::EventBus(String::new())), 503);
        assert_eq!(body_error(&BodyError::TooLarge(5), 4).status, 413);
        assert_eq!(body_error(&BodyError::BadLength, 4).status, 400);
    }

    #[test]
    fn a_503_after_the_master_took_the_request_is_a_502() {
        let lost = ApiError::from(SaltError::NotRunning("gone".into()));
        assert_eq!(lost.clone().after_sent(false), lost);
        let after = lost.after_sent(true);
        assert_eq!(after.status, 502);
        assert!(after.message.ends_with(": gone"), "{}", after.message);
        let timeout = ApiError::from(SaltError::Timeout("t".into()));
        assert_eq!(timeout.clone().after_sent(true), timeout);
    }
}
