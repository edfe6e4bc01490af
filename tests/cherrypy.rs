//! The rest_cherrypy dialect against the real master, through CGI, FastCGI and HTTP:
//! sessions that are the master's eauth tokens (login, cookie or X-Auth-Token, logout,
//! expiry seen by every process), every endpoint's shape, restricted users, the webhook
//! event, and the pepper CLI.

use crate::common;

use std::time::{Duration, Instant};

use common::{Front, OpenStream, Req, Response, Server, env, read_stream};
use serde_json::{Value as Json, json};

/// Logs in through `front` and returns the token (asserting the answer's shape).
fn login(front: &Front, user: &str, password: &str, extra: Json) -> (String, Response) {
    let mut body = json!({"username": user, "password": password, "eauth": "file"});
    if let (Json::Object(b), Json::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let r = front.send(&Req::new("POST", "/login").json(&body));
    assert_eq!(r.status, 200, "{} login: {}", front.name(), r.ret());
    let token = r.ret()[0]["token"].as_str().unwrap_or_default().to_string();
    assert!(
        token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{r:?}"
    );
    (token, r)
}

fn with_token(req: Req, token: &str) -> Req {
    req.header("X-Auth-Token", token)
}

fn with_cookie(req: Req, token: &str) -> Req {
    req.header("Cookie", &format!("session_id={token}"))
}

/// Waits until the job cache has a return from every test minion for `jid`.
fn job_returns(front: &Front, token: &str, jid: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = front.send(&with_token(Req::new("GET", &format!("/jobs/{jid}")), token));
        assert_eq!(r.status, 200, "{}", r.ret());
        let done = env().minions.iter().all(|m| r.ret()[0].get(m).is_some());
        if done || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn every_endpoint_on_every_front_end() {
    let e = env();
    let http = Server::http(&e.config);
    let fcgi = Server::fastcgi_unix(&e.config);
    for front in [
        Front::Cgi(&e.config),
        Front::FastCgi(&fcgi.address),
        Front::Http(&http.address),
    ] {
        let name = front.name();
        let (token, r) = login(&front, &e.user, &e.password, json!({}));
        let info = &r.ret()[0];
        assert_eq!(info["user"], json!(e.user), "{name}");
        assert_eq!(info["eauth"], json!("file"), "{name}");
        assert_eq!(
            info["perms"],
            json!([".*", "@jobs", "@runner", "@wheel"]),
            "{name}"
        );
        let (start, expire) = (info["start"].as_f64(), info["expire"].as_f64());
        assert!(
            start.zip(expire).is_some_and(|(s, x)| x > s),
            "{name}: {info}"
        );
        assert_eq!(r.headers.get("x-auth-token"), Some(&token), "{name}");
        let cookie = r.headers.get("set-cookie").cloned().unwrap_or_default();
        assert!(
            cookie.starts_with(&format!("session_id={token}; Path=/; Expires="))
                && cookie.ends_with("; HttpOnly; SameSite=Lax"),
            "{name}: {cookie}"
        );

        // SaltGUI's way: one object as text/plain, the cookie only.
        let ping = json!({"client": "local", "tgt": "*", "fun": "test.ping"});
        let r = front.send(&with_cookie(
            Req::new("POST", "/").body("text/plain;charset=UTF-8", ping.to_string().as_bytes()),
            &token,
        ));
        assert_eq!((r.status, r.ret()), (200, json!([e.all_true()])), "{name}");
        // pepper's way: a list with `batch: null`, X-Auth-Token.
        let chunk = json!([{"client": "runner", "fun": "test.arg", "arg": ["a", "b=1"],
            "batch": null, "full_return": false}]);
        let r = front.send(&with_token(Req::new("POST", "/").json(&chunk), &token));
        assert_eq!(
            (r.status, r.ret()),
            (200, json!([{"args": ["a"], "kwargs": {"b": 1}}])),
            "{name}"
        );
        // /run with the token in the chunk; and a form body.
        let run = json!([{"client": "local", "tgt": "ms-0", "fun": "test.ping", "token": token}]);
        let r = front.send(&Req::new("POST", "/run").json(&run));
        assert_eq!(
            (r.status, r.ret()),
            (200, json!([{"ms-0": true}])),
            "{name}"
        );
        let form = "client=local&tgt=ms-1&fun=test.echo&arg=hello+world";
        let r = front.send(&with_token(
            Req::new("POST", "/run").body("application/x-www-form-urlencoded", form.as_bytes()),
            &token,
        ));
        assert_eq!(
            (r.status, r.ret()),
            (200, json!([{"ms-1": "hello world"}])),
            "{name}"
        );

        // /stats with the session; YAML when asked for.
        let r = front.send(&with_token(Req::new("GET", "/stats"), &token));
        assert_eq!(r.status, 200, "{name}: {:?}", r.json());
        assert!(r.json()["salt-fcgi"]["uptime"].is_number(), "{name}");
        let r = front.send(
            &with_token(Req::new("GET", "/stats"), &token).header("Accept", "application/x-yaml"),
        );
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/x-yaml")
        );
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&r.body).expect("a YAML body");
        assert!(yaml.get("salt-fcgi").is_some(), "{name}");

        // Resources.
        let r = front.send(&with_token(Req::new("GET", "/minions/ms-0"), &token));
        assert_eq!(r.ret()[0]["ms-0"]["id"], json!("ms-0"), "{name}");
        let r = front.send(&with_token(
            Req::new("POST", "/minions").json(&json!({"tgt": "*", "fun": "test.ping"})),
            &token,
        ));
        assert_eq!(r.status, 202, "{name}: {}", r.ret());
        let jid = r.ret()[0]["jid"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            r.json()["_links"]["jobs"],
            json!([{"href": format!("/jobs/{jid}")}]),
            "{name}"
        );
        let r = job_returns(&front, &token, &jid);
        assert_eq!(r.ret(), json!([e.all_true()]), "{name}");
        assert_eq!(
            r.json()["info"][0]["Function"],
            json!("test.ping"),
            "{name}"
        );
        let r = front.send(&with_token(Req::new("GET", "/jobs"), &token));
        assert!(
            r.ret()[0].get(&jid).is_some(),
            "{name}: job list lacks {jid}"
        );
        let r = front.send(&with_token(Req::new("GET", "/keys"), &token));
        assert_eq!(r.ret()["minions"], json!(e.minions), "{name}");
        let r = front.send(&with_token(Req::new("GET", "/keys/ms-0"), &token));
        assert!(
            r.ret()["minions"]["ms-0"].is_string(),
            "{name}: {}",
            r.ret()
        );

        // Unknown paths and methods.
        let r = front.send(&Req::new("GET", "/static/salt-motd.txt"));
        assert_eq!(
            (r.status, r.ret()),
            (404, json!("404: Not Found")),
            "{name}"
        );
        let r = front.send(&Req::new("PUT", "/login"));
        assert_eq!(r.status, 405, "{name}");

        // /token (pepper -r): a bare list; the token works on /run.
        let creds = json!({"username": e.user, "password": e.password, "eauth": "file"});
        let r = front.send(&Req::new("POST", "/token").json(&creds));
        assert_eq!(r.status, 200, "{name}");
        let list = r.json();
        assert_eq!(list[0]["name"], json!(e.user), "{name}: {list}");
        let raw = list[0]["token"].as_str().unwrap_or_default().to_string();
        let run = json!([{"client": "local", "tgt": "ms-0", "fun": "test.ping", "token": raw}]);
        assert_eq!(front.send(&Req::new("POST", "/run").json(&run)).status, 200);

        // Logout (cookie only, no body): the token is gone for every endpoint.
        let r = front.send(&with_cookie(Req::new("POST", "/logout"), &token));
        assert_eq!(
            (r.status, r.ret()),
            (200, json!("Your token has been cleared")),
            "{name}"
        );
        assert!(
            r.headers
                .get("set-cookie")
                .is_some_and(|c| c.starts_with("session_id=; Path=/; Expires=Thu, 01 Jan 1970")),
            "{name}: {:?}",
            r.headers
        );
        let r = front.send(&with_token(Req::new("GET", "/stats"), &token));
        assert_eq!(r.status, 401, "{name}");
        let r = front.send(&with_cookie(
            Req::new("POST", "/").json(&json!([ping])),
            &token,
        ));
        assert_eq!(r.status, 401, "{name}: {}", r.ret());
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn missing_bad_and_foreign_credentials() {
    let e = env();
    let http = Server::http(&e.config);
    let front = Front::Http(&http.address);
    let ping = json!([{"client": "local", "tgt": "*", "fun": "test.ping"}]);
    // No credentials anywhere.
    let r = front.send(&Req::new("POST", "/").json(&ping));
    assert_eq!(r.status, 401, "{}", r.ret());
    for path in ["/stats", "/minions", "/jobs", "/keys"] {
        let r = front.send(&Req::new("GET", path));
        assert_eq!(r.status, 401, "{path}: {}", r.ret());
    }
    // An empty X-Auth-Token is absent (SaltGUI before login); the cookie then counts.
    let (token, _) = login(&front, &e.user, &e.password, json!({}));
    let r = front.send(&with_cookie(
        Req::new("POST", "/").json(&ping).header("X-Auth-Token", ""),
        &token,
    ));
    assert_eq!(r.status, 200, "{}", r.ret());
    // A token that cannot be a Salt token never reaches the master.
    for bad in ["../../etc/passwd", "zz", "ab cd"] {
        let r = front.send(&with_token(Req::new("GET", "/stats"), bad));
        assert_eq!((r.status, r.ret()), (401, json!("Invalid token")), "{bad}");
    }
    // A well-formed token the master never made.
    let r = front.send(&with_token(Req::new("GET", "/stats"), &"ab".repeat(32)));
    assert_eq!(r.status, 401);
    let r = front.send(&with_token(
        Req::new("POST", "/").json(&ping),
        &"ab".repeat(32),
    ));
    assert_eq!(r.status, 401, "{}", r.ret());
    // A foreign or stale cookie of the same name does not stand in the way of a login.
    let body = json!({"username": e.user, "password": e.password, "eauth": "file"});
    let r = front.send(
        &Req::new("POST", "/login")
            .json(&body)
            .header("Cookie", "session_id=not-a-salt-token"),
    );
    assert_eq!(r.status, 200, "{}", r.ret());
    // Wrong password: 401 with a JSON body, no cookie.
    let body = json!({"username": e.user, "password": "wrong", "eauth": "file"});
    let r = front.send(&Req::new("POST", "/login").json(&body));
    assert_eq!(r.status, 401, "{}", r.ret());
    assert!(!r.headers.contains_key("set-cookie"));
    let r = front.send(&Req::new("POST", "/login").json(&json!({"username": e.user})));
    assert_eq!(r.status, 401, "{}", r.ret());
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn restricted_user_sees_only_what_its_acl_allows() {
    let e = env();
    let http = Server::http(&e.config);
    let front = Front::Http(&http.address);
    let (token, r) = login(
        &front,
        &e.restricted_user,
        &e.restricted_password,
        json!({}),
    );
    // SaltGUI needs non-empty perms; the Java client reads them as given.
    assert_eq!(r.ret()[0]["perms"], json!([{"ms-0": ["test.*"]}]));
    let allowed = json!([{"client": "local", "tgt": "ms-0", "fun": "test.ping"}]);
    let r = front.send(&with_token(Req::new("POST", "/").json(&allowed), &token));
    assert_eq!((r.status, r.ret()), (200, json!([{"ms-0": true}])));
    let denied = json!([{"client": "local", "tgt": "ms-1", "fun": "test.ping"}]);
    let r = front.send(&with_token(Req::new("POST", "/").json(&denied), &token));
    // rest_cherrypy answers an ACL denial with 401, as every client expects.
    assert_eq!(
        (r.status, r.ret()),
        (401, json!("Authorization error occurred."))
    );
    for path in ["/keys", "/jobs"] {
        let r = front.send(&with_token(Req::new("GET", path), &token));
        assert!(
            r.status == 401 || r.status == 403,
            "{path}: {} {}",
            r.status,
            r.ret()
        );
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn expiry_and_logout_reach_every_process() {
    let e = env();
    let a = Server::fastcgi_unix(&e.config);
    let b = Server::fastcgi_unix(&e.config);
    let c = Server::http(&e.config);
    let fronts = [
        Front::FastCgi(&a.address),
        Front::FastCgi(&b.address),
        Front::Http(&c.address),
        Front::Cgi(&e.config),
    ];
    let pid_of = |f: &Front, t: &str| {
        f.send(&with_token(Req::new("GET", "/stats"), t)).json()["salt-fcgi"]["pid"].clone()
    };
    // A short token (the master allows token_expire overrides): valid everywhere, then
    // refused everywhere once the master's clock passes its expiry.
    let (token, r) = login(&fronts[0], &e.user, &e.password, json!({"token_expire": 4}));
    let info = &r.ret()[0];
    let lifetime = info["expire"].as_f64().unwrap_or(0.0) - info["start"].as_f64().unwrap_or(0.0);
    assert!(
        (3.0..5.0).contains(&lifetime),
        "token_expire ignored: {info}"
    );
    assert_ne!(
        pid_of(&fronts[0], &token),
        pid_of(&fronts[1], &token),
        "two processes"
    );
    for f in &fronts {
        let r = f.send(&with_token(Req::new("GET", "/stats"), &token));
        assert_eq!(r.status, 200, "{}", f.name());
    }
    std::thread::sleep(Duration::from_secs_f64(lifetime + 1.0));
    for f in &fronts {
        let r = f.send(&with_token(Req::new("GET", "/stats"), &token));
        assert_eq!(r.status, 401, "{} after expiry", f.name());
        let ping = json!([{"client": "local", "tgt": "*", "fun": "test.ping"}]);
        let r = f.send(&with_token(Req::new("POST", "/").json(&ping), &token));
        assert_eq!(r.status, 401, "{} after expiry: {}", f.name(), r.ret());
    }
    // Logout on one process ends the session on all of them.
    let (token, _) = login(&fronts[1], &e.user, &e.password, json!({}));
    let r = fronts[2].send(&with_token(Req::new("POST", "/logout"), &token));
    assert_eq!(r.status, 200);
    for f in &fronts {
        let r = f.send(&with_token(Req::new("GET", "/stats"), &token));
        assert_eq!(r.status, 401, "{} after logout", f.name());
    }
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn webhook_fires_on_the_master_bus_without_credentials() {
    let e = env();
    let http = Server::http(&e.config);
    let front = Front::Http(&http.address);
    let (token, _) = login(&front, &e.user, &e.password, json!({}));
    let settings = salt_fcgi::internals::Settings::load(Some(&e.config)).expect("settings");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let event = runtime.block_on(async {
        let bus = salt_fcgi::internals::EventBus::new(&settings);
        let mut sub = bus
            .subscribe(vec!["salt/netapi/hook/".into()])
            .await
            .expect("subscribe to the event bus");
        let address = http.address.clone();
        let token = token.clone();
        let sent = tokio::task::spawn_blocking(move || {
            Front::Http(&address).send(&with_cookie(
                Req::new("POST", "/hook/deploy/web")
                    .json(&json!({"ref": "main"}))
                    .header("X-Github-Event", "push")
                    .header("Authorization", "Basic c2VjcmV0"),
                &token,
            ))
        })
        .await
        .expect("hook request");
        assert_eq!((sent.status, sent.json()), (200, json!({"success": true})));
        tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("the hook event within 10 s")
            .expect("an event")
    });
    assert_eq!(event.tag, "salt/netapi/hook/deploy/web");
    assert_eq!(event.data["post"], json!({"ref": "main"}));
    assert_eq!(event.data["body"], json!(r#"{"ref":"main"}"#));
    let headers = &event.data["headers"];
    assert_eq!(headers["X-Github-Event"], json!("push"));
    assert_eq!(headers["Content-Type"], json!("application/json"));
    let text = event.data.to_string();
    for secret in [token.as_str(), "c2VjcmV0", "session_id"] {
        assert!(!text.contains(secret), "{secret} reached the bus: {text}");
    }
    // Without a session: 401, unless the operator turned webhook auth off.
    let r = front.send(&Req::new("POST", "/hook/x").json(&json!({})));
    assert_eq!(r.status, 401);
    let open = e.config_variant("hook-open", "rest_cherrypy: {webhook_disable_auth: true}\n");
    let r = Front::Cgi(&open).send(&Req::new("POST", "/hook/x").json(&json!({})));
    assert_eq!((r.status, r.json()), (200, json!({"success": true})));
}

/// On a private master: `key.gen_accept` adds an accepted key with no minion behind it,
/// which every test targeting `*` on the shared master would wait for.
#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn new_key_pair_as_a_tarball() {
    let e = env();
    let private = common::PrivateMaster::start();
    let config = private.config();
    let front = Front::Cgi(&config);
    let id = format!("tarball-{}", std::process::id());
    let form = format!(
        "mid={id}&username={}&password={}&eauth=file",
        e.user, e.password
    );
    let r = front.send(
        &Req::new("POST", "/keys").body("application/x-www-form-urlencoded", form.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/x-tar")
    );
    let dir = private.dir.join(format!("tar-{id}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("k.tar"), &r.body).expect("write tar");
    let out = std::process::Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-xf")
        .arg(dir.join("k.tar"))
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(dir.join("minion.pub")).expect("minion.pub");
    let secret = std::fs::read_to_string(dir.join("minion.pem")).expect("minion.pem");
    assert!(public.contains("PUBLIC KEY") && secret.contains("PRIVATE KEY"));
    // The private master accepted it.
    let out = std::process::Command::new(e.venv.join("bin/salt-key"))
        .arg("-c")
        .arg(&private.dir)
        .args(["-L", "--out=json"])
        .output()
        .expect("salt-key");
    let keys: Json = serde_json::from_slice(&out.stdout).expect("salt-key JSON");
    assert!(
        keys["minions"]
            .as_array()
            .is_some_and(|m| m.contains(&json!(id))),
        "{keys}"
    );
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn event_streams_end_with_their_token_and_never_take_it_from_the_url() {
    let e = env();
    let config = e.config_variant(
        "streams",
        "salt_fcgi: {stream_token_check: 0.5, stream_heartbeat: 1}\n",
    );
    let http = Server::http(&config);
    let front = Front::Http(&http.address);
    // The token in the query string is never used (nor echoed).
    let (token, _) = login(&front, &e.user, &e.password, json!({}));
    let (text, _) = read_stream(
        &http.address,
        &format!("/events?token={token}"),
        &[],
        Duration::from_secs(5),
    );
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(!text.contains(&token), "{text}");
    // Revoked while open: the stream ends by itself at its next token check (0.5 s here,
    // plus the master's answer, which takes seconds when other tests keep its workers
    // busy: 6 s was once not enough), long before the token would expire (hours).
    let mut stream = OpenStream::open(&http.address, "/events", &[("X-Auth-Token", &token)]);
    stream.wait_for(|t| t.contains(": heartbeat\n\n"), Duration::from_secs(30));
    let r = front.send(&with_token(Req::new("POST", "/logout"), &token));
    assert_eq!(r.status, 200);
    let (text, lasted) = stream.read_for(Duration::from_secs(120));
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("retry: 400\n"),
        "{text}"
    );
    assert!(text.contains(": heartbeat\n\n"), "{text}");
    assert!(
        lasted < Duration::from_secs(60),
        "the stream outlived its revoked token: {lasted:?}"
    );
    // Expired: the stream ends at the token's expiry (by then at the latest: the token
    // was made before `login` returned). On a loaded machine the stream may open after
    // the expiry: then it is refused, or ends at once.
    let (token, _) = login(&front, &e.user, &e.password, json!({"token_expire": 3}));
    let expired_by = Instant::now() + Duration::from_secs(3);
    let stream = OpenStream::open(
        &http.address,
        "/events",
        &[("Cookie", &format!("session_id={token}"))],
    );
    let opened = Instant::now();
    let (text, _) = stream.read_for(Duration::from_secs(30));
    let late = Instant::now().saturating_duration_since(expired_by.max(opened));
    assert!(
        text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.1 401"),
        "{text}"
    );
    assert!(
        late < Duration::from_secs(3),
        "the stream outlived its token by {late:?} (token checks every 0.5 s)"
    );
    // No session at all.
    let (text, _) = read_stream(&http.address, "/events", &[], Duration::from_secs(5));
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
}

#[test]
#[ignore = "needs the test master: scripts/test starts one and runs every test"]
fn websocket_carries_a_jobs_events() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let e = env();
    let http = Server::http(&e.config);
    let front = Front::Http(&http.address);
    let (token, _) = login(&front, &e.user, &e.password, json!({}));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let messages = runtime.block_on(async {
        let url = format!("ws://{}/ws/{token}", http.address);
        let (mut ws, resp) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket handshake");
        assert_eq!(resp.status(), 101);
        ws.send(Message::text("websocket client ready"))
            .await
            .expect("send ready");
        let address = http.address.clone();
        let job = json!([{"client": "local_async", "tgt": "*", "fun": "test.ping"}]);
        let tok = token.clone();
        let started = tokio::task::spawn_blocking(move || {
            Front::Http(&address).send(&with_token(Req::new("POST", "/").json(&job), &tok))
        })
        .await
        .expect("job");
        let jid = started.ret()[0]["jid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while seen
            .iter()
            .filter(|t: &&String| t.contains(&format!("{jid}/ret/")))
            .count()
            < 2
        {
            let msg = tokio::time::timeout_at(deadline, ws.next())
                .await
                .expect("events within 20 s")
                .expect("an open socket")
                .expect("a message");
            if let Message::Text(text) = msg {
                let text = text.to_string();
                assert!(
                    text.starts_with("data: {") && text.ends_with("}\n\n"),
                    "{text}"
                );
                let event: Json = serde_json::from_str(&text[6..]).expect("JSON after 'data: '");
                seen.push(event["tag"].as_str().unwrap_or_default().to_string());
            }
        }
        let _ = ws.close(None).await;
        (jid, seen)
    });
    let (jid, seen) = messages;
    assert!(seen.contains(&format!("salt/job/{jid}/new")), "{seen:?}");
    for m in &e.minions {
        assert!(
            seen.contains(&format!("salt/job/{jid}/ret/{m}")),
            "{seen:?}"
        );
    }
    // Only the HTTP front end can upgrade: CGI and FastCGI answer a clear 400.
    let r = Front::Cgi(&e.config).send(&with_token(
        Req::new("GET", &format!("/ws/{token}"))
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        &token,
    ));
    assert_eq!(r.status, 400, "{}", r.ret());
}
