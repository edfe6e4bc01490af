//! Address lists of the config (`trusted_proxies`, `metrics_addresses`): whether an IP
//! address is one of a list of addresses and CIDR blocks (`10.0.0.0/8`, `::1`).

use std::net::IpAddr;

/// Whether `addr` is in any of `blocks`.
pub(crate) fn listed(addr: &str, blocks: &[String]) -> bool {
    blocks.iter().any(|block| in_block(addr, block))
}

/// Whether `addr` is `block` (an address, or `address/prefix`).
pub(crate) fn in_block(addr: &str, block: &str) -> bool {
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let (net, bits) = match block.split_once('/') {
        Some((net, bits)) => (net, bits.parse::<u32>().ok()),
        None => (block, None),
    };
    let Ok(net) = net.trim().parse::<IpAddr>() else {
        return false;
    };
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            prefix_eq(u32::from(a).into(), u32::from(n).into(), 32, bits)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => prefix_eq(u128::from(a), u128::from(n), 128, bits),
        _ => false,
    }
}

/// Whether the first `bits` (all `width` when `None`) of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, width: u32, bits: Option<u32>) -> bool {
    let bits = bits.unwrap_or(width).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_blocks() {
        let blocks = vec!["10.0.0.0/8".to_string(), "::1".to_string()];
        assert!(listed("10.2.3.4", &blocks));
        assert!(listed("::1", &blocks));
        assert!(!listed("11.0.0.1", &blocks));
        assert!(!listed("not an address", &blocks));
        assert!(in_block("192.168.1.7", "192.168.1.0/24"));
        assert!(!in_block("192.168.2.7", "192.168.1.0/24"));
        assert!(in_block("1.2.3.4", "0.0.0.0/0"));
    }
}
