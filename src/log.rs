//! One-line diagnostics on stderr, which every web server copies into its error log.
//!
//! Each line is written with one `write` call so concurrent requests never interleave.
//! Callers never pass request bodies, passwords or tokens here.

use std::io::Write;

/// Writes `salt-fcgi[pid]: <level>: <message>` to stderr.
fn line(level: &str, message: &str) {
    let text = format!("salt-fcgi[{}]: {level}: {message}\n", std::process::id());
    // A closed stderr must never take a request down.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Something failed that the operator should look at.
pub fn error(message: &str) {
    line("error", message);
}

/// Something odd that did not stop the request.
pub fn warn(message: &str) {
    line("warning", message);
}

/// Start-up and shutdown notices.
pub fn info(message: &str) {
    line("info", message);
}
