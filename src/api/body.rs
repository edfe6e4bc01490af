//! Request bodies in every type rest_cherrypy reads, and the answer in the type `Accept`
//! asks for.
//!
//! In: `application/json` (any parameters), `text/plain` holding JSON (what a browser
//! labels a `fetch` body without a type, as SaltGUI sends), `application/x-www-form-urlencoded`
//! (a repeated key becomes a list; `arg`/`kwarg` values typed like the CLI's), and
//! `application/x-yaml` / `text/yaml`. Out: JSON, or YAML when `Accept` prefers it.

use serde_json::{Map, Value as Json};

use super::body_value::{self, Bounds};
use super::error::ApiError;
use super::lowstate::{LowstateError, nesting_exceeds, refusal, too_deep};
use super::response::ApiResponse;
use crate::salt::yamlify::yamlify_arg;
use crate::settings::Limits;

/// The media type of a `Content-Type` value: lower case, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn refused(status: u16, message: &str) -> LowstateError {
    LowstateError {
        status,
        message: format!("{status}: {message}"),
    }
}

/// A content type salt-fcgi does not read (406).
fn not_acceptable(message: &str) -> ApiError {
    ApiError::new(406, format!("406: {message}"))
}

/// Parses a body by its `Content-Type`; an empty body is `None` (`/logout`, `/stats`).
pub(crate) fn parse(
    content_type: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<Option<Json>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let Some(media) = content_type.map(media_type) else {
        return Err(not_acceptable(
            "request body without a Content-Type; send application/json",
        ));
    };
    let value = match media.as_str() {
        "application/json" | "text/plain" => json(body, limits)?,
        "application/x-www-form-urlencoded" => form(body),
        "application/x-yaml" | "text/yaml" => yaml(body, limits)?,
        _ => {
            return Err(not_acceptable(
                "Content type not supported; send application/json",
            ));
        }
    };
    Ok(Some(value))
}

fn json(body: &[u8], limits: &Limits) -> Result<Json, LowstateError> {
    if nesting_exceeds(body, limits.max_json_depth) {
        return Err(too_deep(limits));
    }
    body_value::from_json(body, bounds(limits)).map_err(|why| refusal(why, "JSON", limits))
}

/// The value builder's limits.
fn bounds(limits: &Limits) -> Bounds {
    Bounds {
        max_depth: limits.max_json_depth,
        max_values: limits.max_body_values,
    }
}

fn yaml(body: &[u8], limits: &Limits) -> Result<Json, LowstateError> {
    if body.len() > limits.max_yaml_body_bytes {
        return Err(refused(
            413,
            &format!(
                "YAML body of {} bytes is over max_yaml_body_bytes ({}); send JSON",
                body.len(),
                limits.max_yaml_body_bytes
            ),
        ));
    }
    body_value::from_yaml(body, bounds(limits)).map_err(|why| refusal(why, "YAML", limits))
}

/// `a=1&arg=x&arg=y` → `{"a": "1", "arg": ["x", "y"]}`, with `arg` and `kwarg` values typed
/// the way the salt CLI types them (rest_cherrypy does the same).
fn form(body: &[u8]) -> Json {
    let mut map: Map<String, Json> = Map::new();
    for (key, value) in form_pairs(body) {
        match map.get_mut(&key) {
            Some(Json::Array(items)) => items.push(Json::from(value)),
            Some(first) => *first = Json::Array(vec![first.take(), Json::from(value)]),
            None => {
                map.insert(key, Json::from(value));
            }
        }
    }
    if let Some(Json::String(kwarg)) = map.get("kwarg") {
        let typed = yamlify_arg(kwarg);
        map.insert("kwarg".into(), typed);
    }
    if let Some(arg) = map.get_mut("arg") {
        let items = match arg.take() {
            Json::Array(items) => items,
            one => vec![one],
        };
        *arg = Json::Array(
            items
                .iter()
                .map(|a| a.as_str().map_or(Json::Null, yamlify_arg))
                .collect(),
        );
    }
    Json::Object(map)
}

/// The decoded `key=value` pairs of a form body (`+` is a space, `%XX` a byte; invalid
/// UTF-8 becomes U+FFFD).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = match part.iter().position(|&b| b == b'=') {
                Some(at) => (&part[..at], &part[at + 1..]),
                None => (part, &b""[..]),
            };
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                text.get(i + 1).and_then(|&b| hex(b)),
                text.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The body type of a successful answer: YAML when `Accept` rates a YAML type above JSON,
/// JSON otherwise (also for no `Accept`, `*/*` and types salt-fcgi does not write).
pub(crate) fn wants_yaml(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let (mut json_q, mut yaml_q) = (0.0f32, 0.0f32);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/json" | "application/*" | "*/*" => json_q = json_q.max(q),
            "application/x-yaml" | "text/yaml" => yaml_q = yaml_q.max(q),
            _ => {}
        }
    }
    yaml_q > json_q
}

/// A successful answer as JSON, or YAML when the client asked for it.
pub(crate) fn answer(status: u16, value: &Json, accept: Option<&str>) -> ApiResponse {
    if wants_yaml(accept)
        && let Ok(text) = serde_yaml_ng::to_string(value)
    {
        return ApiResponse::bytes(status, ApiResponse::YAML, text.into_bytes());
    }
    ApiResponse::json(status, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use serde_json::json;

    fn limits() -> Limits {
        Settings::from_mapping(&serde_yaml_ng::Mapping::new()).limits
    }

    fn parsed(ct: &str, body: &str) -> Json {
        parse(Some(ct), body.as_bytes(), &limits())
            .expect("parse")
            .expect("a value")
    }

    #[test]
    fn every_content_type_rest_cherrypy_reads() {
        let one = json!({"client": "local", "tgt": "*"});
        assert_eq!(
            parsed("application/json; charset=utf-8", &one.to_string()),
            one
        );
        assert_eq!(parsed("text/plain;charset=UTF-8", &one.to_string()), one);
        assert_eq!(
            parsed("application/x-yaml", "client: local\ntgt: '*'\n"),
            one
        );
        assert_eq!(
            parsed("text/yaml", "[{client: local, tgt: '*'}]"),
            json!([one])
        );
        assert_eq!(
            parsed(
                "application/x-www-form-urlencoded",
                "client=local&tgt=%2A&arg=a+b&arg=5&fun=test.arg&kwarg=%7Bx%3A+1%7D"
            ),
            json!({"client": "local", "tgt": "*", "arg": ["a b", 5], "fun": "test.arg",
                "kwarg": {"x": 1}})
        );
        assert_eq!(
            parsed("application/x-www-form-urlencoded", "arg=yes"),
            json!({"arg": [true]})
        );
    }

    #[test]
    fn refusals_and_empty_bodies() {
        let l = limits();
        assert_eq!(parse(None, b"", &l), Ok(None));
        assert_eq!(parse(Some("application/json"), b" \n", &l), Ok(None));
        assert_eq!(parse(None, b"[]", &l).expect_err("no type").status(), 406);
        assert_eq!(
            parse(Some("image/png"), b"[]", &l)
                .expect_err("png")
                .status(),
            406
        );
        assert_eq!(
            parse(Some("text/plain"), b"hello", &l)
                .expect_err("not json")
                .status(),
            400
        );
        assert_eq!(
            parse(Some("application/x-yaml"), b"a: [b", &l)
                .expect_err("bad yaml")
                .status(),
            400
        );
        let big = format!("a: '{}'", "x".repeat(70_000));
        assert_eq!(
            parse(Some("application/x-yaml"), big.as_bytes(), &l)
                .expect_err("big yaml")
                .status(),
            413
        );
        let deep = format!("{}1{}", "[".repeat(80), "]".repeat(80));
        assert_eq!(
            parse(Some("text/yaml"), deep.as_bytes(), &l)
                .expect_err("deep")
                .status(),
            400
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a%20b+c%2"), "a b c%2");
        assert_eq!(percent_decode(b"%E2%98%83%zz"), "☃%zz");
        assert_eq!(percent_decode(b"%ff"), "\u{fffd}");
    }

    #[test]
    fn accept_picks_yaml_only_when_preferred() {
        assert!(!wants_yaml(None));
        assert!(!wants_yaml(Some("*/*")));
        assert!(!wants_yaml(Some("application/json")));
        assert!(wants_yaml(Some("application/x-yaml")));
        assert!(wants_yaml(Some("text/yaml, application/json;q=0.5")));
        assert!(!wants_yaml(Some("application/x-yaml;q=0.1, */*")));
        let r = answer(200, &json!({"return": [1]}), Some("application/x-yaml"));
        assert_eq!(r.content_type, "application/x-yaml");
        assert_eq!(String::from_utf8_lossy(r.whole_body()), "return:\n- 1\n");
    }
}
