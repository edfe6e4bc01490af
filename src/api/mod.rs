//! The HTTP-facing half, independent of the front end that carried the request.
//!
//! Front ends build an [`ApiRequest`]; [`Api::handle`] routes it (`dispatch`) to an
//! endpoint (`endpoints`), which reads the body (`body`, `lowstate`) and answers with an
//! [`ApiResponse`]; every failure is an `ApiError` (`error`).

pub(crate) mod body;
pub(crate) mod body_stream;
mod body_value;
pub(crate) mod dispatch;
pub(crate) mod endpoints;
pub(crate) mod error;
pub(crate) mod lowstate;
mod metrics;
pub(crate) mod request;
pub(crate) mod request_id;
pub(crate) mod response;
mod routes;
pub(crate) mod stats;
pub(crate) mod stream_delay;

pub use dispatch::Api;
pub(crate) use request::ApiRequest;
pub use request::BodyError;
pub use response::{ApiResponse, Body};
pub(crate) use stats::Stats;
