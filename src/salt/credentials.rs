//! A caller's credentials: an eauth token or eauth user and password, read from a chunk,
//! written into a load, and never printed (`Secret`). The one rule for what a token may
//! look like (`is_token_shaped`) lives here.

use std::fmt;

use serde_json::Value as Json;

use super::client::Chunk;
use super::error::{SaltError, SaltResult};

/// True for a string that can be a Salt token: hex only (Salt's `hash_type` digests), so it
/// is safe as a file name in the token store (CVE-2018-15750).
pub(crate) fn is_token_shaped(token: &str) -> bool {
    !token.is_empty() && token.len() <= 256 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A string that must never be printed (password, token).
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The secret text, for building a load only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The caller's credentials from a chunk. A token wins over eauth, as on the master.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    /// An eauth token (hex).
    Token(Secret),
    /// External authentication: backend, user name, password.
    Eauth {
        /// The eauth backend (`pam`, `file`, …).
        eauth: String,
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

impl Credentials {
    /// Reads the credentials of a chunk; the caller has checked one of token/eauth exists.
    pub fn from_chunk(chunk: &Chunk) -> SaltResult<Credentials> {
        let text = |key: &str| -> SaltResult<Option<String>> {
            match chunk.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(SaltError::Authentication(format!(
                    "Invalid credentials: '{key}' must be a string"
                ))),
            }
        };
        if let Some(token) = text("token")? {
            if !is_token_shaped(&token) {
                return Err(SaltError::Authentication("Invalid token".into()));
            }
            return Ok(Credentials::Token(Secret(token)));
        }
        let Some(eauth) = text("eauth")?.filter(|e| !e.is_empty()) else {
            return Err(SaltError::Authentication(
                "No authentication credentials given".into(),
            ));
        };
        // Every eauth backend takes both; without them a 3006 master fails the request
        // with a generic exception instead of an authentication error.
        match (text("username")?, text("password")?) {
            (Some(username), Some(password)) => Ok(Credentials::Eauth {
                eauth,
                username,
                password: Secret(password),
            }),
            _ => Err(SaltError::Authentication(
                "Authentication error occurred: eauth needs 'username' and 'password'".into(),
            )),
        }
    }

    /// Writes the credentials into a load (publish `kwargs`, or the top level for
    /// runner/wheel).
    pub fn write_to(&self, load: &mut Chunk) {
        match self {
            Credentials::Token(t) => {
                load.insert("token".into(), Json::from(t.expose()));
            }
            Credentials::Eauth {
                eauth,
                username,
                password,
            } => {
                load.insert("eauth".into(), Json::from(eauth.as_str()));
                load.insert("username".into(), Json::from(username.as_str()));
                load.insert("password".into(), Json::from(password.expose()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(v: Json) -> Chunk {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn token_wins_and_must_be_hex() {
        let c = chunk(json!({"token": "abc123", "eauth": "pam"}));
        assert_eq!(
            Credentials::from_chunk(&c),
            Ok(Credentials::Token(Secret("abc123".into())))
        );
        for bad in [json!("../../etc/passwd"), json!(""), json!("zz")] {
            let c = chunk(json!({"token": bad}));
            assert_eq!(
                Credentials::from_chunk(&c),
                Err(SaltError::Authentication("Invalid token".into()))
            );
        }
        let c = chunk(json!({"eauth": "pam", "username": "u", "password": 5}));
        assert!(Credentials::from_chunk(&c).is_err());
        let c = chunk(json!({"eauth": "pam", "username": "u"}));
        assert!(matches!(
            Credentials::from_chunk(&c),
            Err(SaltError::Authentication(_))
        ));
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials::Eauth {
            eauth: "pam".into(),
            username: "u".into(),
            password: Secret("hunter2".into()),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
