//! A CI-sized fleet: 1,000 simulated minions (bench/minion_sim.py, real to the master:
//! accepted keys, `_auth`, `_return` over `ret_port`) on a private master this test starts,
//! so the shared test master, whose `*` must stay `ms-0`/`ms-1`, never sees them.
//!
//! Checked through CGI and FastCGI: every minion's return is in the sync `local` answer
//! exactly once, the silent ones are reported as Salt's own NetapiClient reports them, and
//! when all answer, the answer follows the last return at once (not at a timeout).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Response, Server, cgi_post, env, fastcgi_post};
use serde_json::{Value as Json, json};

/// Simulated minions.
const N: usize = 1000;
/// Every 100th minion never answers.
const SILENT: f64 = 0.01;
/// The silent minion among the first 100 (`fleet-000*`), whose value Salt's client gives.
const SALT_SAMPLE_SILENT: &str = "fleet-00099";

/// A private master with no real minion and the simulated fleet; stopped on drop.
struct Fleet {
    dir: PathBuf,
    sim: Child,
    ids: Vec<String>,
    silent: Vec<String>,
}

impl Fleet {
    fn start() -> Fleet {
        let base: u16 = std::env::var("SALT_TEST_PORT_BASE")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(14505);
        let dir = std::env::temp_dir().join(format!("salt-fcgi-fleet-{}", std::process::id()));
        let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/salt-env"))
            .args(["up", path_str(&dir), "--minions", "0"])
            .args(["--version", &env().version])
            .env("SALT_TEST_PORT_BASE", (base + 60).to_string())
            .status()
            .expect("run salt-env");
        assert!(status.success(), "private master did not start");
        let ready = dir.join("sim-ready.json");
        let sim = Command::new(env().venv.join("bin/python"))
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/minion_sim.py"))
            .args(["--master-config", path_str(&dir.join("master"))])
            .args(["--count", &N.to_string(), "--silent", &SILENT.to_string()])
            .args(["--delay", "0:1", "--ready", path_str(&ready)])
            .args(["--stats", path_str(&dir.join("sim-stats.json"))])
            .stdout(Stdio::null())
            .spawn()
            .expect("start bench/minion_sim.py");
        let mut fleet = Fleet {
            dir,
            sim,
            ids: Vec::new(),
            silent: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let text = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                break text;
            }
            assert!(
                fleet.sim.try_wait().expect("sim status").is_none(),
                "the simulator exited"
            );
            assert!(Instant::now() < deadline, "the simulator did not sign in");
            std::thread::sleep(Duration::from_millis(200));
        };
        let ready: Json = serde_json::from_str(&text).expect("ready file");
        let strings = |v: &Json| -> Vec<String> {
            v.as_array()
                .expect("list")
                .iter()
                .map(|s| s.as_str().expect("id").to_string())
                .collect()
        };
        fleet.ids = strings(&ready["ids"]);
        fleet.silent = strings(&ready["silent"]);
        fleet
    }

    fn config(&self) -> PathBuf {
        self.dir.join("master")
    }

    fn answering(&self) -> Vec<String> {
        self.ids
            .iter()
            .filter(|i| !self.silent.contains(i))
            .cloned()
            .collect()
    }

    /// When the simulator sent the last return of `jid` (unix seconds).
    fn last_return(&self, jid: &str) -> f64 {
        let text = std::fs::read_to_string(self.dir.join("sim-stats.json")).expect("stats");
        let stats: Json = serde_json::from_str(&text).expect("stats json");
        stats[jid]["last_return"]
            .as_f64()
            .unwrap_or_else(|| panic!("no returns recorded for {jid}: {stats}"))
    }

    /// What Salt's own NetapiClient answers for `chunk` on this master.
    fn salt_netapi(&self, chunk: &Json) -> Json {
        let code = "import json, os, salt.config, salt.netapi\n\
                    opts = salt.config.client_config(os.environ['SALT_MASTER_CONFIG'])\n\
                    ret = salt.netapi.NetapiClient(opts).run(json.loads(os.environ['CHUNK']))\n\
                    print('\\n' + json.dumps(ret))\n";
        let out = Command::new(env().venv.join("bin/python"))
            .args(["-c", code])
            .env("SALT_MASTER_CONFIG", self.config())
            .env("CHUNK", chunk.to_string())
            .output()
            .expect("python");
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
            panic!(
                "NetapiClient: {e}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.sim.kill();
        let _ = self.sim.wait();
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/salt-env"))
            .args(["down", path_str(&self.dir)])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn ping(extra: Json) -> Json {
    let mut c = env().auth(json!({"client": "local", "fun": "test.ping"}));
    c.as_object_mut()
        .expect("object")
        .extend(extra.as_object().expect("object").clone());
    c
}

/// The one answer object; each id appears once as a key in the raw body (a JSON parser
/// would silently keep only the last of duplicates).
fn answer(resp: &Response, ids: &[String]) -> serde_json::Map<String, Json> {
    assert_eq!(
        resp.status,
        200,
        "{}",
        String::from_utf8_lossy(&resp.body[..resp.body.len().min(500)])
    );
    let body = String::from_utf8_lossy(&resp.body);
    for id in ids {
        assert_eq!(
            body.matches(&format!("\"{id}\":")).count(),
            1,
            "{id} once in the answer"
        );
    }
    let ret = resp.ret();
    let list = ret.as_array().expect("return list");
    assert_eq!(list.len(), 1);
    list[0].as_object().expect("object").clone()
}

/// Salt's text for a silent minion names the jid; the jids of two runs differ.
fn without_jid(v: &Json) -> Json {
    match v {
        Json::String(s) => Json::from(s.split("jobs.lookup_jid").next().unwrap_or_default()),
        other => other.clone(),
    }
}

/// All of `*` with 1 % silent, through `send`; compared with Salt's answer for the silent.
fn star_with_silent_minions(fleet: &Fleet, salts: &Json, send: &dyn Fn(&Json) -> Response) {
    // `timeout` covers the whole return stream even on a loaded machine (a master on 2
    // busy cores stores under 100 returns a second); then find_job asks the silent ones.
    let chunk = ping(json!({"tgt": "*", "timeout": 20, "gather_job_timeout": 5}));
    let out = answer(&send(&json!([chunk])), &fleet.ids);
    assert_eq!(out.len(), N, "every targeted minion is in the answer");
    for id in fleet.answering() {
        assert_eq!(out[&id], json!(true), "{id} returned");
    }
    for id in &fleet.silent {
        let salt_says = salts.get(id).unwrap_or(&salts[SALT_SAMPLE_SILENT]);
        assert_eq!(
            without_jid(&out[id]),
            without_jid(salt_says),
            "{id} is reported as Salt reports a silent minion"
        );
    }
}

/// The answering minions only: the answer must follow the last return, not a timeout.
fn all_answer_promptly(fleet: &Fleet, send: &dyn Fn(&Json) -> Response) {
    let ids = fleet.answering();
    let chunk = ping(json!({"tgt": ids, "tgt_type": "list", "timeout": 60}));
    let started = Instant::now();
    let resp = send(&json!([chunk]));
    let answered = unix_now();
    let took = started.elapsed();
    let out = answer(&resp, &ids);
    assert_eq!(out.len(), ids.len());
    assert!(out.values().all(|v| v == &json!(true)), "all returned true");
    assert!(
        took < Duration::from_secs(50),
        "not at the timeout: {took:?}"
    );
    // The jid is not in a plain `local` answer: it is the newest job of the stats, which
    // the simulator writes every 0.2 s.
    std::thread::sleep(Duration::from_millis(600));
    let text = std::fs::read_to_string(fleet.dir.join("sim-stats.json")).expect("stats");
    let stats: Json = serde_json::from_str(&text).expect("stats json");
    let jid = stats
        .as_object()
        .expect("stats object")
        .iter()
        .filter(|(_, s)| s["fun"] == "test.ping" && s["returns"] == json!(ids.len()))
        .map(|(j, _)| j.clone())
        .max()
        .expect("a test.ping job with every return");
    let after = answered - fleet.last_return(&jid);
    // Generous for a loaded 2-core CI machine and a debug build; the bug this guards
    // against answered seconds later (or only at the 60 s timeout).
    assert!(after < 2.0, "answered {after:.3} s after the last return");
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn a_thousand_minions_through_cgi_and_fastcgi() {
    let fleet = Fleet::start();
    let config = fleet.config();
    let cgi = |body: &Json| cgi_post(&config, body);
    let server = Server::fastcgi_unix(&config);
    let socket = server.address.clone();
    let fcgi = |body: &Json| fastcgi_post(&socket, body);

    // What Salt's NetapiClient says about a silent minion, on the first 100 ids (one of
    // them silent; all 1,000 would only take longer).
    let salts = fleet.salt_netapi(&ping(
        json!({"tgt": "fleet-000*", "timeout": 10, "gather_job_timeout": 5}),
    ));
    assert!(
        fleet.silent.iter().any(|s| s == SALT_SAMPLE_SILENT),
        "{SALT_SAMPLE_SILENT} is silent"
    );
    // Only the silent minion's value is compared: on a loaded machine Salt's own client
    // may report answering minions as silent too, which is not what is tested here.
    assert!(salts.get(SALT_SAMPLE_SILENT).is_some(), "{salts}");

    star_with_silent_minions(&fleet, &salts, &cgi);
    star_with_silent_minions(&fleet, &salts, &fcgi);
    all_answer_promptly(&fleet, &cgi);
    all_answer_promptly(&fleet, &fcgi);
}
