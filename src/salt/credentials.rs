//! A caller's credentials: an eauth token or eauth user and password, read from a chunk
//! (or the session's token), written into a load, and never printed (`Secret`). The one
//! rule for what a token may look like (`is_token_shaped`) and the one rule for where a
//! chunk's credentials come from (`CredentialSource`) live here.

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

/// Where a chunk's credentials come from: its own `token` (which wins over `eauth`, as on
/// the master), its own `eauth`, else the session's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialSource {
    /// The chunk's `token` key.
    ChunkToken,
    /// The chunk's `eauth`, `username` and `password` keys.
    Eauth,
    /// Neither key: the request's session token.
    Session,
    /// Neither key and no session.
    Missing,
}

impl CredentialSource {
    /// The source for `chunk`, when the request has a session token or not. Only the keys'
    /// presence counts (`"token": null` is a token that is not a string).
    pub(crate) fn of(chunk: &Chunk, has_session: bool) -> CredentialSource {
        if chunk.contains_key("token") {
            CredentialSource::ChunkToken
        } else if chunk.contains_key("eauth") {
            CredentialSource::Eauth
        } else if has_session {
            CredentialSource::Session
        } else {
            CredentialSource::Missing
        }
    }

    /// Whether the chunk runs with a token (its own or the session's).
    pub(crate) fn is_token(self) -> bool {
        matches!(
            self,
            CredentialSource::ChunkToken | CredentialSource::Session
        )
    }
}

/// The refusal of a chunk that has no credentials at all.
pub(crate) fn no_credentials() -> SaltError {
    SaltError::Authentication("No authentication credentials given".into())
}

impl Credentials {
    /// The credentials `chunk` runs with: its own, else the session's token (`session`).
    pub(crate) fn read(chunk: &Chunk, session: Option<&str>) -> SaltResult<Credentials> {
        match (CredentialSource::of(chunk, session.is_some()), session) {
            (CredentialSource::Session, Some(token)) => Credentials::token(token),
            (CredentialSource::Session | CredentialSource::Missing, _) => Err(no_credentials()),
            _ => Credentials::from_chunk(chunk),
        }
    }

    /// A token given as text; refused unless it has a token's shape.
    fn token(token: &str) -> SaltResult<Credentials> {
        if !is_token_shaped(token) {
            return Err(SaltError::Authentication("Invalid token".into()));
        }
        Ok(Credentials::Token(Secret(token.to_string())))
    }

    /// Reads the credentials a chunk carries itself (`token`, else `eauth`).
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
            return Credentials::token(&token);
        }
        let Some(eauth) = text("eauth")?.filter(|e| !e.is_empty()) else {
            return Err(no_credentials());
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
    fn a_chunk_without_credentials_runs_with_the_session() {
        let session = Some("ab12");
        let bare = chunk(json!({"client": "local"}));
        assert_eq!(
            Credentials::read(&bare, session),
            Ok(Credentials::Token(Secret("ab12".into())))
        );
        assert_eq!(Credentials::read(&bare, None), Err(no_credentials()));
        assert_eq!(
            Credentials::read(&bare, Some("../x")),
            Err(SaltError::Authentication("Invalid token".into()))
        );
        // A chunk's own credentials win, even when they are unusable.
        let own = chunk(json!({"eauth": "pam", "username": "u", "password": "p"}));
        assert!(matches!(
            Credentials::read(&own, session),
            Ok(Credentials::Eauth { .. })
        ));
        let null_token = chunk(json!({"token": null}));
        assert_eq!(
            CredentialSource::of(&null_token, true),
            CredentialSource::ChunkToken
        );
        assert_eq!(
            Credentials::read(&null_token, session),
            Err(no_credentials())
        );
        assert!(CredentialSource::Session.is_token());
        assert!(!CredentialSource::of(&own, true).is_token());
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
