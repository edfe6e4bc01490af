//! Helpers shared by the fuzz targets: settings without a master, one tokio runtime,
//! a quiet stderr, and the checks every HTTP response must pass.
//!
//! See `docs/fuzzing.md` for the targets and how to run them.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use salt_fcgi::internals::cgi::response_bytes as cgi_response_bytes;
use salt_fcgi::internals::{Api, ApiResponse, Body};
use salt_fcgi::internals::{Limits, Settings};
use serde_json::Value as Json;

/// A `sock_dir` that does not exist: every chunk stops at the "master running" check (503)
/// and nothing ever connects to a master.
pub const NO_MASTER_SOCK_DIR: &str = "/nonexistent/salt-fcgi-fuzz";

/// Settings from a YAML master config (with `sock_dir` pointing nowhere unless given).
pub fn settings(yaml: &str) -> Settings {
    let mut m: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(yaml).expect("fuzz settings yaml");
    let key = serde_yaml_ng::Value::from("sock_dir");
    if !m.contains_key(&key) {
        m.insert(key, NO_MASTER_SOCK_DIR.into());
    }
    Settings::from_mapping(&m)
}

/// salt-fcgi's default limits (an empty master config).
pub fn default_limits() -> &'static Limits {
    static L: OnceLock<Limits> = OnceLock::new();
    L.get_or_init(|| Settings::from_mapping(&serde_yaml_ng::Mapping::new()).limits)
}

/// Tiny limits, so the fuzzer reaches every limit check with short inputs.
pub fn small_limits() -> &'static Limits {
    static L: OnceLock<Limits> = OnceLock::new();
    L.get_or_init(|| {
        settings("salt_fcgi: {max_body_bytes: 64, max_chunks: 2, max_json_depth: 3}").limits
    })
}

/// An Api with every client enabled and no master; `max_body_bytes` as given.
pub fn api(max_body_bytes: usize) -> Arc<Api> {
    Arc::new(Api::new(settings(&format!(
        "netapi_enable_clients: [local, local_async, local_batch, local_subset, runner, \
         runner_async, wheel, wheel_async, ssh]\n\
         salt_fcgi: {{max_body_bytes: {max_body_bytes}, max_chunks: 4, max_json_depth: 6}}\n"
    ))))
}

/// The default-config Api (limits as shipped) and a small-limits Api.
pub fn apis() -> &'static [Arc<Api>; 2] {
    static A: OnceLock<[Arc<Api>; 2]> = OnceLock::new();
    A.get_or_init(|| {
        [
            Arc::new(Api::new(settings(
                "netapi_enable_clients: [local, runner, wheel]\n",
            ))),
            api(64),
        ]
    })
}

/// One current-thread runtime for the whole fuzzing process (time enabled: `Api::handle`
/// uses `tokio::time::timeout`).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// Runs `f` with stderr sent to /dev/null: salt-fcgi logs every 503 to stderr, which
/// would flood the fuzzer's output. A panic restores stderr before its message is
/// printed. `FUZZ_SHOW_LOG=1` keeps stderr.
pub fn quietly<R>(f: impl FnOnce() -> R) -> R {
    static FDS: OnceLock<Option<(i32, i32)>> = OnceLock::new();
    let fds = FDS.get_or_init(|| {
        if std::env::var_os("FUZZ_SHOW_LOG").is_some_and(|v| !v.is_empty()) {
            return None;
        }
        // SAFETY: plain fd calls on fds this process owns.
        let saved = unsafe { libc::dup(2) };
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if saved < 0 || null < 0 {
            return None;
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // SAFETY: see above.
            unsafe { libc::dup2(saved, 2) };
            previous(info);
        }));
        Some((saved, null))
    });
    match *fds {
        None => f(),
        Some((saved, null)) => {
            // SAFETY: see above.
            unsafe { libc::dup2(null, 2) };
            let r = f();
            unsafe { libc::dup2(saved, 2) };
            r
        }
    }
}

/// Nesting of arrays/objects in a JSON value (a scalar is 0), without recursion.
pub fn json_depth(v: &Json) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Json::Array(items) => {
                max = max.max(d + 1);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Json::Object(map) => {
                max = max.max(d + 1);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    max
}

/// Nesting of arrays/objects in a JSON text (a scalar is 0), counting every value
/// written, also one a later duplicate key replaces (the parsed value forgets it, but a
/// parser recursed into it); `None` if serde_json does not read the text.
pub fn text_depth(body: &[u8]) -> Option<usize> {
    serde_json::from_slice::<TextDepth>(body).ok().map(|d| d.0)
}

/// The nesting of one JSON value as written (see [`text_depth`]).
struct TextDepth(usize);

impl<'de> serde::Deserialize<'de> for TextDepth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextDepthVisitor)
    }
}

/// Visits any JSON value and yields its nesting as written.
struct TextDepthVisitor;

impl<'de> serde::de::Visitor<'de> for TextDepthVisitor {
    type Value = TextDepth;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<TextDepth, E> {
        Ok(TextDepth(0))
    }
    fn visit_i64<E>(self, _: i64) -> Result<TextDepth, E> {
        Ok(TextDepth(0))
    }
    fn visit_u64<E>(self, _: u64) -> Result<TextDepth, E> {
        Ok(TextDepth(0))
    }
    fn visit_f64<E>(self, _: f64) -> Result<TextDepth, E> {
        Ok(TextDepth(0))
    }
    fn visit_str<E>(self, _: &str) -> Result<TextDepth, E> {
        Ok(TextDepth(0))
    }
    fn visit_unit<E>(self) -> Result<TextDepth, E> {
        Ok(TextDepth(0))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TextDepth, A::Error> {
        let mut deepest = 0;
        while let Some(TextDepth(d)) = seq.next_element()? {
            deepest = deepest.max(d);
        }
        Ok(TextDepth(deepest + 1))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TextDepth, A::Error> {
        let mut deepest = 0;
        while let Some((serde::de::IgnoredAny, TextDepth(d))) = map.next_entry()? {
            deepest = deepest.max(d);
        }
        Ok(TextDepth(deepest + 1))
    }
}

/// Whether `got` (the lowstate parser's value) is what serde_json's `want` is in Salt's
/// reading: numbers compare by value, integers exactly and anything else as `f64` (so the
/// integer 0 equals the float -0.0), and an integer outside `i64::MIN..=u64::MAX` (a float
/// to serde_json) is its decimal text, as Salt's msgpack encoder sends it.
pub fn same_json(want: &Json, got: &Json) -> bool {
    match (want, got) {
        (Json::Number(x), Json::String(text)) => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && text.parse::<i64>().is_err()
                && text.parse::<u64>().is_err()
                && text.parse::<f64>().ok() == x.as_f64()
        }
        (Json::Number(x), Json::Number(y)) => match (x.as_i128(), y.as_i128()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => want == got,
    }
}

/// What every response of `Api::handle` without a master must be: a known status; a
/// JSON body with `return` (a string for an error), or none for a 204; and a CGI header
/// block whose Content-Length is the body's length.
pub fn check_response(method: &str, resp: &ApiResponse) {
    assert_ne!(
        resp.reason(),
        "Unknown",
        "status {} has no reason phrase",
        resp.status
    );
    assert_eq!(
        resp.content_type,
        ApiResponse::JSON,
        "without a master only JSON answers"
    );
    assert!(
        matches!(resp.body, Body::Full(_)),
        "without a master no stream opens"
    );
    if resp.status == 204 {
        assert!(
            resp.whole_body().is_empty() && method == "OPTIONS",
            "204 for {method}"
        );
    } else {
        let body: Json = serde_json::from_slice(resp.whole_body()).expect("response body is JSON");
        let ret = body.get("return").expect("response body has \"return\"");
        if resp.status != 200 {
            assert!(ret.is_string(), "error body {body}");
        }
        if resp.status == 200 && method == "POST" {
            // No master: no chunk can run, no token can be made; only an empty list and a
            // logout (which needs no master) succeed.
            assert!(
                ret == &Json::Array(vec![]) || ret == "Your token has been cleared",
                "POST 200 without a master: {body}"
            );
        }
    }
    match (method, resp.status) {
        ("OPTIONS", s) => assert_eq!(s, 204),
        ("GET", s) => assert!(matches!(s, 200 | 401 | 404 | 405 | 503), "GET {s}"),
        ("POST", _) => {}
        (_, s) => assert!(s == 405 || s == 404, "{method} {s}"),
    }

    let bytes = cgi_response_bytes(resp);
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header block ends with a blank line");
    assert_eq!(
        &bytes[end + 4..],
        resp.whole_body(),
        "body after the header block"
    );
    let head = std::str::from_utf8(&bytes[..end]).expect("header block is UTF-8");
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(
        lines.len(),
        3 + resp.headers.len(),
        "header lines {lines:?}"
    );
    assert_eq!(
        lines[0],
        format!("Status: {} {}", resp.status, resp.reason())
    );
    assert_eq!(lines[1], "Content-Type: application/json");
    let lengths: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("Content-Length: "))
        .collect();
    assert_eq!(
        lengths,
        vec![resp.whole_body().len().to_string()],
        "Content-Length"
    );
    for line in &lines {
        assert!(
            !line.contains('\n') && !line.contains('\r'),
            "bare CR/LF in {line:?}"
        );
    }
}

/// CGI variables parsed from `NAME=VALUE` lines; a non-UTF-8 value reads as absent,
/// as `std::env::var` does.
pub fn cgi_vars(block: &[u8]) -> HashMap<String, Option<String>> {
    let mut vars = HashMap::new();
    for line in block.split(|&b| b == b'\n') {
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            continue;
        };
        // Names compare without regard to case, as salt-fcgi reads them (FastCGI params
        // arrive lower-cased); the last of two spellings wins.
        let name = String::from_utf8_lossy(&line[..eq]).to_ascii_uppercase();
        let value = String::from_utf8(line[eq + 1..].to_vec()).ok();
        vars.insert(name, value);
    }
    vars
}
