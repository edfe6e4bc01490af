//! salt-fcgi: Salt's REST API (rest_wsgi and rest_cherrypy dialects) as one native executable that runs
//! as CGI, as a FastCGI responder, or as a development HTTP server, and talks to the
//! salt-master directly (ZeroMQ request channel + event bus).
//!
//! ```text
//! frontend (cgi | fastcgi | http) ─► api::ApiRequest ─► api::Api::handle ─► salt::netapi::run
//!                                 ◄─ api::ApiResponse ◄─ (status mapping) ◄─ salt::client::*
//! ```
//! - `frontend`: the three ways a request arrives; no Salt types.
//! - `api`: request/response types, lowstate parsing, routing and error → status.
//! - `salt`: master config consumers, msgpack, request channel, event bus, clients;
//!   no HTTP types.
//! - `settings`: the master config (YAML + `master.d`) and salt-fcgi's own limits.
//! - `audit`: the audit log; `address_block`: address lists of the config; `small_channel`:
//!   the bounded queue each event stream holds two of (from the bus, to its front end).

#![warn(unreachable_pub)]

mod address_block;
mod api;
mod audit;
mod frontend;
mod log;
mod salt;
mod settings;
mod small_channel;

/// What the `salt-fcgi` binary, the fuzz targets, the examples and the integration tests
/// reach inside the library: not a stable API. Everything else is `pub(crate)`, so rustc
/// tells an item nobody uses.
#[doc(hidden)]
pub mod internals {
    pub use crate::api::{Api, ApiResponse, Body, BodyError};
    pub use crate::frontend::lifecycle::{ServeOptions, ensure_fd_limit};
    pub use crate::frontend::listener::{Listener, is_listening_socket};
    pub use crate::salt::channel::refusal;
    pub use crate::salt::client::collect::{CollectOptions, collect};
    pub use crate::salt::client::job::Published;
    pub use crate::salt::credentials::Credentials;
    pub use crate::salt::event_fire::frame as fire_frame;
    pub use crate::salt::events::EventBus;
    pub use crate::salt::{Master, netapi};
    pub use crate::settings::{Limits, Settings};

    /// The CGI front end: one request from the environment, and the CGI dialect it
    /// shares with FastCGI.
    pub mod cgi {
        pub use crate::frontend::cgi::run;
        pub use crate::frontend::cgi_dialect::{read_body, request_from_vars};
        pub use crate::frontend::cgi_response::response_bytes;
    }
    /// The FastCGI front end.
    pub mod fastcgi {
        pub use crate::frontend::fastcgi::{
            Assembly, Header, IncomingRequest, RecordReader, Step, check_record, serve, steps,
        };
    }
    /// The development HTTP front end.
    pub mod http {
        pub use crate::frontend::http::serve;
    }
    /// Lowstate parsing.
    pub mod lowstate {
        pub use crate::api::lowstate::{nesting_exceeds, parse};
    }
    /// The process log.
    pub mod log {
        pub use crate::log::{error, warn};
    }
    /// Salt's msgpack payloads.
    pub mod payload {
        pub use crate::salt::payload::{decode, encode};
    }
    /// Event bus framing.
    pub mod event_frame {
        pub use crate::salt::event_frame::{
            FrameBuffer, Piece, msgpack_size, next_frame, split_frame,
        };
    }
}
