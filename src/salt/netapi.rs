//! Salt's `NetapiClient.run`: the checks every chunk passes, in Salt's order, then the
//! client call.
//!
//! 1. the master is running (its `workers.ipc`, or `publish_pull.ipc` for `tcp` and `ws`,
//!    exists in `sock_dir`; not looked for on a host without the master's event bus), and
//!    its transport is one salt-fcgi speaks;
//! 2. `client` names a known client; 3. it is in `netapi_enable_clients`;
//! 4. the chunk carries `token` or `eauth`; 5. `raw_shell` is refused unless
//!    `netapi_allow_raw_shell`; then `ssh` is refused (salt-ssh needs Python in-process).

use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use super::channel;
use super::client::batch::{self, BatchArgs};
use super::client::local::{self, LocalArgs, SubsetArgs, truthy};
use super::client::runner::{self, RunnerArgs};
use super::client::wheel::{self, WheelArgs};
use super::client::{Chunk, given_seconds};
use super::credentials::{CredentialSource, Credentials, no_credentials};
use super::error::{SaltError, SaltResult};
use super::master::Master;
use crate::settings::{IpcMode, Settings};

/// A netapi client salt-fcgi runs (Salt's list minus `ssh` and the non-client `destroy`).
/// Adding one takes a variant here with its name, a [`ClientCall`] variant, and their
/// `parse` and `run` arms; the client's module has the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    Local,
    LocalAsync,
    LocalBatch,
    LocalSubset,
    Runner,
    RunnerAsync,
    Wheel,
    WheelAsync,
}

impl Client {
    /// Every client, in the order the welcome lists them.
    pub(crate) const ALL: [Client; 8] = [
        Client::Local,
        Client::LocalAsync,
        Client::LocalBatch,
        Client::LocalSubset,
        Client::Runner,
        Client::RunnerAsync,
        Client::Wheel,
        Client::WheelAsync,
    ];

    /// Its name in a chunk's `client` and in `netapi_enable_clients`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Client::Local => "local",
            Client::LocalAsync => "local_async",
            Client::LocalBatch => "local_batch",
            Client::LocalSubset => "local_subset",
            Client::Runner => "runner",
            Client::RunnerAsync => "runner_async",
            Client::Wheel => "wheel",
            Client::WheelAsync => "wheel_async",
        }
    }

    /// The client called `name`.
    pub(crate) fn named(name: &str) -> Option<Client> {
        Client::ALL.into_iter().find(|c| c.name() == name)
    }

    /// It waits for returns within the chunk's `timeout`, which must then not be 0.
    fn waits(self) -> bool {
        matches!(
            self,
            Client::Local
                | Client::LocalAsync
                | Client::LocalBatch
                | Client::LocalSubset
                | Client::Runner
        )
    }

    /// Reads `chunk` into this client's call, with the chunk's own `timeout`.
    fn parse(self, chunk: &Chunk, settings: &Settings) -> SaltResult<ClientCall> {
        let timeout = given_seconds(chunk.get("timeout"));
        if self.waits() && timeout == Some(0.0) {
            // The job would start and at once be reported as timed out (Salt's own client
            // answers "Salt request timed out" after publishing it).
            return Err(SaltError::Invocation(
                "'timeout' must be more than 0 seconds".into(),
            ));
        }
        let local = || LocalArgs::parse(chunk, timeout, settings);
        let runner = || RunnerArgs::parse(chunk, self.name(), timeout, settings);
        Ok(match self {
            Client::Local => ClientCall::Local(local()?),
            Client::LocalAsync => ClientCall::LocalAsync(local()?),
            Client::LocalBatch => {
                ClientCall::LocalBatch(BatchArgs::parse(chunk, timeout, settings)?)
            }
            Client::LocalSubset => {
                ClientCall::LocalSubset(SubsetArgs::parse(chunk, timeout, settings)?)
            }
            Client::Runner => ClientCall::Runner(runner()?),
            Client::RunnerAsync => ClientCall::RunnerAsync(runner()?),
            Client::Wheel => ClientCall::Wheel(WheelArgs::parse(chunk)?),
            Client::WheelAsync => ClientCall::WheelAsync(WheelArgs::parse(chunk)?),
        })
    }
}

/// One chunk read for its client: the client and its typed arguments.
#[derive(Debug, Clone)]
pub(crate) enum ClientCall {
    /// `local`: publish and wait for the returns.
    Local(LocalArgs),
    /// `local_async`: publish only.
    LocalAsync(LocalArgs),
    /// `local_batch`: publish to a few minions at a time.
    LocalBatch(BatchArgs),
    /// `local_subset`: publish to a few minions that have the function.
    LocalSubset(SubsetArgs),
    /// `runner`: start a runner and wait for its return.
    Runner(RunnerArgs),
    /// `runner_async`: start a runner.
    RunnerAsync(RunnerArgs),
    /// `wheel`: run a wheel function.
    Wheel(WheelArgs),
    /// `wheel_async`: start a wheel function.
    WheelAsync(WheelArgs),
}

impl ClientCall {
    /// Salt's checks on `chunk` in Salt's order (all but the master's), then the chunk read
    /// once: the call and the credentials it runs with (its own, else `session`'s token).
    pub(crate) fn parse(
        chunk: &Chunk,
        session: Option<&str>,
        settings: &Settings,
    ) -> SaltResult<(ClientCall, Credentials)> {
        let client = check_client(settings, chunk)?;
        if CredentialSource::of(chunk, session.is_some()) == CredentialSource::Missing {
            return Err(no_credentials());
        }
        if chunk.get("raw_shell").is_some_and(truthy) && !settings.netapi.allow_raw_shell {
            return Err(SaltError::Authentication(
                "Raw shell option not allowed.".into(),
            ));
        }
        let Some(client) = client else {
            return Err(SaltError::Invocation(
                "client 'ssh' is not supported by salt-fcgi (salt-ssh runs only inside Python's salt-api)"
                    .into(),
            ));
        };
        let creds = Credentials::read(chunk, session)?;
        Ok((client.parse(chunk, settings)?, creds))
    }

    /// Runs the call as `creds`.
    pub(crate) async fn run(
        &self,
        master: &Arc<Master>,
        creds: &Credentials,
    ) -> SaltResult<Answer> {
        let one = match self {
            ClientCall::Local(args) => local::local(master, args, creds).await,
            ClientCall::LocalAsync(args) => local::local_async(master, args, creds).await,
            ClientCall::LocalSubset(args) => local::local_subset(master, args, creds).await,
            ClientCall::LocalBatch(args) => {
                return Ok(Answer::Many(batch::local_batch(master, args, creds).await?));
            }
            ClientCall::Runner(args) => runner::runner(master, args, creds).await,
            ClientCall::RunnerAsync(args) => runner::runner_async(master, args, creds).await,
            ClientCall::Wheel(args) => wheel::wheel(master, args, creds).await,
            ClientCall::WheelAsync(args) => wheel::wheel_async(master, args, creds).await,
        };
        one.map(Answer::One)
    }
}

/// The names of the clients salt-fcgi runs (the welcome lists them).
pub fn client_names() -> [&'static str; 8] {
    Client::ALL.map(Client::name)
}

/// What one chunk answers (Salt's API yields `local_batch`'s items one by one).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// One item of the request's return list.
    One(Json),
    /// Items that each join the return list (`local_batch`, as Salt's API yields them).
    Many(Vec<Json>),
}

impl Answer {
    /// The answer as one JSON value (a list for [`Answer::Many`]).
    pub fn into_json(self) -> Json {
        match self {
            Answer::One(value) => value,
            Answer::Many(items) => Json::Array(items),
        }
    }
}

/// Runs one lowstate chunk against the master, as the chunk's own credentials or else
/// with the request's `session` token.
pub async fn run(master: &Arc<Master>, chunk: &Chunk, session: Option<&str>) -> SaltResult<Answer> {
    check_master_running(master)?;
    let (call, creds) = ClientCall::parse(chunk, session, &master.settings)?;
    call.run(master, &creds).await
}

/// Salt's `_is_master_running`: the request-server socket file exists in `sock_dir`. A
/// transport salt-fcgi does not speak is named first (never "not available"). Salt looks for
/// `workers.ipc` on a `ws` master, which has none (its NetapiClient refuses every chunk
/// there); `publish_pull.ipc`, which `tcp` and `ws` masters both create, is used instead.
pub fn check_master_running(master: &Master) -> SaltResult<()> {
    let settings = &master.settings;
    if let Some(refused) = channel::refusal(settings) {
        return Err(refused);
    }
    if settings.addresses.ipc_mode == IpcMode::Tcp || !settings.addresses.event_bus {
        // No socket file to look at (TCP bus, or a host without the master's sock_dir);
        // the request channel's connect timeout tells instead.
        return Ok(());
    }
    let marker = match settings.addresses.transport.as_str() {
        "tcp" | "ws" => "publish_pull.ipc",
        _ => "workers.ipc",
    };
    let path = settings.addresses.sock_dir.join(marker);
    match path.try_exists() {
        Ok(true) => Ok(()),
        Ok(false) => {
            log_missing_marker(settings, &path);
            // The caller learns what was looked for; the path stays in the log.
            Err(SaltError::NotRunning(format!(
                "Salt Master is not available: no {marker} in the master's sock_dir (the \
                 salt-master is not running, or salt-fcgi cannot see that directory; the \
                 server's error log names the path)."
            )))
        }
        // sock_dir not searchable by this user: the request channel and the event bus
        // tell what is wrong (wheel, local_async and runner_async need neither the
        // directory nor the bus).
        Err(_) => Ok(()),
    }
}

/// One log line for a missing request-server socket: the path looked for, the config that
/// named `sock_dir`, and the likely reason.
fn log_missing_marker(settings: &Settings, path: &Path) {
    crate::log!(error, "{}", missing_marker_detail(settings, path));
}

/// The text of [`log_missing_marker`].
fn missing_marker_detail(settings: &Settings, path: &Path) -> String {
    let dir = &settings.addresses.sock_dir;
    let config = if settings.config_path.as_os_str().is_empty() {
        "the master config".to_string()
    } else {
        settings.config_path.display().to_string()
    };
    if dir.is_dir() {
        return format!(
            "Salt Master is not available: {} does not exist (sock_dir from {config}); the \
             salt-master is not running, or runs with another sock_dir",
            path.display()
        );
    }
    let hidden = ["/tmp", "/var/tmp", "/home", "/root"]
        .iter()
        .any(|p| dir.starts_with(p));
    let hint = if hidden {
        "; a systemd unit with PrivateTmp= or ProtectHome= sees an empty /tmp, /var/tmp, \
         /home and /root"
    } else {
        ""
    };
    format!(
        "Salt Master is not available: looked for {}, but sock_dir {} (from {config}) does \
         not exist for this process{hint}",
        path.display(),
        dir.display()
    )
}

/// The chunk's client if it is known and enabled; `None` for `ssh`, which passes these
/// checks as in Salt, to be refused after them.
fn check_client(settings: &Settings, chunk: &Chunk) -> SaltResult<Option<Client>> {
    let name = match chunk.get("client") {
        Some(Json::String(c)) => c.as_str(),
        Some(other) => return Err(invalid_client(&other.to_string())),
        None => return Err(invalid_client("None")),
    };
    let client = Client::named(name);
    if client.is_none() && name != "ssh" {
        return Err(invalid_client(name));
    }
    if !settings.netapi.enable_clients.iter().any(|c| c == name) {
        return Err(SaltError::Forbidden(format!(
            "Client disabled: '{name}'. Add to 'netapi_enable_clients' master config option to enable."
        )));
    }
    Ok(client)
}

fn invalid_client(name: &str) -> SaltError {
    let shown: String = name.chars().take(64).collect();
    SaltError::Invocation(format!("Invalid client specified: '{shown}'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_client_has_one_name() {
        for client in Client::ALL {
            assert_eq!(Client::named(client.name()), Some(client));
        }
        assert_eq!(Client::named("ssh"), None);
        assert_eq!(client_names()[2], "local_batch");
    }

    #[test]
    fn a_missing_sock_dir_is_explained_in_the_log() {
        let mut settings = crate::settings::Settings::from_mapping(&serde_yaml_ng::Mapping::new());
        settings.config_path = "/home/admin/salt/master".into();
        settings.addresses.sock_dir = "/home/admin/salt/no-such-sock-dir".into();
        let line =
            missing_marker_detail(&settings, &settings.addresses.sock_dir.join("workers.ipc"));
        assert!(
            line.contains("looked for /home/admin/salt/no-such-sock-dir/workers.ipc")
                && line.contains("(from /home/admin/salt/master)")
                && line.contains("ProtectHome="),
            "{line}"
        );
        settings.addresses.sock_dir = "/nonexistent/sock".into();
        let line =
            missing_marker_detail(&settings, &settings.addresses.sock_dir.join("workers.ipc"));
        assert!(!line.contains("ProtectHome"), "{line}");
        let dir = std::env::temp_dir();
        settings.addresses.sock_dir = dir.clone();
        let line = missing_marker_detail(&settings, &dir.join("workers.ipc"));
        assert!(line.contains("the salt-master is not running"), "{line}");
    }

    /// Settings with every client enabled, `ssh` too.
    fn settings() -> Settings {
        let mut settings = Settings::from_mapping(&serde_yaml_ng::Mapping::new());
        settings.netapi.enable_clients = client_names().map(String::from).to_vec();
        settings.netapi.enable_clients.push("ssh".into());
        settings
    }

    fn chunk(v: Json) -> Chunk {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let settings = settings();
        for zero in [json!(0), json!(0.0), json!("0"), json!(" 0 ")] {
            let c = chunk(json!({"client": "local", "tgt": "*", "fun": "test.ping",
                "timeout": zero, "eauth": "pam", "username": "u", "password": "p"}));
            let parsed = ClientCall::parse(&c, None, &settings);
            assert!(
                matches!(parsed, Err(SaltError::Invocation(ref m)) if m.contains("timeout")),
                "{zero}"
            );
            // A client that does not wait takes it.
            let mut wheel = c.clone();
            wheel.insert("client".into(), json!("wheel"));
            assert!(ClientCall::parse(&wheel, None, &settings).is_ok(), "{zero}");
        }
        for fine in [json!(null), json!(0.5), json!("x"), json!(30)] {
            let c = chunk(json!({"client": "local", "tgt": "*", "fun": "test.ping",
                "timeout": fine, "token": "ab"}));
            assert!(ClientCall::parse(&c, None, &settings).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_chunk_is_read_once_into_its_clients_call() {
        let settings = settings();
        let c = chunk(json!({"client": "local", "tgt": "web*", "fun": "test.ping", "timeout": 7}));
        let (call, creds) = ClientCall::parse(&c, Some("ab12"), &settings).expect("call");
        let ClientCall::Local(args) = call else {
            panic!("a local call: {call:?}");
        };
        assert_eq!(args.job.tgt, json!("web*"));
        assert_eq!(args.collect.timeout, std::time::Duration::from_secs(7));
        assert_eq!(args.publish_wait, std::time::Duration::from_secs(7));
        assert!(matches!(creds, Credentials::Token(_)));
        let c = chunk(json!({"client": "runner_async", "fun": "jobs.list_jobs"}));
        let parsed = ClientCall::parse(&c, Some("ab12"), &settings).expect("call");
        assert!(matches!(parsed.0, ClientCall::RunnerAsync(ref a) if a.fun == "jobs.list_jobs"));
        // Salt's order: the client first, then credentials, then raw_shell, then ssh.
        let refused = |v: Json, session: Option<&str>| {
            ClientCall::parse(&chunk(v), session, &settings).map(|_| ())
        };
        assert_eq!(
            refused(json!({"client": "nope"}), None),
            Err(SaltError::Invocation(
                "Invalid client specified: 'nope'".into()
            ))
        );
        assert_eq!(
            refused(json!({"client": "local"}), None),
            Err(no_credentials())
        );
        assert!(matches!(
            refused(json!({"client": "ssh", "raw_shell": true}), Some("ab")),
            Err(SaltError::Authentication(m)) if m.contains("Raw shell")
        ));
        assert!(matches!(
            refused(json!({"client": "ssh"}), Some("ab")),
            Err(SaltError::Invocation(m)) if m.contains("'ssh' is not supported")
        ));
        assert!(matches!(
            refused(json!({"client": "runner"}), Some("ab")),
            Err(SaltError::Invocation(m)) if m.contains("client 'runner' requires")
        ));
    }
}
