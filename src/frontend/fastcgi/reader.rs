//! Whole FastCGI records off a connection.
//!
//! [`RecordReader`] buffers what the web server sent and hands out one record at a time,
//! header and content, only once the whole record (padding included) has arrived and
//! `record::check_record` has found nothing wrong with it; otherwise the read fails and
//! the connection ends. Between requests it holds no buffer: a connection that carries an
//! event stream reads nothing for hours.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::record::{HEADER, Header, check_record};

/// Bytes asked of the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Reads whole, checked records from a connection it owns (and lends out for writing).
pub struct RecordReader<S> {
    stream: S,
    /// Bytes read from `stream` fill `buf[start..end]`; the record last handed out is
    /// the first `handed_out` of them.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    handed_out: usize,
    eof: bool,
}

impl<S: AsyncRead + Unpin> RecordReader<S> {
    /// Reads records from `stream`.
    pub fn new(stream: S) -> Self {
        RecordReader {
            stream,
            buf: Vec::new(),
            start: 0,
            end: 0,
            handed_out: 0,
            eof: false,
        }
    }

    /// The connection, for writing (nothing is read while a request is answered).
    pub(crate) fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The next whole record's header and content; `None` where the connection ended
    /// between records. Cancel-safe: bytes read stay buffered for the next call.
    pub async fn next(&mut self) -> io::Result<Option<(Header, &[u8])>> {
        let Some(header) = poll_fn(|cx| self.poll_record(cx)).await? else {
            return Ok(None);
        };
        let content = self.start + HEADER..self.start + HEADER + usize::from(header.content_len);
        Ok(Some((header, &self.buf[content])))
    }

    /// Lets go of the record last handed out; with nothing else buffered, of the buffer.
    pub(crate) fn release(&mut self) {
        self.start += std::mem::take(&mut self.handed_out);
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
            self.buf = Vec::new();
        }
    }

    fn poll_record(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Header>>> {
        self.release();
        loop {
            let pending = &self.buf[self.start..self.end];
            match check_record(pending) {
                Ok(Some(len)) => {
                    self.handed_out = len;
                    return Poll::Ready(Ok(Header::read(pending)));
                }
                Ok(None) if self.eof => {
                    return Poll::Ready(if pending.is_empty() {
                        Ok(None)
                    } else {
                        Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the connection ended inside a record",
                        ))
                    });
                }
                Ok(None) => std::task::ready!(self.fill(cx))?,
                Err(why) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
                }
            }
        }
    }

    /// Reads more of the connection behind what is buffered; sets `eof` at its end.
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
        std::task::ready!(std::pin::Pin::new(&mut self.stream).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.end += n;
        self.eof = n == 0;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::record;
    use super::super::record::{BEGIN_REQUEST, PARAMS, STDIN};
    use super::*;
    use std::pin::Pin;

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
        bytes.extend(record(PARAMS, b"", 0));
        bytes.extend(record(STDIN, &[b'['; 70_000][..65_535], 1));
        bytes.extend(record(STDIN, b"", 0));
        bytes
    }

    /// Every record read until the end or an error: (type, content length) each, and the error.
    async fn records(bytes: &[u8]) -> (Vec<(u8, usize)>, Option<io::ErrorKind>) {
        let mut reader = RecordReader::new(Trickle(bytes));
        let mut out = Vec::new();
        loop {
            match reader.next().await {
                Ok(Some((h, content))) => out.push((h.kind, content.len())),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.kind())),
            }
        }
    }

    #[tokio::test]
    async fn whole_records_in_order_however_they_trickle_in() {
        let (got, err) = records(&nginx_request()).await;
        assert_eq!(
            got,
            [
                (BEGIN_REQUEST, 8),
                (PARAMS, 20),
                (PARAMS, 0),
                (STDIN, 65_535),
                (STDIN, 0)
            ]
        );
        assert_eq!(err, None);
    }

    #[tokio::test]
    async fn a_record_cut_short_is_never_handed_out() {
        let bytes = nginx_request();
        let (got, err) = records(&bytes[..bytes.len() - 3]).await;
        assert_eq!((got.len(), err), (4, Some(io::ErrorKind::UnexpectedEof)));
        // Found by fuzzing: a BEGIN_REQUEST with no content whose 9 bytes of padding are
        // missing (tokio-fastcgi 1.3 took it for a whole one and panicked).
        let (got, err) = records(&[1, 1, 1, 1, 0, 0, 9, 8]).await;
        assert_eq!((got.len(), err), (0, Some(io::ErrorKind::UnexpectedEof)));
    }

    #[tokio::test]
    async fn a_malformed_record_ends_the_reading() {
        let bytes = [
            record(BEGIN_REQUEST, &[0, 1, 1, 0, 0, 0, 0, 0], 0),
            record(PARAMS, b"\x8f\xff\xff\xff\x8f\xff\xff\xffAB", 0),
        ]
        .concat();
        let (got, err) = records(&bytes).await;
        assert_eq!((got.len(), err), (1, Some(io::ErrorKind::InvalidData)));
    }

    #[tokio::test]
    async fn no_buffer_is_held_between_requests() {
        let bytes = nginx_request();
        let mut reader = RecordReader::new(&bytes[..]);
        for _ in 0..5 {
            reader.next().await.expect("read").expect("a record");
        }
        reader.release();
        assert_eq!(reader.buf.capacity(), 0);
    }
}
