//! The HTTP-facing half, independent of the front end that carried the request.
//!
//! Front ends build an [`ApiRequest`]; [`Api::handle`] routes it (`dispatch`) to an
//! endpoint (`endpoints`), which reads the body (`body`, `lowstate`) and answers with an
//! [`ApiResponse`]; every failure is an `ApiError` (`error`).

pub mod body;
pub mod body_stream;
mod body_value;
pub mod dispatch;
pub(crate) mod endpoints;
pub mod error;
pub mod lowstate;
mod metrics;
pub mod request;
pub mod request_id;
pub mod response;
pub mod stats;

pub use dispatch::Api;
pub use request::{ApiRequest, BodyError};
pub use response::ApiResponse;
pub use stats::Stats;
