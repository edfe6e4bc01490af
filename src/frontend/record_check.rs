//! FastCGI records checked before tokio-fastcgi parses them.
//!
//! tokio-fastcgi 1.3 trusts two things the web server's side of the socket controls: it
//! panics on a BEGIN_REQUEST record shorter than 2 bytes, and it allocates a parameter's
//! name and value buffers from their declared 31-bit lengths before comparing them with
//! the record (2 × 2 GiB for a 32-byte request, fatal where address space is limited).
//! [`RecordCheck`] hands a record on only once it holds the whole record and has found
//! neither; otherwise the read fails and tokio-fastcgi ends the connection.
//!
//! It also times request bodies: tokio-fastcgi assembles a whole request before handing
//! it over, so a web server that streams a client's body as it trickles in (nginx with
//! `fastcgi_request_buffering off`) would hold a connection slot for as long as the client
//! likes. From a request's BEGIN_REQUEST to the end of its STDIN at most
//! `body_read_timeout` may pass; past it the read fails and the connection closes.
//! An idle kept-alive connection (no request begun) is not timed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Bytes of a record header: version, type, request id (2), content length (2), padding, reserved.
const HEADER: usize = 8;
/// Bytes of an FCGI_BeginRequestBody (role (2), flags, 5 reserved).
const BEGIN_REQUEST_BODY: usize = 8;
const BEGIN_REQUEST: u8 = 1;
const ABORT_REQUEST: u8 = 2;
const PARAMS: u8 = 4;
const STDIN: u8 = 5;
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
    /// Requests begun whose STDIN has not ended yet.
    receiving: Vec<u16>,
    /// How long a request may take to arrive whole (`body_read_timeout`); untimed if None.
    body_timeout: Option<Duration>,
    /// When the oldest request still arriving must be whole.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<R> RecordCheck<R> {
    /// Wraps the read half of a FastCGI connection (requests are not timed).
    pub fn new(inner: R) -> Self {
        RecordCheck {
            inner,
            buf: Vec::new(),
            start: 0,
            ready: 0,
            end: 0,
            eof: false,
            receiving: Vec::new(),
            body_timeout: None,
            deadline: None,
        }
    }

    /// A request must arrive whole within `timeout` of its BEGIN_REQUEST (needs a tokio
    /// runtime with its timer).
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = Some(timeout);
        self
    }

    /// Follows which requests are still arriving, from the header of a whole record.
    fn track(&mut self, header: &[u8]) {
        let id = u16::from_be_bytes([header[2], header[3]]);
        let content_len = u16::from_be_bytes([header[4], header[5]]);
        match header[1] {
            BEGIN_REQUEST => {
                if let (true, Some(timeout)) = (self.receiving.is_empty(), self.body_timeout) {
                    let at = Instant::now() + timeout;
                    self.deadline = Some(Box::pin(tokio::time::sleep_until(at)));
                }
                self.receiving.retain(|r| *r != id);
                self.receiving.push(id);
            }
            STDIN if content_len == 0 => self.receiving.retain(|r| *r != id),
            ABORT_REQUEST => self.receiving.retain(|r| *r != id),
            _ => {}
        }
        if self.receiving.is_empty() {
            self.deadline = None;
        }
    }

    /// An error once a request has been arriving for longer than `body_timeout`.
    fn overdue(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let deadline = self.deadline.as_mut()?;
        deadline.as_mut().poll(cx).is_ready().then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "a request did not arrive whole within body_read_timeout ({} s)",
                    self.body_timeout.unwrap_or_default().as_secs_f64()
                ),
            )
        })
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
                Ok(Some(len)) => {
                    let header: [u8; HEADER] = pending[..HEADER].try_into().unwrap_or_default();
                    this.track(&header);
                    this.ready = len;
                }
                Ok(None) => match this.fill(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Pending => {
                        return match this.overdue(cx) {
                            Some(e) => Poll::Ready(Err(e)),
                            None => Poll::Pending,
                        };
                    }
                    other @ Poll::Ready(_) => return other,
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
            // Nothing buffered: the storage goes until the next read (a connection that
            // holds an event stream reads nothing for hours).
            (self.start, self.end) = (0, 0);
            self.buf = Vec::new();
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

    /// Issue 17 item 6: a request that never finishes arriving ends the connection after
    /// body_read_timeout; an idle connection and a request that did arrive are not timed.
    #[tokio::test(start_paused = true)]
    async fn a_request_body_that_trickles_is_cut_off() {
        let begin = record(BEGIN_REQUEST, &[0, 1, 1, 0, 0, 0, 0, 0], 0);
        let stdin_end = record(STDIN, &[], 0);
        let timeout = Duration::from_secs(30);
        // Begun, then silence: the read fails at 30 s, not before.
        let (mut server, client) = tokio::io::duplex(1024);
        let mut reader = RecordCheck::new(client).with_body_timeout(timeout);
        use tokio::io::AsyncWriteExt;
        server.write_all(&begin).await.expect("write");
        let mut buf = vec![0u8; 64];
        assert_eq!(
            reader.read(&mut buf).await.expect("the begin record"),
            begin.len()
        );
        let started = Instant::now();
        let err = reader.read(&mut buf).await.expect_err("timed out");
        assert_eq!(
            (err.kind(), started.elapsed()),
            (io::ErrorKind::TimedOut, timeout)
        );
        // Begun and ended: the wait for the next request is not timed.
        let (mut server, client) = tokio::io::duplex(1024);
        let mut reader = RecordCheck::new(client).with_body_timeout(timeout);
        server.write_all(&begin).await.expect("write");
        server.write_all(&stdin_end).await.expect("write");
        let mut got = 0;
        while got < begin.len() + stdin_end.len() {
            got += reader.read(&mut buf).await.expect("records");
        }
        let idle = tokio::time::timeout(Duration::from_secs(3600), reader.read(&mut buf)).await;
        assert!(idle.is_err(), "an idle connection waits");
    }
}
