//! One request put together from its records, without I/O: [`Assembly::push`] takes each
//! record read and says what the connection does next ([`Step`]).
//!
//! A connection carries one request at a time (salt-fcgi answers `FCGI_MPXS_CONNS` 0, and
//! neither nginx nor mod_fcgid multiplexes); a second BEGIN_REQUEST meanwhile is refused
//! with `FCGI_CANT_MPX_CONN`. Only responders are served. A request's parameters and body
//! together may not pass `2 × max_body_bytes + 1 MiB` (the connection ends there); a body
//! over `max_body_bytes` is kept only up to one byte past it, enough for a JSON 413.

use super::record::{
    self, ABORT_REQUEST, BEGIN_REQUEST, CANT_MPX_CONN, GET_VALUES, Header, KEEP_CONN, PARAMS,
    REQUEST_COMPLETE, RESPONDER, STDIN, UNKNOWN_ROLE,
};
use crate::api::ApiRequest;
use crate::frontend::cgi_dialect::{self, CgiVars};

/// What the connection does after a record.
#[derive(Debug)]
pub enum Step {
    /// Read the next record.
    Continue,
    /// Write these records, then read the next.
    Reply(Vec<u8>),
    /// A whole request: answer it.
    Request(IncomingRequest),
    /// End the connection, for this reason.
    Close(&'static str),
}

/// A request whose parameters and body have arrived.
#[derive(Debug)]
pub struct IncomingRequest {
    /// Its FastCGI request id.
    pub id: u16,
    /// Whether the web server keeps the connection for more requests.
    pub keep_conn: bool,
    params: Vec<u8>,
    stdin: Vec<u8>,
}

impl IncomingRequest {
    /// The parameters as CGI variables (pairs that are not UTF-8 left out).
    pub fn vars(&self) -> CgiVars {
        record::pairs(&self.params)
            .map_while(|p| p)
            .filter_map(|(name, value)| {
                let name = std::str::from_utf8(name).ok()?;
                Some((
                    name.to_string(),
                    std::str::from_utf8(value).ok()?.to_string(),
                ))
            })
            .collect()
    }

    /// The request salt-fcgi answers; the body is read the way a CGI body is.
    pub fn into_api_request(self, max_body: usize) -> ApiRequest {
        let stdin = &self.stdin[..];
        cgi_dialect::request_from_vars(
            &self.vars(),
            |declared| cgi_dialect::read_body(stdin, declared, max_body),
            max_body,
        )
    }
}

/// The request being put together on one connection.
#[derive(Debug)]
pub struct Assembly {
    max_body: usize,
    /// Most parameter and body bytes one request may send.
    cap: usize,
    /// Answered to GET_VALUES as FCGI_MAX_CONNS and FCGI_MAX_REQS.
    max_connections: usize,
    current: Option<Partial>,
}

/// A request begun and not yet whole.
#[derive(Debug)]
struct Partial {
    id: u16,
    keep_conn: bool,
    params: Vec<u8>,
    params_done: bool,
    stdin: Vec<u8>,
    /// Parameter and body bytes received, kept or not.
    received: usize,
}

impl Assembly {
    /// An assembly for requests whose bodies may hold `max_body` bytes.
    pub fn new(max_body: usize, max_connections: usize) -> Self {
        Assembly {
            max_body,
            cap: max_body.saturating_mul(2).saturating_add(1 << 20),
            max_connections,
            current: None,
        }
    }

    /// Whether a request has begun and not arrived whole (`body_read_timeout` runs).
    pub fn receiving(&self) -> bool {
        self.current.is_some()
    }

    /// Takes one whole record (as `RecordReader` hands it out, checked).
    pub fn push(&mut self, header: Header, content: &[u8]) -> Step {
        match header.kind {
            GET_VALUES => Step::Reply(record::get_values_result(content, self.max_connections)),
            BEGIN_REQUEST => self.begin(header.id, content),
            kind if !record::is_known_input(kind) => Step::Reply(record::unknown_type(kind)),
            // Records of a request not begun here (or refused) are ignored.
            _ if self.current.as_ref().is_none_or(|p| p.id != header.id) => Step::Continue,
            ABORT_REQUEST => {
                self.current = None;
                Step::Reply(record::end_request(header.id, REQUEST_COMPLETE))
            }
            PARAMS => self.params(content),
            STDIN => self.stdin(content),
            // DATA belongs to the filter role only.
            _ => Step::Continue,
        }
    }

    fn begin(&mut self, id: u16, content: &[u8]) -> Step {
        if let Some(partial) = &self.current {
            if partial.id == id {
                return Step::Close("BEGIN_REQUEST for a request already begun");
            }
            return Step::Reply(record::end_request(id, CANT_MPX_CONN));
        }
        let role = u16::from_be_bytes([content[0], content[1]]);
        if role != RESPONDER {
            return Step::Reply(record::end_request(id, UNKNOWN_ROLE));
        }
        self.current = Some(Partial {
            id,
            keep_conn: content[2] & KEEP_CONN != 0,
            params: Vec::new(),
            params_done: false,
            stdin: Vec::new(),
            received: 0,
        });
        Step::Continue
    }

    fn params(&mut self, content: &[u8]) -> Step {
        let Some(partial) = self.current.as_mut() else {
            return Step::Continue;
        };
        if partial.params_done {
            return Step::Close("PARAMS after the end of the request's parameters");
        }
        if content.is_empty() {
            partial.params_done = true;
        } else if partial.received(content.len(), self.cap) {
            partial.params.extend_from_slice(content);
        } else {
            return self.far_over();
        }
        Step::Continue
    }

    fn stdin(&mut self, content: &[u8]) -> Step {
        let Some(partial) = self.current.as_mut() else {
            return Step::Continue;
        };
        if content.is_empty() {
            return match self.current.take() {
                Some(p) if p.params_done => Step::Request(IncomingRequest {
                    id: p.id,
                    keep_conn: p.keep_conn,
                    params: p.params,
                    stdin: p.stdin,
                }),
                _ => Step::Close("STDIN ended before the request's parameters"),
            };
        }
        if !partial.received(content.len(), self.cap) {
            return self.far_over();
        }
        let room = self
            .max_body
            .saturating_add(1)
            .saturating_sub(partial.stdin.len());
        partial
            .stdin
            .extend_from_slice(&content[..content.len().min(room)]);
        Step::Continue
    }

    /// Drops the request that passed the cap; the reason to close the connection.
    fn far_over(&mut self) -> Step {
        self.current = None;
        Step::Close("FastCGI request far over max_body_bytes")
    }
}

impl Partial {
    /// Counts `n` more parameter or body bytes; whether the request is still within `cap`.
    fn received(&mut self, n: usize, cap: usize) -> bool {
        self.received = self.received.saturating_add(n);
        self.received <= cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BodyError;

    fn header(kind: u8, id: u16, content: &[u8]) -> Header {
        Header {
            kind,
            id,
            content_len: content.len() as u16,
            padding: 0,
        }
    }

    /// Pushes records of request 1 (or the given id), returning the last step.
    fn push_all(a: &mut Assembly, records: &[(u8, u16, &[u8])]) -> Step {
        let mut last = Step::Continue;
        for (kind, id, content) in records {
            last = a.push(header(*kind, *id, content), content);
        }
        last
    }

    const BEGIN_KEEP: &[u8] = &[0, 1, 1, 0, 0, 0, 0, 0];
    const PING_PARAMS: &[u8] = b"\x0e\x04REQUEST_METHODPOST\x0e\x01CONTENT_LENGTH2";

    #[test]
    fn a_whole_request_becomes_an_api_request() {
        let mut a = Assembly::new(10, 4);
        let step = push_all(
            &mut a,
            &[
                (BEGIN_REQUEST, 1, BEGIN_KEEP),
                (PARAMS, 1, PING_PARAMS),
                (PARAMS, 1, b"\x09\x01PATH_INFO/\x04\x02NAME\xff\xfe"),
                (PARAMS, 1, b""),
                (STDIN, 1, b"["),
                (STDIN, 1, b"]"),
            ],
        );
        assert!(matches!(step, Step::Continue));
        assert!(a.receiving());
        let Step::Request(req) = a.push(header(STDIN, 1, b""), b"") else {
            panic!("a request")
        };
        assert!(!a.receiving());
        assert_eq!((req.id, req.keep_conn), (1, true));
        assert_eq!(
            req.vars().len(),
            3,
            "the pair that is not UTF-8 is left out"
        );
        let api = req.into_api_request(10);
        assert_eq!((api.method.as_str(), api.path.as_str()), ("POST", "/"));
        assert_eq!(api.body, Ok(b"[]".to_vec()));
    }

    #[test]
    fn a_body_over_the_limit_is_a_413_and_far_over_it_ends_the_connection() {
        let mut a = Assembly::new(4, 4);
        let params = b"\x0e\x04REQUEST_METHODPOST";
        let body = [b'x'; 9];
        push_all(
            &mut a,
            &[
                (BEGIN_REQUEST, 1, BEGIN_KEEP),
                (PARAMS, 1, params),
                (PARAMS, 1, b""),
                (STDIN, 1, &body),
            ],
        );
        let Step::Request(req) = a.push(header(STDIN, 1, b""), b"") else {
            panic!("a request")
        };
        assert_eq!(req.stdin.len(), 5, "kept up to one byte past the limit");
        assert_eq!(req.into_api_request(4).body, Err(BodyError::TooLarge(5)));
        push_all(&mut a, &[(BEGIN_REQUEST, 1, BEGIN_KEEP), (PARAMS, 1, b"")]);
        let chunk = [b'x'; 65_535];
        let mut step = Step::Continue;
        for _ in 0..17 {
            step = a.push(header(STDIN, 1, &chunk), &chunk);
        }
        assert!(matches!(step, Step::Close(why) if why.contains("far over")));
        assert!(!a.receiving());
    }

    #[test]
    fn one_request_at_a_time_and_only_responders() {
        let mut a = Assembly::new(10, 4);
        push_all(&mut a, &[(BEGIN_REQUEST, 1, BEGIN_KEEP)]);
        let Step::Reply(bytes) = a.push(header(BEGIN_REQUEST, 2, BEGIN_KEEP), BEGIN_KEEP) else {
            panic!("refused")
        };
        assert_eq!((bytes[3], bytes[12]), (2, CANT_MPX_CONN));
        // Request 2's records are ignored; request 1 goes on.
        assert!(matches!(
            a.push(header(PARAMS, 2, b"x"), b"\x01\x00x"),
            Step::Continue
        ));
        assert!(matches!(
            a.push(header(BEGIN_REQUEST, 1, BEGIN_KEEP), BEGIN_KEEP),
            Step::Close(_)
        ));
        let mut a = Assembly::new(10, 4);
        let authorizer = [0, 2, 0, 0, 0, 0, 0, 0];
        let Step::Reply(bytes) = a.push(header(BEGIN_REQUEST, 1, &authorizer), &authorizer) else {
            panic!("refused")
        };
        assert_eq!(bytes[12], UNKNOWN_ROLE);
        assert!(!a.receiving());
    }

    #[test]
    fn abort_sequence_errors_and_management_records() {
        let mut a = Assembly::new(10, 4);
        push_all(&mut a, &[(BEGIN_REQUEST, 1, BEGIN_KEEP)]);
        assert!(matches!(
            a.push(header(ABORT_REQUEST, 1, b""), b""),
            Step::Reply(_)
        ));
        assert!(!a.receiving());
        push_all(&mut a, &[(BEGIN_REQUEST, 1, BEGIN_KEEP)]);
        assert!(matches!(a.push(header(STDIN, 1, b""), b""), Step::Close(_)));
        push_all(&mut a, &[(BEGIN_REQUEST, 1, BEGIN_KEEP), (PARAMS, 1, b"")]);
        assert!(matches!(
            a.push(header(PARAMS, 1, b"\x01\x00x"), b"\x01\x00x"),
            Step::Close(_)
        ));
        let asked = b"\x0f\x00FCGI_MPXS_CONNS";
        assert!(matches!(
            a.push(header(GET_VALUES, 0, asked), asked),
            Step::Reply(_)
        ));
        let Step::Reply(bytes) = a.push(header(42, 0, b""), b"") else {
            panic!("unknown type")
        };
        assert_eq!(bytes[8], 42);
    }
}
