//! The same request through each front end: CGI (exec), FastCGI (a FastCGI client crate
//! over a unix socket and an inherited fd-0 listener), and the HTTP server.

use crate::common;

use common::{Server, cgi_post, env, fastcgi, fastcgi_post, http, http_post};
use serde_json::json;

fn ping() -> serde_json::Value {
    json!([env().auth(json!({"client": "local", "tgt": "*", "fun": "test.ping"}))])
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn cgi_local_test_ping() {
    let resp = cgi_post(&env().config, &ping());
    assert_eq!((resp.status, resp.ret()), (200, json!([env().all_true()])));
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn fastcgi_local_test_ping_and_errors_on_one_process() {
    let e = env();
    let server = Server::fastcgi_unix(&e.config);
    for _ in 0..3 {
        let resp = fastcgi_post(&server.address, &ping());
        assert_eq!((resp.status, resp.ret()), (200, json!([e.all_true()])));
    }
    let resp = fastcgi(&server.address, "POST", "image/png", b"[]");
    assert_eq!(resp.status, 406);
    let resp = fastcgi(&server.address, "GET", "", b"");
    assert_eq!(resp.json()["return"], "Welcome");
    let echo = json!([e.auth(
        json!({"client": "local", "tgt": "ms-0", "fun": "test.echo", "arg": ["ünïcödé ☃"]})
    )]);
    let resp = fastcgi_post(&server.address, &echo);
    assert_eq!(resp.ret()[0]["ms-0"], "ünïcödé ☃");
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn fastcgi_big_return_arrives_whole() {
    // Over 64 KiB: the head and the body go out as separate writes, the body in several
    // FCGI_STDOUT records.
    let e = env();
    let server = Server::fastcgi_unix(&e.config);
    let big: String = (0..300_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let echo = json!([e.auth(
        json!({"client": "local", "tgt": "ms-0", "fun": "test.echo", "arg": [big.clone()]})
    )]);
    for _ in 0..2 {
        let resp = fastcgi_post(&server.address, &echo);
        assert_eq!(resp.status, 200);
        assert!(
            resp.ret()[0]["ms-0"] == big.as_str(),
            "the echo came back changed"
        );
    }
    let resp = fastcgi_post(&server.address, &ping());
    assert_eq!(
        resp.ret(),
        json!([e.all_true()]),
        "a small reply after big ones"
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn fastcgi_concurrent_requests() {
    let e = env();
    let server = Server::fastcgi_unix(&e.config);
    let address = server.address.clone();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let address = address.clone();
            std::thread::spawn(move || {
                let body = json!([env().auth(json!({"client": "local", "tgt": "ms-0", "fun": "test.echo", "arg": [format!("n{i}")]}))]);
                fastcgi_post(&address, &body).ret()
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(
            t.join().expect("thread"),
            json!([{"ms-0": format!("n{i}")}])
        );
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn http_local_test_ping() {
    let e = env();
    let server = Server::http(&e.config);
    let resp = http_post(&server.address, &ping());
    assert_eq!((resp.status, resp.ret()), (200, json!([e.all_true()])));
    assert_eq!(http(&server.address, "PUT", None, b"").status, 405);
    assert_eq!(
        http(&server.address, "POST", Some("image/png"), b"[]").status,
        406
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn fastcgi_on_an_inherited_listening_socket() {
    // What spawn-fcgi and mod_fcgid do: the listening socket is fd 0.
    let e = env();
    let dir = std::env::temp_dir().join(format!("salt-fcgi-fd0-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let child = std::process::Command::new(common::binary())
        .env("SALT_MASTER_CONFIG", &e.config)
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            listener,
        )))
        .spawn()
        .expect("spawn with fd 0 = listener");
    let _child = common::KillOnDrop(child);
    let resp = fastcgi_post(path.to_str().expect("utf8"), &ping());
    assert_eq!((resp.status, resp.ret()), (200, json!([e.all_true()])));
    let _ = std::fs::remove_dir_all(&dir);
}

/// One FastCGI record: version 1, type, request id 1, content, no padding.
fn record(kind: u8, content: &[u8]) -> Vec<u8> {
    let mut r = vec![1, kind, 0, 1];
    r.extend_from_slice(&(content.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0]);
    r.extend_from_slice(content);
    r
}

/// Peak virtual memory of a process, from /proc (kB).
fn vm_peak_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmPeak")
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn malformed_fastcgi_records_end_the_connection_without_a_panic() {
    use std::io::{Read, Write};
    let e = env();
    let log = std::env::temp_dir().join(format!("salt-fcgi-records-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).expect("log file");
    let server = Server::fastcgi_unix_logging(&e.config, file.into());
    let resp = fastcgi_post(&server.address, &ping());
    assert_eq!(resp.status, 200, "warm-up");
    let peak_before = vm_peak_kb(server.pid());
    let begin = record(1, &[0, 1, 1, 0, 0, 0, 0, 0]);
    let cases = [
        // A BEGIN_REQUEST shorter than 2 bytes (tokio-fastcgi 1.3, once used, panicked).
        record(1, b""),
        // Declared parameter lengths of 2 x 2 GiB (it allocated them).
        [
            begin.clone(),
            record(4, b"\xff\xff\xff\xf0\xff\xff\xff\xf0ab"),
        ]
        .concat(),
        // A BEGIN_REQUEST whose padding never comes (the connection just ends: a cut
        // record is not a request).
        vec![1, 1, 0, 1, 0, 0, 9, 0],
    ];
    for bytes in cases {
        let mut s = std::os::unix::net::UnixStream::connect(&server.address).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(&bytes).expect("write");
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)
            .expect("the server closes the connection");
        assert!(
            rest.is_empty(),
            "no response to a malformed record: {rest:?}"
        );
    }
    let resp = fastcgi_post(&server.address, &ping());
    assert_eq!((resp.status, resp.ret()), (200, json!([e.all_true()])));
    let grown = vm_peak_kb(server.pid()) - peak_before;
    assert!(
        grown < 1 << 20,
        "VmPeak grew by {grown} kB: parameter buffers were allocated"
    );
    drop(server);
    let text = std::fs::read_to_string(&log).expect("read log");
    let _ = std::fs::remove_file(&log);
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        text.contains("BEGIN_REQUEST record shorter than 8 bytes"),
        "{text}"
    );
    assert!(
        text.contains("name-value pair is longer than its record"),
        "{text}"
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn clients_that_vanish_or_send_garbage_do_not_hurt_the_server() {
    use std::io::Write;
    let e = env();
    let server = Server::fastcgi_unix(&e.config);
    // A web server that disconnects mid-request (BEGIN_REQUEST, half the params).
    let mut s = std::os::unix::net::UnixStream::connect(&server.address).expect("connect");
    s.write_all(&record(1, &[0, 1, 1, 0, 0, 0, 0, 0]))
        .expect("begin");
    s.write_all(&record(4, b"\x0e\x04REQUEST_METHODPO"))
        .expect("partial params");
    drop(s);
    // Garbage that is not FastCGI at all.
    let mut s = std::os::unix::net::UnixStream::connect(&server.address).expect("connect");
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff");
    drop(s);
    // A client that disconnects while a synchronous request is still running.
    let mut s = std::os::unix::net::UnixStream::connect(&server.address).expect("connect");
    let body =
        json!([e.auth(json!({"client": "local", "tgt": "ms-0", "fun": "test.sleep", "arg": [1]}))])
            .to_string();
    let params = format!(
        "\x0e\x04REQUEST_METHODPOST\x0c\x10CONTENT_TYPEapplication/json\x0e{}CONTENT_LENGTH{}",
        char::from(body.len().to_string().len() as u8),
        body.len()
    );
    s.write_all(&record(1, &[0, 1, 0, 0, 0, 0, 0, 0]))
        .expect("begin");
    s.write_all(&record(4, params.as_bytes())).expect("params");
    s.write_all(&record(4, b"")).expect("end params");
    s.write_all(&record(5, body.as_bytes())).expect("stdin");
    s.write_all(&record(5, b"")).expect("end stdin");
    drop(s);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // The same process still serves.
    let resp = fastcgi_post(&server.address, &ping());
    assert_eq!((resp.status, resp.ret()), (200, json!([e.all_true()])));
    // And the HTTP server survives a client that sends half a body and leaves.
    let http_server = Server::http(&e.config);
    let mut s = std::net::TcpStream::connect(&http_server.address).expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{").expect("half");
    drop(s);
    let resp = http_post(&http_server.address, &ping());
    assert_eq!(resp.status, 200);
}

/// One FastCGI record for request `id`.
fn record_for(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let mut r = record(kind, content);
    r[2..4].copy_from_slice(&id.to_be_bytes());
    r
}

/// Reads records off `s` until request `id`'s END_REQUEST: every record as (type, id,
/// content), in order.
fn records_until_end(s: &mut std::os::unix::net::UnixStream, id: u16) -> Vec<(u8, u16, Vec<u8>)> {
    use std::io::Read;
    let mut out = Vec::new();
    loop {
        let mut header = [0u8; 8];
        s.read_exact(&mut header).expect("a record header");
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let mut content = vec![0u8; len + usize::from(header[6])];
        s.read_exact(&mut content).expect("the record's content");
        content.truncate(len);
        let rid = u16::from_be_bytes([header[2], header[3]]);
        out.push((header[1], rid, content));
        if header[1] == 3 && rid == id {
            return out;
        }
    }
}

/// What salt-fcgi tells a web server about itself and what it refuses, on one kept
/// connection: GET_VALUES, an unknown record type, a role other than responder, a second
/// request while one is arriving; then the first request is answered all the same.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn fastcgi_management_records_roles_and_one_request_at_a_time() {
    use std::io::Write;
    let e = env();
    let server = Server::fastcgi_unix(&e.config);
    let mut s = std::os::unix::net::UnixStream::connect(&server.address).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    let asked = b"\x0e\x00FCGI_MAX_CONNS\x0d\x00FCGI_MAX_REQS\x0f\x00FCGI_MPXS_CONNS";
    s.write_all(&record_for(9, 0, asked)).expect("GET_VALUES");
    s.write_all(&record_for(42, 0, b""))
        .expect("an unknown type");
    s.write_all(&record_for(1, 7, &[0, 2, 1, 0, 0, 0, 0, 0]))
        .expect("an authorizer");
    // Request 1 begins; request 2 begins before request 1 has arrived whole.
    s.write_all(&record_for(1, 1, &[0, 1, 1, 0, 0, 0, 0, 0]))
        .expect("begin 1");
    s.write_all(&record_for(1, 2, &[0, 1, 1, 0, 0, 0, 0, 0]))
        .expect("begin 2");
    s.write_all(&record_for(
        4,
        1,
        b"\x0e\x03REQUEST_METHODGET\x09\x01PATH_INFO/",
    ))
    .expect("params");
    s.write_all(&record_for(4, 1, b"")).expect("end params");
    s.write_all(&record_for(5, 1, b"")).expect("end stdin");
    let got = records_until_end(&mut s, 1);
    let max = "256";
    let values = [
        &b"\x0e\x03FCGI_MAX_CONNS"[..],
        max.as_bytes(),
        b"\x0d\x03FCGI_MAX_REQS",
        max.as_bytes(),
        b"\x0f\x01FCGI_MPXS_CONNS0",
    ]
    .concat();
    assert_eq!(got[0], (10, 0, values), "GET_VALUES_RESULT");
    assert_eq!(
        got[1],
        (11, 0, vec![42, 0, 0, 0, 0, 0, 0, 0]),
        "UNKNOWN_TYPE"
    );
    assert_eq!(got[2], (3, 7, vec![0, 0, 0, 0, 3, 0, 0, 0]), "UNKNOWN_ROLE");
    assert_eq!(
        got[3],
        (3, 2, vec![0, 0, 0, 0, 1, 0, 0, 0]),
        "CANT_MPX_CONN"
    );
    let stdout: Vec<u8> = got[4..]
        .iter()
        .filter(|(kind, id, _)| (*kind, *id) == (6, 1))
        .flat_map(|(_, _, c)| c.clone())
        .collect();
    let text = String::from_utf8_lossy(&stdout);
    assert!(text.starts_with("Status: 200 OK\r\n"), "{text}");
    assert!(text.contains("\"clients\""), "the welcome document: {text}");
    assert_eq!(got.last(), Some(&(3, 1, vec![0, 0, 0, 0, 0, 0, 0, 0])));
    // The connection was kept: a whole request through the FastCGI client crate works too.
    let resp = fastcgi_post(&server.address, &ping());
    assert_eq!((resp.status, resp.ret()), (200, json!([e.all_true()])));
}
