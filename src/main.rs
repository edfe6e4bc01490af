//! Entry point: choose the front end from the command line and fd 0, nothing else.
//!
//! - `--http ADDR`: development HTTP server.
//! - `--listen unix:/path | HOST:PORT`: FastCGI on a socket of our own.
//! - otherwise FastCGI if fd 0 is a listening socket (mod_fcgid, spawn-fcgi, systemd),
//!   else one CGI request from the environment and stdin.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use salt_fcgi::api::Api;
use salt_fcgi::frontend::listener::{Listener, is_listening_socket};
use salt_fcgi::frontend::{ServeOptions, cgi, fastcgi, http};
use salt_fcgi::log;
use salt_fcgi::settings::Settings;

const USAGE: &str = "\
salt-fcgi: Salt's REST API (rest_wsgi dialect) as CGI, FastCGI or HTTP

USAGE:
    salt-fcgi [OPTIONS]                       CGI, or FastCGI when fd 0 is a listening socket
    salt-fcgi --listen unix:/run/salt-fcgi.sock [OPTIONS]   FastCGI on a socket of its own
    salt-fcgi --listen 127.0.0.1:9000 [OPTIONS]
    salt-fcgi --http 127.0.0.1:8001 [OPTIONS]    development HTTP/1.1 server

OPTIONS:
    --config PATH          master config (default: $SALT_MASTER_CONFIG, else /etc/salt/master)
    --socket-mode OCTAL    mode of a --listen unix socket (default 660)
    --max-requests N       exit after N requests (FastCGI/HTTP)
    --idle-timeout SECS    exit after SECS without a request (FastCGI/HTTP)
    -h, --help             this text
    -V, --version          version
";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    listen: Option<String>,
    http: Option<String>,
    socket_mode: Option<u32>,
    serve: ServeOptions,
}

enum Parsed {
    Run(Args),
    Exit(ExitCode),
}

fn parse_args() -> Result<Parsed, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => args.config = Some(parser.value()?.into()),
            Long("listen") => args.listen = Some(parser.value()?.string()?),
            Long("http") => args.http = Some(parser.value()?.string()?),
            Long("socket-mode") => {
                let text = parser.value()?.string()?;
                let mode =
                    u32::from_str_radix(&text, 8).map_err(|e| lexopt::Error::ParsingFailed {
                        value: text.clone(),
                        error: Box::new(e),
                    })?;
                args.socket_mode = Some(mode);
            }
            Long("max-requests") => args.serve.max_requests = Some(parser.value()?.parse()?),
            Long("idle-timeout") => {
                args.serve.idle_timeout = Some(Duration::from_secs(parser.value()?.parse()?));
            }
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            Short('V') | Long("version") => {
                println!("salt-fcgi {}", env!("CARGO_PKG_VERSION"));
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Parsed::Run(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Exit(code)) => return code,
        Err(e) => {
            eprintln!("salt-fcgi: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.listen.is_none() && args.http.is_none() && !is_listening_socket(0) {
        if std::env::var_os("REQUEST_METHOD").is_none() {
            eprintln!(
                "salt-fcgi: no CGI request (REQUEST_METHOD is not set) and no --listen/--http\n\n{USAGE}"
            );
            return ExitCode::from(2);
        }
        return cgi::run(args.config.as_deref());
    }
    serve(args)
}

/// Runs a FastCGI or HTTP server until it is told to stop.
fn serve(args: Args) -> ExitCode {
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            log::error(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let api = Arc::new(Api::new(settings));
    let result: std::io::Result<()> = runtime.block_on(async move {
        if let Some(addr) = &args.http {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            http::serve(listener, api, args.serve).await;
        } else {
            let listener = match &args.listen {
                Some(spec) => Listener::bind(spec, args.socket_mode.unwrap_or(0o660)).await?,
                None => Listener::inherit(0)?,
            };
            fastcgi::serve(listener, api, args.serve).await;
        }
        Ok(())
    });
    // Blocking ZeroMQ calls still waiting (a dead master) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(&format!("cannot listen: {e}"));
            ExitCode::FAILURE
        }
    }
}
