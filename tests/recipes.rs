//! The docs' recipes, run as written: every fenced command block of docs/deploy.md and
//! README.md is a recipe (`recipe=NAME` in its info string, extracted by `scripts/recipes`).
//! The build runs in the checkout; every other recipe runs as root (or as the account it
//! names) on a scratch machine of its own (`scripts/scratch-machine`: systemd in a container
//! over a tmpfs overlay of this machine's root, private network), which has a salt-master
//! running as `salt` with two minions. Then the deploy suite's probes (login, `local`,
//! the session cookie, `/events`, logout, limits, a wrong password in no log) run against
//! the URL the recipe set up, from outside, through the machine's network.
//!
//! Nothing is copied from the docs by hand: edit a recipe and this runs the edited text.

use crate::deploy_support::{self, Checks, Workdir, check_logs_clean, run_suite, wrong_password};
use crate::recipe_support::*;

use std::time::{Duration, Instant};

/// Every recipe the docs have, and the URL its probes use (None: not a deployment of its
/// own; it runs as part of others).
const RECIPES: &[(&str, Option<&str>)] = &[
    ("build", None),
    ("build-static", None),
    ("package", None),
    ("quick-start", Some("http://127.0.0.1:8001/")),
    ("apache-fcgid", Some("https://salt-api.example.com/")),
    ("apache-cgid", Some("https://salt-api.example.com/")),
    ("shared-hosting-host", None),
    (
        "shared-hosting",
        Some("https://salt-api.example.com/~alice/cgi-bin/salt-api.cgi"),
    ),
    ("nginx-listen", Some("https://salt-api.example.com/")),
    (
        "nginx-listen-without-systemd",
        Some("https://salt-api.example.com/"),
    ),
    (
        "nginx-socket-activation",
        Some("https://salt-api.example.com/"),
    ),
    ("nginx-deb", Some("https://salt-api.example.com/")),
    ("nginx-spawn-fcgi", Some("https://salt-api.example.com/")),
    ("saltgui-download", None),
    ("saltgui", Some("https://salt.example.com/api/")),
];

/// Every command block is a recipe (or a transcript, `console`), and every recipe has a
/// test here: a block added to the docs is run by CI or this fails.
#[test]
fn every_command_block_is_a_recipe() {
    let mut wrong = Vec::new();
    for (at, info) in blocks() {
        let lang = info.split_whitespace().next().unwrap_or("");
        if matches!(lang, "sh" | "bash" | "shell") && !info.contains("recipe=") {
            wrong.push(format!(
                "{at}: ```{info} is a command block without recipe=NAME"
            ));
        }
    }
    let known: Vec<&str> = RECIPES.iter().map(|(n, _)| *n).collect();
    for r in recipes() {
        if !known.contains(&r.name.as_str()) {
            wrong.push(format!(
                "{}: recipe {} has no test in tests/recipes.rs",
                r.location, r.name
            ));
        }
        for n in &r.needs {
            if !known.contains(&n.as_str()) {
                wrong.push(format!(
                    "{}: {} needs unknown recipe {n}",
                    r.location, r.name
                ));
            }
        }
        assert!(
            !recipe_text(&r.name).trim().is_empty(),
            "recipe {} is empty",
            r.name
        );
    }
    for name in known {
        if !recipes().iter().any(|r| r.name == name) {
            wrong.push(format!(
                "tests/recipes.rs knows recipe {name}, the docs do not"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Polls `GET base` until it answers 200 (a service a recipe started may take a moment).
fn wait_healthy(client: &deploy_support::Client, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = client.get("");
        if r.status == 200 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "GET {} never answered 200: {}",
                client.base,
                r.summary()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Boots a machine, runs `name` with what it needs, and runs the deploy suite's probes
/// against `base`. `prepare` runs on the booted machine before the recipes.
fn deploy(
    name: &str,
    master: MasterSpec,
    accounts: &[&str],
    more: impl FnOnce(&Machine, &Workdir, &mut Checks),
) {
    let base = RECIPES
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, b)| *b)
        .unwrap_or_else(|| panic!("no URL for recipe {name}"));
    if let Err(e) = build_once() {
        panic!("{e}");
    }
    let wd = Workdir::new(&format!("recipe-{name}"));
    let machine = Machine::boot(&wd, name, master, accounts);
    if let Err(e) = machine.run_with_needs(&wd, name) {
        machine.collect_logs(&wd);
        panic!("{e}{}", wd.log_dump());
    }
    let client = machine.client(&wd, base);
    if let Err(e) = wait_healthy(&client, Duration::from_secs(30)) {
        machine.collect_logs(&wd);
        panic!("{e}{}", wd.log_dump());
    }
    let env = machine.salt_env();
    let mut checks = Checks::new(&format!("recipe {name}"));
    run_suite(&client, &env, &mut checks, &wd.path);
    more(&machine, &wd, &mut checks);
    machine.collect_logs(&wd);
    check_logs_clean(&wd, &wrong_password(&checks.path), &mut checks);
    checks.finish(&wd);
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn recipe_quick_start() {
    deploy("quick-start", MasterSpec::PACKAGED, &[], |_, _, _| {});
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn recipe_apache_fcgid() {
    deploy("apache-fcgid", MasterSpec::PACKAGED, &[], |_, _, _| {});
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn recipe_apache_cgid() {
    deploy("apache-cgid", MasterSpec::PACKAGED, &[], |_, _, _| {});
}

/// Shared hosting: the hosting company's side (a recipe of its own), then the account
/// holder's recipe as `alice`, whose own salt-master runs under her account from
/// ~/salt/master, as the docs require.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn recipe_shared_hosting() {
    let alice = MasterSpec {
        user: "alice",
        config_dir: "/home/alice/salt",
        root_dir: Some("/home/alice/salt"),
    };
    deploy("shared-hosting", alice, &["alice"], |m, wd, checks| {
        // Nothing but salt-api.cgi is served from the directory.
        let other = m.client(wd, "https://salt-api.example.com/~alice/cgi-bin/");
        for name in ["", ".htaccess", "salt-api.cgi.txt"] {
            let r = other.get(name);
            checks.check(
                r.status == 403 || r.status == 404,
                &format!("cgi-bin/{name} is not served (403/404)"),
                &r,
            );
        }
        // suexec ran it as alice: the journal of the CGI runs is in Apache's suexec log.
        let (_, log) = m.sh("cat /var/log/apache2/suexec.log 2>/dev/null");
        if !log.contains("uid: (") || !log.contains("alice") {
            checks.fail(format!("suexec did not run salt-api.cgi as alice: {log}"));
        }
    });
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn recipe_nginx_listen() {
    deploy("nginx-listen", MasterSpec::PACKAGED, &[], |m, _, checks| {
        let (_, state) = m.sh("systemctl is-active salt-fcgi-listen.service");
        if state.trim() != "active" {
            checks.fail(format!("salt-fcgi-listen.service is {state:?}"));
        }
    });
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn recipe_nginx_listen_without_systemd() {
    deploy(
        "nginx-listen-without-systemd",
        MasterSpec::PACKAGED,
        &[],
        |_, _, _| {},
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn recipe_nginx_socket_activation() {
    deploy(
        "nginx-socket-activation",
        MasterSpec::PACKAGED,
        &[],
        |m, _, checks| {
            // systemd started the service on the first connection.
            let (_, state) = m.sh("systemctl is-active salt-fcgi.socket salt-fcgi.service");
            if state.split_whitespace().collect::<Vec<_>>() != ["active", "active"] {
                checks.fail(format!("salt-fcgi.socket / .service: {state:?}"));
            }
        },
    );
}

/// The Debian package: its own units (the installed binary, hardened), started by systemd
/// on the first connection.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn recipe_nginx_deb() {
    deploy("nginx-deb", MasterSpec::PACKAGED, &[], |m, _, checks| {
        let (_, state) = m.sh("systemctl is-active salt-fcgi.socket salt-fcgi.service");
        if state.split_whitespace().collect::<Vec<_>>() != ["active", "active"] {
            checks.fail(format!("salt-fcgi.socket / .service: {state:?}"));
        }
        // FragmentPath is where systemd found the unit: /lib/… on merged-/usr Debian.
        let (_, show) = m.sh(
            "readlink -f $(systemctl show -P FragmentPath salt-fcgi.service); \
             systemctl show -P ProtectSystem salt-fcgi.service; \
             readlink /proc/$(systemctl show -P MainPID salt-fcgi.service)/exe",
        );
        let want = [
            "/usr/lib/systemd/system/salt-fcgi.service",
            "strict",
            "/usr/bin/salt-fcgi",
        ];
        if show.lines().map(str::trim).collect::<Vec<_>>() != want {
            checks.fail(format!("salt-fcgi.service is not the package's: {show:?}"));
        }
    });
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn recipe_nginx_spawn_fcgi() {
    deploy("nginx-spawn-fcgi", MasterSpec::PACKAGED, &[], |_, _, _| {});
}

/// Where CI keeps what a person would look at (screenshots); `.ci/run` lists it at the end.
fn artefacts() -> std::path::PathBuf {
    let dir = std::path::Path::new(deploy_support::REPO).join("target/ci-artefacts");
    std::fs::create_dir_all(&dir).expect("mkdir target/ci-artefacts");
    dir
}

/// Real SaltGUI, installed by the docs' recipe from its release tarball, in headless
/// chromium: log in, the minions page lists both minions with their OS, the events page
/// (after pressing play) shows a job's returns; screenshots in target/ci-artefacts/.
///
/// GitHub, where the recipe downloads SaltGUI from, is out of this machine's reach and
/// SaltGUI is on no package registry it reaches: the test serves the tarball named by
/// `SALT_FCGI_SALTGUI_TARBALL` under github.com's name inside the scratch machine (a
/// certificate from the machine's CA), so the recipe's download runs as written. Without
/// that file the test cannot run: it is ignored unless scripts/test is given the file.
#[test]
#[ignore = "needs SaltGUI's release tarball in SALT_FCGI_SALTGUI_TARBALL (scripts/test runs it then; it skips it otherwise)"]
fn recipe_saltgui() {
    let tarball = std::env::var_os("SALT_FCGI_SALTGUI_TARBALL")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
        .expect("SALT_FCGI_SALTGUI_TARBALL names no file");
    if let Err(e) = build_once() {
        panic!("{e}");
    }
    let wd = Workdir::new("recipe-saltgui");
    let machine = Machine::boot(&wd, "saltgui", MasterSpec::PACKAGED, &[]);
    let fail = |m: &Machine, e: String| -> ! {
        m.collect_logs(&wd);
        panic!("{e}{}", wd.log_dump());
    };
    // The stand-in for github.com: the tarball at the URL the recipe downloads.
    let url = recipe_text("saltgui-download")
        .split_whitespace()
        .find(|w| w.starts_with("https://github.com/"))
        .map(str::to_string)
        .expect("the saltgui-download recipe downloads from https://github.com/");
    let mirror = wd.mkdir("github", 0o755);
    let served = mirror.join(url.trim_start_matches("https://github.com/"));
    std::fs::create_dir_all(served.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&tarball, &served).expect("copy the SaltGUI tarball");
    let (_, cert, key) = machine
        .pki
        .extra
        .iter()
        .find(|(n, _, _)| n == "github.com")
        .cloned()
        .expect("a github.com certificate");
    machine.sh("echo '127.0.0.1 github.com' >> /etc/hosts");
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!("--net=/proc/{}/ns/net", machine.leader))
        .args([
            "--", "openssl", "s_server", "-quiet", "-WWW", "-accept", "443",
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .current_dir(&mirror)
        .stdin(std::process::Stdio::null())
        .stdout(deploy_support::log_file(
            &wd.join("logs/github-stand-in.log"),
        ))
        .stderr(deploy_support::log_file(
            &wd.join("logs/github-stand-in.err"),
        ));
    let mut stand_in = deploy_support::Daemon::spawn("github.com stand-in", &mut cmd);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !machine.sh("curl -so /dev/null https://github.com/").0 {
        assert!(
            Instant::now() < deadline,
            "the github.com stand-in did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for r in with_needs("saltgui") {
        if let Err(e) = machine.run_recipe(&wd, &r) {
            fail(&machine, e);
        }
        if r.name == "saltgui-download" {
            stand_in.stop(Duration::from_secs(5));
        }
    }
    let base = "https://salt.example.com";
    let client = machine.client(&wd, &format!("{base}/api/"));
    if let Err(e) = wait_healthy(&client, Duration::from_secs(30)) {
        fail(&machine, e);
    }
    let env = machine.salt_env();
    let mut checks = Checks::new("recipe saltgui");
    run_suite(&client, &env, &mut checks, &wd.path);

    // SaltGUI itself, in chromium.
    let shots = artefacts();
    let profile = wd.mkdir("chromium-profile", 0o700);
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", machine.leader))
        .arg("--")
        .arg("timeout")
        .arg("180")
        .arg(machine.venv.join("bin/python"))
        .arg(std::path::Path::new(deploy_support::REPO).join("tests/saltgui_browser.py"))
        .args([base, USER, PASSWORD, &MINIONS.join(",")])
        .arg(&shots)
        .arg(&profile)
        .output()
        .expect("run tests/saltgui_browser.py");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let seen: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| serde_json::json!({"error": text.clone()}));
    if !out.status.success() {
        checks.fail(format!(
            "SaltGUI in chromium: {seen}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    } else {
        for m in MINIONS {
            let os = seen["os"][m].as_str().unwrap_or_default();
            if !os.contains("Debian") {
                checks.fail(format!(
                    "the minions page shows {m} with OS {os:?}, not Debian"
                ));
            }
        }
        eprintln!(
            "SaltGUI: minions {}, events of job {}: {}; screenshots {}/saltgui-{{minions,events}}.png",
            seen["os"],
            seen["jid"],
            seen["event_cells"],
            shots.display()
        );
    }

    // A WebSocket through /api/ws/<token> (salt-fcgi-http.service): its token must not
    // reach nginx's access log.
    let (_, token) = deploy_support::login(&client, &env, &[]);
    let python = machine.venv.join("bin/python");
    let ws = format!(
        "{} -c \"import websocket; ws = websocket.create_connection('wss://salt.example.com/api/ws/{token}', timeout=20); ws.send('websocket client ready'); ws.close(); print('ws ok')\"",
        python.display()
    );
    let (ok, said) = machine.sh(&ws);
    if !ok || !said.contains("ws ok") {
        checks.fail(format!("WebSocket through /api/ws/: {said}"));
    }
    machine.collect_logs(&wd);
    let access =
        std::fs::read_to_string(wd.join("logs/machine/nginx-access.log")).unwrap_or_default();
    if token.is_empty() || access.contains(&token) {
        checks.fail(format!(
            "nginx's access log holds the session token {token:?}"
        ));
    }
    if !access.contains("POST /api/login") {
        checks.fail("nginx's access log has no /api/login line (wrong log looked at?)".into());
    }
    check_logs_clean(&wd, &wrong_password(&checks.path), &mut checks);
    checks.finish(&wd);
}
