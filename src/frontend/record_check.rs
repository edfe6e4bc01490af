//! FastCGI records checked before tokio-fastcgi parses them.
//!
//! tokio-fastcgi 1.3 trusts two things the web server's side of the socket controls: it
//! panics on a BEGIN_REQUEST record shorter than 2 bytes, and it allocates a parameter's
//! name and value buffers from their declared 31-bit lengths before comparing them with
//! the record (2 × 2 GiB for a 32-byte request, fatal where address space is limited).
//! [`RecordCheck`] hands a record on only once it holds the whole record and has found
//! neither; otherwise the read fails and tokio-fastcgi ends the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Bytes of a record header: version, type, request id (2), content length (2), padding, reserved.
const HEADER: usize = 8;
/// Bytes of an FCGI_BeginRequestBody (role (2), flags, 5 reserved).
const BEGIN_REQUEST_BODY: usize = 8;
const BEGIN_REQUEST: u8 = 1;
const PARAMS: u8 = 4;
const GET_VALUES: u8 = 9;
/// Bytes asked of the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// An `AsyncRead` that passes FastCGI records through whole and checked.
pub struct RecordCheck<R> {
    inner: R,
    /// Storage for bytes read from `inner`, which fill `buf[..end]`:
    /// `buf[start..start + ready]` are checked and not yet handed on, the rest up to `end`
    /// is the start of the next record.
    buf: Vec<u8>,
    start: usize,
    ready: usize,
    end: usize,
    eof: bool,
}

impl<R> RecordCheck<R> {
    /// Wraps the read half of a FastCGI connection.
    pub fn new(inner: R) -> Self {
        RecordCheck {
            inner,
            buf: Vec::new(),
            start: 0,
            ready: 0,
            end: 0,
            eof: false,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for RecordCheck<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                this.hand_on(out);
                return Poll::Ready(Ok(()));
            }
            let pending = &this.buf[this.start..this.end];
            if this.eof {
                // Never hand on a cut record: tokio-fastcgi would take a BEGIN_REQUEST whose
                // padding is missing as whole, content and all.
                return Poll::Ready(if pending.is_empty() {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection ended inside a record",
                    ))
                });
            }
            match check_record(pending) {
                Ok(Some(len)) => this.ready = len,
                Ok(None) => match this.fill(cx) {
                    Poll::Ready(Ok(())) => {}
                    other => return other,
                },
                // The connection loop logs it as the reason the connection closed.
                Err(why) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
                }
            }
        }
    }
}

impl<R: AsyncRead + Unpin> RecordCheck<R> {
    /// Copies checked bytes into `out`.
    fn hand_on(&mut self, out: &mut ReadBuf<'_>) {
        let n = self.ready.min(out.remaining());
        out.put_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        self.ready -= n;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
            if self.buf.len() > 4 * READ_CHUNK {
                self.buf.truncate(READ_CHUNK);
                self.buf.shrink_to_fit();
            }
        }
    }

    /// Reads more of the connection behind the unchecked bytes; sets `eof` at its end.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.end + READ_CHUNK {
            self.buf.resize(self.end + READ_CHUNK, 0);
        }
        let mut read = ReadBuf::new(&mut self.buf[self.end..]);
        let poll = Pin::new(&mut self.inner).poll_read(cx, &mut read);
        let n = read.filled().len();
        self.end += n;
        if let Poll::Ready(Ok(())) = poll {
            self.eof = n == 0;
        }
        poll
    }
}

/// The length of the complete record at the start of `bytes` (header, content, padding),
/// `None` while it is incomplete, or why it must not reach tokio-fastcgi.
pub fn check_record(bytes: &[u8]) -> Result<Option<usize>, &'static str> {
    let Some(header) = bytes.get(..HEADER) else {
        return Ok(None);
    };
    let content_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let total = HEADER + content_len + usize::from(header[6]);
    let Some(content) = bytes.get(HEADER..HEADER + content_len) else {
        return Ok(None);
    };
    if bytes.len() < total {
        return Ok(None);
    }
    match header[1] {
        BEGIN_REQUEST if content_len < BEGIN_REQUEST_BODY => {
            Err("BEGIN_REQUEST record shorter than 8 bytes")
        }
        PARAMS | GET_VALUES if !pairs_fit(content) => {
            Err("a name-value pair is longer than its record")
        }
        _ => Ok(Some(total)),
    }
}

/// Whether every FastCGI name-value pair in `content` lies wholly inside it.
fn pairs_fit(mut content: &[u8]) -> bool {
    while !content.is_empty() {
        let (Some(name), Some(value)) = (pair_length(&mut content), pair_length(&mut content))
        else {
            return false;
        };
        let Some(rest) = name.checked_add(value).and_then(|n| content.get(n..)) else {
            return false;
        };
        content = rest;
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn record(kind: u8, content: &[u8], padding: u8) -> Vec<u8> {
        let mut r = vec![1, kind, 0, 1];
        r.extend_from_slice(&(content.len() as u16).to_be_bytes());
        r.extend_from_slice(&[padding, 0]);
        r.extend_from_slice(content);
        r.extend(std::iter::repeat_n(0, usize::from(padding)));
        r
    }

    /// A reader that returns at most 3 bytes per read.
    struct Trickle<'a>(&'a [u8]);

    impl AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self.0.len().min(3).min(out.remaining());
            out.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Poll::Ready(Ok(()))
        }
    }

    fn nginx_request() -> Vec<u8> {
        let mut bytes = record(BEGIN_REQUEST, &[0, 1, 1, 0, 0, 0, 0, 0], 0);
        bytes.extend(record(PARAMS, b"\x0e\x04REQUEST_METHODPOST", 6));
        let long_value = [
            &[0x0b, 0x80, 0, 0x01, 0x00][..],
            b"SCRIPT_NAME",
            &[b'x'; 256],
        ]
        .concat();
        bytes.extend(record(PARAMS, &long_value, 0));
        bytes.extend(record(PARAMS, b"", 0));
        bytes.extend(record(5, &[b'['; 70_000][..65_535], 1));
        bytes.extend(record(5, b"", 0));
        bytes
    }

    #[tokio::test]
    async fn well_formed_records_pass_unchanged() {
        let bytes = nginx_request();
        assert_eq!(handed_on(&bytes).await, (bytes, None));
    }

    /// Reads through `RecordCheck` until the end or an error: what was handed on, and the error.
    async fn handed_on(bytes: &[u8]) -> (Vec<u8>, Option<io::ErrorKind>) {
        let mut reader = RecordCheck::new(Trickle(bytes));
        let mut out = Vec::new();
        let mut chunk = [0u8; 1000];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => return (out, Some(e.kind())),
            }
        }
    }

    #[tokio::test]
    async fn a_record_cut_short_is_never_handed_on() {
        let bytes = nginx_request();
        let last = bytes.len() - HEADER;
        let (out, err) = handed_on(&bytes[..bytes.len() - 3]).await;
        assert_eq!((out.len(), err), (last, Some(io::ErrorKind::UnexpectedEof)));
        // Found by fuzzing: a BEGIN_REQUEST with no content whose 9 bytes of padding are
        // missing; tokio-fastcgi 1.3 does not notice missing padding, and panics.
        let (out, err) = handed_on(&[1, 1, 1, 1, 0, 0, 9, 8]).await;
        assert_eq!((out.len(), err), (0, Some(io::ErrorKind::UnexpectedEof)));
    }

    #[tokio::test]
    async fn short_begin_request_and_oversized_pairs_end_the_connection() {
        for bad in [
            record(BEGIN_REQUEST, b"", 0),
            record(BEGIN_REQUEST, &[0, 1], 0),
            [
                record(BEGIN_REQUEST, &[0, 1, 1, 0, 0, 0, 0, 0], 0),
                record(PARAMS, b"\x8f\xff\xff\xff\x8f\xff\xff\xffAB", 0),
            ]
            .concat(),
            record(PARAMS, b"\x04\x05NAMEVALU", 0),
            record(PARAMS, b"\x04", 0),
            record(GET_VALUES, b"\x0e\x00FCGI_MAX_CONN", 0),
        ] {
            let (_, err) = handed_on(&bad).await;
            assert_eq!(err, Some(io::ErrorKind::InvalidData), "{bad:?}");
        }
    }

    #[test]
    fn check_record_measures_padding_and_waits_for_the_whole_record() {
        let r = record(PARAMS, b"\x01\x01ab", 3);
        assert_eq!(check_record(&r), Ok(Some(15)));
        for cut in 0..r.len() {
            assert_eq!(check_record(&r[..cut]), Ok(None), "{cut} bytes");
        }
        assert_eq!(check_record(&record(PARAMS, b"\x00\x00", 0)), Ok(Some(10)));
        assert_eq!(check_record(&record(6, b"", 0)), Ok(Some(8)));
    }
}
