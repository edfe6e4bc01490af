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
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{Lifecycle, ServeOptions, handle_guarded};
use crate::api::request::parse_content_length;
use crate::api::{Api, ApiRequest, ApiResponse, BodyError};

/// Serves HTTP on `listener` until SIGTERM, max-requests or idle exit.
pub async fn serve(listener: TcpListener, api: Arc<Api>, options: ServeOptions) {
    let life = Lifecycle::new(options);
    life.watch_signals_and_idle();
    let limits = api.settings().limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let max_header = limits.max_header_bytes;
    if let Ok(addr) = listener.local_addr() {
        crate::log::info(&format!("serving HTTP on http://{addr}/"));
    }
    let mut stop = life.subscribe();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                crate::log::warn(&format!("accept failed: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok().map(|a| a.ip().to_string());
        let (api, life) = (Arc::clone(&api), Arc::clone(&life));
        tokio::spawn(async move {
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
                .header_read_timeout(std::time::Duration::from_secs(30))
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
            drop(permit);
        });
    }
    drop(listener);
    life.drain(limits.shutdown_grace).await;
}

/// Reads the request (body bounded by `max_body_bytes`) into an ApiRequest.
async fn from_hyper(req: Request<Incoming>, api: &Api) -> ApiRequest {
    let max = api.settings().limits.max_body_bytes;
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
    let body = match declared {
        Err(e) => Err(e),
        Ok(Some(n)) if n > max => Err(BodyError::TooLarge(n)),
        Ok(_) => match Limited::new(req.into_body(), max).collect().await {
            Ok(collected) => Ok(collected.to_bytes().to_vec()),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(BodyError::TooLarge(max.saturating_add(1)))
            }
            Err(e) => Err(BodyError::Io(e.to_string())),
        },
    };
    ApiRequest {
        method,
        path,
        content_type,
        body,
        remote_addr: None,
    }
}

fn to_hyper(resp: ApiResponse) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", ApiResponse::CONTENT_TYPE);
    for (name, value) in &resp.headers {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(resp.body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{\"return\":\"500\"}"))))
}
