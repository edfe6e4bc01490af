//! The one error type of the HTTP side: a status and a message safe to show, made from
//! every kind of failure in one place.

use super::lowstate::LowstateError;
use super::request::BodyError;
use super::response::ApiResponse;
use crate::salt::SaltError;

/// A request that fails: the status and the message of its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `return` of the JSON body.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 401 with a message.
    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(401, message)
    }

    /// The JSON error response; a 5xx is also one line in the error log.
    pub fn into_response(self) -> ApiResponse {
        if self.status >= 500 {
            crate::log!(error, "{}: {}", self.status, self.message);
        }
        ApiResponse::error(self.status, &self.message)
    }
}

/// The HTTP status for a Salt error. An ACL denial is a 401 like a failed login, as
/// rest_cherrypy and rest_wsgi answer it (pepper, salt-mill and others only know 401); a
/// refusal by configuration (disabled client, caller jid) is a 403.
pub fn status_of(e: &SaltError) -> u16 {
    match e {
        SaltError::Invocation(_) => 400,
        SaltError::Authentication(_) | SaltError::Authorization(_) => 401,
        SaltError::Forbidden(_) => 403,
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
pub fn body_error(e: &BodyError, max: usize) -> ApiError {
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
}
