//! The HTTP-facing half, independent of the front end that carried the request.
//!
//! Front ends build an [`ApiRequest`]; [`Api::handle`] turns it into an [`ApiResponse`].

pub mod dispatch;
pub mod lowstate;
pub mod request;
pub mod response;

pub use dispatch::Api;
pub use request::{ApiRequest, BodyError};
pub use response::ApiResponse;
