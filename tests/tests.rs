//! The integration tests, as one test binary (ripgrep's layout): shared support in
//! `common` (the test master from `scripts/test`, a private master, the three front ends'
//! clients, Salt's own CLI and pepper), `deploy_support` (real Apache and nginx) and
//! `recipe_support` (the docs' recipes on scratch machines), then one module per concern. Run one module with `scripts/test -- <module>::`.

mod common;
mod deploy_support;
mod recipe_support;

mod attacks;
mod audit;
mod cherrypy;
mod client_matrix;
mod clients;
mod cluster;
mod compat;
mod deploy;
mod errors;
mod fault_injection;
mod fleet;
mod frontends;
mod fuzz_regressions;
mod master_faults;
mod metrics;
mod pepper;
mod recipes;
mod reference;
mod security;
mod transports;
