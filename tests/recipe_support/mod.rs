//! Support for `tests/recipes.rs`: the docs' recipes (fenced blocks marked `recipe=NAME`,
//! extracted by `scripts/recipes`), run as written on a scratch machine
//! (`scripts/scratch-machine`: this machine's root file system under a tmpfs overlay,
//! booted with systemd in a container with a private network), then probed from outside
//! with the deploy suite's requests.
//!
//! What the harness provides is what every recipe presupposes, and nothing a recipe does:
//! a salt-master with two minions (Salt from the test venv, run by systemd units), the
//! master's user, the TLS certificate the recipes name, the names `salt-api.example.com`
//! and `salt.example.com` for 127.0.0.1, and the administrator's shell in the checkout.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::deploy_support::{
    Client, Daemon, REPO, TestEnv, Workdir, is_root, log_file, require, write_file,
};

/// The host names the recipes use; the machine resolves them to 127.0.0.1.
pub const API_HOST: &str = "salt-api.example.com";
pub const WEBUI_HOST: &str = "salt.example.com";
/// The full-access eauth user of the machine's master (file eauth).
pub const USER: &str = "saltdev";
pub const PASSWORD: &str = "saltdev";
/// The machine's minions.
pub const MINIONS: [&str; 2] = ["ms-0", "ms-1"];

// ---------------------------------------------------------------------------------------
// Recipes as the docs have them

/// One recipe: its name, where it starts, and its attributes.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub name: String,
    /// `FILE:LINE` of its first block.
    pub location: String,
    /// Recipes that run first, on the same machine.
    pub needs: Vec<String>,
    /// The account that runs it (None: root).
    pub user: Option<String>,
    /// It runs in the checkout on this machine (the build), not on a scratch machine.
    pub in_checkout: bool,
}

fn recipes_script(args: &[&str]) -> String {
    let out = Command::new(Path::new(REPO).join("scripts/recipes"))
        .args(args)
        .output()
        .expect("run scripts/recipes");
    assert!(
        out.status.success(),
        "scripts/recipes {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 recipes")
}

/// Every recipe of README.md and docs/deploy.md (`scripts/recipes list`).
pub fn recipes() -> Vec<Recipe> {
    let mut out: Vec<Recipe> = Vec::new();
    for line in recipes_script(&["list"]).lines() {
        let mut cols = line.split('\t');
        let (Some(name), Some(location), Some(info)) = (cols.next(), cols.next(), cols.next())
        else {
            panic!("scripts/recipes list: bad line {line:?}");
        };
        let mut needs = Vec::new();
        let mut user = None;
        let mut in_checkout = false;
        for word in info.split_whitespace() {
            if let Some(v) = word.strip_prefix("needs=") {
                needs.extend(v.split(',').map(str::to_string));
            } else if let Some(v) = word.strip_prefix("user=") {
                user = Some(v.to_string());
            } else if word == "scope=checkout" {
                in_checkout = true;
            }
        }
        match out.iter_mut().find(|r| r.name == name) {
            // A later block of the same recipe: attributes add up.
            Some(r) => {
                r.needs.extend(needs);
                r.user = r.user.take().or(user);
                r.in_checkout |= in_checkout;
            }
            None => out.push(Recipe {
                name: name.to_string(),
                location: location.to_string(),
                needs,
                user,
                in_checkout,
            }),
        }
    }
    out
}

/// The commands of a recipe, exactly as the docs have them (`scripts/recipes show`).
pub fn recipe_text(name: &str) -> String {
    recipes_script(&["show", name])
}

/// Every fenced block of the two files: `FILE:LINE` and its info string.
pub fn blocks() -> Vec<(String, String)> {
    recipes_script(&["blocks"])
        .lines()
        .map(|l| {
            let (a, b) = l.split_once('\t').unwrap_or((l, ""));
            (a.to_string(), b.to_string())
        })
        .collect()
}

/// `name` and what it needs, needs first, each once.
pub fn with_needs(name: &str) -> Vec<Recipe> {
    fn visit(name: &str, all: &[Recipe], out: &mut Vec<Recipe>, path: &mut Vec<String>) {
        assert!(
            !path.iter().any(|p| p == name),
            "recipes need each other in a circle: {path:?} -> {name}"
        );
        if out.iter().any(|r| r.name == name) {
            return;
        }
        let r = all
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no recipe named {name} (needed by {path:?})"))
            .clone();
        path.push(name.to_string());
        for n in &r.needs {
            visit(n, all, out, path);
        }
        path.pop();
        out.push(r);
    }
    let all = recipes();
    let mut out = Vec::new();
    visit(name, &all, &mut out, &mut Vec::new());
    out
}

/// A recipe's text as a script: `set -e` (stop at the first failing command) and `set -x`
/// (each command in the log before it runs), then the recipe.
fn as_script(name: &str) -> String {
    format!(
        "# recipe {name}, from scripts/recipes show {name}\nset -ex\n{}",
        recipe_text(name)
    )
}

/// PATH for the recipes: Debian's, plus the directory of the cargo running the tests (the
/// build recipe's `cargo`).
fn recipe_path() -> String {
    let cargo = std::env::var("CARGO")
        .ok()
        .or_else(|| option_env!("CARGO").map(str::to_string))
        .map(PathBuf::from)
        .and_then(|c| c.parent().map(Path::to_path_buf));
    let mut path = String::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    if let Some(dir) = cargo {
        path = format!("{}:{path}", dir.display());
    }
    path
}

/// Runs the checkout recipes (the build) once per test run, in the checkout on this machine.
pub fn build_once() -> Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            for r in recipes().into_iter().filter(|r| r.in_checkout) {
                let log = std::env::temp_dir().join(format!(
                    "salt-fcgi-recipe-{}-{}.log",
                    r.name,
                    std::process::id()
                ));
                let status = Command::new("bash")
                    .arg("-c")
                    .arg(as_script(&r.name))
                    .current_dir(REPO)
                    .env("PATH", recipe_path())
                    .stdin(Stdio::null())
                    .stdout(log_file(&log))
                    .stderr(log_file(&log.with_extension("err")))
                    .status()
                    .map_err(|e| format!("cannot run bash: {e}"))?;
                if !status.success() {
                    return Err(format!(
                        "recipe {} ({}) failed ({status}) in the checkout:\n{}{}",
                        r.name,
                        r.location,
                        fs::read_to_string(&log).unwrap_or_default(),
                        fs::read_to_string(log.with_extension("err")).unwrap_or_default()
                    ));
                }
            }
            Ok(())
        })
        .clone()
}

// ---------------------------------------------------------------------------------------
// Certificates

/// A test CA and the certificates the recipes name: the API's (for `API_HOST` and
/// `WEBUI_HOST`), installed where the docs say, and the CA in the machine's trust store.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A certificate for another host name (a stand-in download server), and its key.
    pub extra: Vec<(String, PathBuf, PathBuf)>,
}

fn openssl(args: &[&str]) {
    let out = Command::new(require("openssl", "openssl"))
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A CA, and one certificate for each of `names` (the first is the API's).
    pub fn generate(dir: &Path, names: &[&[&str]]) -> Pki {
        fs::create_dir_all(dir).expect("mkdir pki");
        let p = |f: &str| dir.join(f).display().to_string();
        openssl(&[
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
            "/CN=salt-fcgi recipes test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ]);
        let mut issued = Vec::new();
        for (i, dns) in names.iter().enumerate() {
            let (key, csr, cert) = (
                p(&format!("{i}.key")),
                p(&format!("{i}.csr")),
                p(&format!("{i}.pem")),
            );
            openssl(&[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={}", dns[0]),
                "-keyout",
                &key,
                "-out",
                &csr,
            ]);
            let san = dns
                .iter()
                .map(|d| format!("DNS:{d}"))
                .collect::<Vec<_>>()
                .join(",");
            let ext = dir.join(format!("{i}.ext"));
            fs::write(
                &ext,
                format!("subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"),
            )
            .expect("write ext");
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &p("ca.pem"),
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext.display().to_string(),
                "-out",
                &cert,
            ]);
            issued.push((dns[0].to_string(), PathBuf::from(cert), PathBuf::from(key)));
        }
        let (_, cert, key) = issued.remove(0);
        Pki {
            ca: dir.join("ca.pem"),
            cert,
            key,
            extra: issued,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The scratch machine

/// Who runs the machine's salt-master, and from which config.
#[derive(Debug, Clone)]
pub struct MasterSpec {
    /// The master's user (`user:` in its config; created on the machine).
    pub user: &'static str,
    /// The config directory (`salt-master -c DIR`); the config is DIR/master.
    pub config_dir: &'static str,
    /// `root_dir` (None: Salt's default layout below /).
    pub root_dir: Option<&'static str>,
}

impl MasterSpec {
    /// Salt's packaged layout: user `salt`, /etc/salt/master.
    pub const PACKAGED: MasterSpec = MasterSpec {
        user: "salt",
        config_dir: "/etc/salt",
        root_dir: None,
    };

    /// The master config file.
    pub fn config(&self) -> String {
        format!("{}/master", self.config_dir)
    }
}

/// At most one scratch machine at a time: each boots systemd, a master and two minions on
/// a 2-core machine that also runs the other tests.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A booted scratch machine; powered off in `Drop`.
pub struct Machine {
    /// Its directory (bind-mounted at the same path inside).
    pub dir: PathBuf,
    /// PID (on this machine) of its systemd.
    pub leader: u32,
    pub master: MasterSpec,
    pub pki: Pki,
    /// The Salt venv the master and minions run from.
    pub venv: PathBuf,
    daemon: Daemon,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// Every directory above `path`, for `chmod o+x`.
fn ancestors(path: &Path) -> Vec<String> {
    path.ancestors()
        .skip(1)
        .filter(|d| d.as_os_str().len() > 1)
        .map(|d| d.display().to_string())
        .collect()
}

impl Machine {
    /// Boots a machine named `name` in `wd`, whose master runs as `master` says, and waits
    /// until the master answers and both minions return `test.ping`.
    pub fn boot(wd: &Workdir, name: &str, master: MasterSpec, accounts: &[&str]) -> Machine {
        assert!(
            is_root(),
            "the recipe tests boot scratch machines (systemd-nspawn): run scripts/test as root"
        );
        require("systemd-nspawn", "systemd-container");
        require("nsenter", "util-linux");
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = wd.mkdir("machine", 0o755);
        let venv = crate::common::env().venv.clone();
        let pki = Pki::generate(
            &dir.join("pki"),
            &[&[API_HOST, WEBUI_HOST], &["github.com"]],
        );
        let seed = dir.join("seed");
        write_seed(&seed, &master, &pki, &venv);
        write_file(
            &dir.join("setup.sh"),
            &setup_script(&master, accounts, &venv),
            0o644,
        );
        let short: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(40)
            .collect();
        let machine_name = format!("recipe-{short}");
        let mut cmd = Command::new(Path::new(REPO).join("scripts/scratch-machine"));
        cmd.arg(&dir)
            .arg(&machine_name)
            .arg(format!("--bind-ro={REPO}"))
            .stdin(Stdio::null())
            .stdout(log_file(&wd.join("logs/machine-console.log")))
            .stderr(log_file(&wd.join("logs/machine-console.err")));
        if !venv.starts_with(REPO) {
            cmd.arg(format!("--bind-ro={}", venv.display()));
        }
        let mut daemon = Daemon::spawn("scratch machine", &mut cmd);
        let leader = wait_for_leader(&mut daemon, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}{}", wd.log_dump()));
        let m = Machine {
            dir,
            leader,
            master,
            pki,
            venv,
            daemon,
            _turn: turn,
        };
        if let Err(e) = m.wait_ready(Duration::from_secs(180)) {
            m.collect_logs(wd);
            panic!("the scratch machine did not come up: {e}{}", wd.log_dump());
        }
        m
    }

    /// `nsenter` into the whole machine (mount, PID, network, … namespaces).
    pub fn enter(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.leader))
            .arg("--all")
            .arg("--")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `sh -c script` in the machine as root; its output and whether it succeeded.
    pub fn sh(&self, script: &str) -> (bool, String) {
        let out = self
            .enter()
            .args(["/bin/sh", "-c", script])
            .output()
            .expect("run nsenter");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// A path inside the machine, as seen from here.
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.leader))
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let (_, state) = self.sh("systemctl is-system-running --wait");
        let salt = format!(
            "{}/bin/salt -c {} '*' test.ping --out=json --static -t 5",
            self.venv.display(),
            self.master.config_dir
        );
        loop {
            let (failed, _) = self.sh("systemctl --quiet is-failed salt-master.service");
            if failed {
                let (_, log) = self.sh("journalctl --no-pager -n 40 -u salt-master.service");
                return Err(format!("the machine's salt-master failed:\n{log}"));
            }
            let (ok, out) = self.sh(&salt);
            if ok
                && MINIONS
                    .iter()
                    .all(|m| out.contains(&format!("\"{m}\": true")))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let (_, status) =
                    self.sh("systemctl --no-pager status 'salt-*'; journalctl --no-pager -n 60");
                return Err(format!(
                    "system state {state:?}; the minions do not answer test.ping within \
                     {timeout:?}: {out}\n{status}"
                ));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Runs one recipe (not its needs) as the docs have it, as root or its `user`, in the
    /// checkout; the commands and their output go to `wd/logs/recipe-NAME.log`.
    pub fn run_recipe(&self, wd: &Workdir, r: &Recipe) -> Result<(), String> {
        if r.in_checkout {
            return build_once();
        }
        let script = self.dir.join(format!("recipe-{}.sh", r.name));
        write_file(&script, &as_script(&r.name), 0o644);
        let log = wd.join(format!("logs/recipe-{}.log", r.name));
        let (home, user) = match &r.user {
            Some(u) => (format!("/home/{u}"), u.clone()),
            None => ("/root".to_string(), "root".to_string()),
        };
        let mut cmd = self.enter();
        cmd.arg("setpriv")
            .arg(format!("--reuid={user}"))
            .arg(format!("--regid={user}"))
            .arg("--init-groups")
            .args(["env", "-i"])
            .arg(format!("HOME={home}"))
            .arg(format!("USER={user}"))
            .arg(format!("LOGNAME={user}"))
            .arg(format!("PATH={}", recipe_path()))
            .args([
                "LANG=C.UTF-8",
                "TERM=dumb",
                "DEBIAN_FRONTEND=noninteractive",
            ])
            .args(["sh", "-c", "cd \"$0\" && exec bash \"$1\""])
            .arg(REPO)
            .arg(&script)
            .stdout(log_file(&log))
            .stderr(Stdio::from(
                fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("open recipe log"),
            ));
        let mut child = Daemon::spawn(&format!("recipe {}", r.name), &mut cmd);
        let status = child.wait_exit(Duration::from_secs(600));
        let text = fs::read_to_string(&log).unwrap_or_default();
        match status {
            Some(s) if s.success() => Ok(()),
            other => Err(format!(
                "recipe {} ({}) failed as {user} ({other:?}); what it printed:\n{text}",
                r.name, r.location
            )),
        }
    }

    /// Runs `name` and what it needs, in order.
    pub fn run_with_needs(&self, wd: &Workdir, name: &str) -> Result<(), String> {
        for r in with_needs(name) {
            self.run_recipe(wd, &r)?;
        }
        Ok(())
    }

    /// The probes' client for `base` (a URL on the machine): curl in the machine's network,
    /// trusting its CA, with the recipe host names resolved to 127.0.0.1.
    pub fn client(&self, wd: &Workdir, base: &str) -> Client {
        let net = format!("--net=/proc/{}/ns/net", self.leader);
        let mut args = Vec::new();
        for host in [API_HOST, WEBUI_HOST] {
            args.push("--resolve".to_string());
            args.push(format!("{host}:443:127.0.0.1"));
        }
        Client::with_cacert(wd, base, &self.pki.ca)
            .wrapped(vec!["nsenter".into(), net, "--".into()], args)
    }

    /// The test master of this machine, as the deploy suite's probes want it.
    pub fn salt_env(&self) -> TestEnv {
        let config = self.dir.join(format!("seed{}", self.master.config()));
        TestEnv {
            settings: salt_fcgi::internals::Settings::load(Some(&config))
                .unwrap_or_else(|e| panic!("the machine's master config: {e}")),
            master_config: config,
            minions: MINIONS
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            user: USER.into(),
            password: PASSWORD.into(),
        }
    }

    /// Copies the machine's logs into `wd/logs/machine/` (the journal, Apache's and nginx's
    /// logs), where the deploy suite's log checks and failure messages look.
    pub fn collect_logs(&self, wd: &Workdir) {
        let out = wd.mkdir("logs/machine", 0o755);
        let (_, journal) = self.sh("journalctl --no-pager -o short-precise");
        let _ = fs::write(out.join("journal.log"), journal);
        for dir in ["/var/log/apache2", "/var/log/nginx"] {
            let Ok(entries) = fs::read_dir(self.path(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let short = dir.rsplit('/').next().unwrap_or("log");
                let dest = out.join(format!("{short}-{}", name.trim_end_matches(".log")));
                let _ = fs::copy(e.path(), dest.with_extension("log"));
            }
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // SIGTERM: systemd-nspawn powers the container off; the overlay goes with it.
        self.daemon.stop(Duration::from_secs(30));
    }
}

/// Waits for the machine's systemd (the container's PID 1) to exist; its PID here.
fn wait_for_leader(daemon: &mut Daemon, timeout: Duration) -> Result<u32, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(pid) = container_init(daemon.pid()) {
            return Ok(pid);
        }
        if let Some(s) = daemon.try_wait() {
            return Err(format!("the scratch machine exited while starting ({s})"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the scratch machine did not boot within {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A descendant of `pid` that is PID 1 of its own PID namespace, running systemd.
fn container_init(pid: u32) -> Option<u32> {
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                let status = fs::read_to_string(format!("/proc/{c}/status")).unwrap_or_default();
                let ns_init = status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .is_some_and(|v| v.split_whitespace().last() == Some("1"));
                // systemd itself, not the set-up phase's stub init (systemd-nspawn).
                let exe = fs::read_link(format!("/proc/{c}/exe")).unwrap_or_default();
                if ns_init && exe.file_name().is_some_and(|n| n == "systemd") {
                    return Some(c);
                }
                todo.push(c);
            }
        }
    }
    None
}

/// The files the machine starts with: the master's and minions' configs and units, the
/// certificate the recipes name, the CA.
fn write_seed(seed: &Path, master: &MasterSpec, pki: &Pki, venv: &Path) {
    let root_dir = master
        .root_dir
        .map(|r| format!("root_dir: {r}\n"))
        .unwrap_or_default();
    let users = format!("{USER}:{PASSWORD}\n");
    let eauth_file = format!("{}/eauth-users.txt", master.config_dir);
    write_file(&seed.join(format!(".{eauth_file}")), &users, 0o640);
    let config = format!(
        "# The scratch machine's salt-master (tests/recipe_support, not shipped).\n\
         user: {user}\n{root_dir}\
         interface: 127.0.0.1\n\
         auto_accept: true\n\
         log_level_logfile: info\n\
         salt_fcgi: {{stream_heartbeat: 2}}\n\
         netapi_enable_clients: [local, local_async, local_batch, local_subset, runner, runner_async, wheel, wheel_async]\n\
         external_auth:\n  file:\n    ^filename: {eauth_file}\n    ^filetype: text\n\
         \x20   {USER}: ['.*', '@runner', '@wheel', '@jobs']\n",
        user = master.user,
    );
    write_file(&seed.join(format!(".{}", master.config())), &config, 0o644);
    for m in MINIONS {
        write_file(
            &seed.join(format!("etc/salt-minions/{m}/minion")),
            &format!(
                "id: {m}\nmaster: 127.0.0.1\nroot_dir: /var/lib/salt-minions/{m}\n\
                 acceptance_wait_time: 1\nrandom_reauth_delay: 0\nauth_tries: 20\n"
            ),
            0o644,
        );
    }
    let venv = venv.display();
    write_file(
        &seed.join("etc/systemd/system/salt-master.service"),
        &format!(
            "# The scratch machine's salt-master (tests/recipe_support).\n[Unit]\n\
             Description=salt-master\nAfter=network.target\n[Service]\n\
             ExecStart={venv}/bin/salt-master -c {}\nKillMode=process\n",
            master.config_dir
        ),
        0o644,
    );
    write_file(
        &seed.join("etc/systemd/system/salt-minion@.service"),
        &format!(
            "# The scratch machine's minions (tests/recipe_support).\n[Unit]\n\
             Description=salt-minion %i\nAfter=salt-master.service\n[Service]\n\
             ExecStart={venv}/bin/salt-minion -c /etc/salt-minions/%i\nKillMode=process\n"
        ),
        0o644,
    );
    let wants: Vec<String> = std::iter::once("salt-master.service".to_string())
        .chain(MINIONS.iter().map(|m| format!("salt-minion@{m}.service")))
        .collect();
    write_file(
        &seed.join("etc/systemd/system/scratch-machine.target"),
        &format!(
            "# What the scratch machine boots (tests/recipe_support): the base system and Salt;\n\
             # web servers start when a recipe starts them.\n[Unit]\n\
             Description=scratch machine for the docs' recipes\nRequires=basic.target\n\
             After=basic.target\nWants={}\nAllowIsolate=yes\n",
            wants.join(" ")
        ),
        0o644,
    );
    let copy = |from: &Path, to: &str, mode: u32| {
        let dest = seed.join(to.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        fs::copy(from, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    copy(&pki.cert, "/etc/ssl/certs/salt-api.pem", 0o644);
    copy(&pki.key, "/etc/ssl/private/salt-api.key", 0o600);
    copy(
        &pki.ca,
        "/usr/local/share/ca-certificates/salt-fcgi-recipes-ca.crt",
        0o644,
    );
}

/// Runs inside the machine before it boots: accounts, permissions, trust, the boot target.
fn setup_script(master: &MasterSpec, accounts: &[&str], venv: &Path) -> String {
    let mut s = String::from("# The scratch machine's set-up (tests/recipe_support).\n");
    // The master's user, as Salt's packages create it (a system account `salt`), or a
    // person's account that runs a master of its own.
    if master.user == "salt" {
        s.push_str("useradd --system --user-group --home-dir /opt/saltstack/salt --no-create-home --shell /usr/sbin/nologin salt\n");
    }
    for a in accounts.iter().chain(
        (master.user != "salt")
            .then_some(&master.user)
            .into_iter()
            .filter(|u| !accounts.contains(u)),
    ) {
        // A home the web server may pass through (public_html below it), as hosts set it.
        s.push_str(&format!(
            "useradd --create-home --user-group --shell /bin/bash {a}\n\
             chown {a}:{a} /home/{a}\nchmod 711 /home/{a}\n"
        ));
    }
    // What docs/deploy.md tells an administrator to do for `user: salt` (the lower layer,
    // this machine's own root, may hold root-owned leftovers there).
    let root = master.root_dir.unwrap_or("");
    s.push_str(&format!(
        "mkdir -p {root}/etc/salt/pki {root}/var/cache/salt {root}/var/log/salt {root}/var/run/salt\n\
         chown -R {u}:{u} {root}/etc/salt {root}/var/cache/salt {root}/var/log/salt {root}/var/run/salt\n",
        u = master.user
    ));
    if let Some(root) = master.root_dir {
        s.push_str(&format!("chown -R {u}:{u} {root}\n", u = master.user));
    }
    s.push_str(&format!(
        "chown root:{u} {c}/eauth-users.txt\n",
        u = master.user,
        c = master.config_dir
    ));
    if master.config_dir.starts_with("/home/") {
        s.push_str(&format!(
            "chown -R {u}:{u} {}\n",
            master.config_dir,
            u = master.user
        ));
    }
    // The Salt venv and the checkout live below directories only root may enter (the venv's
    // Python under /root/.pyenv on this machine kind); the master's user must reach them.
    let python = fs::canonicalize(venv.join("bin/python")).unwrap_or_default();
    let mut dirs: Vec<String> = ancestors(&venv.join("bin"))
        .into_iter()
        .chain(ancestors(&python))
        .chain(ancestors(&Path::new(REPO).join("x")))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        s.push_str(&format!("chmod o+x '{d}' 2>/dev/null || true\n"));
    }
    s.push_str(&format!(
        "printf '127.0.0.1 {API_HOST} {WEBUI_HOST}\\n' >> /etc/hosts\n\
         update-ca-certificates >/dev/null 2>&1\n\
         systemctl set-default scratch-machine.target\n"
    ));
    s
}
