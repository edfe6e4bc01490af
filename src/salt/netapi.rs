//! Salt's `NetapiClient.run`: the checks every chunk passes, in Salt's order, then the
//! client call.
//!
//! 1. the master is running (its `workers.ipc`, or `publish_pull.ipc` for `tcp` and `ws`,
//!    exists in `sock_dir`), and its transport is one salt-fcgi speaks;
//! 2. `client` names a known client; 3. it is in `netapi_enable_clients`;
//! 4. the chunk carries `token` or `eauth`; 5. `raw_shell` is refused unless
//!    `netapi_allow_raw_shell`; then `ssh` is refused (salt-ssh needs Python in-process).

use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use super::channel;
use super::client::local::truthy;
use super::client::{Chunk, ClientCall, batch, local, runner, wheel};
use super::error::{SaltError, SaltResult};
use super::master::Master;
use crate::settings::{IpcMode, Settings};

/// A netapi client salt-fcgi runs (Salt's list minus `ssh` and the non-client `destroy`).
/// Adding one takes a variant here, its name, and its `run` arm.
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

    /// Its answer is a list whose items each join the request's return list, as Salt's
    /// API does with `local_batch`'s generator.
    pub(crate) fn answers_many(self) -> bool {
        self == Client::LocalBatch
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

    /// Runs `call` with this client.
    async fn run(self, master: &Arc<Master>, call: &ClientCall<'_>) -> SaltResult<Json> {
        match self {
            Client::Local => local::local(master, call).await,
            Client::LocalAsync => local::local_async(master, call).await,
            Client::LocalSubset => local::local_subset(master, call).await,
            Client::LocalBatch => batch::local_batch(master, call).await,
            Client::Runner => runner::runner(master, call).await,
            Client::RunnerAsync => runner::runner_async(master, call).await,
            Client::Wheel => wheel::wheel(master, call).await,
            Client::WheelAsync => wheel::wheel_async(master, call).await,
        }
    }
}

/// The names of the clients salt-fcgi runs (the welcome lists them).
pub fn client_names() -> [&'static str; 8] {
    Client::ALL.map(Client::name)
}

/// Runs one lowstate chunk against the master.
pub async fn run(master: &Arc<Master>, chunk: &Chunk) -> SaltResult<Json> {
    check_master_running(master)?;
    let client = check_client(master, chunk)?;
    if !chunk.contains_key("token") && !chunk.contains_key("eauth") {
        return Err(SaltError::Authentication(
            "No authentication credentials given".into(),
        ));
    }
    if chunk.get("raw_shell").is_some_and(truthy) && !master.settings.netapi.allow_raw_shell {
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
    let call = ClientCall::new(chunk)?;
    if client.waits() {
        check_timeout(&call)?;
    }
    client.run(master, &call).await
}

/// A chunk `timeout` of 0 is refused: the job would start and at once be reported as
/// timed out (Salt's own client answers "Salt request timed out" after publishing it).
fn check_timeout(call: &ClientCall) -> SaltResult<()> {
    if call.timeout == Some(0.0) {
        return Err(SaltError::Invocation(
            "'timeout' must be more than 0 seconds".into(),
        ));
    }
    Ok(())
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
    if settings.addresses.ipc_mode == IpcMode::Tcp {
        // No socket file to look at; the request channel's connect timeout tells instead.
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
        // tell what is wrong (wheel and *_async need neither the directory nor the bus).
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
fn check_client(master: &Master, chunk: &Chunk) -> SaltResult<Option<Client>> {
    let name = match chunk.get("client") {
        Some(Json::String(c)) => c.as_str(),
        Some(other) => return Err(invalid_client(&other.to_string())),
        None => return Err(invalid_client("None")),
    };
    let client = Client::named(name);
    if client.is_none() && name != "ssh" {
        return Err(invalid_client(name));
    }
    if !master
        .settings
        .netapi
        .enable_clients
        .iter()
        .any(|c| c == name)
    {
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
        let many: Vec<_> = Client::ALL
            .into_iter()
            .filter(|c| c.answers_many())
            .collect();
        assert_eq!(many, [Client::LocalBatch]);
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

    #[test]
    fn a_zero_timeout_is_refused() {
        for zero in [json!(0), json!(0.0), json!("0"), json!(" 0 ")] {
            let chunk = json!({"timeout": zero, "eauth": "pam", "username": "u", "password": "p"})
                .as_object()
                .cloned()
                .expect("object");
            let call = ClientCall::new(&chunk).expect("call");
            assert!(
                matches!(check_timeout(&call), Err(SaltError::Invocation(_))),
                "{zero}"
            );
        }
        for fine in [
            json!({}),
            json!({"timeout": 0.5}),
            json!({"timeout": "x"}),
            json!({"timeout": 30}),
        ] {
            let mut chunk = fine.as_object().cloned().expect("object");
            for (k, v) in [("eauth", "pam"), ("username", "u"), ("password", "p")] {
                chunk.insert(k.into(), json!(v));
            }
            let call = ClientCall::new(&chunk).expect("call");
            assert_eq!(check_timeout(&call), Ok(()), "{fine}");
        }
    }
}
