//! Shared harness for the integration tests against a real salt-master.
//!
//! `scripts/test` starts a master and minions with `scripts/salt-env` and exports
//! `SALT_FCGI_TEST_ENV=<dir>`; the tests read `<dir>/env.sh`. Without it they fail with
//! a message saying how to run them (they never skip silently).
//!
//! Front ends: [`cgi`] execs the binary with a CGI environment; [`Server`] runs it as an
//! HTTP or FastCGI server on a free port / socket (killed on drop); [`http`] and
//! [`fastcgi`] are small clients; [`salt_cli`] runs Salt's own CLI to cross-check.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// A parsed response from any front end.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    /// Raw body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (panics with the body text if it is not).
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `return` of the body.
    pub fn ret(&self) -> Json {
        self.json()["return"].clone()
    }

    /// Checks Content-Type (JSON; YAML or a tarball where asked for) and a byte-accurate
    /// Content-Length.
    pub fn check_headers(&self) {
        let ct = self.headers.get("content-type").map(String::as_str);
        assert!(
            matches!(
                ct,
                Some("application/json" | "application/x-yaml" | "application/x-tar")
            ),
            "Content-Type {ct:?}"
        );
        let len: usize = self
            .headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .expect("Content-Length");
        assert_eq!(len, self.body.len(), "Content-Length must count bytes");
    }
}

/// Splits a CGI-style (`Status:` …) or HTTP response head from its body.
fn parse_head(raw: &[u8], http: bool) -> Response {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no header block in response: {}",
                String::from_utf8_lossy(raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
    let mut lines = head.split("\r\n");
    let mut headers = HashMap::new();
    let mut status = None;
    if http {
        let first = lines.next().unwrap_or_default();
        status = first.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    }
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "status" {
                status = v.get(..3).and_then(|s| s.parse().ok());
            }
            headers.insert(k, v);
        }
    }
    Response {
        status: status.unwrap_or(200),
        headers,
        body: raw[at + 4..].to_vec(),
    }
}

/// The salt-fcgi binary under test: cargo's build, or `$SALT_FCGI_TEST_BINARY` (the static
/// build of scripts/build-static, the installed package's /usr/bin/salt-fcgi).
pub fn binary() -> &'static str {
    static BINARY: OnceLock<String> = OnceLock::new();
    BINARY.get_or_init(|| match std::env::var("SALT_FCGI_TEST_BINARY") {
        Ok(path) if !path.is_empty() => {
            assert!(
                Path::new(&path).is_file(),
                "SALT_FCGI_TEST_BINARY={path}: no such file"
            );
            path
        }
        _ => env!("CARGO_BIN_EXE_salt-fcgi").to_string(),
    })
}

/// Runs one CGI request: POST `body` as `application/json` against `config`.
pub fn cgi_post(config: &Path, body: &Json) -> Response {
    cgi(
        config,
        "POST",
        Some("application/json"),
        body.to_string().as_bytes(),
        &[],
    )
}

/// Runs one CGI request with full control over method, content type, body, extra env.
pub fn cgi(
    config: &Path,
    method: &str,
    content_type: Option<&str>,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Response {
    let mut cmd = Command::new(binary());
    cmd.env_clear()
        .env("SALT_MASTER_CONFIG", config)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", method)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("PATH_INFO", "/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ct) = content_type {
        cmd.env("CONTENT_TYPE", ct);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn salt-fcgi");
    let mut stdin = child.stdin.take().expect("stdin");
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().expect("wait salt-fcgi");
    let _ = writer.join();
    let resp = parse_head(&out.stdout, false);
    resp.check_headers();
    resp
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A child process killed when the test ends, also when it panics (a process left behind
/// keeps the test run's output pipe open).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// salt-fcgi running as a server; killed (SIGKILL if SIGTERM is not enough) on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT` for HTTP and TCP FastCGI, or a socket path.
    pub address: String,
    socket_dir: Option<PathBuf>,
}

impl Server {
    /// `salt-fcgi --http 127.0.0.1:<free port>`.
    pub fn http(config: &Path) -> Server {
        let address = format!("127.0.0.1:{}", free_port());
        Server::start(config, &["--http", &address], address.clone(), None)
    }

    /// `salt-fcgi --listen unix:<temp>/fcgi.sock`.
    pub fn fastcgi_unix(config: &Path) -> Server {
        Server::fastcgi_unix_logging(config, Stdio::inherit())
    }

    /// `salt-fcgi --listen unix:<temp>/fcgi.sock` with its stderr (the log) sent to `log`.
    pub fn fastcgi_unix_logging(config: &Path, log: Stdio) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "salt-fcgi-sock-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir socket dir");
        let path = dir.join("fcgi.sock");
        let spec = format!("unix:{}", path.display());
        Server::start_logging(
            config,
            &["--listen", &spec],
            path.display().to_string(),
            Some(dir),
            log,
        )
    }

    /// `salt-fcgi` with arbitrary arguments, waiting until `address` accepts connections.
    pub fn start(
        config: &Path,
        args: &[&str],
        address: String,
        socket_dir: Option<PathBuf>,
    ) -> Server {
        Server::start_logging(config, args, address, socket_dir, Stdio::inherit())
    }

    fn start_logging(
        config: &Path,
        args: &[&str],
        address: String,
        socket_dir: Option<PathBuf>,
        log: Stdio,
    ) -> Server {
        let child = Command::new(binary())
            .args(args)
            .env("SALT_MASTER_CONFIG", config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn salt-fcgi server");
        let server = Server {
            child,
            address,
            socket_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.accepts() {
            assert!(
                Instant::now() < deadline,
                "salt-fcgi did not start listening on {}",
                server.address
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn accepts(&self) -> bool {
        if self.address.starts_with('/') {
            std::os::unix::net::UnixStream::connect(&self.address).is_ok()
        } else {
            std::net::TcpStream::connect(&self.address).is_ok()
        }
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.socket_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One read from a socket with a read timeout into `buf`: `false` once the peer closed or
/// the read failed (a timeout is not the end).
pub fn read_some(stream: &mut impl Read, chunk: &mut [u8], buf: &mut Vec<u8>) -> bool {
    match stream.read(chunk) {
        Ok(0) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Reads an HTTP response from `address` for `GET path` (an event stream) until the
/// server ends it or `limit` passes; returns what arrived and how long it lasted.
pub fn read_stream(
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    limit: Duration,
) -> (String, Duration) {
    let mut s = std::net::TcpStream::connect(address).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write");
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while start.elapsed() < limit && read_some(&mut s, &mut chunk, &mut buf) {}
    (String::from_utf8_lossy(&buf).into_owned(), start.elapsed())
}

/// Sends one HTTP/1.1 request (`Connection: close`) to `/` and reads the whole response.
pub fn http(address: &str, method: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let mut req = Req::new(method, "/");
    req.content_type = content_type.map(str::to_string);
    req.body = body.to_vec();
    http_request(address, &req)
}

/// POSTs a JSON body over HTTP.
pub fn http_post(address: &str, body: &Json) -> Response {
    let resp = http(
        address,
        "POST",
        Some("application/json"),
        body.to_string().as_bytes(),
    );
    resp.check_headers();
    resp
}

/// Sends one FastCGI request for `/` with the `fastcgi-client` crate over a unix socket.
pub fn fastcgi(socket: &str, method: &str, content_type: &str, body: &[u8]) -> Response {
    fastcgi_request(socket, &Req::new(method, "/").body(content_type, body), &[])
}

/// POSTs a JSON body over FastCGI.
pub fn fastcgi_post(socket: &str, body: &Json) -> Response {
    let resp = fastcgi(
        socket,
        "POST",
        "application/json",
        body.to_string().as_bytes(),
    );
    resp.check_headers();
    resp
}

/// Runs a Salt CLI tool from the venv (`salt`, `salt-run`, `salt-key`) with `--out=json`.
pub fn salt_cli(tool: &str, args: &[&str]) -> Json {
    let e = env();
    let out = Command::new(e.venv.join("bin").join(tool))
        .arg("-c")
        .arg(&e.dir)
        .args(args)
        .arg("--out=json")
        .output()
        .expect("run salt CLI");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|_| {
        // `salt` prints one JSON document per minion: merge them.
        let mut merged = serde_json::Map::new();
        for doc in serde_json::Deserializer::from_str(&text)
            .into_iter::<Json>()
            .flatten()
        {
            if let Json::Object(m) = doc {
                merged.extend(m);
            }
        }
        Json::Object(merged)
    })
}

/// Runs a Python snippet with the venv's interpreter and returns its stdout.
pub fn python(code: &str) -> String {
    let e = env();
    let out = Command::new(e.venv.join("bin").join("python"))
        .arg("-c")
        .arg(code)
        .env("SALT_MASTER_CONFIG", &e.config)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh eauth token for `user` made by the master's own `mk_token` (LoadAuth).
pub fn mk_token(user: &str, password: &str) -> String {
    let code = format!(
        "import os, salt.config, salt.auth\n\
         opts = salt.config.master_config(os.environ['SALT_MASTER_CONFIG'])\n\
         tok = salt.auth.LoadAuth(opts).mk_token({{'eauth': 'file', 'username': {user:?}, 'password': {password:?}}})\n\
         print(tok['token'])"
    );
    let token = python(&code);
    assert!(
        token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "bad token {token:?}"
    );
    token
}

/// What Salt itself does with one lowstate chunk: `salt.netapi.NetapiClient(opts).run(chunk)`
/// in the venv's Python (the code path of rest_wsgi and rest_cherrypy) against the same
/// master. `Ok(return)` (a generator, as `local_batch` returns, becomes a list), or
/// `Err((exception class name, message))`.
pub fn salt_netapi(chunk: &Json) -> Result<Json, (String, String)> {
    salt_netapi_all(std::slice::from_ref(chunk))
        .pop()
        .expect("one result")
}

/// [`salt_netapi`] for several chunks, one after the other in one Python process.
pub fn salt_netapi_all(chunks: &[Json]) -> Vec<Result<Json, (String, String)>> {
    salt_netapi_on(&env().config, chunks)
}

/// [`salt_netapi_all`] against the master of `config`.
pub fn salt_netapi_on(config: &Path, chunks: &[Json]) -> Vec<Result<Json, (String, String)>> {
    let results = salt_netapi_text_on(config, &Json::from(chunks.to_vec()).to_string());
    assert_eq!(results.len(), chunks.len(), "one result per chunk");
    results
}

/// [`salt_netapi_all`] for chunks given as JSON text (read by Python's `json`, so an
/// integer past 64 bits stays one, as rest_cherrypy reads it).
pub fn salt_netapi_text(chunks: &str) -> Vec<Result<Json, (String, String)>> {
    salt_netapi_text_on(&env().config, chunks)
}

/// [`salt_netapi_text`] against the master of `config`.
fn salt_netapi_text_on(config: &Path, chunks: &str) -> Vec<Result<Json, (String, String)>> {
    let e = env();
    let code = "import json, os, sys, types\n\
                import salt.config, salt.netapi\n\
                opts = salt.config.client_config(os.environ['SALT_MASTER_CONFIG'])\n\
                client = salt.netapi.NetapiClient(opts)\n\
                results = []\n\
                for low in json.loads(os.environ['SALT_FCGI_CHUNKS']):\n\
                \x20   try:\n\
                \x20       ret = client.run(low)\n\
                \x20       if isinstance(ret, types.GeneratorType):\n\
                \x20           ret = list(ret)\n\
                \x20       results.append({'return': ret})\n\
                \x20   except Exception as exc:\n\
                \x20       results.append({'exception': type(exc).__name__, 'message': str(exc)})\n\
                sys.stdout.write('\\n' + json.dumps(results, default=str))\n";
    let out = Command::new(e.venv.join("bin").join("python"))
        .arg("-c")
        .arg(code)
        .env("SALT_MASTER_CONFIG", config)
        .env("SALT_FCGI_CHUNKS", chunks)
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    let results: Vec<Json> = serde_json::from_str(last).unwrap_or_else(|err| {
        panic!(
            "Salt's NetapiClient printed no result ({err}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    results
        .into_iter()
        .map(|v| match v.get("exception") {
            Some(name) => Err((
                name.as_str().unwrap_or_default().to_string(),
                v["message"].as_str().unwrap_or_default().to_string(),
            )),
            None => Ok(v["return"].clone()),
        })
        .collect()
}

/// A copy of `v` without what differs between two runs of the same job: job ids (any run of
/// 20 digits, also inside tags and `__pub_jid`) become `<jid>`, `_stamp` and `StartTime`
/// are dropped, and a `Minions` list is sorted.
pub fn normalize_job(v: &Json) -> Json {
    match v {
        Json::String(s) => Json::String(mask_jids(s)),
        Json::Array(items) => Json::Array(items.iter().map(normalize_job).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "_stamp" && k.as_str() != "StartTime")
                .map(|(k, v)| {
                    let mut v = normalize_job(v);
                    if let (true, Json::Array(items)) = (k == "Minions", &mut v) {
                        items.sort_by_key(std::string::ToString::to_string);
                    }
                    (mask_jids(k), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn mask_jids(s: &str) -> String {
    fn flush(out: &mut String, digits: &mut String) {
        out.push_str(if digits.len() == 20 { "<jid>" } else { digits });
        digits.clear();
    }
    let mut out = String::with_capacity(s.len());
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut out, &mut digits);
            out.push(c);
        }
    }
    flush(&mut out, &mut digits);
    out
}

/// One request as a client sends it: method, path below the mount point, headers, body.
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Req {
    /// `method path` with no body.
    pub fn new(method: &str, path: &str) -> Req {
        Req {
            method: method.into(),
            path: path.into(),
            ..Req::default()
        }
    }

    /// A JSON body.
    pub fn json(mut self, body: &Json) -> Req {
        self.content_type = Some("application/json".into());
        self.body = body.to_string().into_bytes();
        self
    }

    /// A body of any type.
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Req {
        self.content_type = Some(content_type.into());
        self.body = body.to_vec();
        self
    }

    /// A header.
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The three ways a request reaches salt-fcgi.
pub enum Front<'a> {
    /// One CGI process per request with this master config.
    Cgi(&'a Path),
    /// A FastCGI server on a unix socket.
    FastCgi(&'a str),
    /// The HTTP server at `host:port`.
    Http(&'a str),
}

impl Front<'_> {
    /// A name for assertion messages.
    pub fn name(&self) -> &'static str {
        match self {
            Front::Cgi(_) => "CGI",
            Front::FastCgi(_) => "FastCGI",
            Front::Http(_) => "HTTP",
        }
    }

    /// Sends `req` and parses the response.
    pub fn send(&self, req: &Req) -> Response {
        let cgi_headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    format!("HTTP_{}", k.to_ascii_uppercase().replace('-', "_")),
                    v.clone(),
                )
            })
            .collect();
        match self {
            Front::Cgi(config) => {
                let mut extra: Vec<(&str, &str)> = cgi_headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                extra.push(("PATH_INFO", &req.path));
                cgi(
                    config,
                    &req.method,
                    req.content_type.as_deref(),
                    &req.body,
                    &extra,
                )
            }
            Front::FastCgi(socket) => fastcgi_request(socket, req, &cgi_headers),
            Front::Http(address) => http_request(address, req),
        }
    }
}

fn fastcgi_request(socket: &str, req: &Req, cgi_headers: &[(String, String)]) -> Response {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .expect("connect FastCGI socket");
        let mut client = fastcgi_client::Client::new_keep_alive_tokio(stream);
        let mut params = fastcgi_client::Params::default()
            .request_method(req.method.clone())
            .script_name("")
            .request_uri(req.path.clone())
            .content_length(req.body.len())
            .custom("PATH_INFO", req.path.clone());
        if let Some(ct) = &req.content_type {
            params = params.content_type(ct.clone());
        }
        for (k, v) in cgi_headers {
            params = params.custom(k.clone(), v.clone());
        }
        let output = client
            .execute(fastcgi_client::Request::new(params, &req.body[..]))
            .await
            .expect("FastCGI request");
        parse_head(&output.stdout.unwrap_or_default(), false)
    })
}

fn http_request(address: &str, req: &Req) -> Response {
    let mut stream = std::net::TcpStream::connect(address).expect("connect HTTP");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method,
        if req.path.is_empty() { "/" } else { &req.path },
        req.body.len()
    );
    if let Some(ct) = &req.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(&req.body).expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    parse_head(&raw, true)
}

/// What one run of the pepper CLI (salt-pepper from PyPI, in the Salt venv) did.
#[derive(Debug)]
pub struct PepperRun {
    /// Exit code (-1 when killed).
    pub code: i32,
    /// Every JSON document pepper printed (`--out=json`), merged into one object.
    pub out: Json,
    /// stdout and stderr, for messages.
    pub text: String,
}

/// Runs `pepper --out=json <args>` against `url` as `user`/`password` (eauth `file`), with
/// `home` as its home directory (where `-T` keeps `.peppercache`).
pub fn pepper_cli(url: &str, user: &str, password: &str, home: &Path, args: &[&str]) -> PepperRun {
    let e = env();
    std::fs::create_dir_all(home).expect("pepper home");
    let out = Command::new("timeout")
        .arg("120")
        .arg(e.venv.join("bin").join("pepper"))
        .arg("--out=json")
        .args(args)
        .env("HOME", home)
        .env("SALTAPI_URL", url)
        .env("SALTAPI_USER", user)
        .env("SALTAPI_PASS", password)
        .env("SALTAPI_EAUTH", "file")
        .current_dir(home)
        .output()
        .expect("run pepper");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut merged = serde_json::Map::new();
    for doc in serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Json>()
        .flatten()
    {
        if let Json::Object(m) = doc {
            merged.extend(m);
        }
    }
    PepperRun {
        code: out.status.code().unwrap_or(-1),
        out: Json::Object(merged),
        text: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// The pepper CLI's everyday uses against `url` (`extra` goes before every command, e.g.
/// `--ignore-ssl-errors`): login and `local`, `local_async`, `runner`, `wheel`, `-r`
/// (/token + /run), `--fail-if-incomplete`, the `-T` token cache, and "Authentication
/// denied" for a wrong password and for a cached token the master no longer knows.
pub fn pepper_cli_everyday(url: &str, extra: &[&str], home: &Path) {
    let e = env();
    let run = |args: &[&str]| {
        let all: Vec<&str> = extra.iter().chain(args).copied().collect();
        pepper_cli(url, &e.user, &e.password, home, &all)
    };
    let r = run(&["*", "test.ping"]);
    assert_eq!((r.code, &r.out), (0, &e.all_true()), "{}", r.text);
    let r = run(&["--client", "local_async", "*", "test.ping"]);
    assert!(
        r.out["jid"].as_str().is_some_and(|j| j.len() == 20),
        "{}",
        r.text
    );
    let r = run(&["--client", "runner", "test.arg", "a", "b=1"]);
    assert_eq!(
        r.out,
        json!({"args": ["a"], "kwargs": {"b": 1}}),
        "{}",
        r.text
    );
    let r = run(&["--client", "wheel", "key.list_all"]);
    assert!(r.text.contains("ms-0") && r.code == 0, "{}", r.text);
    let r = run(&["-r", "*", "test.ping"]);
    assert_eq!((r.code, &r.out), (0, &e.all_true()), "-r: {}", r.text);
    // --batch: pepper prints each item of `return` (one per minion, as rest_cherrypy
    // yields them).
    let r = run(&["--batch", "1", "*", "test.ping"]);
    assert_eq!((r.code, &r.out), (0, &e.all_true()), "--batch: {}", r.text);
    let r = run(&["--fail-if-incomplete", "--timeout", "30", "*", "test.ping"]);
    assert_eq!(
        (r.code, &r.out),
        (0, &e.all_true()),
        "--fail-if-incomplete: {}",
        r.text
    );
    // -T: the token is cached and reused.
    let cache = home.join(".peppercache");
    let _ = std::fs::remove_file(&cache);
    let r = run(&["-T", "ms-0", "test.ping"]);
    assert_eq!(r.out, json!({"ms-0": true}), "-T: {}", r.text);
    let cached: Json =
        serde_json::from_str(&std::fs::read_to_string(&cache).expect(".peppercache"))
            .expect("json");
    assert!(
        cached["expire"].as_f64().is_some_and(|x| x > 0.0),
        "{cached}"
    );
    let r = run(&["-T", "ms-1", "test.ping"]);
    assert_eq!(r.out, json!({"ms-1": true}), "-T again: {}", r.text);
    let again: Json = serde_json::from_str(&std::fs::read_to_string(&cache).expect(".peppercache"))
        .expect("json");
    assert_eq!(
        again["token"], cached["token"],
        "the cached token was reused"
    );
    // A cached token the master does not know (expired, revoked): Authentication denied.
    let mut stale = cached.clone();
    stale["token"] = json!("ab".repeat(32));
    std::fs::write(&cache, stale.to_string()).expect("write cache");
    let r = run(&["-T", "*", "test.ping"]);
    assert!(
        r.code != 0 && r.text.contains("Authentication denied"),
        "stale token: {}",
        r.text
    );
    let _ = std::fs::remove_file(&cache);
    // A wrong password.
    let all: Vec<&str> = extra.iter().chain(&["*", "test.ping"]).copied().collect();
    let r = pepper_cli(url, &e.user, "wrong", home, &all);
    assert!(
        r.code != 0 && r.text.contains("Authentication denied"),
        "wrong password: {}",
        r.text
    );
    // An ACL denial is a 401 too ("Uncaught Pepper error" on a 403).
    let all: Vec<&str> = extra
        .iter()
        .chain(&["ms-1", "test.ping"])
        .copied()
        .collect();
    let r = pepper_cli(url, &e.restricted_user, &e.restricted_password, home, &all);
    assert!(
        r.code != 0 && r.text.contains("Authentication denied"),
        "ACL denial: {}",
        r.text
    );
    // A job id as pepper sends it: `jid=<20 digits>` becomes a bare JSON number.
    let r = run(&["--client", "local_async", "ms-0", "test.echo", "found"]);
    let jid = r.out["jid"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = run(&[
            "--client",
            "runner",
            "jobs.lookup_jid",
            &format!("jid={jid}"),
        ]);
        if r.out == json!({"ms-0": "found"}) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs.lookup_jid jid={jid}: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

// ---------------------------------------------------------------------------------------
// A private master

/// A master with one minion (ms-0) in its own directory and ports (the shared master's
/// base + 40), for tests that stop or change a master; stopped on drop. One at a time: it
/// holds a process-wide lock. [`PrivateMaster::start_variant`]: one with 2 minions on
/// another transport (one of those at a time, too).
pub struct PrivateMaster {
    /// The master's directory (`scripts/salt-env up`).
    pub dir: PathBuf,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl PrivateMaster {
    /// Starts it (after any other private master of this process has stopped).
    pub fn start() -> PrivateMaster {
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let guard = ONE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        PrivateMaster::up("private", 40, 1, &[], guard)
    }

    /// A master with 2 minions on another transport or `ipc_mode` (`args` for
    /// `scripts/salt-env up`, e.g. `--transport tcp`), in its own directory `name` and ports
    /// (base + `port_offset` and up), after any other such master of this process stopped.
    pub fn start_variant(name: &str, port_offset: u16, args: &[&str]) -> PrivateMaster {
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let guard = ONE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        PrivateMaster::up(name, port_offset, 2, args, guard)
    }

    fn up(
        name: &str,
        port_offset: u16,
        minions: u16,
        args: &[&str],
        guard: std::sync::MutexGuard<'static, ()>,
    ) -> PrivateMaster {
        let base: u16 = std::env::var("SALT_TEST_PORT_BASE")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(14505);
        let dir = std::env::temp_dir().join(format!("salt-fcgi-{name}-{}", std::process::id()));
        let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/salt-env"))
            .args([
                "up",
                dir.to_str().expect("utf8"),
                "--minions",
                &minions.to_string(),
                "--version",
                &env().version,
            ])
            .args(args)
            .env("SALT_TEST_PORT_BASE", (base + port_offset).to_string())
            .status()
            .expect("run salt-env");
        assert!(status.success(), "{name} master did not start");
        PrivateMaster {
            dir,
            _one_at_a_time: guard,
        }
    }

    /// Its master config.
    pub fn config(&self) -> PathBuf {
        self.dir.join("master")
    }

    /// Stops the master (SIGTERM) and waits until it is gone.
    pub fn kill_master(&self) {
        let pid = std::fs::read_to_string(self.dir.join("master.pid")).expect("master.pid");
        Command::new("kill").arg(pid.trim()).status().expect("kill");
        let pattern = format!("salt-master -c {}", self.dir.display());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Command::new("pgrep")
            .args(["-f", &pattern])
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "master did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the master again and waits until ms-0 answers.
    pub fn start_master(&self) {
        let status = Command::new(env().venv.join("bin/salt-master"))
            .args(["-c", self.dir.to_str().expect("utf8"), "-d"])
            .status()
            .expect("start master");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(env().venv.join("bin/salt"))
                .args([
                    "-c",
                    self.dir.to_str().expect("utf8"),
                    "ms-0",
                    "test.ping",
                    "--out=json",
                    "-t",
                    "3",
                ])
                .output()
                .expect("salt");
            if String::from_utf8_lossy(&out.stdout).contains("true") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "minion did not come back after the master restart"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Kills the minion.
    pub fn stop_minion(&self) {
        // SIGKILL the minion and any job process it left (a stopped minion, abruptly).
        let pattern = format!("{}/minions/ms-0", self.dir.display());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Command::new("pgrep")
            .args(["-f", &pattern])
            .status()
            .is_ok_and(|s| s.success())
        {
            Command::new("pkill")
                .args(["-9", "-f", &pattern])
                .status()
                .ok();
            assert!(Instant::now() < deadline, "minion did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateMaster {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/salt-env"))
            .args(["down", self.dir.to_str().unwrap_or("/nonexistent")])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
