//! The master configuration salt-fcgi needs, read from Salt's own YAML files.
//!
//! Salt's rules followed here: the main file (default `/etc/salt/master`, or
//! `SALT_MASTER_CONFIG`), then `default_include` (`master.d/*.conf`) and `include`, each
//! included file overriding top-level keys; `root_dir` prepended to `sock_dir`/`cachedir`
//! when they are outside it; `interface: 0.0.0.0` means 127.0.0.1 for a client.
//! salt-fcgi's own options live in a `salt_fcgi:` mapping of the same config.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value as Yaml};

/// The default master config path (Salt's).
pub(crate) const DEFAULT_CONFIG: &str = "/etc/salt/master";

/// How the master's IPC endpoints are reached (`ipc_mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpcMode {
    /// Unix sockets in `sock_dir` (Salt's default on Linux).
    Ipc,
    /// TCP on loopback (`tcp_master_pub_port` for the event bus).
    Tcp,
}

/// salt-fcgi's own limits and timeouts (`salt_fcgi:` in the master config).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted (`max_body_bytes`, default 1 MiB) → 413.
    pub max_body_bytes: usize,
    /// Most lowstate chunks in one request (`max_chunks`, default 100) → 413.
    pub max_chunks: usize,
    /// Deepest JSON nesting accepted (`max_json_depth`, default 64) → 400.
    pub max_json_depth: usize,
    /// Most values (scalars, lists, objects) one request body may build
    /// (`max_body_values`, default 131072) → 413.
    pub max_body_values: usize,
    /// Largest YAML request body (`max_yaml_body_bytes`, default 64 KiB) → 413: the YAML
    /// parser holds a whole document's events (~80 bytes per value) before building it,
    /// so a YAML body costs about twice what a JSON body of its size does.
    pub max_yaml_body_bytes: usize,
    /// HTTP front end: largest request head (`max_header_bytes`, default 64 KiB, min 8 KiB).
    pub max_header_bytes: usize,
    /// Largest master reply or event accepted (`max_reply_bytes`, default 64 MiB).
    pub max_reply_bytes: usize,
    /// How long to wait for the master to accept a connection (`master_connect_timeout`, 2 s).
    pub master_connect_timeout: Duration,
    /// Upper bound on one HTTP request's total run time (`request_deadline`, default
    /// `rest_timeout` + 30 s): past it the request answers 504.
    pub request_deadline: Duration,
    /// FastCGI/HTTP: most connections served at once (`max_connections`, default 256).
    pub max_connections: usize,
    /// FastCGI/HTTP: how long SIGTERM waits for in-flight requests (`shutdown_grace`, 30 s).
    pub shutdown_grace: Duration,
    /// Event streams: events a client may fall behind before its stream is closed
    /// (`stream_queue_events`, default 1000).
    pub stream_queue_events: usize,
    /// Event streams: how often the session token is checked with the master
    /// (`stream_token_check`, default 10 s).
    pub stream_token_check: Duration,
    /// SSE streams: a comment line this often keeps proxies from closing an idle stream
    /// (`stream_heartbeat`, default 15 s).
    pub stream_heartbeat: Duration,
    /// Event streams: after a write, events that follow within this time wait for its end
    /// and go out together, so a burst costs each stream a write per interval, not one per
    /// event; a lone event goes out at once (`stream_write_interval`, default 0.25 s, at
    /// most 2 s so a held stream cannot fill its queue; 0: each event as it comes).
    pub stream_write_interval: Duration,
    /// Event streams open at once in this process (`max_streams`, default three quarters
    /// of `max_connections`, so ordinary requests always keep a quarter) → 503.
    pub max_streams: usize,
    /// Event streams one token may hold open (`stream_max_per_token`, default 10) → 429.
    pub stream_max_per_token: usize,
    /// Event streams one user (eauth backend + name) may hold open across all their
    /// tokens (`stream_max_per_user`, default 50) → 429.
    pub stream_max_per_user: usize,
    /// How long a write to a stream's client may go on once the stream has ended (token
    /// expired or revoked, fell behind, server stopping) before the connection is dropped
    /// (`stream_end_grace`, default 2 s).
    pub stream_end_grace: Duration,
    /// HTTP front end: longest wait for a request's head, and again for its body
    /// (`body_read_timeout`, 30 s); a slower client gets 400 (slowloris).
    pub body_read_timeout: Duration,
    /// How long `/logout` waits for the master's `auth.del_token` runner: its return, or
    /// on a host without the event bus the token's disappearance (`logout_timeout`, 30 s).
    pub logout_timeout: Duration,
}

/// Everything salt-fcgi reads from the master config, with Salt's defaults, by the part
/// that uses it; each part has its own reader.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the master is and how to reach it (the Salt side's channels and bus).
    pub addresses: MasterAddresses,
    /// Salt's defaults for client calls (the Salt side's clients).
    pub calls: CallDefaults,
    /// eauth and tokens (the Salt side's token code).
    pub auth: AuthOptions,
    /// Which netapi clients may run and what a caller may choose (netapi checks).
    pub netapi: NetapiPolicy,
    /// salt-fcgi's own limits and timeouts (front ends, api and streams).
    pub limits: Limits,
    /// Options of the rest_cherrypy dialect (the api layer).
    pub api: ApiOptions,
    /// The audit log (`salt_fcgi: audit_log`, `audit_fail_closed`, `audit_hmac_key_file`).
    pub audit: AuditOptions,
    /// The master config file these settings were read from (empty when built from a
    /// mapping), for messages that say where a path came from.
    pub config_path: PathBuf,
}

/// Where the master is and how a client reaches it.
#[derive(Debug, Clone)]
pub struct MasterAddresses {
    /// Master address as a client connects to it (0.0.0.0 → 127.0.0.1, :: → ::1).
    pub interface: String,
    /// Request server port (`ret_port`, 4506).
    pub ret_port: u16,
    /// Directory of the master's IPC sockets (`sock_dir`).
    pub sock_dir: PathBuf,
    /// Master cache directory (`cachedir`).
    pub cachedir: PathBuf,
    /// `ipc_mode` (ipc or tcp).
    pub ipc_mode: IpcMode,
    /// Event bus TCP port when `ipc_mode: tcp` (`tcp_master_pub_port`, 4512).
    pub tcp_master_pub_port: u16,
    /// Event puller TCP port when `ipc_mode: tcp` (`tcp_master_pull_port`, 4513).
    pub tcp_master_pull_port: u16,
    /// `ipv6` (selects ::1 for the TCP event bus).
    pub ipv6: bool,
    /// Master transport of `ret_port` (`zeromq`, the default, `tcp` or `ws`; another name is
    /// refused by the request channel).
    pub transport: String,
    /// `ssl` is set: a `tcp` or `ws` request port then speaks TLS, which salt-fcgi does not.
    pub master_tls: bool,
    /// This host reaches the master's event bus and `sock_dir` (`salt_fcgi: event_bus`,
    /// default true). False on a web host that reaches only `ret_port`: sessions, wheel
    /// calls, `local_async` and `runner_async` work; calls that wait for the bus answer 503.
    pub event_bus: bool,
}

/// Salt's defaults for client calls.
#[derive(Debug, Clone)]
pub struct CallDefaults {
    /// Default return wait for `local` (`timeout`, 5 s).
    pub timeout: f64,
    /// `gather_job_timeout` (10 s).
    pub gather_job_timeout: f64,
    /// Reply wait for a publish when the chunk gives no timeout (`publish_timeout`, 30 s).
    pub publish_timeout: f64,
    /// Runner wait when the chunk gives no timeout (`rest_timeout`, 300 s).
    pub rest_timeout: f64,
    /// `nodegroups` mapping for `tgt_type: nodegroup` and `N@` expansion.
    pub nodegroups: BTreeMap<String, NodegroupDef>,
    /// `ext_job_cache` returner appended to every publish's `ret`.
    pub ext_job_cache: String,
    /// `order_masters` (syndic top master).
    pub order_masters: bool,
    /// `syndic_wait` (5 s): how much longer a master of masters waits for returns.
    pub syndic_wait: f64,
}

/// eauth and the master's tokens.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// `external_auth` as JSON (login `perms`).
    pub external_auth: serde_json::Value,
    /// Where the master's `localfs` token backend keeps tokens (`<cachedir>/tokens`).
    pub token_dir: PathBuf,
    /// The master's token backend (`eauth_tokens`, default `localfs`).
    pub eauth_tokens: String,
    /// The Redis the master keeps tokens in, if it does (logout removes them there).
    pub redis_tokens: Option<RedisTokens>,
}

/// A Redis token store, read from the master's config as Salt reads it. Its `Debug` never
/// shows the password.
#[derive(Clone, PartialEq)]
pub struct RedisTokens {
    /// `host:port` (`eauth_redis_host`/`_port`, or 3008's `cache.redis.host`/`.port`).
    pub address: String,
    /// `cache.redis.password` (3008's cache driver; rediscluster has none).
    pub password: Option<String>,
    /// `cache.redis.db` (3008's cache driver; `0` otherwise).
    pub db: String,
    /// How tokens are kept there.
    pub layout: RedisLayout,
}

/// How a Redis token store names a token.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisLayout {
    /// One key per token (3006/3007 `eauth_tokens: rediscluster`, salt/tokens/rediscluster.py).
    KeyPerToken,
    /// 3008's `redis` cache driver (salt/cache/redis_cache.py), bank `tokens`: a field of
    /// the `keys` hash and of the `timestamps` hash, the bank listed in the `banks` set.
    CacheBank {
        /// `$KEYS_tokens/` with the configured prefix and separator.
        keys: String,
        /// `$TSTAMP_tokens/` likewise.
        timestamps: String,
        /// `$BANKS_` likewise.
        banks: String,
    },
}

impl std::fmt::Debug for RedisTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTokens")
            .field("address", &self.address)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .field("layout", &self.layout)
            .finish()
    }
}

impl RedisTokens {
    /// The Redis token store the master's options name: 3008's `eauth_tokens.cache_driver:
    /// redis` (a plain Redis; `cache.redis.cluster_mode` and `unix_socket_path` are not
    /// supported here), else `eauth_tokens: rediscluster`; `None` for any other store.
    fn read(opts: &Mapping) -> Option<RedisTokens> {
        let text = |k: &str| get_str(opts.get(k));
        let port = |k: &str| get_port(opts.get(k)).unwrap_or(6379);
        if text("eauth_tokens.cache_driver").as_deref() == Some("redis") {
            let sep = text("cache.redis.separator").unwrap_or_else(|| "_".into());
            let prefix = |k: &str, default: &str| {
                format!("{}{sep}", text(k).unwrap_or_else(|| default.into()))
            };
            let host = text("cache.redis.host").unwrap_or_else(|| "localhost".into());
            return Some(RedisTokens {
                address: format!("{host}:{}", port("cache.redis.port")),
                password: text("cache.redis.password").filter(|p| !p.is_empty()),
                db: text("cache.redis.db").unwrap_or_else(|| "0".into()),
                layout: RedisLayout::CacheBank {
                    keys: format!("{}tokens/", prefix("cache.redis.keys_prefix", "$KEYS")),
                    timestamps: format!(
                        "{}tokens/",
                        prefix("cache.redis.timestamp_prefix", "$TSTAMP")
                    ),
                    banks: prefix("cache.redis.banks_prefix", "$BANKS"),
                },
            });
        }
        if text("eauth_tokens").as_deref() == Some("rediscluster") {
            let host = text("eauth_redis_host").unwrap_or_else(|| "localhost".into());
            return Some(RedisTokens {
                address: format!("{host}:{}", port("eauth_redis_port")),
                password: None,
                db: "0".into(),
                layout: RedisLayout::KeyPerToken,
            });
        }
        None
    }
}

/// Which netapi clients may run, and what a caller may choose.
#[derive(Debug, Clone)]
pub struct NetapiPolicy {
    /// Netapi clients the operator enabled (`netapi_enable_clients`, default none).
    pub enable_clients: Vec<String>,
    /// `netapi_allow_raw_shell` (default false).
    pub allow_raw_shell: bool,
    /// Accept a caller-chosen `jid` on `local`/`local_async`/`local_subset`
    /// (`salt_fcgi: allow_caller_jid`, default false: such a chunk is refused with 403).
    pub allow_caller_jid: bool,
}

/// Options of the rest_cherrypy dialect: Salt's own `rest_cherrypy:` keys that still mean
/// something here, and salt-fcgi's `cors_origins`.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// Path of the webhook endpoint (`rest_cherrypy: webhook_url`, default `/hook`).
    pub webhook_url: String,
    /// `POST /hook/...` without a session (`rest_cherrypy: webhook_disable_auth`).
    pub webhook_disable_auth: bool,
    /// `GET /stats` without a session (`rest_cherrypy: stats_disable_auth`).
    pub stats_disable_auth: bool,
    /// Origins allowed to call the API from a browser with credentials
    /// (`salt_fcgi: cors_origins`, default none: no CORS headers at all).
    pub cors_origins: Vec<String>,
    /// Who may open `/events` and `/ws` (`salt_fcgi: stream_users`): eauth user names and
    /// `group%` entries, as in `external_auth`; empty (the default) is any valid token,
    /// as rest_cherrypy allows.
    pub stream_users: Vec<String>,
    /// `--http` only: peers whose `X-Forwarded-For`/`Forwarded` names the client
    /// (`salt_fcgi: trusted_proxies`, addresses or CIDR blocks; default none).
    pub trusted_proxies: Vec<String>,
    /// `GET /metrics` for a valid token of these users (`salt_fcgi: metrics_users`: names,
    /// `*` or `group%` entries, as `stream_users`); default none.
    pub metrics_users: Vec<String>,
    /// `GET /metrics` without a token from these addresses or CIDR blocks
    /// (`salt_fcgi: metrics_addresses`); default none. With neither list `/metrics` is off.
    pub metrics_addresses: Vec<String>,
}

/// The audit log's options (docs/audit.md).
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// `audit_log`: a file path, `stderr` or `syslog`; unset (the default) is no audit log.
    pub destination: Option<String>,
    /// `audit_fail_closed` (default false): a request whose audit line cannot be written
    /// answers 503 and never reaches the master.
    pub fail_closed: bool,
    /// `audit_hmac_key_file`: the key of the tokens' HMAC (else one per process).
    pub hmac_key_file: Option<PathBuf>,
}

/// A nodegroup definition: a compound string or a list of minion ids.
#[derive(Debug, Clone, PartialEq)]
pub enum NodegroupDef {
    /// `group: 'G@os:Debian and web*'`
    Compound(String),
    /// `group: [web1, web2]` (a list target).
    List(Vec<String>),
}

/// A config file that cannot be used.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Reads the master config named by `explicit`, else `SALT_MASTER_CONFIG`, else
    /// `/etc/salt/master`.
    pub fn load(explicit: Option<&Path>) -> Result<Settings, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => std::env::var_os("SALT_MASTER_CONFIG")
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(DEFAULT_CONFIG), PathBuf::from),
        };
        let opts = read_with_includes(&path)?;
        Ok(Settings {
            config_path: path,
            ..Settings::from_mapping(&opts)
        })
    }

    /// Builds settings from an already merged top-level mapping.
    pub fn from_mapping(opts: &Mapping) -> Settings {
        let own = opts.get("salt_fcgi").and_then(Yaml::as_mapping);
        let cherrypy = opts.get("rest_cherrypy").and_then(Yaml::as_mapping);
        let addresses = MasterAddresses::read(opts, own);
        let calls = CallDefaults::read(opts);
        Settings {
            auth: AuthOptions::read(opts, &addresses.cachedir),
            netapi: NetapiPolicy::read(opts, own),
            limits: Limits::read(own, calls.rest_timeout),
            api: ApiOptions::read(cherrypy, own),
            audit: AuditOptions::read(own),
            addresses,
            calls,
            config_path: PathBuf::new(),
        }
    }
}

impl MasterAddresses {
    /// Reads the master's addresses (`root_dir` prepended to its directories) and whether
    /// this host reaches its event bus (`event_bus` in salt-fcgi's own mapping `own`).
    fn read(opts: &Mapping, own: Option<&Mapping>) -> MasterAddresses {
        let get = |k: &str| opts.get(k);
        let root_dir = get_str(get("root_dir")).unwrap_or_else(|| "/".into());
        let under_root = |p: String| PathBuf::from(prepend_root_dir(&root_dir, &p));
        MasterAddresses {
            interface: client_interface(&get_str(get("interface")).unwrap_or_default()),
            ret_port: get_port(get("ret_port")).unwrap_or(4506),
            sock_dir: under_root(
                get_str(get("sock_dir")).unwrap_or_else(|| "/var/run/salt/master".into()),
            ),
            cachedir: under_root(
                get_str(get("cachedir")).unwrap_or_else(|| "/var/cache/salt/master".into()),
            ),
            ipc_mode: match get_str(get("ipc_mode")).as_deref() {
                Some("tcp") => IpcMode::Tcp,
                _ => IpcMode::Ipc,
            },
            tcp_master_pub_port: get_port(get("tcp_master_pub_port")).unwrap_or(4512),
            tcp_master_pull_port: get_port(get("tcp_master_pull_port")).unwrap_or(4513),
            ipv6: get_bool(get("ipv6")).unwrap_or(false),
            transport: get_str(get("transport")).unwrap_or_else(|| "zeromq".into()),
            master_tls: get("ssl").is_some_and(|v| !matches!(v, Yaml::Null | Yaml::Bool(false))),
            event_bus: get_bool(own.and_then(|m| m.get("event_bus"))).unwrap_or(true),
        }
    }

    /// `tcp://host:ret_port`, with IPv6 literals bracketed.
    pub fn master_uri(&self) -> String {
        if self.interface.contains(':') {
            format!("tcp://[{}]:{}", self.interface, self.ret_port)
        } else {
            format!("tcp://{}:{}", self.interface, self.ret_port)
        }
    }
}

impl CallDefaults {
    /// Reads Salt's call defaults.
    fn read(opts: &Mapping) -> CallDefaults {
        let get = |k: &str| opts.get(k);
        CallDefaults {
            timeout: get_f64(get("timeout")).unwrap_or(5.0),
            gather_job_timeout: get_f64(get("gather_job_timeout")).unwrap_or(10.0),
            publish_timeout: get_f64(get("publish_timeout")).unwrap_or(30.0),
            rest_timeout: get_f64(get("rest_timeout")).unwrap_or(300.0),
            nodegroups: get_nodegroups(get("nodegroups")),
            ext_job_cache: get_str(get("ext_job_cache")).unwrap_or_default(),
            order_masters: get_bool(get("order_masters")).unwrap_or(false),
            syndic_wait: get_f64(get("syndic_wait")).unwrap_or(5.0),
        }
    }
}

impl AuthOptions {
    /// Reads eauth's settings; tokens live under the master's `cachedir`.
    fn read(opts: &Mapping, cachedir: &Path) -> AuthOptions {
        AuthOptions {
            external_auth: opts
                .get("external_auth")
                .and_then(|v| serde_json::to_value(v).ok())
                .unwrap_or_default(),
            token_dir: cachedir.join("tokens"),
            eauth_tokens: get_str(opts.get("eauth_tokens")).unwrap_or_else(|| "localfs".into()),
            redis_tokens: RedisTokens::read(opts),
        }
    }
}

impl NetapiPolicy {
    /// Reads Salt's netapi keys and salt-fcgi's `allow_caller_jid`.
    fn read(opts: &Mapping, own: Option<&Mapping>) -> NetapiPolicy {
        NetapiPolicy {
            enable_clients: get_str_list(opts.get("netapi_enable_clients")),
            allow_raw_shell: get_bool(opts.get("netapi_allow_raw_shell")).unwrap_or(false),
            allow_caller_jid: own
                .and_then(|m| get_bool(m.get("allow_caller_jid")))
                .unwrap_or(false),
        }
    }
}

impl Limits {
    /// Reads salt-fcgi's limits from its `salt_fcgi:` mapping; `request_deadline`
    /// defaults to Salt's `rest_timeout` + 30 s.
    fn read(own: Option<&Mapping>, rest_timeout: f64) -> Limits {
        let own_f64 = |k: &str| own.and_then(|m| get_f64(m.get(k)));
        let own_usize = |k: &str, d: usize| {
            own.and_then(|m| m.get(k))
                .and_then(Yaml::as_u64)
                .map_or(d, |v| v as usize)
        };
        let max_connections = own_usize("max_connections", 256).max(1);
        Limits {
            max_body_bytes: own_usize("max_body_bytes", 1 << 20),
            max_chunks: own_usize("max_chunks", 100),
            max_json_depth: own_usize("max_json_depth", 64),
            max_yaml_body_bytes: own_usize("max_yaml_body_bytes", 64 << 10),
            max_body_values: own_usize("max_body_values", 1 << 17).max(16),
            max_header_bytes: own_usize("max_header_bytes", 64 << 10).max(8192),
            max_reply_bytes: own_usize("max_reply_bytes", 64 << 20),
            master_connect_timeout: seconds(own_f64("master_connect_timeout").unwrap_or(2.0)),
            request_deadline: seconds(own_f64("request_deadline").unwrap_or(rest_timeout + 30.0)),
            max_connections,
            shutdown_grace: seconds(own_f64("shutdown_grace").unwrap_or(30.0)),
            stream_queue_events: own_usize("stream_queue_events", 1000).max(1),
            stream_token_check: seconds(own_f64("stream_token_check").unwrap_or(10.0).max(0.1)),
            stream_heartbeat: seconds(own_f64("stream_heartbeat").unwrap_or(15.0).max(0.1)),
            stream_write_interval: seconds(
                own_f64("stream_write_interval").unwrap_or(0.25).min(2.0),
            ),
            max_streams: own_usize("max_streams", max_connections.saturating_mul(3) / 4).max(1),
            stream_max_per_token: own_usize("stream_max_per_token", 10).max(1),
            stream_max_per_user: own_usize("stream_max_per_user", 50).max(1),
            stream_end_grace: seconds(own_f64("stream_end_grace").unwrap_or(2.0)),
            body_read_timeout: seconds(own_f64("body_read_timeout").unwrap_or(30.0))
                .max(Duration::from_millis(100)),
            logout_timeout: seconds(own_f64("logout_timeout").unwrap_or(30.0))
                .max(Duration::from_millis(100)),
        }
    }
}

impl ApiOptions {
    /// Reads Salt's `rest_cherrypy:` keys and salt-fcgi's API options.
    fn read(cherrypy: Option<&Mapping>, own: Option<&Mapping>) -> ApiOptions {
        let cherrypy_bool = |k: &str| get_bool(cherrypy.and_then(|m| m.get(k))).unwrap_or(false);
        let own_list = |k: &str| get_str_list(own.and_then(|m| m.get(k)));
        ApiOptions {
            webhook_url: get_str(cherrypy.and_then(|m| m.get("webhook_url")))
                .map_or_else(|| "/hook".into(), |u| format!("/{}", u.trim_matches('/'))),
            webhook_disable_auth: cherrypy_bool("webhook_disable_auth"),
            stats_disable_auth: cherrypy_bool("stats_disable_auth"),
            cors_origins: own_list("cors_origins"),
            stream_users: own_list("stream_users"),
            trusted_proxies: own_list("trusted_proxies"),
            metrics_users: own_list("metrics_users"),
            metrics_addresses: own_list("metrics_addresses"),
        }
    }
}

impl AuditOptions {
    /// Reads the audit log's options from `salt_fcgi:`.
    fn read(own: Option<&Mapping>) -> AuditOptions {
        let own_get = |k: &str| own.and_then(|m| m.get(k));
        AuditOptions {
            destination: get_str(own_get("audit_log")),
            fail_closed: get_bool(own_get("audit_fail_closed")).unwrap_or(false),
            hmac_key_file: get_str(own_get("audit_hmac_key_file")).map(PathBuf::from),
        }
    }
}

/// Seconds (from the config or a request) as a `Duration`, bounded to `0..=1e7` (NaN is
/// 0): the one conversion every layer uses, so no number a client sends can panic it.
pub(crate) fn seconds(secs: f64) -> Duration {
    if secs.is_nan() {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(secs.clamp(0.0, 1.0e7))
}

/// Reads one YAML file into a top-level mapping (an empty file is an empty mapping).
fn read_mapping(path: &Path) -> Result<Mapping, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read master config {}: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_yaml_ng::from_str::<Yaml>(&text) {
        Ok(Yaml::Mapping(m)) => Ok(m),
        Ok(Yaml::Null) => Ok(Mapping::new()),
        Ok(_) => Err(ConfigError(format!(
            "master config {} is not a YAML mapping",
            path.display()
        ))),
        Err(e) => Err(ConfigError(format!(
            "master config {} is not valid YAML: {e}",
            path.display()
        ))),
    }
}

/// Reads the main file and merges `default_include` then `include` over it.
fn read_with_includes(path: &Path) -> Result<Mapping, ConfigError> {
    let mut opts = read_mapping(path)?;
    let base = path.parent().unwrap_or(Path::new("/"));
    let default_include =
        get_str(opts.get("default_include")).unwrap_or_else(|| "master.d/*.conf".into());
    let include = get_str_list(opts.get("include"));
    for pattern in std::iter::once(default_include).chain(include) {
        for file in expand_include(base, &pattern) {
            // An unreadable or broken include is skipped, as Salt does with a log line.
            match read_mapping(&file) {
                Ok(extra) => opts.extend(extra),
                Err(e) => crate::log!(warn, "{e}; ignored"),
            }
        }
    }
    Ok(opts)
}

/// Expands an include pattern relative to the config's directory. Supports what Salt's
/// configs use: a plain path, or `*` wildcards in the file-name part.
fn expand_include(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let full = base.join(pattern);
    let name = full.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains('*') {
        return if full.is_file() { vec![full] } else { vec![] };
    }
    let dir = full.parent().unwrap_or(base);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vec![],
        Err(e) => {
            crate::log!(
                warn,
                "cannot read {}: {e}; its files are ignored",
                dir.display()
            );
            return vec![];
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| wildcard_match(name, n))
        })
        .collect();
    files.sort();
    files
}

/// Matches `text` against a pattern where `*` stands for any run of characters.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| wildcard_match(tail, &rest[i..]))
        }
    }
}

/// Salt's `prepend_root_dir`: paths outside a non-`/` root_dir are moved under it.
fn prepend_root_dir(root_dir: &str, path: &str) -> String {
    let root = root_dir.trim_end_matches('/');
    if root.is_empty() || path.starts_with(&format!("{root}/")) || path == root {
        path.to_string()
    } else {
        format!("{root}/{}", path.trim_start_matches('/'))
    }
}

/// The address a client uses for the master's `interface`.
fn client_interface(interface: &str) -> String {
    match interface {
        "" | "0.0.0.0" => "127.0.0.1".into(),
        "::" => "::1".into(),
        other => other.trim_start_matches('[').trim_end_matches(']').into(),
    }
}

fn get_str(v: Option<&Yaml>) -> Option<String> {
    match v? {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get_f64(v: Option<&Yaml>) -> Option<f64> {
    match v? {
        Yaml::Number(n) => n.as_f64(),
        Yaml::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn get_port(v: Option<&Yaml>) -> Option<u16> {
    get_f64(v)
        .filter(|p| (1.0..=65535.0).contains(p))
        .map(|p| p as u16)
}

fn get_bool(v: Option<&Yaml>) -> Option<bool> {
    match v? {
        Yaml::Bool(b) => Some(*b),
        Yaml::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        Yaml::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

fn get_str_list(v: Option<&Yaml>) -> Vec<String> {
    match v {
        Some(Yaml::Sequence(items)) => items.iter().filter_map(|i| get_str(Some(i))).collect(),
        Some(other) => get_str(Some(other)).into_iter().collect(),
        None => vec![],
    }
}

fn get_nodegroups(v: Option<&Yaml>) -> BTreeMap<String, NodegroupDef> {
    let Some(Yaml::Mapping(m)) = v else {
        return BTreeMap::new();
    };
    m.iter()
        .filter_map(|(k, v)| {
            let name = get_str(Some(k))?;
            let def = match v {
                Yaml::Sequence(_) => NodegroupDef::List(get_str_list(Some(v))),
                other => NodegroupDef::Compound(get_str(Some(other))?),
            };
            Some((name, def))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> Settings {
        let m: Mapping = serde_yaml_ng::from_str(yaml).expect("test yaml");
        Settings::from_mapping(&m)
    }

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(-1.0), Duration::ZERO);
        assert_eq!(seconds(f64::INFINITY), Duration::from_secs(10_000_000));
        assert_eq!(seconds(1.5), Duration::from_millis(1500));
    }

    #[test]
    fn defaults_are_salts() {
        let s = settings("{}");
        assert_eq!(s.addresses.master_uri(), "tcp://127.0.0.1:4506");
        assert_eq!(s.addresses.sock_dir, PathBuf::from("/var/run/salt/master"));
        assert!(s.netapi.enable_clients.is_empty());
        assert_eq!(s.calls.timeout, 5.0);
        assert_eq!(s.calls.gather_job_timeout, 10.0);
        assert_eq!(s.calls.rest_timeout, 300.0);
        assert_eq!(s.limits.max_body_bytes, 1 << 20);
    }

    #[test]
    fn root_dir_is_prepended_and_interface_mapped() {
        let s = settings(
            "root_dir: /srv/salt\nsock_dir: /run/m\ncachedir: /srv/salt/c\ninterface: '::'\nret_port: 14506",
        );
        assert_eq!(s.addresses.sock_dir, PathBuf::from("/srv/salt/run/m"));
        assert_eq!(s.addresses.cachedir, PathBuf::from("/srv/salt/c"));
        assert_eq!(s.addresses.master_uri(), "tcp://[::1]:14506");
        assert!(
            s.addresses.event_bus,
            "the master's bus is on this host by default"
        );
        let web_host = settings("salt_fcgi: {event_bus: false}");
        assert!(!web_host.addresses.event_bus);
        assert_eq!(
            crate::salt::bus_socket::BusSocket::publisher(&web_host).to_string(),
            "none (event_bus: false)"
        );
    }

    #[test]
    fn own_limits_are_read() {
        let s = settings("salt_fcgi:\n  max_body_bytes: 10\n  master_connect_timeout: 0.5\n");
        assert_eq!(s.limits.max_body_bytes, 10);
        assert_eq!(s.limits.master_connect_timeout, Duration::from_millis(500));
        assert!(!s.netapi.allow_caller_jid);
        let s = settings("salt_fcgi: {allow_caller_jid: true}\n");
        assert!(s.netapi.allow_caller_jid);
        assert_eq!(s.limits.logout_timeout, Duration::from_secs(30));
        let s = settings("salt_fcgi: {logout_timeout: 5}\n");
        assert_eq!(s.limits.logout_timeout, Duration::from_secs(5));
        let interval = |yaml| settings(yaml).limits.stream_write_interval;
        assert_eq!(interval("{}"), Duration::from_millis(250));
        assert_eq!(
            interval("salt_fcgi: {stream_write_interval: 0}"),
            Duration::ZERO
        );
        assert_eq!(
            interval("salt_fcgi: {stream_write_interval: 60}"),
            Duration::from_secs(2),
            "a longer hold would fill a busy stream's queue"
        );
    }

    #[test]
    fn nodegroups_both_shapes() {
        let s = settings("nodegroups:\n  a: 'L@x,y'\n  b: [m1, m2]\n");
        assert_eq!(
            s.calls.nodegroups["a"],
            NodegroupDef::Compound("L@x,y".into())
        );
        assert_eq!(
            s.calls.nodegroups["b"],
            NodegroupDef::List(vec!["m1".into(), "m2".into()])
        );
    }

    #[test]
    fn includes_override_main_file() {
        let dir = std::env::temp_dir().join(format!("salt-fcgi-settings-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("master.d")).expect("mkdir");
        std::fs::write(dir.join("master"), "ret_port: 1\ntimeout: 7\n").expect("write");
        std::fs::write(dir.join("master.d/a.conf"), "ret_port: 2\n").expect("write");
        std::fs::write(dir.join("master.d/ignored.txt"), "ret_port: 3\n").expect("write");
        let s = Settings::load(Some(&dir.join("master"))).expect("load");
        assert_eq!(s.addresses.ret_port, 2);
        assert_eq!(s.calls.timeout, 7.0);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn redis_token_stores() {
        assert_eq!(settings("{}").auth.redis_tokens, None);
        let cluster = settings("eauth_tokens: rediscluster\neauth_redis_port: 7000\n");
        assert_eq!(
            cluster.auth.redis_tokens,
            Some(RedisTokens {
                address: "localhost:7000".into(),
                password: None,
                db: "0".into(),
                layout: RedisLayout::KeyPerToken,
            })
        );
        let cache = settings(
            "eauth_tokens.cache_driver: redis\ncache.redis.host: 10.0.0.5\n\
             cache.redis.db: '2'\ncache.redis.password: pw\ncache.redis.separator: ':'\n",
        );
        assert_eq!(
            cache.auth.redis_tokens,
            Some(RedisTokens {
                address: "10.0.0.5:6379".into(),
                password: Some("pw".into()),
                db: "2".into(),
                layout: RedisLayout::CacheBank {
                    keys: "$KEYS:tokens/".into(),
                    timestamps: "$TSTAMP:tokens/".into(),
                    banks: "$BANKS:".into(),
                },
            })
        );
        assert!(
            !format!("{cache:?}").contains("pw\""),
            "the password never prints"
        );
        // 3008's localfs cache driver keeps files.
        let files = settings("eauth_tokens.cache_driver: localfs\n");
        assert_eq!(files.auth.redis_tokens, None);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.conf", "a.conf"));
        assert!(!wildcard_match("*.conf", "a.conf.bak"));
        assert!(wildcard_match("*", ""));
    }
}
