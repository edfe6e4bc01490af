//! `--http` behind a proxy: the client's address from `X-Forwarded-For` or `Forwarded`,
//! believed only when the peer is in `trusted_proxies`.

use std::net::IpAddr;

use crate::address_block::listed;

/// The client's address: the peer, unless the peer is a trusted proxy; then the nearest
/// address of the forwarding chain that is not itself a trusted proxy.
pub(crate) fn client_addr(
    peer: Option<String>,
    headers: &[(String, String)],
    trusted: &[String],
) -> Option<String> {
    let is_trusted = |addr: &str| listed(addr, trusted);
    let peer_addr = peer.as_deref()?;
    if !is_trusted(peer_addr) {
        return peer;
    }
    let mut chain: Vec<String> = Vec::new();
    for (name, value) in headers {
        match name.as_str() {
            "x-forwarded-for" => chain.extend(value.split(',').map(|a| a.trim().to_string())),
            "forwarded" => chain.extend(forwarded_for(value)),
            _ => {}
        }
    }
    chain
        .into_iter()
        .rev()
        .filter(|a| a.parse::<IpAddr>().is_ok())
        .find(|a| !is_trusted(a))
        .or(peer)
}

/// The `for=` addresses of a `Forwarded` header (quotes, brackets and ports removed).
fn forwarded_for(value: &str) -> Vec<String> {
    value
        .split([',', ';'])
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
        .map(|(_, v)| {
            let v = v.trim().trim_matches('"');
            match v.strip_prefix('[') {
                Some(rest) => rest.split(']').next().unwrap_or_default().to_string(),
                None => v.split(':').next().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forwarded_only_from_trusted_proxies() {
        let trusted = vec!["127.0.0.1".to_string(), "10.0.0.0/8".to_string()];
        let xff = h(&[("x-forwarded-for", "203.0.113.9, 10.1.2.3")]);
        let peer = |p: &str| Some(p.to_string());
        assert_eq!(
            client_addr(peer("127.0.0.1"), &xff, &trusted).as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(
            client_addr(peer("192.0.2.1"), &xff, &trusted).as_deref(),
            Some("192.0.2.1")
        );
        assert_eq!(
            client_addr(peer("127.0.0.1"), &xff, &[]).as_deref(),
            Some("127.0.0.1")
        );
        let fwd = h(&[("forwarded", "for=\"[2001:db8::1]:443\";proto=https")]);
        assert_eq!(
            client_addr(peer("10.9.9.9"), &fwd, &trusted).as_deref(),
            Some("2001:db8::1")
        );
        let junk = h(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(
            client_addr(peer("127.0.0.1"), &junk, &trusted).as_deref(),
            Some("127.0.0.1")
        );
        let v6 = ["::1/128".to_string()];
        assert!(listed("::1", &v6) && !listed("::2", &v6));
    }
}
