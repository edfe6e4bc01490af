//! Support for `tests/deploy.rs`: the test master's environment, scratch directories,
//! the shipped config files with their placeholders filled in, real web servers started on
//! loopback ports (stopped in `Drop`), a curl-based client and the request suite that runs
//! through every deployment path.
//!
//! Nothing here touches the system-wide Apache or nginx configuration: every server gets a
//! main config of its own in a scratch directory (the equivalent of Debian's
//! `apache2.conf`/`nginx.conf`) that includes the shipped site file.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

/// The repository root (the shipped configs live here).
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Where the Debian package (scripts/package) installs the shipped apache/, nginx/ and
/// systemd/ files, as examples.
pub const INSTALLED_EXAMPLES: &str = "/usr/share/doc/salt-fcgi/examples";
/// Where the Debian package installs its systemd units (placeholders filled in).
pub const INSTALLED_UNITS: &str = "/usr/lib/systemd/system";
/// The web servers' unprivileged user (Debian's).
pub const WEB_USER: &str = "www-data";
/// eauth backend of the test master (scripts/salt-env: `file`).
pub const EAUTH: &str = "file";

// ---------------------------------------------------------------------------------------
// The test master

/// The running test master, as described by `$SALT_FCGI_TEST_ENV/env.sh` (read by
/// `tests/common`, like every other integration test), plus what salt-fcgi itself reads
/// from its config.
pub struct TestEnv {
    /// The master config salt-fcgi is pointed at.
    pub master_config: PathBuf,
    /// What salt-fcgi itself reads from it.
    pub settings: salt_fcgi::internals::Settings,
    /// Minions that answer.
    pub minions: Vec<String>,
    /// Full-access eauth user and password.
    pub user: String,
    pub password: String,
}

impl TestEnv {
    /// Loads the environment; panics with instructions when there is none.
    pub fn load() -> TestEnv {
        let common = crate::common::env();
        let settings = salt_fcgi::internals::Settings::load(Some(&common.config))
            .unwrap_or_else(|e| panic!("cannot read the test master's config: {e}"));
        let marker = settings.addresses.sock_dir.join("workers.ipc");
        assert!(
            marker.exists(),
            "the test master is not running: {} does not exist (SALT_FCGI_TEST_ENV={})",
            marker.display(),
            common.dir.display()
        );
        assert!(!common.minions.is_empty(), "env.sh lists no minions");
        TestEnv {
            master_config: common.config.clone(),
            settings,
            minions: common.minions.clone(),
            user: common.user.clone(),
            password: common.password.clone(),
        }
    }

    /// One lowstate chunk with the full-access user's credentials.
    pub fn chunk(&self, client: &str, extra: Json) -> Json {
        let mut c = json!({"client": client, "eauth": EAUTH, "username": self.user, "password": self.password});
        if let (Some(c), Json::Object(extra)) = (c.as_object_mut(), extra) {
            c.extend(extra);
        }
        c
    }

    /// The master's event-bus socket (what synchronous clients must be able to open).
    pub fn event_bus(&self) -> PathBuf {
        self.settings
            .addresses
            .sock_dir
            .join("master_event_pub.ipc")
    }

    /// Owner uid and group gid of the event bus: the master's user and group.
    pub fn master_ids(&self) -> (u32, u32) {
        let meta = fs::metadata(self.event_bus())
            .unwrap_or_else(|e| panic!("cannot stat {}: {e}", self.event_bus().display()));
        (meta.uid(), meta.gid())
    }

    /// `max_body_bytes` in effect.
    pub fn max_body(&self) -> usize {
        self.settings.limits.max_body_bytes
    }

    /// Lets a process running as `WEB_USER` with the master's group as its group reach the
    /// master config (and its includes) and the event bus: what "put www-data in the
    /// master's group" means, applied to the test master's directories. Only group bits are
    /// added, only on paths that lack them; the master's own user keeps its access.
    pub fn grant_master_group_access(&self) {
        if !is_root() {
            return; // everything runs as the current user, like the master
        }
        let (_, gid) = self.master_ids();
        let mut wanted: Vec<(PathBuf, u32)> = vec![(self.master_config.clone(), 0o040)];
        if let Some(Ok(entries)) = self
            .master_config
            .parent()
            .map(|d| fs::read_dir(d.join("master.d")))
        {
            for e in entries.flatten() {
                wanted.push((e.path(), 0o040));
            }
        }
        wanted.push((self.event_bus(), 0o060));
        for (path, bits) in wanted {
            for dir in path.ancestors().skip(1) {
                if dir.as_os_str().is_empty() {
                    continue;
                }
                grant(dir, gid, 0o010);
            }
            grant(&path, gid, bits);
        }
    }
}

/// Adds group permission `bits` to `path` when "other" and the group both lack them.
fn grant(path: &Path, gid: u32, bits: u32) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    let mode = meta.mode() & 0o7777;
    let other = bits >> 3;
    if mode & other == other || (meta.gid() == gid && mode & bits == bits) {
        return;
    }
    assert_eq!(
        meta.gid(),
        gid,
        "{} is not accessible to the master's group (gid {gid}) and belongs to another group; \
         the web servers' user cannot reach the test master",
        path.display()
    );
    fs::set_permissions(path, fs::Permissions::from_mode(mode | bits))
        .unwrap_or_else(|e| panic!("chmod g+{bits:o} {}: {e}", path.display()));
    eprintln!(
        "deploy tests: added group permission {bits:03o} to {} (the master's group)",
        path.display()
    );
}

// ---------------------------------------------------------------------------------------
// Tools, users, ids

/// Finds `tool` on PATH or in /usr/sbin, /sbin; panics naming the Debian package.
pub fn require(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
    {
        let candidate = Path::new(dir).join(tool);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the deploy tests need `{tool}` (Debian package {package}); scripts/install-deps (run by scripts/test) installs it: \
         apt-get install {package}"
    );
}

/// Panics naming the Debian package when a file (an Apache module) is missing.
pub fn require_file(path: &str, package: &str) {
    assert!(
        Path::new(path).is_file(),
        "the deploy tests need {path} (Debian package {package}); scripts/install-deps (run by scripts/test) installs it: \
         apt-get install {package}"
    );
}

/// True when the tests run as root (then servers drop to www-data like in production).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// uid and primary gid of a user.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam returns null or a pointer valid until the next call; copied at once.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

// ---------------------------------------------------------------------------------------
// Scratch directories and leftover processes

/// A scratch directory for one test, world-traversable (the web servers' user reads
/// its configs and executes the binary placed in it). Removed on drop, after every process
/// still running from it was ended; kept when the test failed.
pub struct Workdir {
    pub path: PathBuf,
}

impl Workdir {
    pub fn new(name: &str) -> Workdir {
        let path =
            std::env::temp_dir().join(format!("salt-fcgi-deploy-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create workdir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod workdir");
        Workdir { path }
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }

    /// Creates a subdirectory with `mode`.
    pub fn mkdir(&self, p: &str, mode: u32) -> PathBuf {
        let dir = self.path.join(p);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).expect("chmod");
        dir
    }

    /// Puts the salt-fcgi executable at `rel` (hard link, copy if that fails) so every
    /// process started from it is recognisably this test's.
    pub fn install_binary(&self, rel: &str) -> PathBuf {
        let dest = self.path.join(rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).expect("mkdir");
            fs::set_permissions(parent, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let _ = fs::remove_file(&dest);
        let binary = crate::common::binary();
        if fs::hard_link(binary, &dest).is_err() {
            fs::copy(binary, &dest).expect("copy salt-fcgi");
        }
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).expect("chmod binary");
        dest
    }

    /// Every log-like file below the workdir, with its contents.
    pub fn logs(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        collect_logs(&self.path, &mut out);
        out
    }

    /// The contents of every log file, for failure messages.
    pub fn log_dump(&self) -> String {
        let mut s = String::new();
        for (path, text) in self.logs() {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            s.push_str(&format!(
                "\n--- {} (last {} lines)\n",
                path.display(),
                tail.len()
            ));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    /// Pids of processes started from this directory (executable or command line in it).
    pub fn processes(&self) -> Vec<u32> {
        processes_under(&self.path)
    }
}

fn collect_logs(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::path);
    for e in entries {
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect_logs(&path, out);
        } else if ft.is_file() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".log") || name.ends_with(".err") {
                let text =
                    String::from_utf8_lossy(&fs::read(&path).unwrap_or_default()).into_owned();
                out.push((path, text));
            }
        }
    }
}

/// Pids whose executable or command line refers to a path under `dir`.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let needle = dir.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let exe = fs::read_link(e.path().join("exe")).ok();
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if zombie {
            continue;
        }
        if exe.is_some_and(|p| p.starts_with(dir)) || cmdline.contains(&needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Ends the given processes: SIGTERM, then SIGKILL for those still there after `grace`.
pub fn end_processes(dir: &Path, grace: Duration) {
    let pids = processes_under(dir);
    if pids.is_empty() {
        return;
    }
    for &pid in &pids {
        signal(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !processes_under(dir).is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in processes_under(dir) {
        signal(pid, libc::SIGKILL);
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        end_processes(&self.path, Duration::from_secs(3));
        if std::thread::panicking() {
            eprintln!(
                "deploy test failed; its files are kept in {}",
                self.path.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shipped config files

/// Whether the tests take the shipped files from the installed Debian package instead of
/// the repository (`SALT_FCGI_TEST_INSTALLED=1`, set by `scripts/package --test`).
pub fn installed() -> bool {
    std::env::var_os("SALT_FCGI_TEST_INSTALLED").is_some_and(|v| v == "1")
}

/// A shipped file (path relative to the repository, `nginx/salt-fcgi.conf`): the
/// repository's, or the installed package's copy among its examples.
pub fn shipped_path(shipped: &str) -> PathBuf {
    if installed() {
        Path::new(INSTALLED_EXAMPLES).join(shipped)
    } else {
        Path::new(REPO).join(shipped)
    }
}

/// Reads a shipped file (path relative to the repository, see [`shipped_path`]) and
/// substitutes placeholders. Panics if a placeholder is left over on a non-comment line.
pub fn template(shipped: &str, subs: &[(&str, &str)]) -> String {
    let path = shipped_path(shipped);
    let mut text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read shipped file {}: {e}", path.display()));
    for (token, value) in subs {
        assert!(
            token.starts_with('@') && token.ends_with('@'),
            "placeholder {token}"
        );
        assert!(
            text.contains(token),
            "{shipped} has no placeholder {token} (documented placeholders and tests disagree)"
        );
        text = text.replace(token, value);
    }
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with('#') {
            continue;
        }
        if let Some(start) = code.find('@') {
            let rest = &code[start + 1..];
            if let Some(end) = rest.find('@') {
                let name = &rest[..end];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    panic!("{shipped}: placeholder @{name}@ left unsubstituted in: {line}");
                }
            }
        }
    }
    text
}

/// Writes `text` to `dest` with `mode`.
pub fn write_file(dest: &Path, text: &str, mode: u32) {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(dest, text).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
    fs::set_permissions(dest, fs::Permissions::from_mode(mode)).expect("chmod");
}

// ---------------------------------------------------------------------------------------
// TLS

/// A self-signed certificate for 127.0.0.1 (the shipped configs are TLS-only).
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    pub fn generate(wd: &Workdir) -> Tls {
        let openssl = require("openssl", "openssl");
        let dir = wd.mkdir("tls", 0o755);
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = Command::new(openssl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:salt-api,DNS:localhost",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The servers read the key as root before dropping privileges.
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod key");
        Tls { cert, key }
    }
}

// ---------------------------------------------------------------------------------------
// Processes the tests start

/// A child process (a web server, or salt-fcgi itself) stopped in `Drop`.
pub struct Daemon {
    pub name: String,
    pub child: Child,
    /// Signal that stops it (SIGTERM for all of ours).
    pub stop_signal: i32,
    exited: Option<ExitStatus>,
}

impl Daemon {
    pub fn spawn(name: &str, cmd: &mut Command) -> Daemon {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon {
            name: name.to_string(),
            child,
            stop_signal: libc::SIGTERM,
            exited: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits up to `timeout` for it to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` (if it still runs).
    pub fn signal(&mut self, sig: i32) {
        if self.try_wait().is_none() {
            signal(self.pid(), sig);
        }
    }

    /// Stops it: its stop signal, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal(self.stop_signal);
        if let Some(s) = self.wait_exit(grace) {
            return Some(s);
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Starts a web server with `launch(port)` on a free port until it listens: up to three
/// ports, the next only when the last was taken meanwhile ("Address already in use");
/// any other failure panics with `what` and the work directory's logs.
fn start_on_free_port(
    what: &str,
    wd: &Workdir,
    mut launch: impl FnMut(u16) -> Daemon,
) -> (Daemon, u16) {
    let mut last_error = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let mut daemon = launch(port);
        match wait_for_port(&mut daemon, port, Duration::from_secs(15)) {
            Ok(()) => return (daemon, port),
            Err(e) => {
                last_error = format!("{e}{}", wd.log_dump());
                drop(daemon);
                if !last_error.contains("Address already in use") {
                    break;
                }
            }
        }
    }
    panic!("{what} did not start: {last_error}");
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`, or `daemon` exits.
pub fn wait_for_port(daemon: &mut Daemon, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if crate::common::tcp_listening(("127.0.0.1", port)) {
            return Ok(());
        }
        if let Some(status) = daemon.try_wait() {
            return Err(format!("{} exited during start-up ({status})", daemon.name));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} did not listen on port {port} within {timeout:?}",
                daemon.name
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until a Unix socket accepts connections.
pub fn wait_for_socket(daemon: &mut Daemon, path: &Path, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Ok(());
        }
        if let Some(status) = daemon.try_wait() {
            return Err(format!("{} exited during start-up ({status})", daemon.name));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} did not listen on {} within {timeout:?}",
                daemon.name,
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A file to capture a child's stdout/stderr in.
pub fn log_file(path: &Path) -> Stdio {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    Stdio::from(fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display())))
}

/// A command with an empty environment except PATH and LANG: nothing from the test's
/// environment (SALT_MASTER_CONFIG in particular) can stand in for what the configs pass.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C")
        .stdin(Stdio::null());
    cmd
}

// ---------------------------------------------------------------------------------------
// Apache

const APACHE_MODULES: &str = "/usr/lib/apache2/modules";

/// An Apache started in the foreground from a main config of its own.
pub struct Apache {
    pub daemon: Daemon,
    pub port: u16,
}

impl Apache {
    /// Starts Apache with `modules` (file stems under /usr/lib/apache2/modules, e.g.
    /// "mod_fcgid"), `extra` main-config text, and the site made by `site(port)` — the
    /// shipped file with its placeholders filled in. `group` is the gid children run as.
    pub fn start(
        wd: &Workdir,
        modules: &[&str],
        extra: &str,
        group: u32,
        site: impl Fn(u16) -> String,
    ) -> Apache {
        let apache2 = require("apache2", "apache2");
        for m in modules {
            let package = if *m == "mod_fcgid" {
                "libapache2-mod-fcgid"
            } else {
                "apache2"
            };
            require_file(&format!("{APACHE_MODULES}/{m}.so"), package);
        }
        let dir = wd.mkdir("apache", 0o755);
        let run = wd.mkdir("apache/run", 0o755);
        let logs = wd.mkdir("apache/logs", 0o755);
        let (daemon, port) = start_on_free_port("Apache", wd, |port| {
            write_file(&dir.join("site.conf"), &site(port), 0o644);
            let mut conf = format!(
                "# Main config of a test Apache (what Debian's apache2.conf + ports.conf do).\n\
                 ServerRoot {dir}\n\
                 PidFile {run}/httpd.pid\n\
                 DefaultRuntimeDir {run}\n\
                 Mutex file:{run} default\n\
                 ErrorLog {logs}/error.log\n\
                 LogLevel info ssl:warn\n\
                 Listen 127.0.0.1:{port}\n\
                 ServerName 127.0.0.1\n\
                 Timeout 60\n\
                 TypesConfig /etc/mime.types\n\
                 LogFormat \"%h %l %u %t \\\"%r\\\" %>s %O \\\"%{{User-Agent}}i\\\"\" combined\n\
                 StartServers 1\n\
                 ServerLimit 2\n\
                 ThreadsPerChild 16\n\
                 MaxRequestWorkers 32\n\
                 MinSpareThreads 4\n\
                 MaxSpareThreads 32\n",
                dir = dir.display(),
                run = run.display(),
                logs = logs.display(),
            );
            if is_root() {
                conf.push_str(&format!("User {WEB_USER}\nGroup #{group}\n"));
            }
            for m in [
                "mod_mpm_event",
                "mod_authz_core",
                "mod_mime",
                "mod_socache_shmcb",
                "mod_ssl",
            ]
            .iter()
            .chain(modules)
            {
                let name = m.strip_prefix("mod_").unwrap_or(m);
                conf.push_str(&format!(
                    "LoadModule {name}_module {APACHE_MODULES}/{m}.so\n"
                ));
            }
            conf.push_str(&format!(
                "SSLSessionCache shmcb:{run}/ssl_scache(512000)\n\
                 <Directory />\n    AllowOverride None\n    Require all denied\n</Directory>\n\
                 <FilesMatch \"^\\.ht\">\n    Require all denied\n</FilesMatch>\n\
                 {extra}\n\
                 Include {dir}/site.conf\n",
                run = run.display(),
                dir = dir.display(),
            ));
            write_file(&dir.join("httpd.conf"), &conf, 0o644);
            let mut cmd = clean_command(&apache2);
            cmd.arg("-f")
                .arg(dir.join("httpd.conf"))
                .arg("-DFOREGROUND")
                .env("APACHE_LOG_DIR", &logs)
                .stdout(log_file(&logs.join("stdout.log")))
                .stderr(log_file(&logs.join("stderr.log")));
            Daemon::spawn("apache2", &mut cmd)
        });
        Apache { daemon, port }
    }

    /// Graceful stop (`apachectl graceful-stop`): requests in flight are finished.
    pub fn graceful_stop(&mut self) {
        self.daemon.signal(libc::SIGWINCH);
    }
}

// ---------------------------------------------------------------------------------------
// nginx

/// An nginx started in the foreground from a main config of its own.
pub struct Nginx {
    /// Held for its `Drop`, which stops nginx.
    _daemon: Daemon,
    pub port: u16,
}

impl Nginx {
    /// Starts nginx with the site made by `site(port)` — the shipped server block with its
    /// placeholders filled in. Workers run as www-data, like Debian's nginx.
    pub fn start(wd: &Workdir, site: impl Fn(u16) -> String) -> Nginx {
        let nginx = require("nginx", "nginx");
        let dir = wd.mkdir("nginx", 0o755);
        let logs = wd.mkdir("nginx/logs", 0o755);
        wd.mkdir("nginx/tmp", 0o755);
        // `include fastcgi_params;` resolves next to the main config, as in /etc/nginx.
        fs::copy("/etc/nginx/fastcgi_params", dir.join("fastcgi_params"))
            .expect("copy /etc/nginx/fastcgi_params (package nginx-common)");
        let (daemon, port) = start_on_free_port("nginx", wd, |port| {
            write_file(&dir.join("site.conf"), &site(port), 0o644);
            let user = if is_root() {
                format!("user {WEB_USER} {WEB_USER};\n")
            } else {
                String::new()
            };
            let conf = format!(
                "# Main config of a test nginx (what Debian's /etc/nginx/nginx.conf does).\n\
                 daemon off;\n\
                 master_process on;\n\
                 worker_processes 1;\n\
                 {user}\
                 pid {dir}/nginx.pid;\n\
                 error_log {logs}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                 \x20   log_format with_id '$remote_addr \"$request\" $status rid=$request_id';\n\
                 \x20   access_log {logs}/access.log with_id;\n\
                 \x20   client_body_temp_path {dir}/tmp/body;\n\
                 \x20   fastcgi_temp_path {dir}/tmp/fastcgi;\n\
                 \x20   proxy_temp_path {dir}/tmp/proxy;\n\
                 \x20   uwsgi_temp_path {dir}/tmp/uwsgi;\n\
                 \x20   scgi_temp_path {dir}/tmp/scgi;\n\
                 \x20   default_type application/octet-stream;\n\
                 \x20   include {dir}/site.conf;\n\
                 }}\n",
                dir = dir.display(),
                logs = logs.display(),
            );
            write_file(&dir.join("nginx.conf"), &conf, 0o644);
            let mut cmd = clean_command(&nginx);
            cmd.arg("-e")
                .arg(logs.join("error.log"))
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .stdout(log_file(&logs.join("stdout.log")))
                .stderr(log_file(&logs.join("stderr.log")));
            Daemon::spawn("nginx", &mut cmd)
        });
        Nginx {
            _daemon: daemon,
            port,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The client: curl, as a user would run it

/// One HTTP exchange.
#[derive(Debug, Clone)]
pub struct Reply {
    /// 0 when curl got no HTTP response at all (see `error`).
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
    /// curl's complaint when it failed.
    pub error: String,
    /// The command, for messages and the transcript.
    pub command: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<Json> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        let t = String::from_utf8_lossy(&self.body);
        if t.len() > 300 {
            format!(
                "{}… ({} bytes)",
                &t[..t.char_indices().nth(300).map_or(t.len(), |(i, _)| i)],
                self.body.len()
            )
        } else {
            t.into_owned()
        }
    }

    /// "status body" for failure messages.
    pub fn summary(&self) -> String {
        if self.status == 0 {
            format!(
                "no HTTP response ({}) after {:?}",
                self.error.trim(),
                self.elapsed
            )
        } else {
            format!("{} {} after {:?}", self.status, self.text(), self.elapsed)
        }
    }
}

/// How a request body is sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Framing {
    ContentLength,
    Chunked,
}

/// curl against one deployment.
pub struct Client {
    pub base: String,
    pub cacert: PathBuf,
    scratch: PathBuf,
    counter: AtomicUsize,
    /// A command curl runs under (`nsenter --net=…` into a scratch machine), and curl
    /// arguments every request gets (`--resolve`); both empty for loopback deployments.
    wrap: Vec<String>,
    args: Vec<String>,
}

impl Client {
    pub fn new(wd: &Workdir, base: &str, tls: &Tls) -> Client {
        Client::with_cacert(wd, base, &tls.cert)
    }

    /// A client that trusts `cacert`.
    pub fn with_cacert(wd: &Workdir, base: &str, cacert: &Path) -> Client {
        require("curl", "curl");
        Client {
            base: base.to_string(),
            cacert: cacert.to_path_buf(),
            scratch: wd.mkdir("client", 0o700),
            counter: AtomicUsize::new(0),
            wrap: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Runs every curl under `wrap` with `args` added.
    pub fn wrapped(mut self, wrap: Vec<String>, args: Vec<String>) -> Client {
        self.wrap = wrap;
        self.args = args;
        self
    }

    /// A curl command (under the wrapper, with the common arguments).
    pub fn curl(&self) -> Command {
        let mut cmd = match self.wrap.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg("curl");
                c
            }
            None => Command::new("curl"),
        };
        cmd.args(&self.args);
        cmd
    }

    /// `method` on base + `suffix`, with an optional body.
    pub fn request(
        &self,
        method: &str,
        suffix: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        framing: Framing,
    ) -> Reply {
        self.request_with(method, suffix, &[], content_type, body, framing)
    }

    /// [`Client::request`] with more curl arguments (`-H`, a cookie jar with `-b`/`-c`).
    pub fn request_with(
        &self,
        method: &str,
        suffix: &str,
        extra: &[String],
        content_type: Option<&str>,
        body: Option<&[u8]>,
        framing: Framing,
    ) -> Reply {
        let n = self.counter.fetch_add(1, Ordering::AcqRel);
        let (head_f, body_f, req_f) = (
            self.scratch.join(format!("{n}.head")),
            self.scratch.join(format!("{n}.body")),
            self.scratch.join(format!("{n}.req")),
        );
        let url = format!("{}{}", self.base, suffix);
        let mut args: Vec<String> = vec![
            "-sS".into(),
            "--max-time".into(),
            "60".into(),
            "--cacert".into(),
            self.cacert.display().to_string(),
            "-X".into(),
            method.into(),
        ];
        if let Some(ct) = content_type {
            args.push("-H".into());
            args.push(format!("Content-Type: {ct}"));
        }
        args.extend(extra.iter().cloned());
        if let Some(b) = body {
            fs::write(&req_f, b).expect("write request body");
            args.push("--data-binary".into());
            args.push(format!("@{}", req_f.display()));
            if framing == Framing::Chunked {
                args.push("-H".into());
                args.push("Transfer-Encoding: chunked".into());
            }
        }
        // The command as a user would type it: small bodies inline, large ones as a file.
        let shown: Vec<String> = args
            .iter()
            .filter(|a| !a.starts_with("--max-time") && *a != "60")
            .map(|a| match (a.strip_prefix('@'), body) {
                (Some(_), Some(b)) if b.len() <= 400 && std::str::from_utf8(b).is_ok() => {
                    format!("'{}'", String::from_utf8_lossy(b))
                }
                (Some(_), Some(b)) => format!("@body.json ({} bytes)", b.len()),
                _ if a.contains(' ') => format!("'{a}'"),
                _ => a.clone(),
            })
            .collect();
        let command = format!("curl {} {url}", shown.join(" "));
        let start = Instant::now();
        let out = self
            .curl()
            .args(&args)
            .arg("-D")
            .arg(&head_f)
            .arg("-o")
            .arg(&body_f)
            .arg("-w")
            .arg("%{http_code}")
            .arg(&url)
            .output()
            .expect("run curl");
        let elapsed = start.elapsed();
        let code: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let head = fs::read_to_string(&head_f).unwrap_or_default();
        // With `Expect: 100-continue` the head file holds an interim block first.
        let last_block = head
            .split("\r\n\r\n")
            .filter(|b| !b.trim().is_empty())
            .last()
            .unwrap_or("");
        let headers = last_block
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let reply = Reply {
            status: if out.status.success() { code } else { 0 },
            headers,
            body: fs::read(&body_f).unwrap_or_default(),
            elapsed,
            error: String::from_utf8_lossy(&out.stderr).into_owned(),
            command,
        };
        for f in [head_f, body_f, req_f] {
            let _ = fs::remove_file(f);
        }
        reply
    }

    pub fn get(&self, suffix: &str) -> Reply {
        self.request("GET", suffix, None, None, Framing::ContentLength)
    }

    /// POST a JSON value.
    pub fn post_json(&self, body: &Json, framing: Framing) -> Reply {
        self.post_raw("application/json", body.to_string().as_bytes(), framing)
    }

    pub fn post_raw(&self, content_type: &str, body: &[u8], framing: Framing) -> Reply {
        self.request("POST", "", Some(content_type), Some(body), framing)
    }
}

/// Loads `url` in Debian's headless chromium (a fresh profile under `profile`, the flags
/// this machine's closed network needs) and returns what `--dump-dom` printed once the
/// page's virtual clock ran `budget_ms`.
pub fn headless_chromium(profile: &Path, url: &str, budget_ms: u32) -> std::process::Output {
    let chromium = require("chromium", "chromium");
    Command::new("timeout")
        .arg("90")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--ignore-certificate-errors",
            "--dump-dom",
        ])
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .expect("run chromium")
}

/// SHA-256 of `data` as lower-case hex (coreutils' sha256sum).
pub fn sha256_hex(data: &[u8], scratch: &Path) -> String {
    let f = scratch.join(format!("sha-{}", data.len()));
    fs::write(&f, data).expect("write");
    let out = Command::new("sha256sum")
        .arg(&f)
        .output()
        .expect("run sha256sum");
    let _ = fs::remove_file(&f);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

// ---------------------------------------------------------------------------------------
// The request suite: the same requests through every deployment path

/// Collected failures of one path, reported together.
pub struct Checks {
    pub path: String,
    pub failures: Vec<String>,
    pub transcript: Vec<String>,
}

impl Checks {
    pub fn new(path: &str) -> Checks {
        Checks {
            path: path.to_string(),
            failures: Vec::new(),
            transcript: Vec::new(),
        }
    }

    pub fn check(&mut self, ok: bool, what: &str, reply: &Reply) {
        if !ok {
            self.failures.push(format!(
                "{what}: got {}\n    ({})",
                reply.summary(),
                reply.command
            ));
        }
    }

    pub fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    /// Records a request and its output the way a user would see it.
    pub fn record(&mut self, reply: &Reply) {
        self.transcript.push(format!(
            "$ {} -w ' %{{http_code}}'\n{} {}",
            reply.command,
            String::from_utf8_lossy(&reply.body),
            reply.status
        ));
    }

    /// Panics with every failure and the log tails when anything failed.
    pub fn finish(self, wd: &Workdir) {
        eprintln!("=== {}: what curl printed", self.path);
        for t in &self.transcript {
            eprintln!("{t}");
        }
        if !self.failures.is_empty() {
            panic!(
                "{}: {} check(s) failed:\n  - {}\n{}",
                self.path,
                self.failures.len(),
                self.failures.join("\n  - "),
                wd.log_dump()
            );
        }
    }
}

/// `status` with a JSON `{"return": "<message>"}` body, as salt-fcgi writes errors.
fn is_error_json(reply: &Reply, status: u16) -> bool {
    reply.status == status
        && reply
            .json()
            .is_some_and(|j| j["return"].as_str().is_some_and(|m| !m.is_empty()))
}

/// A password that must never show up in a log (used for the 401 case).
pub fn wrong_password(path: &str) -> String {
    format!("Wr0ng-{path}-pa55-{}", std::process::id())
}

/// The request suite: health check, a synchronous `local`, a `wheel`, a 401, a 406, a
/// non-ASCII return, a body just under `max_body_bytes`, bodies over it, chunked bodies,
/// and a query string that must never become command-line arguments.
pub fn run_suite(client: &Client, env: &TestEnv, checks: &mut Checks, scratch: &Path) {
    let max = env.max_body();

    // Health check.
    let r = client.get("");
    checks.record(&r);
    checks.check(
        r.status == 200 && r.json().is_some_and(|j| j["return"] == "Welcome"),
        "GET is the JSON welcome",
        &r,
    );

    // Synchronous local: every minion answers.
    let r = client.post_json(
        &json!([env.chunk("local", json!({"tgt": "*", "fun": "test.ping"}))]),
        Framing::ContentLength,
    );
    checks.record(&r);
    let ok = r.status == 200
        && r.json().is_some_and(|j| {
            let ret = &j["return"][0];
            env.minions.iter().all(|m| ret[m] == json!(true))
        });
    checks.check(ok, "sync local test.ping answers true for every minion", &r);

    // Wheel.
    let r = client.post_json(
        &json!([env.chunk("wheel", json!({"fun": "key.list_all"}))]),
        Framing::ContentLength,
    );
    checks.record(&r);
    let ok = r.status == 200
        && r.json().is_some_and(|j| {
            let data = &j["return"][0]["data"];
            let accepted = data["return"]["minions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            data["success"] == json!(true)
                && env.minions.iter().all(|m| accepted.contains(&json!(m)))
        });
    checks.check(ok, "wheel key.list_all lists every minion as accepted", &r);

    // 401 with a wrong password (which must appear nowhere).
    let bad = wrong_password(&checks.path);
    let mut c = env.chunk("local", json!({"tgt": "*", "fun": "test.ping"}));
    c["password"] = json!(bad);
    let r = client.post_json(&json!([c]), Framing::ContentLength);
    checks.record(&r);
    checks.check(is_error_json(&r, 401), "wrong password is a JSON 401", &r);
    checks.check(
        !String::from_utf8_lossy(&r.body).contains(&bad),
        "the 401 body does not repeat the password",
        &r,
    );

    // 406.
    let r = client.post_raw("image/png", b"[]", Framing::ContentLength);
    checks.record(&r);
    checks.check(
        r.status == 406
            && r.json()
                == Some(
                    json!({"return": "406: Content type not supported; send application/json"}),
                ),
        "image/png is a JSON 406",
        &r,
    );

    // Non-ASCII return, byte-accurate.
    let text = "héllo ☃ 日本語 😀 \u{0}";
    let echo = json!([env.chunk(
        "local",
        json!({"tgt": env.minions[0], "fun": "test.echo", "arg": [text]})
    )]);
    for framing in [Framing::ContentLength, Framing::Chunked] {
        let r = client.post_json(&echo, framing);
        if framing == Framing::ContentLength {
            checks.record(&r);
        }
        let ok = r.status == 200
            && r.json() == Some(json!({"return": [{env.minions[0].clone(): text}]}))
            && r.header("Content-Type")
                .is_some_and(|t| t.starts_with("application/json"))
            && r.header("Content-Length")
                .is_none_or(|l| l.parse::<usize>().ok() == Some(r.body.len()));
        checks.check(
            ok,
            &format!("non-ASCII test.echo round trip ({framing:?} request body)"),
            &r,
        );
    }

    // A body just under max_body_bytes, with Content-Length and chunked: the minion hashes
    // the payload, so every byte must have arrived.
    let pad_for = |len: usize| -> (Json, Vec<u8>) {
        let base = json!([env.chunk(
            "local",
            json!({"tgt": env.minions[0], "fun": "hashutil.digest", "arg": ["", "sha256"]})
        )]);
        let base_len = base.to_string().len();
        let pad: Vec<u8> = (0..len.saturating_sub(base_len))
            .map(|i| b'a' + (i * 7 % 26) as u8)
            .collect();
        let pad_s = String::from_utf8(pad.clone()).expect("ascii");
        let body = json!([env.chunk(
            "local",
            json!({"tgt": env.minions[0], "fun": "hashutil.digest", "arg": [pad_s, "sha256"]})
        )]);
        (body, pad)
    };
    let (near, pad) = pad_for(max - 64);
    assert!(near.to_string().len() <= max && near.to_string().len() > max - 128);
    let digest = sha256_hex(&pad, scratch);
    for framing in [Framing::ContentLength, Framing::Chunked] {
        let r = client.post_json(&near, framing);
        let ok = r.status == 200
            && r.json() == Some(json!({"return": [{env.minions[0].clone(): digest}]}));
        checks.check(
            ok,
            &format!(
                "a {}-byte body ({framing:?}) arrives whole (max_body_bytes {max})",
                near.to_string().len()
            ),
            &r,
        );
    }

    // Bodies over max_body_bytes: salt-fcgi's JSON 413, quickly, never a hang or a bare
    // connection reset.
    let (over, _) = pad_for(max + 64 * 1024);
    for framing in [Framing::ContentLength, Framing::Chunked] {
        let r = client.post_json(&over, framing);
        if framing == Framing::ContentLength {
            checks.record(&r);
        }
        checks.check(
            is_error_json(&r, 413)
                && r.text().contains("max_body_bytes")
                && r.elapsed < Duration::from_secs(10),
            &format!(
                "a {}-byte body ({framing:?}) is salt-fcgi's JSON 413",
                over.to_string().len()
            ),
            &r,
        );
    }

    session_suite(client, env, checks, scratch);
    events_suite(client, env, checks);

    // Apache hands a query string without '=' to CGI programs as argv: it must never
    // reach salt-fcgi's option parser (it would print its version, or start a server).
    let r = client.get("?--version");
    checks.check(
        (r.status == 403
            || (r.status == 200 && r.json().is_some_and(|j| j["return"] == "Welcome")))
            && !String::from_utf8_lossy(&r.body).contains("salt-fcgi 0"),
        "a query string without '=' is refused or ignored, never argv",
        &r,
    );
}

/// `name` below the client's base: the base ends in `/`, or is the CGI script itself.
pub fn below(client: &Client, name: &str) -> String {
    if client.base.ends_with('/') || name.is_empty() {
        name.to_string()
    } else {
        format!("/{name}")
    }
}

/// `POST login` with the full-access user (and `extra` curl arguments, e.g. a cookie jar);
/// the reply and the token it carries (empty if none).
pub fn login(client: &Client, env: &TestEnv, extra: &[String]) -> (Reply, String) {
    let login = json!({"username": env.user, "password": env.password, "eauth": "file"});
    let r = client.request_with(
        "POST",
        &below(client, "login"),
        extra,
        Some("application/json"),
        Some(login.to_string().as_bytes()),
        Framing::ContentLength,
    );
    let token = r
        .json()
        .and_then(|j| j["return"][0]["token"].as_str().map(str::to_string))
        .unwrap_or_default();
    (r, token)
}

/// The rest_cherrypy dialect as a browser or pepper uses it through this web server: login
/// with a cookie jar (the cookie's Path is the mount point, Secure over TLS), lowstate with
/// the cookie only (SaltGUI's text/plain single object), /stats, /jobs with X-Auth-Token,
/// an unknown path, logout, and the token refused afterwards.
fn session_suite(client: &Client, env: &TestEnv, checks: &mut Checks, scratch: &Path) {
    let at = |name: &str| below(client, name);
    let jar = scratch.join("cookies.txt");
    let _ = fs::remove_file(&jar);
    let jar_args = vec![
        "-b".to_string(),
        jar.display().to_string(),
        "-c".to_string(),
        jar.display().to_string(),
    ];
    let (r, token) = login(client, env, &jar_args);
    checks.record(&r);
    let cookie = r.header("Set-Cookie").unwrap_or_default().to_string();
    checks.check(
        r.status == 200
            && token.len() >= 32
            && r.header("X-Auth-Token") == Some(token.as_str())
            && r.json().is_some_and(|j| {
                j["return"][0]["perms"]
                    .as_array()
                    .is_some_and(|p| !p.is_empty())
            }),
        "POST /login answers a token, X-Auth-Token and non-empty perms",
        &r,
    );
    let mount = client
        .base
        .splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{}", p.trim_end_matches('/')))
        .unwrap_or_default();
    let path = if mount == "/" || mount.is_empty() {
        "/".to_string()
    } else {
        mount
    };
    // Secure over TLS; salt-fcgi's plain-HTTP development server cannot promise it.
    let tls = client.base.starts_with("https:");
    checks.check(
        cookie.starts_with(&format!("session_id={token};"))
            && cookie.contains(&format!("Path={path};"))
            && cookie.contains("HttpOnly")
            && cookie.contains("Secure") == tls,
        &format!("the session cookie is HttpOnly, Secure over TLS only, for Path={path}"),
        &r,
    );
    let ping = json!({"client": "local", "tgt": "*", "fun": "test.ping"});
    let r = client.request_with(
        "POST",
        "",
        &jar_args,
        Some("text/plain;charset=UTF-8"),
        Some(ping.to_string().as_bytes()),
        Framing::ContentLength,
    );
    checks.record(&r);
    let ok = r.status == 200
        && r.json().is_some_and(|j| {
            let ret = &j["return"][0];
            env.minions.iter().all(|m| ret[m] == json!(true))
        });
    checks.check(
        ok,
        "POST / with the session cookie only (text/plain, one object)",
        &r,
    );
    let r = client.request_with(
        "GET",
        &at("stats"),
        &jar_args,
        None,
        None,
        Framing::ContentLength,
    );
    checks.check(r.status == 200, "GET /stats with the session cookie", &r);
    let header = vec!["-H".to_string(), format!("X-Auth-Token: {token}")];
    let r = client.request_with(
        "GET",
        &at("jobs"),
        &header,
        None,
        None,
        Framing::ContentLength,
    );
    checks.check(
        r.status == 200 && r.json().is_some_and(|j| j["return"][0].is_object()),
        "GET /jobs with X-Auth-Token lists the job cache",
        &r,
    );
    let r = client.get(&at("static/salt-motd.txt"));
    checks.check(is_error_json(&r, 404), "an unknown path is a JSON 404", &r);
    let r = client.request_with(
        "POST",
        &at("logout"),
        &jar_args,
        None,
        None,
        Framing::ContentLength,
    );
    checks.check(
        r.status == 200
            && r.json() == Some(json!({"return": "Your token has been cleared"}))
            && r.header("Set-Cookie")
                .is_some_and(|c| c.starts_with("session_id=;")),
        "POST /logout (cookie only, empty body) clears the session",
        &r,
    );
    let r = client.request_with(
        "GET",
        &at("stats"),
        &header,
        None,
        None,
        Framing::ContentLength,
    );
    checks.check(
        is_error_json(&r, 401),
        "the token is refused after logout",
        &r,
    );
}

/// `GET /events` through this web server, as an EventSource would read it: rest_cherrypy's
/// framing, a job's `new` and every minion's `ret` as they happen, and a failed login's
/// password nowhere in the stream (the master fires it on the bus; salt-fcgi redacts it).
fn events_suite(client: &Client, env: &TestEnv, checks: &mut Checks) {
    let (_, token) = login(client, env, &[]);
    let url = format!("{}{}", client.base, below(client, "events"));
    let stream = StreamReader::spawn(
        client
            .curl()
            .args(["-sSN", "--max-time", "90", "--cacert"])
            .arg(&client.cacert)
            .args(["-H", &format!("X-Auth-Token: {token}"), "-D", "-"])
            .arg(&url),
    );
    // The stream is subscribed to the bus before its head is sent: once `retry: 400` has
    // arrived, no event fired afterwards can be missed, however loaded the machine is.
    let opened = stream.wait_for(|t| t.contains("retry: 400\n"), Duration::from_secs(60));
    let secret = format!("stream-{}", wrong_password(&checks.path));
    let mut bad = env.chunk("local", json!({"tgt": "*", "fun": "test.ping"}));
    bad["password"] = json!(secret);
    let _ = client.post_json(&json!([bad]), Framing::ContentLength);
    let job = json!([env.chunk("local_async", json!({"tgt": "*", "fun": "test.ping"}))]);
    let r = client.post_json(&job, Framing::ContentLength);
    let jid = r
        .json()
        .and_then(|j| j["return"][0]["jid"].as_str().map(str::to_string))
        .unwrap_or_default();
    let mut wanted = vec![format!("salt/job/{jid}/new")];
    wanted.extend(
        env.minions
            .iter()
            .map(|m| format!("salt/job/{jid}/ret/{m}")),
    );
    let carries = |text: &str, tag: &str| text.contains(&format!("tag: {tag}\ndata: {{"));
    if opened && !jid.is_empty() {
        stream.wait_for(
            |t| wanted.iter().all(|tag| carries(t, tag)),
            Duration::from_secs(60),
        );
    }
    let (text, error) = stream.stop();
    let shown = Reply {
        status: 200,
        headers: Vec::new(),
        body: text.clone().into_bytes(),
        elapsed: Duration::ZERO,
        error,
        command: format!("curl -sSN -H 'X-Auth-Token: …' {url}"),
    };
    checks.check(
        text.contains("text/event-stream") && text.contains("\r\n\r\nretry: 400\n"),
        "GET /events is an event stream starting with rest_cherrypy's `retry: 400`",
        &shown,
    );
    for tag in &wanted {
        checks.check(
            !jid.is_empty() && carries(&text, tag),
            &format!("the stream carries {tag}"),
            &shown,
        );
    }
    checks.check(
        !text.contains(&secret) && text.contains("**redacted**"),
        "a failed publish's password is redacted in the stream",
        &shown,
    );
}

/// A streaming command (curl on an event stream) whose output is read as it arrives, so a
/// test waits for what it expects with a deadline instead of a fixed time.
struct StreamReader {
    child: Child,
    out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl StreamReader {
    fn spawn(cmd: &mut Command) -> StreamReader {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the stream's reader");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = out.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stdout, &mut buf) {
                sink.lock()
                    .expect("stream buffer")
                    .extend_from_slice(&buf[..n]);
            }
        });
        StreamReader {
            child,
            out,
            reader: Some(reader),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().expect("stream buffer")).into_owned()
    }

    /// Polls until `done` holds for what arrived so far; false at the deadline.
    fn wait_for(&self, done: impl Fn(&str) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.text()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ends the command; what it printed on stdout and stderr.
    fn stop(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let mut error = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut error);
        }
        (self.text(), error)
    }
}

/// No log file under the workdir (web-server error logs, salt-fcgi's stderr) contains
/// `secret`.
pub fn check_logs_clean(wd: &Workdir, secret: &str, checks: &mut Checks) {
    for (path, text) in wd.logs() {
        if text.contains(secret) {
            checks.fail(format!("{} contains the wrong password", path.display()));
        }
    }
}

/// True when some log under the workdir has a line from salt-fcgi containing `needle`.
pub fn salt_fcgi_logged(wd: &Workdir, needle: &str) -> bool {
    wd.logs().iter().any(|(_, text)| {
        text.lines()
            .any(|l| l.contains("salt-fcgi[") && l.contains(needle))
    })
}
