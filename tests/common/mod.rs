//! Shared harness for the integration tests against a real salt-master.
//!
//! `scripts/test` starts a master and minions with `scripts/salt-env` and exports
//! `SALT_FCGI_TEST_ENV=<dir>`; the tests read `<dir>/env.sh`. Without it they fail with
//! a message saying how to run them (they never skip silently).
//!
//! One file per concern, re-exported here so a test writes `common::env()`,
//! `common::cgi(...)`:
//! - `env`: the test master (`env.sh`) and config variants of it;
//! - `cgi_client`, `http_client`, `fastcgi_client`: the three front ends' clients, each
//!   answering a `response::Response`; `front`: one request through any of them;
//! - `server`: salt-fcgi as an HTTP or FastCGI server (killed on drop), free ports;
//! - `salt_cli`: Salt's own CLI, Python and `NetapiClient`, to cross-check answers;
//! - `pepper`: the pepper CLI from PyPI;
//! - `private_master`: a master of a test's own, for tests that stop or reconfigure it.

mod cgi_client;
mod env;
mod fastcgi_client;
mod front;
mod http_client;
mod pepper;
mod private_master;
mod response;
mod salt_cli;
mod server;

pub use cgi_client::*;
pub use env::*;
pub use fastcgi_client::*;
pub use front::*;
pub use http_client::*;
pub use pepper::*;
pub use private_master::*;
pub use response::*;
pub use salt_cli::*;
pub use server::*;
