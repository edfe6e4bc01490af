//! The FastCGI 1.0 wire format: record headers, name-value pairs, and the records the
//! application writes (STDOUT, END_REQUEST, GET_VALUES_RESULT, UNKNOWN_TYPE).
//!
//! Nothing here does I/O. Every length read from the web server's side is compared with
//! the record that carries it before anything is allocated from it.

/// Bytes of a record header: version, type, request id (2), content length (2), padding, reserved.
pub(crate) const HEADER: usize = 8;
/// The protocol version every record carries.
const VERSION: u8 = 1;
/// Bytes of an FCGI_BeginRequestBody (role (2), flags, 5 reserved).
pub(crate) const BEGIN_REQUEST_BODY: usize = 8;
/// Most content bytes one record can carry.
const MAX_CONTENT: usize = u16::MAX as usize;

pub(crate) const BEGIN_REQUEST: u8 = 1;
pub(crate) const ABORT_REQUEST: u8 = 2;
const END_REQUEST: u8 = 3;
pub(crate) const PARAMS: u8 = 4;
pub(crate) const STDIN: u8 = 5;
const STDOUT: u8 = 6;
pub(crate) const DATA: u8 = 8;
pub(crate) const GET_VALUES: u8 = 9;
const GET_VALUES_RESULT: u8 = 10;
const UNKNOWN_TYPE: u8 = 11;

/// The only role salt-fcgi plays.
pub(crate) const RESPONDER: u16 = 1;
/// BEGIN_REQUEST flag: keep the connection open after this request.
pub(crate) const KEEP_CONN: u8 = 1;

/// END_REQUEST protocol status: the request was answered.
pub(crate) const REQUEST_COMPLETE: u8 = 0;
/// END_REQUEST protocol status: a second request on a connection that carries one at a time.
pub(crate) const CANT_MPX_CONN: u8 = 1;
/// END_REQUEST protocol status: a role other than responder.
pub(crate) const UNKNOWN_ROLE: u8 = 3;

/// A record's header, as read off the connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Header {
    /// The record type (BEGIN_REQUEST, PARAMS, ...).
    pub kind: u8,
    /// The request the record belongs to (0: the connection itself).
    pub id: u16,
    /// Content bytes after the header.
    pub content_len: u16,
    /// Padding bytes after the content.
    pub padding: u8,
}

impl Header {
    /// Reads the header at the start of `bytes`, if all 8 bytes are there.
    pub fn read(bytes: &[u8]) -> Option<Header> {
        let h = bytes.get(..HEADER)?;
        Some(Header {
            kind: h[1],
            id: u16::from_be_bytes([h[2], h[3]]),
            content_len: u16::from_be_bytes([h[4], h[5]]),
            padding: h[6],
        })
    }

    /// Header, content and padding.
    pub fn total_len(&self) -> usize {
        HEADER + usize::from(self.content_len) + usize::from(self.padding)
    }
}

/// The length of the complete record at the start of `bytes` (header, content, padding),
/// `None` while it is incomplete, or why it is refused: another protocol version, a
/// BEGIN_REQUEST too short to hold its body, name-value pairs that overrun their record.
pub fn check_record(bytes: &[u8]) -> Result<Option<usize>, &'static str> {
    let Some(header) = Header::read(bytes) else {
        return Ok(None);
    };
    if bytes[0] != VERSION {
        return Err("not a FastCGI 1 record");
    }
    let total = header.total_len();
    let Some(content) = bytes.get(HEADER..HEADER + usize::from(header.content_len)) else {
        return Ok(None);
    };
    if bytes.len() < total {
        return Ok(None);
    }
    match header.kind {
        BEGIN_REQUEST if content.len() < BEGIN_REQUEST_BODY => {
            Err("BEGIN_REQUEST record shorter than 8 bytes")
        }
        PARAMS | GET_VALUES if pairs(content).any(|p| p.is_none()) => {
            Err("a name-value pair is longer than its record")
        }
        _ => Ok(Some(total)),
    }
}

/// The name-value pairs of a PARAMS or GET_VALUES content, in order; a `None` item (the
/// last) where a pair overruns `content`.
pub(crate) fn pairs(mut content: &[u8]) -> impl Iterator<Item = Option<(&[u8], &[u8])>> {
    let mut broken = false;
    std::iter::from_fn(move || {
        if content.is_empty() || broken {
            return None;
        }
        let pair = next_pair(&mut content);
        broken = pair.is_none();
        Some(pair)
    })
}

/// Splits the first name-value pair off `content`.
fn next_pair<'a>(content: &mut &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
    let name_len = pair_length(content)?;
    let value_len = pair_length(content)?;
    let end = name_len.checked_add(value_len)?;
    let both = content.get(..end)?;
    *content = &content[end..];
    Some(both.split_at(name_len))
}

/// Reads a 1-byte (high bit clear) or 4-byte (high bit set) name-value length.
fn pair_length(content: &mut &[u8]) -> Option<usize> {
    let first = *content.first()?;
    if first & 0x80 == 0 {
        *content = &content[1..];
        return Some(usize::from(first));
    }
    let bytes = content.get(..4)?;
    let len = u32::from_be_bytes([first & 0x7f, bytes[1], bytes[2], bytes[3]]);
    *content = &content[4..];
    usize::try_from(len).ok()
}

/// Appends one record with `content` (at most 65,535 bytes) and no padding.
fn push_record(out: &mut Vec<u8>, kind: u8, id: u16, content: &[u8]) {
    let len = u16::try_from(content.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&[VERSION, kind]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&content[..usize::from(len)]);
}

/// `bytes` as request `id`'s STDOUT records (none for no bytes: an empty record would end
/// the stream), ready for one write.
pub(crate) fn stdout(id: u16, bytes: &[u8]) -> Vec<u8> {
    let records = bytes.len().div_ceil(MAX_CONTENT);
    let mut out = Vec::with_capacity(bytes.len() + records * HEADER);
    for chunk in bytes.chunks(MAX_CONTENT) {
        push_record(&mut out, STDOUT, id, chunk);
    }
    out
}

/// END_REQUEST for request `id`, with application status 0 and `protocol_status`.
pub(crate) fn end_request(id: u16, protocol_status: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * HEADER);
    push_record(
        &mut out,
        END_REQUEST,
        id,
        &[0, 0, 0, 0, protocol_status, 0, 0, 0],
    );
    out
}

/// The end of an answered request `id`: an empty STDOUT record, then END_REQUEST.
pub(crate) fn finish(id: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 * HEADER);
    push_record(&mut out, STDOUT, id, &[]);
    out.extend(end_request(id, REQUEST_COMPLETE));
    out
}

/// The answer to GET_VALUES: the values salt-fcgi knows among those asked
/// (`FCGI_MAX_CONNS`, `FCGI_MAX_REQS`, `FCGI_MPXS_CONNS`), the others left out.
pub(crate) fn get_values_result(asked: &[u8], max_connections: usize) -> Vec<u8> {
    let mut content = Vec::new();
    for (name, _) in pairs(asked).map_while(|p| p) {
        let value = match name {
            b"FCGI_MAX_CONNS" | b"FCGI_MAX_REQS" => max_connections.to_string(),
            b"FCGI_MPXS_CONNS" => "0".to_string(),
            _ => continue,
        };
        // Names matched above and decimal numbers are shorter than 128 bytes.
        content.extend_from_slice(&[name.len() as u8, value.len() as u8]);
        content.extend_from_slice(name);
        content.extend_from_slice(value.as_bytes());
    }
    let mut out = Vec::with_capacity(HEADER + content.len());
    push_record(
        &mut out,
        GET_VALUES_RESULT,
        0,
        &content[..content.len().min(MAX_CONTENT)],
    );
    out
}

/// The answer to a record of a type salt-fcgi does not know.
pub(crate) fn unknown_type(kind: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * HEADER);
    push_record(&mut out, UNKNOWN_TYPE, 0, &[kind, 0, 0, 0, 0, 0, 0, 0]);
    out
}

/// Whether salt-fcgi knows record type `kind` as one a web server sends.
pub(crate) fn is_known_input(kind: u8) -> bool {
    matches!(
        kind,
        BEGIN_REQUEST | ABORT_REQUEST | PARAMS | STDIN | DATA | GET_VALUES
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One record as a web server writes it, with `padding` zero bytes after the content.
    pub(crate) fn record(kind: u8, content: &[u8], padding: u8) -> Vec<u8> {
        let mut r = vec![1, kind, 0, 1];
        r.extend_from_slice(&(content.len() as u16).to_be_bytes());
        r.extend_from_slice(&[padding, 0]);
        r.extend_from_slice(content);
        r.extend(std::iter::repeat_n(0, usize::from(padding)));
        r
    }

    #[test]
    fn check_record_measures_padding_and_waits_for_the_whole_record() {
        let r = record(PARAMS, b"\x01\x01ab", 3);
        assert_eq!(check_record(&r), Ok(Some(15)));
        for cut in 0..r.len() {
            assert_eq!(check_record(&r[..cut]), Ok(None), "{cut} bytes");
        }
        assert_eq!(check_record(&record(PARAMS, b"\x00\x00", 0)), Ok(Some(10)));
        assert_eq!(check_record(&record(STDOUT, b"", 0)), Ok(Some(8)));
    }

    #[test]
    fn malformed_records_are_refused() {
        for bad in [
            record(BEGIN_REQUEST, b"", 0),
            record(BEGIN_REQUEST, &[0, 1], 0),
            record(PARAMS, b"\x8f\xff\xff\xff\x8f\xff\xff\xffAB", 0),
            record(PARAMS, b"\x04\x05NAMEVALU", 0),
            record(PARAMS, b"\x04", 0),
            record(GET_VALUES, b"\x0e\x00FCGI_MAX_CONN", 0),
            [&[2][..], &record(STDIN, b"", 0)[1..]].concat(),
        ] {
            assert!(check_record(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pairs_with_short_and_long_lengths() {
        let long = [
            &[0x0b, 0x80, 0, 0x01, 0x00][..],
            b"SCRIPT_NAME",
            &[b'x'; 256],
        ]
        .concat();
        let content = [&b"\x0e\x04REQUEST_METHODPOST"[..], &long].concat();
        let got: Vec<_> = pairs(&content).collect();
        assert_eq!(
            got,
            [
                Some((&b"REQUEST_METHOD"[..], &b"POST"[..])),
                Some((&b"SCRIPT_NAME"[..], &[b'x'; 256][..]))
            ]
        );
        let got: Vec<_> = pairs(b"\x01\x01ab\x05\x01c").collect();
        assert_eq!(got, [Some((&b"a"[..], &b"b"[..])), None]);
    }

    #[test]
    fn stdout_is_cut_into_records_of_at_most_65535_bytes() {
        let body = vec![7u8; 70_000];
        let out = stdout(3, &body);
        assert_eq!(out.len(), 70_000 + 2 * HEADER);
        assert_eq!(&out[..HEADER], &[1, STDOUT, 0, 3, 0xff, 0xff, 0, 0]);
        let second = HEADER + 65_535;
        assert_eq!(
            Header::read(&out[second..]).map(|h| h.content_len),
            Some(4_465)
        );
        assert!(stdout(3, b"").is_empty());
        assert_eq!(
            finish(3),
            [
                &[1, STDOUT, 0, 3, 0, 0, 0, 0][..],
                &[1, END_REQUEST, 0, 3, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]
            ]
            .concat()
        );
        assert_eq!(end_request(4, CANT_MPX_CONN).len(), 2 * HEADER);
    }

    #[test]
    fn get_values_answers_what_it_knows() {
        let asked = b"\x0e\x00FCGI_MAX_CONNS\x0f\x00FCGI_MPXS_CONNS\x03\x00FOO";
        let out = get_values_result(asked, 512);
        let header = Header::read(&out).expect("header");
        assert_eq!((header.kind, header.id), (GET_VALUES_RESULT, 0));
        let got: Vec<_> = pairs(&out[HEADER..]).collect();
        assert_eq!(
            got,
            [
                Some((&b"FCGI_MAX_CONNS"[..], &b"512"[..])),
                Some((&b"FCGI_MPXS_CONNS"[..], &b"0"[..]))
            ]
        );
        assert_eq!(unknown_type(42)[HEADER], 42);
    }
}
