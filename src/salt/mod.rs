//! Everything that talks to the salt-master; nothing here knows about HTTP.
//!
//! `payload` (msgpack ⇄ JSON), `channel` (clear requests to `ret_port`), `events` (the
//! master event bus), `sent` (whether a request reached the master), `client` (one module
//! per netapi client) and `netapi` (the checks Salt's `NetapiClient.run` makes before
//! dispatching a chunk to a client).

pub mod bus_socket;
pub mod channel;
pub mod client;
pub mod clock;
pub mod credentials;
pub mod error;
pub mod event_fire;
pub mod event_frame;
pub mod events;
pub mod master;
pub mod netapi;
pub mod payload;
pub mod redact;
pub mod sent;
pub mod tokens;
pub mod yamlify;

pub use client::Chunk;
pub use error::{SaltError, SaltResult};
pub use master::Master;
