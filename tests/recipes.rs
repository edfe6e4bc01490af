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
fn recipe_quick_start() {
    deploy("quick-start", MasterSpec::PACKAGED, &[], |_, _, _| {});
}

#[test]
fn recipe_apache_fcgid() {
    deploy("apache-fcgid", MasterSpec::PACKAGED, &[], |_, _, _| {});
}

#[test]
fn recipe_apache_cgid() {
    deploy("apache-cgid", MasterSpec::PACKAGED, &[], |_, _, _| {});
}

/// Shared hosting: the hosting company's side (a recipe of its own), then the account
/// holder's recipe as `alice`, whose own salt-master runs under her account from
/// ~/salt/master, as the docs require.
#[test]
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
fn recipe_nginx_listen() {
    deploy("nginx-listen", MasterSpec::PACKAGED, &[], |m, _, checks| {
        let (_, state) = m.sh("systemctl is-active salt-fcgi-listen.service");
        if state.trim() != "active" {
            checks.fail(format!("salt-fcgi-listen.service is {state:?}"));
        }
    });
}

#[test]
fn recipe_nginx_listen_without_systemd() {
    deploy(
        "nginx-listen-without-systemd",
        MasterSpec::PACKAGED,
        &[],
        |_, _, _| {},
    );
}

#[test]
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

#[test]
fn recipe_nginx_spawn_fcgi() {
    deploy("nginx-spawn-fcgi", MasterSpec::PACKAGED, &[], |_, _, _| {});
}
