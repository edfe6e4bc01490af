//! FastCGI responder: persistent, many connections at once, the requests of one
//! connection served in order.
//!
//! salt-fcgi reads and writes the records itself (`record`: the wire format; `reader`:
//! whole, checked records off the socket; `assembly`: one request put together from
//! them). A connection's task holds only what the request in hand needs: no buffer while
//! it waits, and of a request only its `ApiRequest`, so an event stream held open for
//! hours costs little more than its socket. Each response write is one system call
//! (records and their headers in one buffer).

mod assembly;
mod reader;
mod record;

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

pub use assembly::{Assembly, IncomingRequest, Step};
pub use reader::RecordReader;
pub use record::{Header, check_record};

use super::cgi_response::{self, Delivery, ResponseSink};
use super::handle_guarded;
use super::lifecycle::{Lifecycle, ServeOptions, accept_loop};
use super::listener::{Listener, Stream};
use crate::api::Api;

/// Serves FastCGI on `listener` until SIGTERM, max-requests or idle exit.
pub async fn serve(listener: Listener, api: Arc<Api>, options: ServeOptions) {
    crate::audit::set_frontend("fastcgi");
    let life = Lifecycle::new(options);
    life.watch_signals_and_idle();
    crate::log!(info, "serving FastCGI on {}", listener.describe());
    accept_loop(listener, &api, &life, |stream, slot| {
        let (api, life) = (Arc::clone(&api), Arc::clone(&life));
        async move {
            let _slot = slot;
            match stream {
                Stream::Tcp(s) => connection(s, api, life).await,
                Stream::Unix(s) => connection(s, api, life).await,
            }
        }
    })
    .await;
}

/// What a connection does after a request was answered.
enum After {
    /// Read the next request.
    Next,
    /// Close the connection.
    Close,
}

/// Serves the requests of one web-server connection, in order.
async fn connection<S>(stream: S, api: Arc<Api>, life: Arc<Lifecycle>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let options = &life.options;
    let mut reader = RecordReader::new(stream);
    let mut assembly = Assembly::new(options.max_body_bytes, options.max_connections);
    let mut deadline = None;
    let mut stop = life.subscribe();
    loop {
        if life.is_shutting_down() {
            break;
        }
        let step = tokio::select! {
            step = next_step(&mut reader, &mut assembly, &mut deadline, options) => step,
            _ = stop.changed() => break,
        };
        let step = match step {
            Ok(Some(step)) => step,
            Ok(None) => break,
            Err(e) => {
                crate::log!(warn, "FastCGI connection closed: {e}");
                break;
            }
        };
        let written = match step {
            Step::Continue => Ok(()),
            Step::Reply(records) => reader.stream().write_all(&records).await,
            Step::Close(why) => {
                crate::log!(warn, "FastCGI connection closed: {why}");
                break;
            }
            Step::Request(request) => {
                reader.release();
                match answer(reader.stream(), request, &api, &life).await {
                    After::Next => Ok(()),
                    After::Close => break,
                }
            }
        };
        if let Err(e) = written {
            crate::log!(warn, "FastCGI write failed (web server gone?): {e}");
            break;
        }
    }
}

/// Reads records until one calls for action (`None`: the web server closed the
/// connection between requests); a request that has begun must arrive whole
/// within `body_read_timeout` of its BEGIN_REQUEST (an idle connection is not timed).
/// Cancel-safe: what was read stays with `reader` and `assembly`.
async fn next_step<S: AsyncRead + Unpin>(
    reader: &mut RecordReader<S>,
    assembly: &mut Assembly,
    deadline: &mut Option<Instant>,
    options: &ServeOptions,
) -> io::Result<Option<Step>> {
    loop {
        let record = match *deadline {
            Some(at) => tokio::time::timeout_at(at, reader.next())
                .await
                .map_err(|_| body_timeout(options))?,
            None => reader.next().await,
        };
        let Some((header, content)) = record? else {
            return if assembly.receiving() {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection ended inside a request",
                ))
            } else {
                Ok(None)
            };
        };
        let step = assembly.push(header, content);
        *deadline = match (assembly.receiving(), *deadline) {
            (false, _) => None,
            (true, None) => Some(Instant::now() + options.body_read_timeout),
            (true, running) => running,
        };
        if !matches!(step, Step::Continue) {
            return Ok(Some(step));
        }
    }
}

/// The error of a request that did not arrive whole in time.
fn body_timeout(options: &ServeOptions) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "a request did not arrive whole within body_read_timeout ({} s)",
            options.body_read_timeout.as_secs_f64()
        ),
    )
}

/// Answers one request: the API's response as STDOUT records, then END_REQUEST.
async fn answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    request: IncomingRequest,
    api: &Arc<Api>,
    life: &Lifecycle,
) -> After {
    let _in_flight = life.begin();
    let (id, keep_conn) = (request.id, request.keep_conn);
    let response = handle_guarded(api, request.into_api_request(life.options.max_body_bytes)).await;
    let mut sink = Records { stream, id };
    let delivered = match cgi_response::write_response(&mut sink, response).await {
        Ok(Delivery::Done) => sink.stream.write_all(&record::finish(id)).await,
        Ok(Delivery::Abandoned) => {
            // The stream's client stopped reading; the request's end could never be written.
            crate::log::warn(
                "FastCGI stream abandoned: its client stopped reading; connection closed",
            );
            return After::Close;
        }
        Err(e) => Err(e),
    };
    match delivered {
        Ok(()) if keep_conn => After::Next,
        Ok(()) => After::Close,
        Err(e) => {
            crate::log!(warn, "FastCGI response not delivered (client gone?): {e}");
            After::Close
        }
    }
}

/// Bytes of a response copied into records for one write: a bigger body (a large return)
/// goes out in writes of this much, not copied whole.
const WRITE_PIECE: usize = 256 * 1024;

/// A request's STDOUT: each send is one write of whole records (per 256 KiB).
struct Records<'a, S> {
    stream: &'a mut S,
    id: u16,
}

impl<S: AsyncWrite + Unpin> ResponseSink for Records<'_, S> {
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        for piece in bytes.chunks(WRITE_PIECE) {
            self.stream
                .write_all(&record::stdout(self.id, piece))
                .await?;
        }
        Ok(())
    }
}

/// The steps a web server that sent `bytes` and closed its side leads to, read as a
/// connection reads them (untimed), up to the first `Close` or read error, and that error
/// (for the fuzz targets and the regression tests).
pub async fn steps(bytes: &[u8], max_body: usize) -> (Vec<Step>, Option<io::Error>) {
    let mut reader = RecordReader::new(bytes);
    let mut assembly = Assembly::new(max_body, 16);
    let mut steps = Vec::new();
    loop {
        match reader.next().await {
            Ok(Some((header, content))) => {
                let step = assembly.push(header, content);
                let close = matches!(step, Step::Close(_));
                steps.push(step);
                if close {
                    return (steps, None);
                }
            }
            Ok(None) => return (steps, None),
            Err(e) => return (steps, Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_large_body_goes_out_as_whole_records_piece_by_piece() {
        let body: Vec<u8> = (0..600_000u32).map(|n| (n % 251) as u8).collect();
        let mut out = Vec::new();
        Records {
            stream: &mut out,
            id: 5,
        }
        .send(&body)
        .await
        .expect("written");
        let mut content = Vec::new();
        let mut rest = &out[..];
        while let Some(header) = Header::read(rest) {
            assert_eq!((header.kind, header.id, header.padding), (6, 5, 0));
            let len = usize::from(header.content_len);
            assert!(len > 0, "no empty record: it would end STDOUT");
            content.extend_from_slice(&rest[8..8 + len]);
            rest = &rest[header.total_len()..];
        }
        assert!(rest.is_empty());
        assert_eq!(content, body);
    }
}
