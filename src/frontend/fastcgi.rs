//! FastCGI responder: persistent, many connections at once, requests on one connection
//! served in order (tokio-fastcgi's writer must not be shared by concurrent requests;
//! nginx and mod_fcgid never multiplex a connection anyway).
//!
//! Each connection is read through `RecordCheck` (whole records, refused before
//! tokio-fastcgi parses what it would mishandle) and `CappedReader`: tokio-fastcgi
//! assembles a whole request in memory before handing it over, so a body far over
//! `max_body_bytes` ends the connection instead of filling memory; one a little over it
//! gets a JSON 413.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_fastcgi::{OutStream, Request, RequestResult, Requests};

use super::cgi_dialect;
use super::cgi_response::{self, Delivery, ResponseSink};
use super::handle_guarded;
use super::lifecycle::{Lifecycle, ServeOptions, accept_loop};
use super::listener::{Listener, Stream};
use super::record_check::RecordCheck;
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

/// Serves the requests of one web-server connection, in order.
async fn connection<S>(stream: S, api: Arc<Api>, life: Arc<Lifecycle>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let limits = life.options.clone();
    let cap = limits
        .max_body_bytes
        .saturating_mul(2)
        .saturating_add(1 << 20);
    let (rd, wr) = tokio::io::split(stream);
    let taken = Arc::new(AtomicUsize::new(0));
    let reader = CappedReader {
        inner: RecordCheck::new(rd).with_body_timeout(limits.body_read_timeout),
        taken: Arc::clone(&taken),
        cap,
    };
    let max_conns = u8::try_from(limits.max_connections).unwrap_or(u8::MAX);
    let mut requests = Requests::new(reader, wr, max_conns, 1);
    let mut stop = life.subscribe();
    loop {
        if life.is_shutting_down() {
            break;
        }
        let next = tokio::select! {
            n = requests.next() => n,
            _ = stop.changed() => break,
        };
        let request = match next {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                crate::log!(warn, "FastCGI connection closed: {e:?}");
                break;
            }
        };
        taken.store(0, Ordering::Release);
        let _in_flight = life.begin();
        let api = Arc::clone(&api);
        let max_body = limits.max_body_bytes;
        // A stream whose client stopped reading is abandoned: the connection is dropped
        // (tokio-fastcgi would wait forever to write the request's end on it).
        let (abandon, mut abandoned) = tokio::sync::oneshot::channel();
        let process = request.process(|req| async move {
            if respond(&req, &api, max_body).await == Delivery::Abandoned {
                let _ = abandon.send(());
            }
            RequestResult::Complete(0)
        });
        let outcome = tokio::select! {
            outcome = process => outcome,
            Ok(()) = &mut abandoned => {
                crate::log::warn("FastCGI stream abandoned: its client stopped reading; connection closed");
                break;
            }
        };
        if let Err(e) = outcome {
            crate::log!(warn, "FastCGI response not delivered: {e:?}");
            break;
        }
    }
}

/// Builds the ApiRequest from params and stdin, runs it, writes the CGI response.
async fn respond<W: AsyncWrite + Unpin>(
    req: &Request<W>,
    api: &Arc<Api>,
    max_body: usize,
) -> Delivery {
    let request = cgi_dialect::request_from_vars(
        &params(req),
        // FCGI_STDIN is complete in memory; it is read the way a CGI body is.
        |declared| cgi_dialect::read_body(&mut *req.get_stdin(), declared, max_body),
        max_body,
    );
    let response = handle_guarded(api, request).await;
    let mut out = Records(req.get_stdout());
    match cgi_response::write_response(&mut out, response).await {
        Ok(delivery) => delivery,
        Err(e) => {
            crate::log!(warn, "FastCGI write failed (client gone?): {e}");
            Delivery::Done
        }
    }
}

/// A request's FCGI_STDOUT: each send is written as records and flushed.
struct Records<W: AsyncWrite + Unpin>(OutStream<W>);

impl<W: AsyncWrite + Unpin> ResponseSink for Records<W> {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write(bytes).await.map_err(std::io::Error::other)?;
        self.0.flush().await
    }
}

/// A request's FastCGI params as CGI variables (values that are not UTF-8 left out).
pub fn params<W: AsyncWrite + Unpin>(req: &Request<W>) -> cgi_dialect::CgiVars {
    req.str_params_iter()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.to_string(), v?.to_string())))
        .collect()
}

/// Fails reads once more than `cap` bytes arrived since the last request began.
struct CappedReader<R> {
    inner: R,
    taken: Arc<AtomicUsize>,
    cap: usize,
}

impl<R: AsyncRead + Unpin> AsyncRead for CappedReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.taken.load(Ordering::Acquire) > this.cap {
            crate::log::warn("FastCGI request far over max_body_bytes: connection closed");
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request too large",
            )));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.taken
            .fetch_add(buf.filled().len() - before, Ordering::AcqRel);
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn capped_reader_refuses_past_the_cap() {
        let data = [7u8; 100];
        let taken = Arc::new(AtomicUsize::new(0));
        let mut r = CappedReader {
            inner: &data[..],
            taken: Arc::clone(&taken),
            cap: 50,
        };
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).await.is_err());
        let taken = Arc::new(AtomicUsize::new(0));
        let mut r = CappedReader {
            inner: &data[..],
            taken,
            cap: 100,
        };
        let mut out = Vec::new();
        assert_eq!(r.read_to_end(&mut out).await.expect("read"), 100);
    }
}
