//! A small FastCGI client (one request per connection).

use serde_json::Value as Json;

use super::{Req, Response, parse_head};

/// Sends one FastCGI request for `/` with the `fastcgi-client` crate over a unix socket.
pub fn fastcgi(socket: &str, method: &str, content_type: &str, body: &[u8]) -> Response {
    fastcgi_request(socket, &Req::new(method, "/").body(content_type, body), &[])
}

/// POSTs a JSON body over FastCGI.
pub fn fastcgi_post(socket: &str, body: &Json) -> Response {
    let resp = fastcgi(
        socket,
        "POST",
        "application/json",
        body.to_string().as_bytes(),
    );
    resp.check_headers();
    resp
}

pub(super) fn fastcgi_request(
    socket: &str,
    req: &Req,
    cgi_headers: &[(String, String)],
) -> Response {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .expect("connect FastCGI socket");
        let mut client = fastcgi_client::Client::new_keep_alive_tokio(stream);
        let mut params = fastcgi_client::Params::default()
            .request_method(req.method.clone())
            .script_name("")
            .request_uri(req.path.clone())
            .content_length(req.body.len())
            .custom("PATH_INFO", req.path.clone());
        if let Some(ct) = &req.content_type {
            params = params.content_type(ct.clone());
        }
        for (k, v) in cgi_headers {
            params = params.custom(k.clone(), v.clone());
        }
        let output = client
            .execute(fastcgi_client::Request::new(params, &req.body[..]))
            .await
            .expect("FastCGI request");
        parse_head(&output.stdout.unwrap_or_default(), false)
    })
}
