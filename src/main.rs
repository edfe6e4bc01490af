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

use salt_fcgi::internals::Api;
use salt_fcgi::internals::Settings;
use salt_fcgi::internals::log;
use salt_fcgi::internals::{Listener, is_listening_socket};
use salt_fcgi::internals::{ServeOptions, ensure_fd_limit};
use salt_fcgi::internals::{cgi, fastcgi, http};

/// `--help`, in the GNU layout (`Usage:`/`or:` lines, then sections) that help2man turns
/// into the man page of the Debian package (scripts/package).
const USAGE: &str = "\
Usage: salt-fcgi [OPTIONS]
   or: salt-fcgi --listen unix:/run/salt-fcgi.sock [OPTIONS]
   or: salt-fcgi --listen 127.0.0.1:9000 [OPTIONS]
   or: salt-fcgi --http 127.0.0.1:8001 [OPTIONS]
Salt's REST API (rest_wsgi and rest_cherrypy dialects) as CGI, FastCGI or HTTP.

Modes:
    (no mode option)       one CGI request, or FastCGI when fd 0 is a listening socket
    --listen ADDRESS       FastCGI on a socket of its own: unix:PATH or HOST:PORT
    --http HOST:PORT       development HTTP/1.1 server

Options:
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
    /// `--max-requests`.
    max_requests: Option<u64>,
    /// `--idle-timeout`.
    idle_timeout: Option<Duration>,
}

enum Parsed {
    Run(Args),
    Help,
    Version,
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
            Long("max-requests") => args.max_requests = Some(parser.value()?.parse()?),
            Long("idle-timeout") => {
                args.idle_timeout = Some(Duration::from_secs(parser.value()?.parse()?));
            }
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Parsed::Run(args))
}

fn main() -> ExitCode {
    let parsed = parse_args();
    let listening = is_listening_socket(0);
    if !listening && std::env::var_os("GATEWAY_INTERFACE").is_some() {
        // A CGI request: argv may come from the URL, so never print, serve or fail on it.
        let config = match &parsed {
            Ok(Parsed::Run(args)) => cgi_config(args),
            _ => None,
        };
        return cgi::run(config.as_deref());
    }
    let args = match parsed {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("salt-fcgi {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("salt-fcgi: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if listening {
        // mod_fcgid, spawn-fcgi, systemd: FastCGI on the inherited socket.
        return serve(Args {
            listen: None,
            http: None,
            ..args
        });
    }
    if args.listen.is_none() && args.http.is_none() {
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

/// The config path for a CGI request. Under CGI only `--config` means anything, and not
/// even that when the arguments came from the URL: a query string without `=` is handed
/// to CGI programs as argv (RFC 3875 4.4), so `?--config+/x` must not pick the config.
fn cgi_config(args: &Args) -> Option<PathBuf> {
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    if !query.is_empty() && !query.contains('=') {
        if std::env::args_os().len() > 1 {
            log::warn("ignored command-line arguments that came from the query string");
        }
        return None;
    }
    args.config.clone()
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
    if let Some(refused) = salt_fcgi::internals::refusal(&settings) {
        // Said once at start; every request that needs the master answers it as a 503.
        log::error(&refused.to_string());
    }
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
    // The server's own settings: the command line's exit conditions and the config's limits.
    let options = ServeOptions {
        max_requests: args.max_requests,
        idle_timeout: args.idle_timeout,
        ..ServeOptions::new(&settings.limits)
    };
    ensure_fd_limit(settings.limits.max_connections);
    let api = Arc::new(Api::new(settings));
    let result: std::io::Result<()> = runtime.block_on(async move {
        let mode = args.socket_mode.unwrap_or(0o660);
        if let Some(addr) = &args.http {
            http::serve(Listener::bind(addr, mode).await?, api, options).await;
        } else {
            let listener = match &args.listen {
                Some(spec) => Listener::bind(spec, mode).await?,
                None => Listener::inherit(0)?,
            };
            fastcgi::serve(listener, api, options).await;
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
