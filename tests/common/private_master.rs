//! A master of a test's own (its own ports and config), for tests that stop, restart or reconfigure it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::env;

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
        while any_process_matches(&pattern) {
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
        while any_process_matches(&pattern) {
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

/// Whether a process's command line matches `pattern` (`pgrep -f`).
fn any_process_matches(pattern: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", pattern])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
