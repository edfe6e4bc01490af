//! The running test master (`$SALT_FCGI_TEST_ENV/env.sh`, written by `scripts/salt-env`) and config variants of it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value as Json, json};

/// The running test master, as described by `env.sh`.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// Directory of the master (config, sockets, logs).
    pub dir: PathBuf,
    /// The master config file.
    pub config: PathBuf,
    /// Salt's venv (for the CLI cross-checks).
    pub venv: PathBuf,
    /// Salt version of the master.
    pub version: String,
    /// Minion ids.
    pub minions: Vec<String>,
    /// Full-access eauth user and password.
    pub user: String,
    pub password: String,
    /// Restricted eauth user (test.* on ms-0 only).
    pub restricted_user: String,
    pub restricted_password: String,
    /// Wheel user whose ACL allows key.print / key.finger with `match: ms-0` only.
    pub wheel_user: String,
    pub wheel_password: String,
    /// A system user with full access through eauth `pam` (empty unless salt-env ran as
    /// root).
    pub pam_user: String,
    pub pam_password: String,
}

/// The test environment; panics with instructions when the suite was not started by
/// `scripts/test`.
pub fn env() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = std::env::var_os("SALT_FCGI_TEST_ENV").map_or_else(
            || {
                panic!(
                    "SALT_FCGI_TEST_ENV is not set: these tests need a real salt-master. \
                 Run them with `scripts/test` (it starts one with scripts/salt-env)."
                )
            },
            PathBuf::from,
        );
        let text = std::fs::read_to_string(dir.join("env.sh"))
            .unwrap_or_else(|e| panic!("cannot read {}/env.sh: {e}", dir.display()));
        let vars: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        let get = |k: &str| {
            vars.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("{k} missing from env.sh"))
        };
        TestEnv {
            dir,
            config: get("SALT_MASTER_CONFIG").into(),
            venv: get("SALT_VENV").into(),
            version: get("SALT_VERSION"),
            minions: get("SALT_TEST_MINIONS")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            user: get("SALT_TEST_USER"),
            password: get("SALT_TEST_PASSWORD"),
            restricted_user: get("SALT_TEST_RESTRICTED_USER"),
            restricted_password: get("SALT_TEST_RESTRICTED_PASSWORD"),
            wheel_user: get("SALT_TEST_WHEEL_USER"),
            wheel_password: get("SALT_TEST_WHEEL_PASSWORD"),
            pam_user: vars.get("SALT_TEST_PAM_USER").cloned().unwrap_or_default(),
            pam_password: vars
                .get("SALT_TEST_PAM_PASSWORD")
                .cloned()
                .unwrap_or_default(),
        }
    })
}

impl TestEnv {
    /// `{"eauth": "file", "username": …, "password": …}` merged into `chunk`.
    pub fn auth(&self, mut chunk: Json) -> Json {
        if let Some(c) = chunk.as_object_mut() {
            c.insert("eauth".into(), json!("file"));
            c.insert("username".into(), json!(self.user));
            c.insert("password".into(), json!(self.password));
        }
        chunk
    }

    /// The same for the wheel user (argument-restricted wheel ACL).
    pub fn wheel_restricted(&self, mut chunk: Json) -> Json {
        if let Some(c) = chunk.as_object_mut() {
            c.insert("eauth".into(), json!("file"));
            c.insert("username".into(), json!(self.wheel_user));
            c.insert("password".into(), json!(self.wheel_password));
        }
        chunk
    }

    /// The same for the restricted user.
    pub fn restricted(&self, mut chunk: Json) -> Json {
        if let Some(c) = chunk.as_object_mut() {
            c.insert("eauth".into(), json!("file"));
            c.insert("username".into(), json!(self.restricted_user));
            c.insert("password".into(), json!(self.restricted_password));
        }
        chunk
    }

    /// True for 3008 masters (silent minions become a message, not `false`).
    pub fn is_3008(&self) -> bool {
        self.version.starts_with("3008")
    }

    /// `{minion: true}` for every test minion.
    pub fn all_true(&self) -> Json {
        Json::Object(
            self.minions
                .iter()
                .map(|m| (m.clone(), Json::Bool(true)))
                .collect(),
        )
    }

    /// A copy of the master config with `extra` YAML in `master.d/override.conf` (Salt's
    /// include rules: included keys win), in a new directory inside the environment (so
    /// `scripts/test` removes it with the rest). salt-fcgi reads the config itself, so this
    /// changes only what salt-fcgi sees.
    pub fn config_variant(&self, name: &str, extra: &str) -> PathBuf {
        let dir = self
            .dir
            .join("test-configs")
            .join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("master.d")).expect("mkdir config variant");
        let path = dir.join("master");
        std::fs::copy(&self.config, &path).expect("copy master config");
        std::fs::write(dir.join("master.d/override.conf"), extra).expect("write override");
        path
    }
}
