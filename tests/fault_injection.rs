//! Fault injection against a fake master: a ZeroMQ REP socket (or, for `transport: tcp` and
//! `ws`, a TCP or WebSocket server speaking Salt's framing) standing in for `ret_port` and a
//! Unix socket standing in for the event bus, both scripted per test. What a real master
//! cannot be made to do on demand: never answer, answer garbage or too much, die in the
//! middle of a request, drop the event bus mid-wait, refuse the bus by permissions, send
//! both event framings.
//!
//! Each test runs the real binary as CGI and checks status, body, timing, and that the
//! password never shows up in stderr.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

const PASSWORD: &str = "s3cret-Pa55word";

/// What the fake request server does with one request.
enum Reply {
    /// Answer with this value (msgpack-encoded).
    Value(Json),
    /// Answer with these raw bytes.
    Raw(Vec<u8>),
    /// Never answer.
    Silence,
    /// Die in the middle of the request: close the connection (ZeroMQ: the socket) unanswered.
    Hangup,
}

/// Subscribers connected to the fake event bus.
#[derive(Clone)]
struct Bus {
    subscribers: Arc<Mutex<Vec<UnixStream>>>,
    length_prefix: bool,
}

impl Bus {
    /// Sends an event frame `{"head": {}, "body": tag\n\n msgpack(data)}` to every subscriber.
    fn fire(&self, tag: &str, data: Json) {
        let mut body = tag.as_bytes().to_vec();
        body.extend_from_slice(b"\n\n");
        body.extend(salt_fcgi::internals::payload::encode(&data));
        let map = rmpv::Value::Map(vec![
            (rmpv::Value::from("head"), rmpv::Value::Map(vec![])),
            (rmpv::Value::from("body"), rmpv::Value::Binary(body)),
        ]);
        let mut frame = Vec::new();
        rmpv::encode::write_value(&mut frame, &map).expect("encode frame");
        if self.length_prefix {
            let mut prefixed = (frame.len() as u32).to_be_bytes().to_vec();
            prefixed.extend(frame);
            frame = prefixed;
        }
        self.raw(&frame);
    }

    fn raw(&self, bytes: &[u8]) {
        // The caller connected before it published; give our accept loop time to see it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.subscribers.lock().expect("lock").is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        for s in self.subscribers.lock().expect("lock").iter_mut() {
            let _ = s.write_all(bytes);
        }
    }

    fn close_all(&self) {
        for s in self.subscribers.lock().expect("lock").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

type Handler = Box<dyn Fn(&Json, &Bus) -> Reply + Send>;

/// A scripted master in a temp dir: config file, sock_dir, REP socket, event bus.
struct FakeMaster {
    dir: PathBuf,
    config: PathBuf,
    bus: Bus,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl FakeMaster {
    fn start(name: &str, length_prefix: bool, handler: Handler) -> FakeMaster {
        FakeMaster::start_on("zeromq", name, length_prefix, handler)
    }

    /// A fake master whose request server speaks `transport` (zeromq, tcp or ws).
    fn start_on(transport: &str, name: &str, length_prefix: bool, handler: Handler) -> FakeMaster {
        let dir =
            std::env::temp_dir().join(format!("salt-fcgi-fake-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sock_dir = dir.join("sock");
        std::fs::create_dir_all(&sock_dir).expect("mkdir");
        // What the master-running check looks for on this transport.
        let marker = if transport == "zeromq" {
            "workers.ipc"
        } else {
            "publish_pull.ipc"
        };
        std::fs::write(sock_dir.join(marker), b"").expect("marker");
        let stop = Arc::new(AtomicBool::new(false));
        let bus = Bus {
            subscribers: Arc::new(Mutex::new(Vec::new())),
            length_prefix,
        };
        let listener = UnixListener::bind(sock_dir.join("master_event_pub.ipc")).expect("bind bus");
        listener.set_nonblocking(true).expect("nonblocking");
        let bus_thread = {
            let (bus, stop) = (bus.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((s, _)) => bus.subscribers.lock().expect("lock").push(s),
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        let (port, rep_thread) = match transport {
            "zeromq" => zeromq_server(handler, bus.clone(), Arc::clone(&stop)),
            _ => stream_server(transport == "ws", handler, bus.clone(), Arc::clone(&stop)),
        };
        let config = dir.join("master");
        let yaml = format!(
            "sock_dir: {}\nret_port: {port}\ninterface: 127.0.0.1\ntransport: {transport}\n\
             netapi_enable_clients: [local, local_async, local_batch, local_subset, runner, runner_async, wheel, wheel_async]\n\
             salt_fcgi:\n  master_connect_timeout: 0.5\n",
            sock_dir.display()
        );
        std::fs::write(&config, yaml).expect("config");
        FakeMaster {
            dir,
            config,
            bus,
            stop,
            threads: vec![bus_thread, rep_thread],
        }
    }
}

/// Checks a request envelope as every transport carries it and returns its load.
fn checked_load(envelope: &Json) -> &Json {
    assert_eq!(envelope["version"], 3, "clear envelopes carry version 3");
    assert_eq!(envelope["enc"], "clear");
    &envelope["load"]
}

/// Waits until the fake master is stopped.
fn until_stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The ZeroMQ request server: a REP socket on a free port; its port and thread.
fn zeromq_server(handler: Handler, bus: Bus, stop: Arc<AtomicBool>) -> (u16, JoinHandle<()>) {
    let ctx = zmq::Context::new();
    let rep = ctx.socket(zmq::REP).expect("rep");
    rep.set_rcvtimeo(20).expect("rcvtimeo");
    rep.set_linger(0).expect("linger");
    rep.bind("tcp://127.0.0.1:*").expect("bind rep");
    let endpoint = rep
        .get_last_endpoint()
        .expect("endpoint")
        .expect("utf8 endpoint");
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let thread = std::thread::spawn(move || {
        let _ctx = &ctx;
        while !stop.load(Ordering::Acquire) {
            let Ok(bytes) = rep.recv_bytes(0) else {
                continue;
            };
            let envelope =
                salt_fcgi::internals::payload::decode(&bytes).expect("request is msgpack");
            match handler(checked_load(&envelope), &bus) {
                Reply::Value(v) => rep
                    .send(salt_fcgi::internals::payload::encode(&v), 0)
                    .expect("send"),
                Reply::Raw(b) => rep.send(b, 0).expect("send"),
                Reply::Silence => until_stopped(&stop),
                // The master is gone: nothing answers on ret_port any more.
                Reply::Hangup => return,
            }
        }
    });
    (port, thread)
}

/// The `transport: tcp` or `ws` request server on a free port, one connection at a time
/// (salt-fcgi runs as CGI here: one connection per run); its port and thread.
fn stream_server(
    ws: bool,
    handler: Handler,
    bus: Bus,
    stop: Arc<AtomicBool>,
) -> (u16, JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            stream.set_nonblocking(false).expect("blocking");
            stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            if ws {
                serve_ws(stream, &handler, &bus, &stop);
            } else {
                serve_tcp(stream, &handler, &bus, &stop);
            }
        }
    });
    (port, thread)
}

/// One `transport: tcp` connection: `{"head": {"mid"}, "body"}` maps each way, no prefix.
fn serve_tcp(mut stream: std::net::TcpStream, handler: &Handler, bus: &Bus, stop: &AtomicBool) {
    use salt_fcgi::internals::{event_frame::msgpack_size, payload};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    while !stop.load(Ordering::Acquire) {
        while let Ok(Some(n)) = msgpack_size(&buf) {
            let message = payload::decode(&buf[..n]).expect("a msgpack message");
            buf.drain(..n);
            let head = message["head"].clone();
            assert!(
                head["mid"].is_string(),
                "every request has a mid: {message}"
            );
            let reply = match handler(checked_load(&message["body"]), bus) {
                Reply::Value(v) => payload::encode(&json!({"head": head, "body": v})),
                Reply::Raw(b) => b,
                Reply::Silence => return until_stopped(stop),
                Reply::Hangup => return,
            };
            if stream.write_all(&reply).is_err() {
                return;
            }
        }
        if !crate::common::read_some(&mut stream, &mut chunk, &mut buf) {
            return;
        }
    }
}

/// One `transport: ws` connection: one binary message each way.
fn serve_ws(stream: std::net::TcpStream, handler: &Handler, bus: &Bus, stop: &AtomicBool) {
    use tokio_tungstenite::tungstenite::{self, Message};
    stream.set_read_timeout(None).expect("timeout");
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    while !stop.load(Ordering::Acquire) {
        let request = match ws.read() {
            Ok(Message::Binary(b)) => b,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        let envelope = salt_fcgi::internals::payload::decode(&request).expect("request is msgpack");
        let reply = match handler(checked_load(&envelope), bus) {
            Reply::Value(v) => salt_fcgi::internals::payload::encode(&v),
            Reply::Raw(b) => b,
            Reply::Silence => return until_stopped(stop),
            Reply::Hangup => return,
        };
        if ws.send(Message::Binary(reply.into())).is_err() {
            return;
        }
    }
}

impl Drop for FakeMaster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.bus.close_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Result of one CGI run.
struct Outcome {
    status: u16,
    body: Json,
    stderr: String,
    elapsed: Duration,
}

/// Runs the binary as CGI with `body` and returns what it printed.
fn cgi(config: &PathBuf, body: &Json, wrap: Option<&[&str]>) -> Outcome {
    let bin = env!("CARGO_BIN_EXE_salt-fcgi");
    let text = body.to_string();
    let mut cmd = match wrap {
        Some(prefix) => {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let start = Instant::now();
    let mut child = cmd
        .env_clear()
        .env("SALT_MASTER_CONFIG", config)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", "POST")
        .env("CONTENT_TYPE", "application/json")
        .env("CONTENT_LENGTH", text.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn salt-fcgi");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write body");
    let out = child.wait_with_output().expect("wait");
    let elapsed = start.elapsed();
    let stdout = String::from_utf8(out.stdout).expect("utf8 stdout");
    let (head, body) = stdout.split_once("\r\n\r\n").expect("CGI header block");
    let status: u16 = head
        .strip_prefix("Status: ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .expect("Status line");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|l| l.trim().parse().ok())
        .expect("Content-Length");
    assert_eq!(length, body.len(), "Content-Length is byte-accurate");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains(PASSWORD),
        "password leaked to stderr: {stderr}"
    );
    assert!(
        !body.contains(PASSWORD),
        "password leaked to the body: {body}"
    );
    Outcome {
        status,
        body: serde_json::from_str(body).expect("JSON body"),
        stderr,
        elapsed,
    }
}

fn chunk(client: &str, extra: Json) -> Json {
    let mut c = json!({"client": client, "eauth": "file", "username": "u", "password": PASSWORD});
    if let (Some(c), Json::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    json!([c])
}

fn publish_reply(jid: &str, minions: &[&str]) -> Json {
    json!({"enc": "clear", "load": {"jid": jid, "minions": minions, "missing": []}})
}

#[test]
fn master_down_is_503_at_once() {
    let fake = FakeMaster::start("down", false, Box::new(|_, _| Reply::Silence));
    std::fs::remove_file(fake.dir.join("sock/workers.ipc")).expect("rm marker");
    let out = cgi(
        &fake.config,
        &chunk("local_async", json!({"tgt": "*", "fun": "test.ping"})),
        None,
    );
    assert_eq!(out.status, 503);
    // The caller learns what was looked for, not where (paths stay in the log).
    let message = out.body["return"].as_str().unwrap_or_default();
    assert!(
        message
            .starts_with("Salt Master is not available: no workers.ipc in the master's sock_dir")
            && !message.contains(&fake.dir.display().to_string()),
        "{message}"
    );
    // The log names the path, the config it came from, and that the directory exists.
    let marker = fake.dir.join("sock/workers.ipc");
    assert!(
        out.stderr
            .contains(&format!("{} does not exist", marker.display()))
            && out.stderr.contains(&fake.config.display().to_string())
            && out.stderr.contains("the salt-master is not running"),
        "{}",
        out.stderr
    );
    assert!(out.elapsed < Duration::from_secs(1), "{:?}", out.elapsed);
}

#[test]
fn nothing_on_ret_port_is_503_within_the_connect_timeout() {
    let fake = FakeMaster::start("noport", false, Box::new(|_, _| Reply::Silence));
    // Point the config at a port nobody listens on (the marker file stays).
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let text = std::fs::read_to_string(&fake.config).expect("read");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("ret_port:") {
                format!("ret_port: {unused}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&fake.config, text).expect("write");
    let out = cgi(
        &fake.config,
        &chunk("local_async", json!({"tgt": "*", "fun": "test.ping"})),
        None,
    );
    assert_eq!(out.status, 503, "{:?}", out.body);
    assert!(out.elapsed < Duration::from_secs(3), "{:?}", out.elapsed);
}

#[test]
fn silent_master_is_504_after_the_timeout() {
    let fake = FakeMaster::start("silent", false, Box::new(|_, _| Reply::Silence));
    let out = cgi(
        &fake.config,
        &chunk(
            "local_async",
            json!({"tgt": "*", "fun": "test.ping", "timeout": 1}),
        ),
        None,
    );
    assert_eq!(out.status, 504, "{:?}", out.body);
    assert!(
        out.elapsed >= Duration::from_millis(900) && out.elapsed < Duration::from_secs(4),
        "{:?}",
        out.elapsed
    );
}

#[test]
fn garbage_reply_is_500_and_bad_load_is_400() {
    let fake = FakeMaster::start(
        "garbage",
        false,
        Box::new(|_, _| Reply::Raw(vec![0xc1, 0xff, 0x00])),
    );
    let out = cgi(
        &fake.config,
        &chunk("wheel", json!({"fun": "key.list_all"})),
        None,
    );
    assert_eq!(out.status, 500, "{:?}", out.body);
    let fake = FakeMaster::start(
        "badload",
        false,
        Box::new(|_, _| Reply::Value(json!("bad load: id 5 is not a string"))),
    );
    let out = cgi(
        &fake.config,
        &chunk("wheel", json!({"fun": "key.list_all", "id": 5})),
        None,
    );
    assert_eq!(out.status, 400, "{:?}", out.body);
    assert!(
        out.body["return"]
            .as_str()
            .is_some_and(|m| m.contains("bad load"))
    );
}

/// Issue 22: the request channel's faults on every transport. Garbage is a 500 everywhere.
/// tcp and ws see a reply over `max_reply_bytes` from its header, and a master that died
/// in the middle of a request from the closed connection, both at once; ZeroMQ hides both
/// (libzmq drops an oversized message, and reconnects to a dead peer quietly), so there the
/// request ends at its timeout (docs/security.md, known limits).
#[test]
fn garbage_oversized_and_a_dead_master_on_every_transport() {
    let publish = || {
        chunk(
            "local_async",
            json!({"tgt": "*", "fun": "test.ping", "timeout": 1}),
        )
    };
    for transport in ["zeromq", "tcp", "ws"] {
        let fake = FakeMaster::start_on(
            transport,
            &format!("garbage-{transport}"),
            false,
            Box::new(|_, _| Reply::Raw(vec![0xc1, 0xff, 0x00])),
        );
        let out = cgi(&fake.config, &publish(), None);
        assert_eq!(out.status, 500, "{transport} garbage: {:?}", out.body);

        let fake = FakeMaster::start_on(
            transport,
            &format!("big-{transport}"),
            false,
            Box::new(|_, _| Reply::Value(publish_reply(&"1".repeat(5000), &["a"]))),
        );
        let mut text = std::fs::read_to_string(&fake.config).expect("read");
        text.push_str("  max_reply_bytes: 1000\n");
        std::fs::write(&fake.config, text).expect("write");
        let out = cgi(&fake.config, &publish(), None);
        told_at_once_or_timed_out(transport, &out, 500, "max_reply_bytes (1000 bytes)");

        let fake = FakeMaster::start_on(
            transport,
            &format!("dies-{transport}"),
            false,
            Box::new(|_, _| Reply::Hangup),
        );
        // The publish had reached the master: 502 (it may have run), not a 503 a web
        // server may send on to another salt-fcgi.
        let out = cgi(&fake.config, &publish(), None);
        told_at_once_or_timed_out(transport, &out, 502, "closed the connection");
    }
}

/// On tcp and ws a fault is told at once with `status` and a message containing `text`;
/// ZeroMQ cannot tell it, and the request ends at its 1 s timeout with a 504.
fn told_at_once_or_timed_out(transport: &str, out: &Outcome, status: u16, text: &str) {
    let said = out.body["return"].as_str().unwrap_or_default();
    if transport == "zeromq" {
        assert_eq!(out.status, 504, "zeromq: {said}");
        assert!(
            out.elapsed >= Duration::from_millis(900),
            "{:?}",
            out.elapsed
        );
    } else {
        assert_eq!(out.status, status, "{transport}: {said}");
        assert!(said.contains(text), "{transport}: {said}");
        assert!(
            out.elapsed < Duration::from_millis(900),
            "{:?}",
            out.elapsed
        );
    }
}

/// Issue 22: a transport salt-fcgi does not speak is named, never "not available" (the
/// socket file Salt's check looks for does not exist either).
#[test]
fn an_unknown_transport_is_named() {
    let fake = FakeMaster::start("unknowntransport", false, Box::new(|_, _| Reply::Silence));
    std::fs::remove_file(fake.dir.join("sock/workers.ipc")).expect("rm marker");
    let text = std::fs::read_to_string(&fake.config).expect("read");
    std::fs::write(
        &fake.config,
        text.replace("transport: zeromq", "transport: rabbitmq"),
    )
    .expect("write");
    let expected = "the master uses transport rabbitmq; salt-fcgi speaks zeromq, tcp and ws";
    for body in [
        chunk("local_async", json!({"tgt": "*", "fun": "test.ping"})),
        chunk("wheel", json!({"fun": "key.list_all"})),
    ] {
        let out = cgi(&fake.config, &body, None);
        assert_eq!(out.status, 503, "{:?}", out.body);
        assert_eq!(out.body, json!({"return": expected}));
        assert!(out.elapsed < Duration::from_secs(2), "{:?}", out.elapsed);
    }
}

/// The fake master sees exactly the publish load LocalClient would send.
fn check_publish(load: &Json) {
    assert_eq!(load["cmd"], "publish");
    assert_eq!(load["key"], "");
    assert_eq!(load["kwargs"]["password"], PASSWORD);
    assert!(
        load.get("password").is_none(),
        "credentials only inside kwargs"
    );
    assert!(load["kwargs"].get("auth_list").is_none());
}

#[test]
fn sync_local_collects_returns_in_both_framings() {
    for prefixed in [false, true] {
        let fake = FakeMaster::start(
            &format!("local{prefixed}"),
            prefixed,
            Box::new(|load, bus| {
                check_publish(load);
                // Events may reach the bus before the publish reply reaches the caller.
                bus.fire("20240101000000000001", json!({"minions": ["a", "b"]}));
                bus.fire(
                    "salt/job/20240101000000000001/new",
                    json!({"minions": ["a", "b"]}),
                );
                bus.fire(
                    "salt/job/20240101000000000001/ret/a",
                    json!({"id": "a", "return": "é☃", "retcode": 0, "jid": "20240101000000000001"}),
                );
                let bus = bus.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    bus.fire(
                        "salt/job/99999999999999999999/ret/b",
                        json!({"id": "b", "return": "other job"}),
                    );
                    bus.fire(
                        "salt/job/20240101000000000001/ret/b",
                        json!({"id": "b", "return": [1, 2], "retcode": 0}),
                    );
                });
                Reply::Value(publish_reply("20240101000000000001", &["a", "b"]))
            }),
        );
        let out = cgi(
            &fake.config,
            &chunk(
                "local",
                json!({"tgt": "*", "fun": "test.echo", "arg": "x", "auth_list": ["x"]}),
            ),
            None,
        );
        assert_eq!(out.status, 200, "{:?} {}", out.body, out.stderr);
        assert_eq!(out.body, json!({"return": [{"a": "é☃", "b": [1, 2]}]}));
    }
}

#[test]
fn silent_minion_is_false_before_3008_and_a_message_on_3008() {
    for bare_jid_event in [true, false] {
        let fake = FakeMaster::start(
            &format!("silent{bare_jid_event}"),
            false,
            Box::new(move |load, bus| {
                if load["fun"] == "saltutil.find_job" {
                    assert_eq!(load["tgt"], json!(["b"]));
                    assert_eq!(load["tgt_type"], "list");
                    // b answers find_job with {}: it is not running the job any more.
                    bus.fire(
                        "salt/job/20240101000000000009/ret/b",
                        json!({"id": "b", "return": {}}),
                    );
                    return Reply::Value(publish_reply("20240101000000000009", &["b"]));
                }
                if bare_jid_event {
                    bus.fire("20240101000000000002", json!({"minions": ["a", "b"]}));
                }
                bus.fire(
                    "salt/job/20240101000000000002/ret/a",
                    json!({"id": "a", "return": true}),
                );
                Reply::Value(publish_reply("20240101000000000002", &["a", "b"]))
            }),
        );
        let c = chunk(
            "local",
            json!({"tgt": "*", "fun": "test.ping", "timeout": 1, "gather_job_timeout": 1}),
        );
        let out = cgi(&fake.config, &c, None);
        assert_eq!(out.status, 200, "{:?}", out.body);
        assert_eq!(out.body["return"][0]["a"], true);
        let b = &out.body["return"][0]["b"];
        if bare_jid_event {
            assert_eq!(*b, json!(false));
        } else {
            assert!(
                b.as_str()
                    .is_some_and(|s| s.starts_with("Minion did not return. [No response]")),
                "{b}"
            );
        }
        assert!(
            out.elapsed >= Duration::from_millis(1900) && out.elapsed < Duration::from_secs(5),
            "{:?}",
            out.elapsed
        );
    }
}

/// The publish reached the master, then the bus went: a 502 (the job may have run; a
/// 503 would let a web server send the publish to another salt-fcgi), promptly.
#[test]
fn event_bus_lost_while_waiting_is_502_promptly() {
    let fake = FakeMaster::start(
        "buslost",
        false,
        Box::new(|_, bus| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                bus.close_all();
            });
            Reply::Value(publish_reply("20240101000000000003", &["a"]))
        }),
    );
    let out = cgi(
        &fake.config,
        &chunk(
            "local",
            json!({"tgt": "*", "fun": "test.ping", "timeout": 30}),
        ),
        None,
    );
    assert_eq!(out.status, 502, "{:?}", out.body);
    assert!(out.elapsed < Duration::from_secs(3), "{:?}", out.elapsed);
}

/// Garbage on the bus after the publish: the bus connection is dropped, a 502 (the job
/// was published), not a hang.
#[test]
fn garbage_on_the_event_bus_is_502_not_a_hang() {
    let fake = FakeMaster::start(
        "busgarbage",
        false,
        Box::new(|_, bus| {
            bus.raw(&[0x82, 0xc1, 0xc1, 0xc1]);
            Reply::Value(publish_reply("20240101000000000004", &["a"]))
        }),
    );
    let out = cgi(
        &fake.config,
        &chunk(
            "local",
            json!({"tgt": "*", "fun": "test.ping", "timeout": 30}),
        ),
        None,
    );
    assert_eq!(out.status, 502, "{:?}", out.body);
    assert!(
        out.elapsed < Duration::from_secs(3),
        "{:?} {}",
        out.elapsed,
        out.stderr
    );
}

#[test]
fn runner_waits_for_its_ret_event_and_times_out_with_504() {
    let fake = FakeMaster::start(
        "runner",
        false,
        Box::new(|load, bus| {
            assert_eq!(load["cmd"], "runner");
            assert_eq!(
                load["password"], PASSWORD,
                "runner credentials are top-level"
            );
            assert!(load.get("key").is_none() && load.get("user").is_none());
            if load["fun"] == "test.arg" {
                bus.fire(
                    "salt/run/20240101000000000005/ret",
                    json!({"return": {"args": load["kwarg"]["arg"]}, "success": true}),
                );
            }
            Reply::Value(
                json!({"tag": "salt/run/20240101000000000005", "jid": "20240101000000000005"}),
            )
        }),
    );
    let out = cgi(
        &fake.config,
        &chunk(
            "runner",
            json!({"fun": "test.arg", "arg": ["a", "n=1"], "key": "x", "user": "root"}),
        ),
        None,
    );
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert_eq!(out.body, json!({"return": [{"args": ["a"]}]}));
    let out = cgi(
        &fake.config,
        &chunk("runner", json!({"fun": "test.sleep", "timeout": 1})),
        None,
    );
    assert_eq!(out.status, 504, "{:?}", out.body);
    assert!(out.elapsed < Duration::from_secs(6));
}

#[test]
fn unreadable_event_bus_says_to_run_as_the_master_user() {
    let fake = FakeMaster::start("perms", false, Box::new(|_, _| Reply::Silence));
    let sock = fake.dir.join("sock/master_event_pub.ipc");
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    for p in [&fake.dir, &fake.dir.join("sock")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    }
    std::fs::set_permissions(&fake.config, std::fs::Permissions::from_mode(0o644))
        .expect("chmod config");
    // Run as an unprivileged user (root ignores file modes).
    let wrap = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let out = cgi(
        &fake.config,
        &chunk("local", json!({"tgt": "*", "fun": "test.ping"})),
        Some(&wrap),
    );
    assert_eq!(out.status, 503, "{:?} {}", out.body, out.stderr);
    let msg = out.body["return"].as_str().unwrap_or_default();
    assert!(
        msg.contains("permission denied") && msg.contains("user or group"),
        "{msg}"
    );
    assert!(
        !msg.contains(&fake.dir.display().to_string()),
        "no paths in bodies: {msg}"
    );
    assert!(
        out.stderr.contains("master_event_pub.ipc"),
        "the log names the socket: {}",
        out.stderr
    );
}

#[test]
fn wheel_async_reports_refused_credentials() {
    let fake = FakeMaster::start(
        "wheelasync",
        false,
        Box::new(|load, _| {
            assert_eq!(load["cmd"], "wheel");
            assert!(load["__jid__"].as_str().is_some_and(|j| j.len() == 20));
            Reply::Value(
                json!({"error": {"name": "EauthAuthenticationError", "message": "Authentication failure of type \"eauth\" occurred for user u."}}),
            )
        }),
    );
    let out = cgi(
        &fake.config,
        &chunk("wheel_async", json!({"fun": "key.list_all"})),
        None,
    );
    assert_eq!(out.status, 401, "{:?}", out.body);
}

/// Issue 13 item 8: a 3008 master replaces the job's `__jid__`/`__tag__` with its own and
/// replies only once the wheel function ran (modelled on 3008.5's `ClearFuncs.wheel`): no
/// event ever comes under salt-fcgi's tag, so the answer depends on the reply, even one
/// slower than `publish_timeout`, and names the jid that really ran.
#[test]
fn wheel_async_on_3008_waits_for_the_reply_and_reports_the_masters_jid() {
    let master_jid = "20991231235959123456";
    let fake = FakeMaster::start(
        "wheelasync3008",
        false,
        Box::new(move |load, bus| {
            assert_eq!(load["cmd"], "wheel");
            let tag = format!("salt/wheel/{master_jid}");
            let data = json!({"fun": "wheel.key.list_all", "jid": master_jid, "user": "u"});
            bus.fire(&format!("{tag}/new"), data.clone());
            std::thread::sleep(Duration::from_millis(2500));
            bus.fire(&format!("{tag}/ret"), data.clone());
            Reply::Value(
                json!({"tag": tag, "data": {"fun": "wheel.key.list_all", "jid": master_jid,
                "tag": tag, "user": "u", "return": {}, "success": true}}),
            )
        }),
    );
    append_config(&fake, "publish_timeout: 1\n");
    let out = cgi(
        &fake.config,
        &chunk("wheel_async", json!({"fun": "key.list_all"})),
        None,
    );
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert_eq!(
        out.body["return"][0],
        json!({"tag": format!("salt/wheel/{master_jid}"), "jid": master_jid})
    );
    assert!(
        out.elapsed >= Duration::from_millis(2500),
        "{:?}",
        out.elapsed
    );
}

/// A 3006/3007 master (3007.16's `ClearFuncs.wheel`) runs and stores a `wheel_async` job
/// under salt-fcgi's `__jid__` but replies with a jid it made for its own events. Here the
/// reply arrives before any event (as under load, when the bus lags the request port); the
/// events then come in the master's order: its own `new`, ours, then its own `ret`. The
/// answer is our jid, the one `/jobs/<jid>` can find (guajillo polled the other one for
/// two minutes on a loaded CI machine).
#[test]
fn wheel_async_on_3007_reports_the_jid_the_job_ran_under_even_when_the_reply_comes_first() {
    let master_jid = "20991231235959000001";
    let ours = Arc::new(Mutex::new(String::new()));
    let seen = Arc::clone(&ours);
    let fake = FakeMaster::start(
        "wheelasync3007",
        false,
        Box::new(move |load, bus| {
            let our_tag = load["__tag__"].as_str().unwrap_or_default().to_string();
            *seen.lock().expect("lock") = load["__jid__"].as_str().unwrap_or_default().into();
            let bus = bus.clone();
            let theirs = format!("salt/wheel/{master_jid}");
            let data = json!({"fun": "wheel.key.list_all", "jid": master_jid, "user": "u"});
            let (tag, event) = (theirs.clone(), data.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                bus.fire(&format!("{tag}/new"), event.clone());
                bus.fire(
                    &format!("{our_tag}/new"),
                    json!({"fun": "wheel.key.list_all"}),
                );
                bus.fire(
                    &format!("{our_tag}/ret"),
                    json!({"fun": "wheel.key.list_all"}),
                );
                bus.fire(&format!("{tag}/ret"), event);
            });
            Reply::Value(
                json!({"tag": theirs, "data": {"return": {}, "success": true,
                "fun": "wheel.key.list_all", "jid": master_jid, "tag": theirs, "user": "u"}}),
            )
        }),
    );
    let out = cgi(
        &fake.config,
        &chunk("wheel_async", json!({"fun": "key.list_all"})),
        None,
    );
    assert_eq!(out.status, 200, "{:?}", out.body);
    let jid = ours.lock().expect("lock").clone();
    assert_eq!(jid.len(), 20, "the load carried our jid");
    assert_eq!(
        out.body["return"][0],
        json!({"tag": format!("salt/wheel/{jid}"), "jid": jid})
    );
}

/// Issue 13 item 11: a return that is already queued when collection looks at its
/// deadlines counts. Here it arrives while `find_job` is being published and
/// `gather_job_timeout` is 0: the deadlines are all past when the find_job reply comes, so
/// checking them before draining the queue reported the minion as silent.
#[test]
fn a_queued_return_counts_even_past_the_deadlines() {
    let fake = FakeMaster::start(
        "queuedreturn",
        false,
        Box::new(|load, bus| {
            if load["fun"] == "saltutil.find_job" {
                bus.fire(
                    "salt/job/20240101000000000011/ret/a",
                    json!({"id": "a", "return": "late", "retcode": 0}),
                );
                // Let the event reach the request's queue before the reply does: nothing
                // tells the fake master when the CGI process has read it, so give it time
                // (100 ms, then 1 s were not always enough while CI loaded the 2-core
                // machine; nothing else waits on this).
                std::thread::sleep(Duration::from_secs(5));
                return Reply::Value(publish_reply("20240101000000000012", &["a"]));
            }
            Reply::Value(publish_reply("20240101000000000011", &["a"]))
        }),
    );
    let out = cgi(
        &fake.config,
        &chunk(
            "local",
            json!({"tgt": "a", "fun": "test.echo", "timeout": 0.3, "gather_job_timeout": 0}),
        ),
        None,
    );
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert_eq!(out.body["return"][0], json!({"a": "late"}));
}

/// Appends `yaml` to a fake master's config (top-level keys).
fn append_config(fake: &FakeMaster, yaml: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(&fake.config)
        .and_then(|mut f| f.write_all(yaml.as_bytes()))
        .expect("append to the config");
}

/// Issue 13 item 11: a 3008 cluster master that is not ready answers every request with
/// `cluster_retry`; that is a 503, not an empty 200.
#[test]
fn cluster_retry_is_503_not_an_empty_success() {
    let fake = FakeMaster::start(
        "clusterretry",
        false,
        Box::new(|_, _| {
            Reply::Value(json!({"enc": "clear", "load": {"ret": false, "cluster_retry": true}}))
        }),
    );
    for body in [
        chunk("local_async", json!({"tgt": "*", "fun": "test.ping"})),
        chunk("wheel", json!({"fun": "key.list_all"})),
        chunk("runner_async", json!({"fun": "test.arg"})),
    ] {
        let out = cgi(&fake.config, &body, None);
        assert_eq!(out.status, 503, "{body}: {:?}", out.body);
        assert!(
            out.body["return"]
                .as_str()
                .is_some_and(|m| m.contains("cluster")),
            "{:?}",
            out.body
        );
    }
}

/// Issue 13 item 11: a master of masters (`order_masters`) gets the publish timeout in
/// `to` (Salt's `_prep_pub`) and collection waits `syndic_wait` longer after `find_job`.
#[test]
fn syndic_publishes_carry_to_and_wait_syndic_wait() {
    let fake = FakeMaster::start(
        "syndic",
        false,
        Box::new(|load, _| {
            if load["fun"] == "test.ping" {
                assert_eq!(load["to"], json!(3), "the publish timeout for the syndics");
                Reply::Value(publish_reply("20991231235959000042", &[]))
            } else {
                Reply::Value(publish_reply("0", &[]))
            }
        }),
    );
    append_config(&fake, "order_masters: true\nsyndic_wait: 2\n");
    let out = cgi(
        &fake.config,
        &chunk(
            "local",
            json!({"tgt": "*", "fun": "test.ping", "timeout": 3, "gather_job_timeout": 1}),
        ),
        None,
    );
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert_eq!(out.body["return"][0], json!({}));
    // timeout, then gather_job_timeout plus syndic_wait after the (empty) find_job.
    assert!(
        out.elapsed >= Duration::from_secs(6),
        "waited {:?}",
        out.elapsed
    );
}

#[test]
fn stdin_shorter_than_content_length_is_400_not_a_hang() {
    let fake = FakeMaster::start("short", false, Box::new(|_, _| Reply::Silence));
    let bin = env!("CARGO_BIN_EXE_salt-fcgi");
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env("SALT_MASTER_CONFIG", &fake.config)
        .env("REQUEST_METHOD", "POST")
        .env("CONTENT_TYPE", "application/json")
        .env("CONTENT_LENGTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"[]")
        .expect("write");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    child.wait().expect("wait");
    assert!(out.starts_with("Status: 400"), "{out}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn request_deadline_caps_the_whole_request() {
    let fake = FakeMaster::start("deadline", false, Box::new(|_, _| Reply::Silence));
    let mut text = std::fs::read_to_string(&fake.config).expect("read");
    text.push_str("  request_deadline: 1\n");
    std::fs::write(&fake.config, text).expect("write");
    let out = cgi(
        &fake.config,
        &chunk(
            "local_async",
            json!({"tgt": "*", "fun": "test.ping", "timeout": 30}),
        ),
        None,
    );
    assert_eq!(out.status, 504, "{:?}", out.body);
    assert!(
        out.body["return"]
            .as_str()
            .is_some_and(|m| m.contains("request_deadline"))
    );
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
}
