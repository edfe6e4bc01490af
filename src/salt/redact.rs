//! What may leave the process in an event stream: every event with its secrets removed.
//!
//! The master fires failed publishes (`salt/job/…/error`) with the caller's password; job
//! events repeat every argument (`arg`, `fun_args`, `__pub_arg`), where the salt CLI and
//! pepper put `password=…`; loads carry eauth tokens; wheel `key.gen` returns a private
//! key; a webhook's event carries the caller's headers. rest_cherrypy streams all of it
//! verbatim; salt-fcgi replaces each such value with [`REDACTED`] at any depth before an
//! event is sent to a client:
//! - the value of a **secret key**: a key one of whose words (split at `_`, `-`, `.`,
//!   spaces and camelCase humps) starts with a secret stem (`pass`, `pwd`, `secret`,
//!   `token`, `auth`, `credential`, `cookie`, `priv`, `key`, `apikey`, …), unless the key
//!   is one of a few well-known harmless ones (`fun`, `jid`, `tgt`, `eauth`, …). An object
//!   under such a key is not replaced whole but searched (a state's id may well contain
//!   `key`); a scalar or list is replaced;
//! - inside **strings**: the value after a secret name and `=` or `:` (`password=x`,
//!   `"api_token": "x"`, `Authorization: Bearer x`), after `--<secret name> ` (`--password
//!   x`), and the password of a URL (`https://u:x@host`);
//! - in **argument lists**: the item after an item that is exactly `--<secret name>`;
//! - any string holding a PEM private key.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Map, Value as Json, json};

/// What a redacted value becomes.
pub(crate) const REDACTED: &str = "**redacted**";

/// Word stems that make a key secret (compared with the start of each word of a key).
const SECRET_STEMS: [&str; 12] = [
    "pass",
    "pwd",
    "secret",
    "token",
    "auth",
    "credential",
    "cookie",
    "priv",
    "key",
    "apikey",
    "signature",
    "session",
];

/// Keys that match a stem but are well-known and harmless.
const HARMLESS_KEYS: [&str; 22] = [
    "fun",
    "jid",
    "tgt",
    "tgt_type",
    "id",
    "user",
    "username",
    "eauth",
    "author",
    "authors",
    "authority",
    "passed",
    "passes",
    "passing",
    "keys",
    "keyboard",
    "keep_jobs",
    "private_ip",
    "private_ips",
    "private_dns",
    "privileged",
    "session_id_len",
];

/// The lower-case words of a key: split at anything not alphanumeric and where a lower
/// case letter is followed by an upper case one (`apiToken` → `api`, `token`).
fn words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// True for a key (or a name in text) whose value must not be shown.
pub(crate) fn is_secret_name(key: &str) -> bool {
    if key.is_empty()
        || key.len() > 128
        || HARMLESS_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
    {
        return false;
    }
    words(key)
        .iter()
        .any(|w| SECRET_STEMS.iter().any(|stem| w.starts_with(stem)))
}

/// True for text that holds a PEM private key, wherever it appears.
fn is_private_key_text(text: &str) -> bool {
    text.contains("PRIVATE KEY-----")
}

/// `value` with every secret replaced by [`REDACTED`].
pub(crate) fn redacted(value: &Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = match v {
                        Json::Null => Json::Null,
                        Json::Object(_) => redacted(v),
                        _ if is_secret_name(k) => Json::from(REDACTED),
                        _ => redacted(v),
                    };
                    (k.clone(), shown)
                })
                .collect::<Map<String, Json>>(),
        ),
        Json::Array(items) => Json::Array(redacted_list(items)),
        Json::String(s) if is_private_key_text(s) => Json::from(REDACTED),
        Json::String(s) => Json::String(redacted_text(s)),
        other => other.clone(),
    }
}

/// A list with each item redacted, and the item after a lone `--<secret name>` hidden.
fn redacted_list(items: &[Json]) -> Vec<Json> {
    let mut out = Vec::with_capacity(items.len());
    let mut hide_next = false;
    for item in items {
        if hide_next && !item.is_null() {
            out.push(Json::from(REDACTED));
            hide_next = false;
            continue;
        }
        hide_next = item
            .as_str()
            .and_then(|s| s.strip_prefix("--"))
            .is_some_and(|name| !name.contains(['=', ' ']) && is_secret_name(name));
        out.push(redacted(item));
    }
    out
}

/// Characters of a name in text (`db_password`, `X-Api-Key`, `auth.token`).
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// `text` with the values after secret names hidden (see the module comment).
pub(crate) fn redacted_text(text: &str) -> String {
    if !text.contains(['=', ':', ' ']) {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_name_char(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_name_char(chars[i]) {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        out.push_str(&name);
        let flag = name.starts_with("--");
        let bare = name.trim_start_matches('-');
        if !is_secret_name(bare) {
            continue;
        }
        i = hide_value(&chars, i, flag, &mut out);
    }
    redacted_url_password(&out)
}

/// After a secret name at `i`: copies what separates it from its value, writes
/// [`REDACTED`] instead of the value, and returns where the text goes on. A name with no
/// value after it is left as it is.
fn hide_value(chars: &[char], mut i: usize, flag: bool, out: &mut String) -> usize {
    let start = i;
    // A closing quote of a quoted key (`"password": …`), then spaces.
    if matches!(chars.get(i), Some('"' | '\'')) {
        i += 1;
    }
    while chars.get(i) == Some(&' ') {
        i += 1;
    }
    // `name=value` ends at a blank; `name: value` (a header, YAML) at the line's end.
    let to_line_end = match chars.get(i) {
        Some('=') if chars.get(i + 1) != Some(&'=') => false,
        Some(':') if chars.get(i + 1) != Some(&'/') => true,
        // `--password value`: a flag and its argument.
        _ if flag && i > start => {
            i -= 1;
            false
        }
        _ => return start,
    };
    i += 1;
    while chars.get(i) == Some(&' ') {
        i += 1;
    }
    out.extend(&chars[start..i]);
    let end = match chars.get(i) {
        Some(&q @ ('"' | '\'')) => {
            let close = chars[i + 1..].iter().position(|&c| c == q);
            out.push(q);
            i += 1;
            close.map_or(chars.len(), |at| i + at)
        }
        Some(_) => chars[i..]
            .iter()
            .position(|&c| {
                matches!(c, '\n' | '\r' | '"' | '\'')
                    || (!to_line_end
                        && (c.is_whitespace() || matches!(c, '&' | ';' | ',' | '}' | ']' | ')')))
            })
            .map_or(chars.len(), |at| i + at),
        None => i,
    };
    if end > i {
        out.push_str(REDACTED);
    }
    end
}

/// `scheme://user:password@host` → `scheme://user:**redacted**@host`.
fn redacted_url_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at_sign), Some(colon)) if colon < at_sign => {
                out.push_str(&authority[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&authority[at_sign..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// An event as a client may see it.
#[derive(Debug)]
pub struct PublicEvent {
    /// The event's tag.
    pub tag: String,
    /// `{"tag": …, "data": …}` as JSON text, every secret redacted.
    pub json: String,
    /// When the event was read off the master bus.
    pub read_at: Instant,
    /// The event as each kind of client stream frames it (the consumer numbers its
    /// framings), made by the first stream that needs it and shared by all the others (one
    /// copy per event, not one per stream).
    framed: [OnceLock<Bytes>; FRAME_SLOTS],
}

/// How many framings of one event [`PublicEvent::framed`] keeps; a framing numbered
/// beyond them is made anew for every stream.
pub(crate) const FRAME_SLOTS: usize = 2;

impl PublicEvent {
    /// The event in framing `which`, made by `make` once (if `which` < [`FRAME_SLOTS`]).
    pub fn framed(&self, which: usize, make: impl FnOnce(&PublicEvent) -> Vec<u8>) -> Bytes {
        match self.framed.get(which) {
            Some(slot) => slot.get_or_init(|| Bytes::from(make(self))).clone(),
            None => Bytes::from(make(self)),
        }
    }
}

/// The event as a client sees it, made once and shared by every stream (`read_at`: when
/// it was read off the bus).
pub(crate) fn public_event(tag: &str, data: &Json, read_at: Instant) -> Arc<PublicEvent> {
    Arc::new(PublicEvent {
        tag: tag.to_string(),
        read_at,
        // Salt's order (`get_event(full=True)` is `{"data", "tag"}`).
        json: json!({"data": redacted(data), "tag": tag}).to_string(),
        framed: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_go_at_any_depth() {
        let data = json!({
            "fun": "test.ping",
            "kwargs": {"username": "u", "password": "hunter2", "eauth": "pam", "token": "ab"},
            "key": "root-key",
            "list": [{"Password": "x"}, "-----BEGIN RSA PRIVATE KEY-----\nabc"],
            "return": {"pub": "-----BEGIN PUBLIC KEY-----", "priv": "p"},
            "token": null
        });
        let shown = redacted(&data);
        let text = shown.to_string();
        for secret in ["hunter2", "root-key", "\"x\"", "RSA PRIVATE", "\"p\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(shown["kwargs"]["username"], "u");
        assert_eq!(shown["kwargs"]["eauth"], "pam");
        assert_eq!(shown["fun"], "test.ping");
        assert_eq!(shown["return"]["pub"], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(shown["token"], Json::Null);
        let public = public_event("salt/job/1/new", &json!({"password": "p"}), Instant::now());
        assert_eq!(
            public.json,
            r#"{"data":{"password":"**redacted**"},"tag":"salt/job/1/new"}"#
        );
    }

    /// Issue 17 item 5: what another user saw of a `test.arg` call on `/events`.
    #[test]
    fn secrets_in_arguments_keys_and_headers() {
        let data = json!({
            "arg": ["password=hunter2", "db_password=hunter3", "--password hunter4",
                    "--token", "hunter5", "keep=me"],
            "fun_args": ["password=hunter2", {"api_token": "tok-hunter6", "Passphrase": "hunter7"}],
            "kwarg": {"password": "hunter1", "api_token": "tok-hunter6", "Passphrase": "hunter7"},
            "headers": {"X-Gitlab-Token": "hunter8", "X-Api-Key": "hunter9",
                        "Proxy-Authorization": "Basic hunter10", "User-Agent": "curl"},
            "cmd": "mysql -u root --password=hunter11 -h db",
            "url": "https://deploy:hunter12@git.example/repo.git",
            "json": "{\"client_secret\": \"hunter13\", \"name\": \"x\"}",
            "header_line": "curl -H 'Authorization: Bearer hunter14' https://x",
            "state": {"file_|-authorized_keys_|-/root/.ssh/authorized_keys_|-managed":
                      {"result": true, "comment": "fine"}},
            "grains": {"kernel": "Linux", "num_cpus": 2, "private_ips": ["10.0.0.1"]},
        });
        let text = redacted(&data).to_string();
        assert!(!text.contains("hunter"), "a secret in {text}");
        for kept in [
            "keep=me",
            "\"User-Agent\":\"curl\"",
            "fine",
            "Linux",
            "10.0.0.1",
            "\"name\\\": \\\"x\\\"",
            "deploy:**redacted**@git.example",
            "-u root",
        ] {
            assert!(text.contains(kept), "{kept} missing from {text}");
        }
    }

    #[test]
    fn names_and_words() {
        for secret in [
            "password",
            "db_password",
            "Passphrase",
            "apiToken",
            "X-Api-Key",
            "x-gitlab-token",
            "Proxy-Authorization",
            "client_secret",
            "privkey",
            "session_id",
            "AWS_SECRET_ACCESS_KEY",
            "pwd",
            "cookie",
        ] {
            assert!(is_secret_name(secret), "{secret}");
        }
        for fine in [
            "fun",
            "jid",
            "tgt",
            "eauth",
            "username",
            "monkey",
            "keys",
            "author",
            "bypass",
            "compass",
            "kernel",
            "return",
            "private_ips",
            "passed",
        ] {
            assert!(!is_secret_name(fine), "{fine}");
        }
        assert_eq!(redacted_text("a == password"), "a == password");
        assert_eq!(redacted_text("see https://x/y"), "see https://x/y");
        assert_eq!(redacted_text("token="), "token=");
        assert_eq!(
            redacted_text("password=a&user=b"),
            "password=**redacted**&user=b"
        );
    }
}
