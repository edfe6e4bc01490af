//! Deployment tests: real Apache (mod_fcgid, mod_cgid, a shared-hosting cgi-bin with
//! `.htaccess`) and real nginx (→ salt-fcgi's own socket, → spawn-fcgi, → a socket-activated
//! salt-fcgi as systemd would run it), each started on a loopback port from the **shipped**
//! files in apache/, nginx/ and systemd/ with only their placeholders filled in, and the
//! same request suite through every one of them.
//!
//! Needs the test master (`SALT_FCGI_TEST_ENV`, set by scripts/test) and the Debian packages
//! apache2, libapache2-mod-fcgid, nginx, spawn-fcgi, curl, openssl, systemd (for
//! `systemd-analyze`). A missing one is a failure that names the package, never a skip.
//!
//! Who runs what, as in production: the web servers' workers run as www-data. Apache's
//! children (CGI and mod_fcgid processes) get the master's group, which is how they read the
//! master's event bus; the test master's directories get the matching group permission
//! (`TestEnv::grant_master_group_access`). Under nginx, salt-fcgi runs as the master's
//! user and hands nginx a socket it may connect to (group www-data, mode 0660).

use crate::client_matrix;
use crate::common;
use crate::deploy_support;

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use deploy_support::*;
use serde_json::json;

/// Placeholder values common to the shipped web-server files.
fn subs(env: &TestEnv, tls: &Tls) -> Vec<(&'static str, String)> {
    vec![
        ("@SERVER_NAME@", "salt-api".to_string()),
        ("@MASTER_CONFIG@", env.master_config.display().to_string()),
        ("@TLS_CERT@", tls.cert.display().to_string()),
        ("@TLS_KEY@", tls.key.display().to_string()),
    ]
}

fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, s)| (*k, s.as_str())).collect()
}

/// Apache with the shipped mod_cgid site (`apache/salt-fcgi-cgid.conf`): `binary` as the
/// CGI program, `common` placeholders, children in group `gid`.
fn apache_cgid(
    wd: &Workdir,
    common: &[(&'static str, String)],
    binary: &std::path::Path,
    gid: u32,
) -> Apache {
    let extra = format!("ScriptSock {}/cgid.sock\n", wd.join("apache/run").display());
    Apache::start(
        wd,
        &["mod_cgid", "mod_alias", "mod_env"],
        &extra,
        gid,
        |port| {
            let listen = format!("127.0.0.1:{port}");
            let bin = binary.display().to_string();
            let mut s = as_refs(common);
            s.push(("@LISTEN@", &listen));
            s.push(("@BINARY@", &bin));
            template("apache/salt-fcgi-cgid.conf", &s)
        },
    )
}

/// A synchronous request that takes `secs` seconds on the first minion.
fn slow_request(env: &TestEnv, secs: u32) -> serde_json::Value {
    json!([env.chunk(
        "local",
        json!({"tgt": env.minions[0], "fun": "test.sleep", "arg": [secs]})
    )])
}

fn ok_sleep(env: &TestEnv, r: &Reply) -> bool {
    r.status == 200 && r.json() == Some(json!({"return": [{env.minions[0].clone(): true}]}))
}

/// Waits until no process started from the workdir is left.
fn wait_no_processes(wd: &Workdir, timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = wd.processes();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// Apache

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn apache_mod_fcgid() {
    let env = TestEnv::load();
    env.grant_master_group_access();
    let (_, master_gid) = env.master_ids();
    let wd = Workdir::new("fcgid");
    let tls = Tls::generate(&wd);
    let binary = wd.install_binary("bin/salt-fcgi");
    let ipc = wd.mkdir("apache-fcgid", 0o755);
    if is_root() {
        let (uid, gid) = user_ids(WEB_USER).expect("user www-data (package apache2)");
        std::os::unix::fs::chown(&ipc, Some(uid), Some(gid)).expect("chown fcgid dir");
    }
    let extra = format!(
        "FcgidIPCDir {ipc}\nFcgidProcessTableFile {run}/fcgid_shm\n",
        ipc = ipc.display(),
        run = wd.join("apache/run").display()
    );
    let common = subs(&env, &tls);
    let mut apache = Apache::start(
        &wd,
        &["mod_fcgid", "mod_alias"],
        &extra,
        master_gid,
        |port| {
            let listen = format!("127.0.0.1:{port}");
            let bin = binary.display().to_string();
            let mut s = as_refs(&common);
            s.push(("@LISTEN@", &listen));
            s.push(("@BINARY@", &bin));
            template("apache/salt-fcgi-fcgid.conf", &s)
        },
    );
    let client = Client::new(&wd, &format!("https://127.0.0.1:{}/", apache.port), &tls);
    let mut checks = Checks::new("apache-mod_fcgid");
    run_suite(&client, &env, &mut checks, &wd.path);

    // mod_fcgid started salt-fcgi on an inherited socket, and its stderr reached the log.
    if !salt_fcgi_logged(&wd, "serving FastCGI on unix socket on fd 0") {
        checks.fail("no `salt-fcgi[pid]: info: serving FastCGI` line in Apache's error log".into());
    }
    check_logs_clean(&wd, &wrong_password(&checks.path), &mut checks);

    // Graceful stop with a request in flight: mod_fcgid sends salt-fcgi SIGTERM, the request
    // still completes, then everything exits.
    let slow = slow_request(&env, 2);
    let reply = std::thread::scope(|s| {
        let h = s.spawn(|| client.post_json(&slow, Framing::ContentLength));
        std::thread::sleep(Duration::from_millis(800));
        apache.graceful_stop();
        h.join().expect("client thread")
    });
    checks.check(
        ok_sleep(&env, &reply),
        "request in flight during graceful-stop completes",
        &reply,
    );
    match apache.daemon.wait_exit(Duration::from_secs(15)) {
        Some(s) if s.success() => {}
        other => checks.fail(format!(
            "Apache did not exit cleanly after graceful-stop: {other:?}"
        )),
    }
    let left = wait_no_processes(&wd, Duration::from_secs(5));
    if !left.is_empty() {
        checks.fail(format!("processes left after Apache stopped: {left:?}"));
    }
    if !salt_fcgi_logged(&wd, "SIGTERM") {
        checks.fail("salt-fcgi did not log that SIGTERM made it finish and exit".into());
    }
    checks.finish(&wd);
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn apache_cgi() {
    let env = TestEnv::load();
    env.grant_master_group_access();
    let (_, master_gid) = env.master_ids();
    let wd = Workdir::new("cgid");
    let tls = Tls::generate(&wd);
    let binary = wd.install_binary("bin/salt-fcgi");
    let apache = apache_cgid(&wd, &subs(&env, &tls), &binary, master_gid);
    let client = Client::new(&wd, &format!("https://127.0.0.1:{}/", apache.port), &tls);
    let mut checks = Checks::new("apache-cgi");
    run_suite(&client, &env, &mut checks, &wd.path);
    // PATH_INFO below the script routes: a known endpoint, and a JSON 404 for the rest.
    let r = client.get("login");
    checks.check(
        r.status == 200 && r.json().is_some_and(|j| j["return"] == "Please log in"),
        "GET /login",
        &r,
    );
    let r = client.get("some/path");
    checks.check(
        r.status == 404 && r.json().is_some(),
        "GET /some/path is a JSON 404",
        &r,
    );
    check_logs_clean(&wd, &wrong_password(&checks.path), &mut checks);
    drop(apache);
    let left = wait_no_processes(&wd, Duration::from_secs(5));
    if !left.is_empty() {
        checks.fail(format!("processes left after Apache stopped: {left:?}"));
    }
    checks.finish(&wd);
}

/// The usual mistake: Apache's children without the master's group. Synchronous calls
/// cannot work then; the answer and the error log must say what to change, and `wheel`
/// (which only needs `ret_port`) still works. Twice: with the test master's sock_dir as it
/// is (world-traversable, the event bus 0660), and reached through a 0750 directory, which
/// is how Salt lays out /var/run/salt by default.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn apache_cgi_without_the_master_group() {
    let env = TestEnv::load();
    env.grant_master_group_access();
    let web_gid = user_ids(WEB_USER).map_or(0, |(_, g)| g);
    let (_, master_gid) = env.master_ids();
    if !is_root() || master_gid == web_gid {
        eprintln!("not root, or the master's group is www-data's: nothing to misconfigure");
        return;
    }
    for layout in ["test-master", "salt-default"] {
        let wd = Workdir::new(&format!("nogroup-{layout}"));
        let tls = Tls::generate(&wd);
        let binary = wd.install_binary("bin/salt-fcgi");
        let config = if layout == "salt-default" {
            // <wd>/run-salt (0750, the master's group) / master -> the real sock_dir.
            let run_salt = wd.mkdir("run-salt", 0o750);
            std::os::unix::fs::chown(&run_salt, Some(0), Some(master_gid)).expect("chown");
            std::os::unix::fs::symlink(&env.settings.addresses.sock_dir, run_salt.join("master"))
                .expect("symlink sock_dir");
            let text = std::fs::read_to_string(&env.master_config).expect("read master config");
            let variant: Vec<String> = text
                .lines()
                .filter(|l| !l.starts_with("root_dir:") && !l.starts_with("sock_dir:"))
                .map(str::to_string)
                .chain([
                    "root_dir: /".to_string(),
                    format!("sock_dir: {}/master", run_salt.display()),
                ])
                .collect();
            let path = wd.join("master");
            write_file(&path, &(variant.join("\n") + "\n"), 0o644);
            path
        } else {
            env.master_config.clone()
        };
        let mut common = subs(&env, &tls);
        common.retain(|(k, _)| *k != "@MASTER_CONFIG@");
        common.push(("@MASTER_CONFIG@", config.display().to_string()));
        let apache = apache_cgid(&wd, &common, &binary, web_gid);
        let client = Client::new(&wd, &format!("https://127.0.0.1:{}/", apache.port), &tls);
        let mut checks = Checks::new(&format!("apache-cgi-without-master-group ({layout})"));
        let r = client.post_json(
            &json!([env.chunk("local", json!({"tgt": "*", "fun": "test.ping"}))]),
            Framing::ContentLength,
        );
        checks.record(&r);
        let names_the_fix = |text: &str| {
            let t = text.to_ascii_lowercase();
            t.contains("user") && t.contains("group")
        };
        checks.check(
            r.status == 503
                && r.json()
                    .is_some_and(|j| j["return"].as_str().is_some_and(names_the_fix)),
            "sync local without access to the event bus: 503 that names the fix (the master's user/group)",
            &r,
        );
        let r = client.post_json(
            &json!([env.chunk("wheel", json!({"fun": "key.list_all"}))]),
            Framing::ContentLength,
        );
        checks.check(
            r.status == 200,
            "wheel needs only ret_port: works without the master's group",
            &r,
        );
        let logged = wd.logs().iter().any(|(_, t)| {
            t.lines().any(|l| {
                l.contains("salt-fcgi[") && l.to_ascii_lowercase().contains("permission denied")
            })
        });
        if !logged {
            checks.fail("the error log has no salt-fcgi line saying `permission denied`".into());
        }
        drop(apache);
        checks.finish(&wd);
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn apache_shared_hosting_cgi_bin() {
    let env = TestEnv::load();
    env.grant_master_group_access();
    let (_, master_gid) = env.master_ids();
    let wd = Workdir::new("shared");
    let tls = Tls::generate(&wd);
    // The account's home: the executable outside the web root, the shipped cgi-bin inside.
    wd.mkdir("home", 0o755);
    let binary = wd.install_binary("home/salt-fcgi/salt-fcgi");
    let docroot = wd.mkdir("home/public_html", 0o755);
    let cgi_bin = wd.mkdir("home/public_html/cgi-bin", 0o755);
    let htaccess = std::fs::read_to_string(shipped_path("apache/shared-hosting/cgi-bin/.htaccess"))
        .expect("read shipped .htaccess");
    write_file(&cgi_bin.join(".htaccess"), &htaccess, 0o644);
    let bin = binary.display().to_string();
    let conf = env.master_config.display().to_string();
    let wrapper = template(
        "apache/shared-hosting/cgi-bin/salt-api.cgi",
        &[("@BINARY@", &bin), ("@MASTER_CONFIG@", &conf)],
    );
    write_file(&cgi_bin.join("salt-api.cgi"), &wrapper, 0o755);
    // A file that must not be served from cgi-bin.
    write_file(&cgi_bin.join("notes.txt"), "private\n", 0o644);

    // The hosting company's side (not shipped): a TLS vhost whose document root allows the
    // overrides the docs require, and no more.
    let extra = format!("ScriptSock {}/cgid.sock\n", wd.join("apache/run").display());
    let (cert, key) = (
        tls.cert.display().to_string(),
        tls.key.display().to_string(),
    );
    let docroot_s = docroot.display().to_string();
    let logs = wd.join("apache/logs").display().to_string();
    let apache = Apache::start(&wd, &["mod_cgid", "mod_env"], &extra, master_gid, |port| {
        format!(
            "# The hosting company's vhost (test harness, not shipped).\n\
             <VirtualHost 127.0.0.1:{port}>\n\
             \x20   SSLEngine on\n\
             \x20   SSLCertificateFile {cert}\n\
             \x20   SSLCertificateKeyFile {key}\n\
             \x20   DocumentRoot {docroot_s}\n\
             \x20   ErrorLog {logs}/host-error.log\n\
             \x20   <Directory {docroot_s}>\n\
             \x20       Options SymLinksIfOwnerMatch\n\
             \x20       AllowOverride FileInfo AuthConfig Options=ExecCGI\n\
             \x20       Require all granted\n\
             \x20   </Directory>\n\
             </VirtualHost>\n"
        )
    });
    let base = format!("https://127.0.0.1:{}/cgi-bin/salt-api.cgi", apache.port);
    let client = Client::new(&wd, &base, &tls);
    let mut checks = Checks::new("apache-shared-hosting");
    run_suite(&client, &env, &mut checks, &wd.path);
    let other = Client::new(
        &wd,
        &format!("https://127.0.0.1:{}/cgi-bin/", apache.port),
        &tls,
    );
    for name in ["notes.txt", ".htaccess"] {
        let r = other.get(name);
        checks.check(
            r.status == 403,
            &format!("cgi-bin/{name} is not served"),
            &r,
        );
    }
    check_logs_clean(&wd, &wrong_password(&checks.path), &mut checks);
    drop(apache);
    let left = wait_no_processes(&wd, Duration::from_secs(5));
    if !left.is_empty() {
        checks.fail(format!("processes left after Apache stopped: {left:?}"));
    }
    checks.finish(&wd);
}

// ---------------------------------------------------------------------------------------
// nginx

/// Runs `cmd` as the master's user (as systemd's User= would) with `gid` as its group.
fn as_master_user(cmd: &mut std::process::Command, env: &TestEnv, gid: Option<u32>) {
    if !is_root() {
        return;
    }
    let (master_uid, _) = env.master_ids();
    if let Some(g) = gid {
        cmd.gid(g);
    }
    if master_uid != 0 {
        cmd.uid(master_uid);
    }
}

fn start_nginx(wd: &Workdir, env: &TestEnv, tls: &Tls, shipped: &str, socket: &Path) -> Nginx {
    let common = subs(env, tls);
    let socket = socket.display().to_string();
    Nginx::start(wd, |port| {
        let listen = format!("127.0.0.1:{port}");
        let mut s = as_refs(&common);
        s.retain(|(k, _)| *k != "@MASTER_CONFIG@");
        s.push(("@LISTEN@", &listen));
        s.push(("@SOCKET@", &socket));
        template(shipped, &s)
    })
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn nginx_to_salt_fcgi_socket() {
    let env = TestEnv::load();
    let wd = Workdir::new("nginx-listen");
    let tls = Tls::generate(&wd);
    let binary = wd.install_binary("bin/salt-fcgi");
    let run = wd.mkdir("run", 0o755);
    let socket = run.join("salt-fcgi.sock");
    let web_gid = user_ids(WEB_USER).map(|(_, g)| g);
    // What systemd/salt-fcgi-listen.service runs: User=<master's user>, Group=www-data.
    let mut cmd = clean_command(&binary);
    cmd.arg("--config")
        .arg(&env.master_config)
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .args(["--socket-mode", "660"])
        .stderr(log_file(&wd.join("logs/salt-fcgi.err")));
    as_master_user(&mut cmd, &env, web_gid);
    let mut sf = Daemon::spawn("salt-fcgi --listen", &mut cmd);
    wait_for_socket(&mut sf, &socket, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}{}", wd.log_dump()));
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    let nginx = start_nginx(&wd, &env, &tls, "nginx/salt-fcgi.conf", &socket);
    let client = Client::new(&wd, &format!("https://127.0.0.1:{}/", nginx.port), &tls);
    let mut checks = Checks::new("nginx-salt-fcgi-socket");
    if mode != 0o660 {
        checks.fail(format!("--socket-mode 660 gave a socket of mode {mode:o}"));
    }
    run_suite(&client, &env, &mut checks, &wd.path);
    if !salt_fcgi_logged(&wd, "serving FastCGI on unix:") {
        checks.fail("salt-fcgi did not log where it listens".into());
    }
    // The shipped site passes nginx's $request_id (fastcgi_param REQUEST_ID): the id
    // salt-fcgi answers with is the one in nginx's access log line of that request.
    let welcome = client.get("");
    let id = welcome
        .header("x-request-id")
        .unwrap_or_default()
        .to_string();
    let access = std::fs::read_to_string(wd.join("nginx/logs/access.log")).unwrap_or_default();
    checks.check(
        !id.is_empty() && access.lines().any(|l| l.ends_with(&format!(" rid={id}"))),
        "X-Request-Id is nginx's $request_id (in its access log)",
        &welcome,
    );

    // SIGTERM with a synchronous request in flight: the request completes with 200, new
    // connections are refused at once (nginx answers 502), then the process exits.
    let slow = slow_request(&env, 2);
    let (reply, during) = std::thread::scope(|s| {
        let h = s.spawn(|| client.post_json(&slow, Framing::ContentLength));
        std::thread::sleep(Duration::from_millis(800));
        sf.signal(libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(200));
        let during = client.get("");
        (h.join().expect("client thread"), during)
    });
    checks.check(
        ok_sleep(&env, &reply),
        "request in flight at SIGTERM completes with 200",
        &reply,
    );
    checks.check(
        during.status == 502 && during.elapsed < Duration::from_secs(2),
        "a new request after SIGTERM is refused at once (nginx 502)",
        &during,
    );
    match sf.wait_exit(Duration::from_secs(5)) {
        Some(s) if s.success() => {}
        other => checks.fail(format!(
            "salt-fcgi did not exit cleanly after SIGTERM: {other:?}"
        )),
    }
    if socket.exists() {
        checks.fail(format!("{} left behind after exit", socket.display()));
    }
    if !salt_fcgi_logged(&wd, "SIGTERM: finishing requests in flight") {
        checks.fail("salt-fcgi did not log the SIGTERM".into());
    }
    check_logs_clean(&wd, &wrong_password(&checks.path), &mut checks);
    drop(nginx);
    checks.finish(&wd);
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn nginx_to_spawn_fcgi() {
    let env = TestEnv::load();
    let spawn_fcgi = require("spawn-fcgi", "spawn-fcgi");
    let wd = Workdir::new("nginx-spawn");
    let tls = Tls::generate(&wd);
    let binary = wd.install_binary("bin/salt-fcgi");
    let run = wd.mkdir("run", 0o755);
    let socket = run.join("spawn.sock");
    // The command of nginx/salt-fcgi-spawn-fcgi.conf: the socket is handed to www-data,
    // salt-fcgi runs as the master's user (-u/-g; spawn-fcgi refuses uid/gid 0, and
    // running as root it then simply stays root, the test master's user).
    let mut cmd = clean_command(&spawn_fcgi);
    cmd.arg("-n").arg("-s").arg(&socket).args(["-M", "0660"]);
    if is_root() {
        cmd.args(["-U", WEB_USER, "-G", WEB_USER]);
        let (uid, gid) = env.master_ids();
        if uid != 0 {
            cmd.args(["-u", &uid.to_string()]);
        }
        if gid != 0 {
            cmd.args(["-g", &gid.to_string()]);
        }
    }
    cmd.arg("--")
        .arg(&binary)
        .arg("--config")
        .arg(&env.master_config)
        .stdout(log_file(&wd.join("logs/spawn-fcgi.log")))
        .stderr(log_file(&wd.join("logs/salt-fcgi.err")));
    let mut sf = Daemon::spawn("spawn-fcgi", &mut cmd);
    wait_for_socket(&mut sf, &socket, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}{}", wd.log_dump()));
    let nginx = start_nginx(&wd, &env, &tls, "nginx/salt-fcgi-spawn-fcgi.conf", &socket);
    let client = Client::new(&wd, &format!("https://127.0.0.1:{}/", nginx.port), &tls);
    let mut checks = Checks::new("nginx-spawn-fcgi");
    run_suite(&client, &env, &mut checks, &wd.path);
    if !salt_fcgi_logged(&wd, "serving FastCGI on unix socket on fd 0") {
        checks.fail(
            "salt-fcgi under spawn-fcgi did not log that it serves the inherited socket".into(),
        );
    }
    check_logs_clean(&wd, &wrong_password(&checks.path), &mut checks);
    drop(nginx);
    match sf.stop(Duration::from_secs(5)) {
        Some(s) if s.success() => {}
        other => checks.fail(format!(
            "salt-fcgi (spawn-fcgi -n) did not exit cleanly on SIGTERM: {other:?}"
        )),
    }
    checks.finish(&wd);
}

// ---------------------------------------------------------------------------------------
// systemd

/// `Key=value` lines of a unit file (comments skipped).
fn unit_keys(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn unit_get<'a>(keys: &'a [(String, String)], key: &str) -> Option<&'a str> {
    keys.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The shipped units pass `systemd-analyze verify`, and socket activation works the way
/// salt-fcgi.socket + salt-fcgi.service set it up: the test plays systemd — it owns the
/// listening socket (path mode and group from the .socket unit), starts the service's
/// ExecStart with the socket on standard input, and starts it again when it has exited.
/// Requests that arrive while no salt-fcgi runs wait in the socket's backlog. Covers the
/// idle and max-requests exits a socket-activated service relies on.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn systemd_socket_activation() {
    let env = TestEnv::load();
    let analyze = require("systemd-analyze", "systemd");
    let wd = Workdir::new("systemd");
    let tls = Tls::generate(&wd);
    let binary = wd.install_binary("bin/salt-fcgi");
    let bin = binary.display().to_string();
    let conf = env.master_config.display().to_string();
    let units = wd.mkdir("systemd", 0o755);
    let mut service_text = String::new();
    let mut socket_text = String::new();
    for name in [
        "salt-fcgi.socket",
        "salt-fcgi.service",
        "salt-fcgi-listen.service",
        "salt-fcgi-http.service",
    ] {
        let shipped = format!("systemd/{name}");
        let text = if name.ends_with(".socket") {
            std::fs::read_to_string(Path::new(REPO).join(&shipped)).expect("read unit")
        } else if name == "salt-fcgi-http.service" {
            let subs = [
                ("@BINARY@", bin.as_str()),
                ("@MASTER_CONFIG@", conf.as_str()),
                ("@HTTP@", "127.0.0.1:8001"),
            ];
            template(&shipped, &subs)
        } else {
            template(&shipped, &[("@BINARY@", &bin), ("@MASTER_CONFIG@", &conf)])
        };
        write_file(&units.join(name), &text, 0o644);
        match name {
            "salt-fcgi.service" => service_text = text,
            "salt-fcgi.socket" => socket_text = text,
            _ => {}
        }
    }
    if installed() {
        // The Debian package's own units (scripts/package filled in their placeholders),
        // given the test master's config the way an administrator would: a drop-in.
        for name in ["salt-fcgi.socket", "salt-fcgi.service"] {
            let path = Path::new(INSTALLED_UNITS).join(name);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("installed unit {}: {e}", path.display()));
            write_file(&units.join(name), &text, 0o644);
            match name {
                "salt-fcgi.service" => service_text = text,
                _ => socket_text = text,
            }
        }
        let dropin = format!("[Service]\nEnvironment=SALT_MASTER_CONFIG={conf}\n");
        write_file(
            &units.join("salt-fcgi.service.d/master.conf"),
            &dropin,
            0o644,
        );
        // A later assignment of the same variable wins, as in systemd.
        service_text.push_str(&dropin);
    }
    let mut checks = Checks::new("systemd-socket-activation");
    let mut verify = std::process::Command::new(&analyze);
    verify.arg("verify");
    if !installed() {
        // The units name `man:salt-fcgi(1)` as their documentation, which only the Debian
        // package installs (scripts/package checks it there).
        verify.arg("--man=no");
    }
    let out = verify
        .args(
            [
                "salt-fcgi.socket",
                "salt-fcgi.service",
                "salt-fcgi-listen.service",
                "salt-fcgi-http.service",
            ]
            .map(|n| units.join(n)),
        )
        .output()
        .expect("run systemd-analyze");
    let complaints: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("not safe") && !l.trim().is_empty())
        // Outside a booted systemd (containers) verify also reports the host's own units.
        .filter(|l| l.contains("salt-fcgi"))
        .map(str::to_string)
        .collect();
    if !out.status.success() || !complaints.is_empty() {
        checks.fail(format!(
            "systemd-analyze verify: {}\n{}",
            out.status,
            complaints.join("\n")
        ));
    }

    let service = unit_keys(&service_text);
    let socket_unit = unit_keys(&socket_text);
    if unit_get(&service, "StandardInput") != Some("socket") {
        checks.fail("salt-fcgi.service must take the socket on fd 0 (StandardInput=socket)".into());
    }
    if matches!(
        unit_get(&service, "StandardOutput"),
        None | Some("inherit" | "socket")
    ) {
        checks.fail(
            "salt-fcgi.service must not write stdout onto the socket (StandardOutput=journal)"
                .into(),
        );
    }
    if unit_get(&socket_unit, "Accept") != Some("no") {
        checks.fail("salt-fcgi.socket must pass the listening socket (Accept=no)".into());
    }
    for (key, want) in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict")] {
        if unit_get(&service, key) != Some(want) {
            checks.fail(format!("salt-fcgi.service must set {key}={want}"));
        }
    }
    // Played below as systemd applies it; salt-fcgi warns when its max_connections (the
    // test master's: the default) would not fit.
    let nofile: libc::rlim_t = unit_get(&service, "LimitNOFILE")
        .and_then(|v| v.parse().ok())
        .expect("salt-fcgi.service sets LimitNOFILE to a number");
    let exec: Vec<String> = unit_get(&service, "ExecStart")
        .expect("ExecStart in salt-fcgi.service")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let environment: Vec<(String, String)> = service
        .iter()
        .filter(|(k, _)| k == "Environment")
        .filter_map(|(_, v)| v.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mode = u32::from_str_radix(unit_get(&socket_unit, "SocketMode").unwrap_or("0666"), 8)
        .expect("SocketMode");
    let group = unit_get(&socket_unit, "SocketGroup")
        .unwrap_or("root")
        .to_string();

    // Play systemd: create the socket like salt-fcgi.socket says.
    let run = wd.mkdir("run", 0o755);
    let path = run.join("salt-fcgi.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind socket");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod socket");
    if is_root() {
        let gid = user_ids(&group)
            .map_or_else(|| panic!("SocketGroup {group}: no such group"), |(_, g)| g);
        std::os::unix::fs::chown(&path, None, Some(gid)).expect("chown socket");
    }
    let start = |extra: &[&str], n: usize| -> Daemon {
        let fd: OwnedFd = listener.try_clone().expect("dup socket").into();
        let mut cmd = clean_command(&exec[0]);
        cmd.args(&exec[1..])
            .args(extra)
            .envs(environment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::from(fd))
            .stderr(log_file(&wd.join(format!("logs/salt-fcgi-{n}.err"))));
        let limit = libc::rlimit {
            rlim_cur: nofile,
            rlim_max: nofile,
        };
        // SAFETY: setrlimit is async-signal-safe and reads only `limit`, a copy.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        as_master_user(&mut cmd, &env, None);
        Daemon::spawn("salt-fcgi (socket-activated)", &mut cmd)
    };
    let nginx = start_nginx(&wd, &env, &tls, "nginx/salt-fcgi.conf", &path);
    let client = Client::new(&wd, &format!("https://127.0.0.1:{}/", nginx.port), &tls);
    let ping = json!([env.chunk("local", json!({"tgt": "*", "fun": "test.ping"}))]);
    let pinged = |r: &Reply| {
        r.status == 200
            && r.json()
                .is_some_and(|j| env.minions.iter().all(|m| j["return"][0][m] == json!(true)))
    };

    // 1. Started with --idle-timeout: serves, then exits by itself when idle.
    let mut first = start(&["--idle-timeout", "1"], 1);
    let r = client.post_json(&ping, Framing::ContentLength);
    checks.record(&r);
    checks.check(
        pinged(&r),
        "sync local through the socket-activated service",
        &r,
    );
    match first.wait_exit(Duration::from_secs(5)) {
        Some(s) if s.success() => {}
        other => checks.fail(format!(
            "--idle-timeout 1: no clean exit within 5 s: {other:?}"
        )),
    }

    // 2. A request while nothing runs waits in the backlog; "systemd" starts the service
    //    again (this time with --max-requests 2) and the request is answered.
    let second = std::thread::scope(|s| {
        let h = s.spawn(|| client.post_json(&ping, Framing::ContentLength));
        std::thread::sleep(Duration::from_millis(500));
        let d = start(&["--max-requests", "2"], 2);
        (h.join().expect("client thread"), d)
    });
    let (queued, mut second) = second;
    checks.check(
        pinged(&queued) && queued.elapsed >= Duration::from_millis(400),
        "a request queued while no salt-fcgi ran is served once it starts",
        &queued,
    );
    let r = client.get("");
    checks.check(
        r.status == 200,
        "second request to the --max-requests 2 instance",
        &r,
    );
    match second.wait_exit(Duration::from_secs(5)) {
        Some(s) if s.success() => {}
        other => checks.fail(format!(
            "--max-requests 2: no clean exit after two requests: {other:?}"
        )),
    }

    // 3. And once more, stopped with SIGTERM like `systemctl stop`.
    let mut third = start(&[], 3);
    let r = client.post_json(&ping, Framing::ContentLength);
    checks.check(pinged(&r), "third start serves", &r);
    match third.stop(Duration::from_secs(5)) {
        Some(s) if s.success() => {}
        other => checks.fail(format!("SIGTERM: no clean exit: {other:?}")),
    }
    if !salt_fcgi_logged(&wd, "idle timeout") {
        checks.fail("salt-fcgi did not log its idle exit".into());
    }
    if salt_fcgi_logged(&wd, "max_connections is") {
        checks.fail(format!(
            "LimitNOFILE={nofile} does not fit the default max_connections"
        ));
    }
    drop(nginx);
    drop(listener);
    let left = wait_no_processes(&wd, Duration::from_secs(5));
    if !left.is_empty() {
        checks.fail(format!("processes left: {left:?}"));
    }
    checks.finish(&wd);
}

/// `salt-fcgi --listen unix:<socket>` as the master's user with group www-data, as
/// systemd/salt-fcgi-listen.service runs it.
fn spawn_listener(wd: &Workdir, env: &TestEnv, binary: &Path, socket: &Path, log: &str) -> Daemon {
    let web_gid = user_ids(WEB_USER).map(|(_, g)| g);
    let mut cmd = clean_command(binary);
    cmd.arg("--config")
        .arg(&env.master_config)
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .stderr(log_file(&wd.join(format!("logs/{log}"))));
    as_master_user(&mut cmd, env, web_gid);
    let mut d = Daemon::spawn("salt-fcgi --listen", &mut cmd);
    wait_for_socket(&mut d, socket, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}{}", wd.log_dump()));
    d
}

/// Two salt-fcgi processes behind one nginx `upstream` (round-robin), with no session
/// state of their own: a token from /login on one works on the other, and /logout on one
/// ends it on both. Then the pepper CLI through the same nginx.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn nginx_upstream_of_two_processes_shares_sessions() {
    let env = TestEnv::load();
    let wd = Workdir::new("nginx-upstream");
    let tls = Tls::generate(&wd);
    let binary = wd.install_binary("bin/salt-fcgi");
    let run = wd.mkdir("run", 0o755);
    let sockets = [run.join("a.sock"), run.join("b.sock")];
    let _a = spawn_listener(&wd, &env, &binary, &sockets[0], "a.err");
    let _b = spawn_listener(&wd, &env, &binary, &sockets[1], "b.err");
    let common_subs = subs(&env, &tls);
    let nginx = Nginx::start(&wd, |port| {
        let listen = format!("127.0.0.1:{port}");
        let mut s = as_refs(&common_subs);
        s.retain(|(k, _)| *k != "@MASTER_CONFIG@");
        s.push(("@LISTEN@", &listen));
        s.push(("@SOCKET@", "POOL"));
        let site = template("nginx/salt-fcgi.conf", &s);
        assert!(
            site.contains("    server unix:POOL;\n") && site.contains("fastcgi_pass salt_fcgi;"),
            "shipped nginx config changed"
        );
        // The shipped upstream (with its keep-alive), holding both processes.
        site.replace(
            "    server unix:POOL;\n",
            &format!(
                "    server unix:{};\n    server unix:{};\n",
                sockets[0].display(),
                sockets[1].display()
            ),
        )
    });
    let client = Client::new(&wd, &format!("https://127.0.0.1:{}/", nginx.port), &tls);
    let mut checks = Checks::new("nginx-upstream");
    let (r, token) = login(&client, &env, &[]);
    checks.record(&r);
    let header = vec!["-H".to_string(), format!("X-Auth-Token: {token}")];
    let stats = |checks: &mut Checks, want: u16| {
        let mut pids = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let r =
                client.request_with("GET", "stats", &header, None, None, Framing::ContentLength);
            checks.check(
                r.status == want,
                &format!("GET /stats is {want} on every process"),
                &r,
            );
            if let Some(pid) = r.json().and_then(|j| j["salt-fcgi"]["pid"].as_u64()) {
                pids.insert(pid);
            }
        }
        pids
    };
    let pids = stats(&mut checks, 200);
    if pids.len() != 2 {
        checks.fail(format!(
            "round-robin reached {} process(es), not 2: {pids:?}",
            pids.len()
        ));
    }
    let r = client.request_with(
        "POST",
        "logout",
        &header,
        None,
        None,
        Framing::ContentLength,
    );
    checks.check(r.status == 200, "POST /logout on one process", &r);
    stats(&mut checks, 401);
    checks.finish(&wd);

    // The pepper CLI, through the same nginx (a self-signed certificate: pepper's own flag).
    let home = wd.join("pepper-home");
    common::pepper_cli_everyday(
        &format!("https://127.0.0.1:{}/", nginx.port),
        &["--ignore-ssl-errors"],
        &home,
    );
    // The other clients of the matrix (they trust the certificate through SSL_CERT_FILE;
    // peppa never verifies).
    let url = format!("https://127.0.0.1:{}", nginx.port);
    client_matrix::salt_mill_everyday(
        &format!("{url}/"),
        Some(&tls.cert),
        &wd.join("salt-mill-home"),
    );
    client_matrix::peppa_everyday(&url, &wd.join("peppa-home"));
    client_matrix::guajillo_everyday(&url, Some(&tls.cert), &wd.join("guajillo-home"));
}

/// What the page of `browser_session_through_the_webui_site` does, as SaltGUI does it:
/// `fetch` with no Content-Type (a browser sends text/plain), `X-Auth-Token: ""` before
/// login, then the session cookie only. It writes each step's status and body into the page.
const BROWSER_PAGE: &str = r#"<!doctype html>
<html><body><pre id="out">running</pre><script>
(async () => {
  const steps = [];
  const call = async (name, path, opts) => {
    const r = await fetch(path, Object.assign({credentials: "same-origin",
      headers: {"Accept": "application/json", "Cache-Control": "no-cache"}}, opts || {}));
    steps.push({name: name, status: r.status, body: (await r.text()).slice(0, 4000)});
  };
  try {
    await call("login", "/api/login", {method: "POST",
      headers: {"Accept": "application/json", "X-Auth-Token": ""},
      body: JSON.stringify({username: "@USER@", password: "@PASSWORD@", eauth: "file"})});
    await call("ping", "/api/", {method: "POST",
      body: JSON.stringify({client: "local", tgt: "*", fun: "test.ping"})});
    // SaltGUI's live view: an EventSource on the same origin, the cookie only.
    let jid = "?";
    const tags = await new Promise((resolve) => {
      const seen = [];
      const es = new EventSource("/api/events");
      const done = () => { es.close(); resolve(seen); };
      const mine = () => seen.filter((t) => t.startsWith("salt/job/" + jid + "/ret/"));
      setTimeout(done, 20000);
      es.onopen = () => fetch("/api/", {method: "POST",
          body: JSON.stringify({client: "local_async", tgt: "*", fun: "test.ping"})})
        .then((r) => r.json()).then((j) => { jid = j["return"][0].jid; });
      es.onmessage = (m) => {
        seen.push(JSON.parse(m.data).tag);
        if (mine().length >= @MINIONS@) done();
      };
      es.onerror = () => { seen.push("error"); done(); };
    });
    steps.push({name: "jid", body: jid});
    steps.push({name: "events", body: JSON.stringify(tags)});
    await call("stats", "/api/stats");
    await call("motd", "/api/static/salt-motd.txt");
    await call("logout", "/api/logout", {method: "POST", body: "{}"});
    await call("after", "/api/stats");
    steps.push({name: "cookie", body: document.cookie});
  } catch (e) {
    steps.push({name: "error", body: String(e)});
  }
  document.getElementById("out").textContent = "RESULT" + JSON.stringify(steps) + "END";
})();
</script></body></html>
"#;

/// A WebSocket client (Python's websocket-client from the Salt venv) as salt-netapi-client
/// uses `/ws/<token>`, through nginx's `/api/ws/` proxy: logs in, sends `websocket client
/// ready`, starts a job, and returns the job's jid followed by every tag it saw until all
/// the minions' returns arrived.
fn websocket_tags(env: &TestEnv, port: u16) -> Vec<String> {
    let code = format!(
        r#"
import json, ssl, urllib.request, websocket
base = "https://127.0.0.1:{port}/api"
ctx = ssl._create_unverified_context()
def post(path, body, token=None):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {{"Content-Type": "application/json"}})
    if token: req.add_header("X-Auth-Token", token)
    return json.loads(urllib.request.urlopen(req, context=ctx, timeout=30).read())
token = post("/login", {{"username": {user:?}, "password": {password:?}, "eauth": "file"}})["return"][0]["token"]
ws = websocket.create_connection("wss://127.0.0.1:{port}/api/ws/" + token, sslopt={{"cert_reqs": ssl.CERT_NONE}}, timeout=20)
ws.send("websocket client ready")
jid = post("/", [{{"client": "local_async", "tgt": "*", "fun": "test.ping"}}], token)["return"][0]["jid"]
tags = [jid]
while len([t for t in tags if t.startswith("salt/job/" + jid + "/ret/")]) < {n}:
    msg = ws.recv()
    assert msg.startswith("data: ") and msg.endswith("\n\n"), msg
    tags.append(json.loads(msg[6:])["tag"])
ws.close()
print(json.dumps(tags))
"#,
        user = env.user,
        password = env.password,
        n = env.minions.len(),
    );
    let out = std::process::Command::new(common::env().venv.join("bin/python"))
        .args(["-c", &code])
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "WebSocket client failed ({e}): {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A real browser (Debian's chromium, headless) logs in through the shipped web-UI site
/// (nginx: static files at /, salt-fcgi under /api/), runs a command, watches a job's events
/// through an `EventSource` and reads /stats with the session cookie only (and a WebSocket
/// client reads the same through nginx → `salt-fcgi --http`), sees a JSON 404 for SaltGUI's optional motd file, and logs out;
/// the cookie is never visible to the page's JavaScript (HttpOnly).
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn browser_session_through_the_webui_site() {
    let env = TestEnv::load();
    require("chromium", "chromium"); // before anything is started
    let wd = Workdir::new("browser");
    let tls = Tls::generate(&wd);
    let binary = wd.install_binary("bin/salt-fcgi");
    let run = wd.mkdir("run", 0o755);
    let socket = run.join("salt-fcgi.sock");
    let _sf = spawn_listener(&wd, &env, &binary, &socket, "salt-fcgi.err");
    // The WebSocket side: salt-fcgi --http, which nginx proxies /api/ws/ to.
    let http_port = free_port();
    let http_addr = format!("127.0.0.1:{http_port}");
    let mut cmd = clean_command(&binary);
    cmd.arg("--config")
        .arg(&env.master_config)
        .args(["--http", &http_addr])
        .stderr(log_file(&wd.join("logs/salt-fcgi-http.err")));
    as_master_user(&mut cmd, &env, None);
    let mut sf_http = Daemon::spawn("salt-fcgi --http", &mut cmd);
    wait_for_port(&mut sf_http, http_port, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}{}", wd.log_dump()));
    let ui = wd.mkdir("webui", 0o755);
    let page = BROWSER_PAGE
        .replace("@MINIONS@", &env.minions.len().to_string())
        .replace("@USER@", &env.user)
        .replace("@PASSWORD@", &env.password);
    write_file(&ui.join("index.html"), &page, 0o644);
    let common_subs = subs(&env, &tls);
    let (sock, root) = (socket.display().to_string(), ui.display().to_string());
    let nginx = Nginx::start(&wd, |port| {
        let listen = format!("127.0.0.1:{port}");
        let mut s = as_refs(&common_subs);
        s.retain(|(k, _)| *k != "@MASTER_CONFIG@");
        s.push(("@LISTEN@", &listen));
        s.push(("@SOCKET@", &sock));
        s.push(("@WEBUI_ROOT@", &root));
        s.push(("@HTTP@", &http_addr));
        template("nginx/salt-fcgi-webui.conf", &s)
    });
    let profile = wd.mkdir("chromium-profile", 0o700);
    let url = format!("https://127.0.0.1:{}/", nginx.port);
    let out = headless_chromium(&profile, &url, 30_000);
    let dom = String::from_utf8_lossy(&out.stdout);
    let result = dom
        .split_once("RESULT")
        .and_then(|(_, rest)| rest.split_once("END"))
        .map_or_else(
            || {
                panic!(
                    "the page did not finish: {dom}\n{}{}",
                    String::from_utf8_lossy(&out.stderr),
                    wd.log_dump()
                )
            },
            |(json, _)| json.replace("&quot;", "\"").replace("&amp;", "&"),
        );
    let steps: serde_json::Value = serde_json::from_str(&result).expect("steps JSON");
    let step = |name: &str| {
        steps
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no step {name} in {steps}"))
    };
    let body = |name: &str| -> serde_json::Value {
        serde_json::from_str(step(name)["body"].as_str().unwrap_or_default()).unwrap_or_default()
    };
    assert_eq!(step("login")["status"], 200, "{steps}");
    assert!(
        body("login")["return"][0]["perms"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    assert_eq!(step("ping")["status"], 200, "{steps}");
    for m in &env.minions {
        assert_eq!(body("ping")["return"][0][m], json!(true), "{steps}");
    }
    let tags = body("events");
    let tags: Vec<String> = tags
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let jid = step("jid")["body"].as_str().unwrap_or_default().to_string();
    assert!(
        tags.contains(&format!("salt/job/{jid}/new")),
        "{jid}: {tags:?}"
    );
    for m in &env.minions {
        assert!(
            tags.contains(&format!("salt/job/{jid}/ret/{m}")),
            "{tags:?}"
        );
    }
    // salt-netapi-client's live view: a WebSocket at /api/ws/<token> through the same nginx
    // (→ salt-fcgi --http), read by the websocket-client package over TLS.
    let ws_tags = websocket_tags(&env, nginx.port);
    let jid = ws_tags.first().cloned().unwrap_or_default();
    assert!(
        ws_tags.contains(&format!("salt/job/{jid}/new")),
        "{ws_tags:?}"
    );
    for m in &env.minions {
        assert!(
            ws_tags.contains(&format!("salt/job/{jid}/ret/{m}")),
            "{ws_tags:?}"
        );
    }
    assert_eq!(step("stats")["status"], 200, "{steps}");
    assert_eq!(step("motd")["status"], 404, "{steps}");
    assert_eq!(
        body("logout")["return"],
        json!("Your token has been cleared")
    );
    assert_eq!(step("after")["status"], 401, "{steps}");
    assert_eq!(
        step("cookie")["body"],
        json!(""),
        "HttpOnly cookie seen by JavaScript"
    );
    // The cookie is for the mount point, /api, and only over TLS.
    let client = Client::new(&wd, &format!("https://127.0.0.1:{}/api/", nginx.port), &tls);
    let (r, _) = login(&client, &env, &[]);
    let cookie = r.header("Set-Cookie").unwrap_or_default();
    assert!(
        cookie.contains("; Path=/api;") && cookie.ends_with("; Secure"),
        "{cookie}"
    );
}
