//! One-line diagnostics on stderr, which every web server copies into its error log.
//!
//! Each line is written with one `write` call so concurrent requests never interleave.
//! Callers never pass request bodies, passwords or tokens here. Messages often carry text
//! a client or the master chose (user names, the master's error messages), so every
//! message is escaped here, whatever the caller passes: control characters (`\n`, `\r`,
//! ESC, C1 controls), Unicode line and paragraph separators and bidirectional overrides
//! become `\n`, `\r`, `\t` or `\u{…}`, and a backslash becomes `\\`, so one call is
//! always exactly one unambiguous line (no forged `salt-fcgi[1]: …` lines for fail2ban).

use std::fmt::Write as _;
use std::io::Write;

/// Longest message written, in bytes; the rest is replaced by `…`.
const MAX_MESSAGE_BYTES: usize = 4096;

/// `message` with every character that could break or disguise a log line escaped.
pub(crate) fn escape(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_BYTES) + 8);
    for c in message.chars() {
        if out.len() >= MAX_MESSAGE_BYTES {
            out.push('…');
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Control characters, line/paragraph separators, and the invisible formatting characters
/// that reorder or hide text (bidi overrides and isolates, zero-width characters, BOM).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
        )
}

/// Longest caller-chosen field quoted into a log line, in characters.
const MAX_FIELD_CHARS: usize = 64;

/// A caller-chosen field (a user name, an eauth backend) for a log line: in single quotes,
/// at most 64 characters, a quote inside doubled (`'` → `''`), so a field can never
/// close itself early and forge what follows it (`x' from 203.0.113.9` stays inside its
/// quotes). A filter reads such a field with `'(?:[^']|'')*'`.
pub(crate) fn quoted(field: &str) -> String {
    let cut: String = field.chars().take(MAX_FIELD_CHARS).collect();
    format!("'{}'", cut.replace('\'', "''"))
}

tokio::task_local! {
    /// The id of the request this task serves (see [`with_request_id`]).
    static REQUEST_ID: String;
}

/// Runs `work` with `id` as its request id: every line it logs says `[req <id>]`.
pub(crate) async fn with_request_id<F: std::future::Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// Writes `salt-fcgi[pid]: <level>: [req <id>] <message>` to stderr (without `[req …]`
/// outside a request). An id is checked (`request_id::is_well_formed`): no space, `]`, quote.
fn line(level: &str, message: &str) {
    let id = REQUEST_ID
        .try_with(|id| format!("[req {id}] "))
        .unwrap_or_default();
    let text = format!(
        "salt-fcgi[{}]: {level}: {id}{}\n",
        std::process::id(),
        escape(message)
    );
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
pub(crate) fn info(message: &str) {
    line("info", message);
}

/// `log!(warn, "… {x} …")`: one line at that level (`error`, `warn`, `info`), with
/// `format!` arguments; escaped like every other line.
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::$level(&format!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::{escape, quoted};

    #[test]
    fn quoted_fields_cannot_close_early() {
        assert_eq!(quoted("alice"), "'alice'");
        let forged = quoted("x' eauth 'file' from 203.0.113.9");
        assert_eq!(forged, "'x'' eauth ''file'' from 203.0.113.9'");
        assert_eq!(quoted(&"y".repeat(100)).len(), 66);
    }

    #[test]
    fn every_line_breaking_character_is_escaped() {
        let forged = "401 for user 'x\nsalt-fcgi[1]: warning: 401 for user 'y' from 203.0.113.7";
        let out = escape(forged);
        assert!(!out.contains('\n'));
        assert!(out.contains("x\\nsalt-fcgi[1]"));
        for (raw, shown) in [
            ("a\rb", "a\\rb"),
            ("a\tb", "a\\tb"),
            ("a\\nb", "a\\\\nb"),
            ("a\u{1b}[2Jb", "a\\u{1b}[2Jb"),
            ("a\u{85}b", "a\\u{85}b"),
            ("a\u{2028}b", "a\\u{2028}b"),
            ("a\u{202e}b", "a\\u{202e}b"),
            ("a\u{0}b", "a\\u{0}b"),
            ("héllo 'quoted' \"x\"", "héllo 'quoted' \"x\""),
        ] {
            assert_eq!(escape(raw), shown, "{raw:?}");
        }
        let long = "x".repeat(10_000);
        assert!(escape(&long).len() < 4200);
    }
}
