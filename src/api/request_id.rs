//! Request ids: the web server's (`REQUEST_ID`/`UNIQUE_ID` param, else an `X-Request-Id`
//! header), else one made here; answered as `X-Request-Id` and put in every log and
//! audit line of the request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::request::ApiRequest;

/// Longest request id taken from the web server or the client, in bytes.
pub(crate) const MAX_REQUEST_ID_BYTES: usize = 128;

/// The id of `req`: the front end's (a web server's param), else the `X-Request-Id`
/// header, when either is a well-formed id; else a new one.
pub(crate) fn choose(req: &ApiRequest) -> String {
    req.request_id
        .as_deref()
        .into_iter()
        .chain(req.header("x-request-id"))
        .map(str::trim)
        .find(|id| is_well_formed(id))
        .map_or_else(generate, str::to_string)
}

/// 1 to 128 bytes of `A-Z a-z 0-9 - _ . : @ + / =` (nginx's hex, Apache's base64-ish
/// `UNIQUE_ID`, UUIDs); anything else could forge or break a log line, and is replaced.
pub(crate) fn is_well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@+/=".contains(&b))
}

/// A new id, unique per process and across processes: 32 hex digits from the time in
/// nanoseconds, the process id and a counter, mixed so consecutive ids differ everywhere.
pub(crate) fn generate() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = u64::from(std::process::id()) << 32 ^ count;
    format!(
        "{:016x}{:016x}",
        mix(nanos ^ seed.rotate_left(17)),
        mix(seed ^ nanos.rotate_left(29))
    )
}

/// splitmix64's finaliser: a bijection that spreads every input bit over the output.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_server_id_then_header_then_generated() {
        let mut req =
            ApiRequest::new("GET", "/", None, vec![]).with_header("X-Request-Id", "hdr-1");
        assert_eq!(choose(&req), "hdr-1");
        req.request_id = Some("f1d2e3c4b5a69788".into());
        assert_eq!(choose(&req), "f1d2e3c4b5a69788");
        req.request_id = Some("bad id\nforged".into());
        assert_eq!(choose(&req), "hdr-1");
        let bare =
            ApiRequest::new("GET", "/", None, vec![]).with_header("X-Request-Id", &"x".repeat(200));
        let made = choose(&bare);
        assert_eq!(made.len(), 32);
        assert!(is_well_formed(&made));
        assert_ne!(generate(), generate());
    }

    #[test]
    fn well_formed_ids() {
        for ok in [
            "a",
            "XYZ@abc-def_1.2:3",
            "YWJj+ZGVm/Zw==",
            "0c1a2b3c4d5e6f708192a3b4c5d6e7f8",
        ] {
            assert!(is_well_formed(ok), "{ok}");
        }
        for bad in ["", "a b", "a\u{2028}", "é", "a\"b", "a'b", "a;b"] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
    }
}
