//! Front ends: CGI (`cgi`), FastCGI (`fastcgi`) and HTTP (`http`) each turn their input
//! into an [`ApiRequest`] and write the [`ApiResponse`] back; `lifecycle` runs the two
//! servers (connections, SIGTERM, max-requests and idle exit), `listener` their sockets,
//! `fastcgi` reads and writes its records itself. Here: the panic guard every front end uses.

pub(crate) mod cgi;
pub(crate) mod cgi_dialect;
pub(crate) mod cgi_response;
pub(crate) mod fastcgi;
pub(crate) mod forwarded;
pub(crate) mod http;
pub(crate) mod lifecycle;
pub(crate) mod listener;

use std::sync::Arc;

use crate::api::{Api, ApiRequest, ApiResponse};

/// Runs the API on one request in its own task, so a panic answers 500 instead of
/// taking the connection or the process down.
pub(crate) async fn handle_guarded(api: &Arc<Api>, req: ApiRequest) -> ApiResponse {
    let api = Arc::clone(api);
    // Boxed: the handler's future is large, and a caller that keeps its own future for a
    // connection's life (an event stream's) would otherwise hold room for it all along.
    guarded(Box::pin(async move { api.handle(req).await })).await
}

/// Awaits `work` in its own task; a panic in it becomes a 500 response.
pub(crate) async fn guarded<F>(work: F) -> ApiResponse
where
    F: std::future::Future<Output = ApiResponse> + Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(resp) => resp,
        Err(e) => {
            crate::log!(error, "request handler failed: {e}");
            ApiResponse::error(
                500,
                "500: internal error in salt-fcgi (see the server's error log)",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_a_500() {
        let resp = guarded(async { panic!("boom") }).await;
        assert_eq!(resp.status, 500);
        assert!(!String::from_utf8_lossy(resp.whole_body()).contains("boom"));
        assert_eq!(guarded(async { ApiResponse::ok(vec![]) }).await.status, 200);
    }
}
