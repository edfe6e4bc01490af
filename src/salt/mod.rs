//! Everything that talks to the salt-master; nothing here knows about HTTP.
//!
//! `payload` (msgpack ⇄ JSON), `channel` (clear requests to `ret_port`), `events` (the
//! master event bus), `sent` (whether a request reached the master), `client` (one module
//! per netapi client) and `netapi` (the checks Salt's `NetapiClient.run` makes before
//! dispatching a chunk to a client).

pub(crate) mod bus_socket;
pub(crate) mod channel;
pub(crate) mod client;
pub(crate) mod clock;
pub(crate) mod credentials;
pub(crate) mod error;
pub(crate) mod event_fire;
pub(crate) mod event_frame;
pub(crate) mod events;
pub(crate) mod master;
pub mod netapi;
pub(crate) mod payload;
pub(crate) mod redact;
pub(crate) mod redis;
pub(crate) mod sent;
pub(crate) mod tokens;
pub(crate) mod yamlify;

pub(crate) use client::Chunk;
pub(crate) use error::SaltError;
pub use master::Master;
