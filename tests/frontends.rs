//! The same request through each front end: CGI (exec), FastCGI (a FastCGI client crate
//! over a unix socket and an inherited fd-0 listener), and the HTTP server.

mod common;

use common::{Server, cgi_post, env, fastcgi, fastcgi_post, http, http_post};
use serde_json::json;

fn ping() -> serde_json::Value {
    json!([env().auth(json!({"client": "local", "tgt": "*", "fun": "test.ping"}))])
}

#[test]
fn cgi_local_test_ping() {
    let resp = cgi_post(&env().config, &ping());
    assert_eq!((resp.status, resp.ret()), (200, json!([env().all_true()])));
}

#[test]
fn fastcgi_local_test_ping_and_errors_on_one_process() {
    let e = env();
    let server = Server::fastcgi_unix(&e.config);
    for _ in 0..3 {
        let resp = fastcgi_post(&server.address, &ping());
        assert_eq!((resp.status, resp.ret()), (200, json!([e.all_true()])));
    }
    let resp = fastcgi(&server.address, "POST", "text/plain", b"[]");
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
fn http_local_test_ping() {
    let e = env();
    let server = Server::http(&e.config);
    let resp = http_post(&server.address, &ping());
    assert_eq!((resp.status, resp.ret()), (200, json!([e.all_true()])));
    assert_eq!(http(&server.address, "PUT", None, b"").status, 405);
    assert_eq!(
        http(&server.address, "POST", Some("text/plain"), b"[]").status,
        406
    );
}

#[test]
fn fastcgi_on_an_inherited_listening_socket() {
    // What spawn-fcgi and mod_fcgid do: the listening socket is fd 0.
    let e = env();
    let dir = std::env::temp_dir().join(format!("salt-fcgi-fd0-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let mut child = std::process::Command::new(common::binary())
        .env("SALT_MASTER_CONFIG", &e.config)
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            listener,
        )))
        .spawn()
        .expect("spawn with fd 0 = listener");
    let resp = fastcgi_post(path.to_str().expect("utf8"), &ping());
    assert_eq!((resp.status, resp.ret()), (200, json!([e.all_true()])));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
