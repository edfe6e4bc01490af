//! salt-fcgi: Salt's REST API (rest_wsgi and rest_cherrypy dialects) as one native executable that runs
//! as CGI, as a FastCGI responder, or as a development HTTP server, and talks to the
//! salt-master directly (ZeroMQ request channel + event bus).
//!
//! ```text
//! frontend (cgi | fastcgi | http) ─► api::ApiRequest ─► api::Api::handle ─► salt::netapi::run
//!                                 ◄─ api::ApiResponse ◄─ (status mapping) ◄─ salt::client::*
//! ```
//! - [`frontend`]: the three ways a request arrives; no Salt types.
//! - [`api`]: request/response types, lowstate parsing, routing and error → status.
//! - [`salt`]: master config consumers, msgpack, request channel, event bus, clients;
//!   no HTTP types.
//! - [`settings`]: the master config (YAML + `master.d`) and salt-fcgi's own limits.
//! - [`audit`]: the audit log; `address_block`: address lists of the config.

mod address_block;
pub mod api;
pub mod audit;
pub mod frontend;
pub mod log;
pub mod salt;
pub mod settings;
