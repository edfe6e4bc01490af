//! The CGI/1.1 request dialect that CGI and FastCGI share (FastCGI params carry the same
//! variable names): variables → `ApiRequest`, and the body read within `max_body_bytes`
//! (the one place that bounds a CGI or FastCGI body: the dispatcher does not check again).
//! The response side is `cgi_response.rs`; `cgi.rs` runs the CGI process, `fastcgi.rs`
//! the responder.

use std::io::Read;

use crate::api::request::parse_content_length;
use crate::api::{ApiRequest, BodyError};

/// CGI variables by name (`REQUEST_METHOD`, `HTTP_X_AUTH_TOKEN`, …), as the environment
/// or FastCGI params hold them. Names compare without regard to case; a value that is
/// not UTF-8 is left out.
pub(crate) type CgiVars = Vec<(String, String)>;

/// The value of CGI variable `name`.
fn var<'a>(vars: &'a CgiVars, name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Builds a request from CGI variables and a body source.
pub fn request_from_vars(
    vars: &CgiVars,
    body: impl FnOnce(Option<usize>) -> Result<Vec<u8>, BodyError>,
    max_body: usize,
) -> ApiRequest {
    let get = |name: &str| var(vars, name).map(str::to_string);
    let method = get("REQUEST_METHOD")
        .unwrap_or_default()
        .to_ascii_uppercase();
    let body = match parse_content_length(var(vars, "CONTENT_LENGTH")) {
        Ok(Some(n)) if n > max_body => Err(BodyError::TooLarge(n)),
        Ok(declared) if method == "POST" => body(declared),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    let (mount, path) = mount_and_path(vars);
    let https = var(vars, "HTTPS").is_some_and(|v| v.eq_ignore_ascii_case("on"))
        || var(vars, "REQUEST_SCHEME").is_some_and(|v| v.eq_ignore_ascii_case("https"));
    ApiRequest {
        method,
        path,
        mount,
        query: get("QUERY_STRING").unwrap_or_default(),
        headers: headers(vars),
        content_type: get("CONTENT_TYPE").filter(|c| !c.is_empty()),
        body,
        remote_addr: get("REMOTE_ADDR"),
        server_port: var(vars, "SERVER_PORT").and_then(|p| p.trim().parse().ok()),
        https,
        can_upgrade: false,
        // nginx: `fastcgi_param REQUEST_ID $request_id;`; Apache's mod_unique_id: UNIQUE_ID.
        request_id: get("REQUEST_ID")
            .filter(|v| !v.is_empty())
            .or_else(|| get("UNIQUE_ID")),
    }
}

/// `SCRIPT_NAME` (the mount point, no trailing `/`) and `PATH_INFO` (the path below it).
/// nginx's stock `fastcgi_params` set `SCRIPT_NAME` to the whole path; when it equals
/// `PATH_INFO` the API is mounted at the root.
fn mount_and_path(vars: &CgiVars) -> (String, String) {
    let path = var(vars, "PATH_INFO").unwrap_or_default();
    let script = var(vars, "SCRIPT_NAME").unwrap_or_default();
    let mount = if script == path { "" } else { script };
    (mount.trim_end_matches('/').to_string(), path.to_string())
}

/// `HTTP_X_AUTH_TOKEN` → `x-auth-token`, for every `HTTP_*` variable.
fn headers(vars: &CgiVars) -> Vec<(String, String)> {
    vars.iter()
        .filter_map(|(k, v)| {
            let name = k.get(..5)?.eq_ignore_ascii_case("HTTP_").then(|| &k[5..])?;
            Some((name.to_ascii_lowercase().replace('_', "-"), v.clone()))
        })
        .collect()
}

/// Reads a CGI body: exactly `declared` bytes, or to EOF when no length was given
/// (chunked requests under mod_cgid), never more than `max + 1`.
pub fn read_body(
    mut input: impl Read,
    declared: Option<usize>,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    let want = declared.unwrap_or(max.saturating_add(1));
    let mut buf = Vec::with_capacity(want.min(64 * 1024));
    input
        .by_ref()
        .take(want as u64)
        .read_to_end(&mut buf)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => BodyError::Io(e.to_string()),
            kind => BodyError::Io(kind.to_string()),
        })?;
    match declared {
        Some(expected) if buf.len() < expected => Err(BodyError::Truncated {
            expected,
            got: buf.len(),
        }),
        None if buf.len() > max => Err(BodyError::TooLarge(buf.len())),
        _ => Ok(buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> CgiVars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bodies_by_content_length() {
        assert_eq!(read_body(&b"[]xyz"[..], Some(2), 10), Ok(b"[]".to_vec()));
        assert_eq!(
            read_body(&b"[]"[..], Some(5), 10),
            Err(BodyError::Truncated {
                expected: 5,
                got: 2
            })
        );
        assert_eq!(read_body(&b"[1,2]"[..], None, 10), Ok(b"[1,2]".to_vec()));
        assert_eq!(
            read_body(&b"[1,2,3,4,5]"[..], None, 4),
            Err(BodyError::TooLarge(5))
        );
    }

    #[test]
    fn request_from_cgi_variables() {
        let r = request_from_vars(
            &vars(&[
                ("REQUEST_METHOD", "post"),
                ("CONTENT_LENGTH", "2"),
                ("CONTENT_TYPE", "application/json"),
                ("PATH_INFO", "/run"),
            ]),
            |n| read_body(&b"[]"[..], n, 10),
            10,
        );
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.body),
            ("POST", "/run", Ok(b"[]".to_vec()))
        );
        let r = request_from_vars(
            &vars(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "abc")]),
            |_| Ok(vec![]),
            10,
        );
        assert_eq!(r.body, Err(BodyError::BadLength));
        let r = request_from_vars(
            &vars(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "11")]),
            |_| panic!("not read"),
            10,
        );
        assert_eq!(r.body, Err(BodyError::TooLarge(11)));
        let r = request_from_vars(
            &vars(&[("REQUEST_METHOD", "GET")]),
            |_| panic!("not read"),
            10,
        );
        assert_eq!(r.body, Ok(vec![]));
    }

    #[test]
    fn web_server_request_ids() {
        let id =
            |pairs: &[(&str, &str)]| request_from_vars(&vars(pairs), |_| Ok(vec![]), 10).request_id;
        assert_eq!(id(&[("REQUEST_ID", "abc123")]).as_deref(), Some("abc123"));
        assert_eq!(
            id(&[("UNIQUE_ID", "Zq1x@AAB")]).as_deref(),
            Some("Zq1x@AAB")
        );
        assert_eq!(
            id(&[("REQUEST_ID", ""), ("UNIQUE_ID", "u")]).as_deref(),
            Some("u")
        );
        assert_eq!(id(&[("HTTP_X_REQUEST_ID", "h")]), None);
    }

    #[test]
    fn mount_point_headers_and_tls() {
        let r = request_from_vars(
            &vars(&[
                ("request_method", "GET"),
                ("script_name", "/api/"),
                ("path_info", "/login"),
                ("http_x_auth_token", "ab"),
                ("HTTP_COOKIE", "session_id=cd"),
                ("HTTPS", "on"),
                ("QUERY_STRING", "a=1"),
            ]),
            |_| panic!("not read"),
            10,
        );
        assert_eq!((r.mount.as_str(), r.path.as_str()), ("/api", "/login"));
        assert_eq!(r.header("x-auth-token"), Some("ab"));
        assert_eq!(r.cookie("session_id"), Some("cd"));
        assert_eq!((r.https, r.query.as_str()), (true, "a=1"));
        // nginx's stock params: SCRIPT_NAME is the whole path, like PATH_INFO.
        let r = request_from_vars(
            &vars(&[("SCRIPT_NAME", "/jobs"), ("PATH_INFO", "/jobs")]),
            |_| panic!("not read"),
            10,
        );
        assert_eq!(
            (r.mount.as_str(), r.path.as_str(), r.https),
            ("", "/jobs", false)
        );
    }
}
