//! Built-in HTTP/1.1 server for development (`--http 127.0.0.1:8001`), on hyper.
//!
//! What `salt-api` does with rest_wsgi's `port`, without its single-threaded HTTP/1.0
//! server: keep-alive, chunked request bodies, concurrent requests.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::listener::{Listener, Stream};
use super::{Lifecycle, ServeOptions, accept_loop, handle_guarded};
use crate::api::request::parse_content_length;
use crate::api::{Api, ApiRequest, ApiResponse, BodyError};

/// Serves HTTP on `listener` until SIGTERM, max-requests or idle exit.
pub async fn serve(listener: Listener, api: Arc<Api>, options: ServeOptions) {
    let life = Lifecycle::new(options);
    life.watch_signals_and_idle();
    crate::log::info(&format!("serving HTTP on {}", listener.describe()));
    accept_loop(listener, &api, &life, |stream| {
        let (api, life) = (Arc::clone(&api), Arc::clone(&life));
        async move {
            match stream {
                Stream::Tcp(s) => {
                    let peer = s.peer_addr().ok().map(|a| a.ip().to_string());
                    connection(s, peer, api, life).await;
                }
                Stream::Unix(s) => connection(s, None, api, life).await,
            }
        }
    })
    .await;
}

/// Serves one HTTP/1.1 connection (keep-alive) until it closes or the server stops.
async fn connection<S>(stream: S, peer: Option<String>, api: Arc<Api>, life: Arc<Lifecycle>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let max_header = api.settings().limits.max_header_bytes;
    let service = service_fn(|req| {
        let (api, life, peer) = (Arc::clone(&api), Arc::clone(&life), peer.clone());
        async move {
            let _in_flight = life.begin();
            let mut request = from_hyper(req, &api).await;
            request.remote_addr = peer;
            Ok::<_, Infallible>(to_hyper(handle_guarded(&api, request).await))
        }
    });
    let conn = http1::Builder::new()
        .max_buf_size(max_header)
        .header_read_timeout(api.settings().limits.body_read_timeout)
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let mut stop = life.subscribe();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Reads the request (body bounded by `max_body_bytes`) into an ApiRequest.
async fn from_hyper(req: Request<Incoming>, api: &Api) -> ApiRequest {
    let max = api.settings().limits.max_body_bytes;
    let body_wait = api.settings().limits.body_read_timeout;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type");
    let declared = parse_content_length(header("content-length").as_deref());
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let https = header("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let headers = req
        .headers()
        .iter()
        .filter(|(k, _)| *k != "content-type" && *k != "content-length")
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = match declared {
        Err(e) => Err(e),
        Ok(Some(n)) if n > max => Err(BodyError::TooLarge(n)),
        // A client that trickles its body (slowloris) is cut off after body_read_timeout.
        Ok(_) => {
            match tokio::time::timeout(body_wait, Limited::new(req.into_body(), max).collect())
                .await
            {
                Err(_) => Err(BodyError::Io(format!(
                    "the body did not arrive within body_read_timeout ({} s)",
                    body_wait.as_secs_f64()
                ))),
                Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
                Ok(Err(e))
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some() =>
                {
                    Err(BodyError::TooLarge(max.saturating_add(1)))
                }
                Ok(Err(e)) => Err(BodyError::Io(e.to_string())),
            }
        }
    };
    ApiRequest {
        method,
        path,
        mount: String::new(),
        query,
        headers,
        content_type,
        body,
        remote_addr: None,
        https,
    }
}

fn to_hyper(resp: ApiResponse) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", resp.content_type);
    for (name, value) in &resp.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(resp.body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{\"return\":\"500\"}"))))
}
