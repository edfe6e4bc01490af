//! What may leave the process in an event stream: every event with its credentials
//! removed. The master fires failed publishes (`salt/job/…/error`) with the caller's
//! password, and some loads carry a root key or an eauth token; wheel `key.gen` returns a
//! private key. rest_cherrypy streams all of it verbatim; salt-fcgi replaces each such value
//! with [`REDACTED`] at any depth before an event is sent to a client.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::{Map, Value as Json, json};

/// What a redacted value becomes.
pub const REDACTED: &str = "**redacted**";

/// Keys whose values are secrets wherever they appear (compared without regard to case).
const SECRET_KEYS: [&str; 14] = [
    "password",
    "passwd",
    "pass",
    "token",
    "key",
    "priv",
    "secret",
    "private_key",
    "privkey",
    "auth_token",
    "x-auth-token",
    "cookie",
    "authorization",
    "api_key",
];

/// True for a key whose value must not be shown.
fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// True for text that holds a PEM private key, wherever it appears.
fn is_private_key_text(text: &str) -> bool {
    text.contains("PRIVATE KEY-----")
}

/// `value` with every secret replaced by [`REDACTED`].
pub fn redacted(value: &Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = if is_secret_key(k) && !v.is_null() {
                        Json::from(REDACTED)
                    } else {
                        redacted(v)
                    };
                    (k.clone(), shown)
                })
                .collect::<Map<String, Json>>(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(redacted).collect()),
        Json::String(s) if is_private_key_text(s) => Json::from(REDACTED),
        other => other.clone(),
    }
}

/// An event as a client may see it.
#[derive(Debug)]
pub struct PublicEvent {
    /// The event's tag.
    pub tag: String,
    /// `{"tag": …, "data": …}` as JSON text, every secret redacted.
    pub json: String,
    /// The event as each kind of client stream frames it, made by the first stream that
    /// needs it and shared by all the others (one copy per event, not one per stream).
    framed: [OnceLock<Bytes>; FRAMINGS],
}

/// How many framings [`PublicEvent::framed`] keeps (SSE and WebSocket).
pub const FRAMINGS: usize = 2;

impl PublicEvent {
    /// The event in framing `which` (< [`FRAMINGS`]), made by `make` once.
    pub fn framed(&self, which: usize, make: impl FnOnce(&PublicEvent) -> Vec<u8>) -> Bytes {
        match self.framed.get(which) {
            Some(slot) => slot.get_or_init(|| Bytes::from(make(self))).clone(),
            None => Bytes::from(make(self)),
        }
    }
}

/// The event as a client sees it, made once and shared by every stream.
pub fn public_event(tag: &str, data: &Json) -> Arc<PublicEvent> {
    Arc::new(PublicEvent {
        tag: tag.to_string(),
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
        assert_eq!(shown["return"]["pub"], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(shown["token"], Json::Null);
        let public = public_event("salt/job/1/new", &json!({"password": "p"}));
        assert_eq!(
            public.json,
            r#"{"data":{"password":"**redacted**"},"tag":"salt/job/1/new"}"#
        );
    }
}
