//! The CGI front end: `frontend::cgi::request_from_vars` with `read_body`, then
//! `Api::handle` (no master) and the CGI response bytes.
//!
//! Input: byte 0 picks `max_body_bytes` (0, 16, 1024 or 1 MiB); byte 1 shapes stdin
//! (bits 0-5: bytes per read, 0 = all; bit 6: an I/O error instead of EOF; bit 7: an
//! `Interrupted` error before every read); then `NAME=VALUE` lines (REQUEST_METHOD,
//! CONTENT_LENGTH, CONTENT_TYPE, PATH_INFO, ...), a blank line, and the body bytes.
//! The body salt-fcgi reads is checked against an independent model of the rules
//! (Content-Length exact, else to EOF up to max + 1; 413 over max; 400 truncated).
#![no_main]

use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

use fuzz_common::{api, cgi_vars, check_response, quietly, runtime};
use libfuzzer_sys::fuzz_target;
use salt_fcgi::internals::cgi::{read_body, request_from_vars};
use salt_fcgi::internals::{Api, BodyError};

const MAXES: [usize; 4] = [0, 16, 1024, 1 << 20];

/// stdin as a CGI process may see it: short reads, EINTR, an I/O error at the end.
struct Stdin<'a> {
    data: &'a [u8],
    chunk: usize,
    fail_at_end: bool,
    interrupt: bool,
    interrupted: bool,
}

impl Read for Stdin<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.interrupt && !self.interrupted {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.interrupted = false;
        if self.data.is_empty() {
            return if self.fail_at_end {
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "client gone",
                ))
            } else {
                Ok(0)
            };
        }
        let n = out.len().min(self.data.len()).min(self.chunk);
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn apis() -> &'static [Arc<Api>; 4] {
    static A: OnceLock<[Arc<Api>; 4]> = OnceLock::new();
    A.get_or_init(|| MAXES.map(api))
}

fuzz_target!(|data: &[u8]| {
    let [sel, shape, rest @ ..] = data else {
        return;
    };
    let which = usize::from(*sel) % MAXES.len();
    let max = MAXES[which];
    let chunk = match usize::from(shape & 0x3f) {
        0 => usize::MAX,
        n => n,
    };
    let fail_at_end = shape & 0x40 != 0;
    let (block, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &[][..]),
    };
    let vars = cgi_vars(block);
    let get = |name: &str| vars.get(name).cloned().flatten();

    let stdin = Stdin {
        data: body,
        chunk,
        fail_at_end,
        interrupt: shape & 0x80 != 0,
        interrupted: false,
    };
    let list: Vec<(String, String)> = vars
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
        .collect();
    let request = request_from_vars(&list, |declared| read_body(stdin, declared, max), max);

    // The model.
    let method = get("REQUEST_METHOD")
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert_eq!(request.method, method);
    assert_eq!(request.path, get("PATH_INFO").unwrap_or_default());
    assert_eq!(
        request.content_type,
        get("CONTENT_TYPE").filter(|c| !c.is_empty())
    );
    let length = get("CONTENT_LENGTH");
    let declared = match length.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<usize>()
            .map(Some)
            .map_err(|_| BodyError::BadLength),
    };
    let io = || BodyError::Io(io::ErrorKind::ConnectionReset.to_string());
    let expected = match declared {
        Err(e) => Err(e),
        Ok(Some(n)) if n > max => Err(BodyError::TooLarge(n)),
        Ok(_) if method != "POST" => Ok(Vec::new()),
        Ok(Some(n)) if body.len() >= n => Ok(body[..n].to_vec()),
        Ok(Some(_)) if fail_at_end => Err(io()),
        Ok(Some(n)) => Err(BodyError::Truncated {
            expected: n,
            got: body.len(),
        }),
        Ok(None) if body.len() > max => Err(BodyError::TooLarge(max + 1)),
        Ok(None) if fail_at_end => Err(io()),
        Ok(None) => Ok(body.to_vec()),
    };
    assert_eq!(
        request.body,
        expected,
        "body for {length:?}, {} bytes, max {max}",
        body.len()
    );

    let method = request.method.clone();
    let response = quietly(|| runtime().block_on(apis()[which].handle(request)));
    check_response(&method, &response);
});
