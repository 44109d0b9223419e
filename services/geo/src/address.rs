//! Reading an address, and telling public addresses from those that have no place on the map
//! (private, loopback, link-local, documentation, multicast and otherwise reserved ranges).
//!
//! `std`'s `is_global` is not stable yet; this follows the IANA special-purpose registries
//! (RFC 6890 and successors) for the ranges that are not globally routable.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vigil_runtime::{ServiceError, ServiceResult};

/// The longest address text accepted (an IPv6 address with an embedded IPv4 and a zone fits).
const MAX_ADDRESS_LEN: usize = 64;

/// `text` as an address, IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as the IPv4 address they
/// carry, so that both spellings of one client locate alike.
pub fn parse(field: &str, text: &str) -> ServiceResult<IpAddr> {
    if text.is_empty() {
        return Err(ServiceError::invalid(format!("{field} is required")));
    }
    if text.len() > MAX_ADDRESS_LEN {
        return Err(ServiceError::invalid(format!(
            "{field} is not an IP address (too long)"
        )));
    }
    let address: IpAddr = text
        .parse()
        .map_err(|_| ServiceError::invalid(format!("{field} {text:?} is not an IPv4 or IPv6 address")))?;
    Ok(address.to_canonical())
}

/// Whether `address` has no public location: it is private, loopback, link-local, shared
/// (carrier-grade NAT), documentation, benchmarking, multicast, or otherwise reserved.
pub fn is_special(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_special_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_special_v4(v4),
            None => is_special_v6(v6),
        },
    }
}

fn is_special_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    address.is_unspecified()
        || a == 0 // "this network"
        || address.is_private() // 10/8, 172.16/12, 192.168/16
        || address.is_loopback() // 127/8
        || address.is_link_local() // 169.254/16
        || (a == 100 && (b & 0xc0) == 64) // 100.64/10, shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24, IETF protocol assignments
        || address.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (a == 192 && b == 88 && c == 99) // 192.88.99/24, the retired 6to4 relay anycast
        || (a == 198 && (b & 0xfe) == 18) // 198.18/15, benchmarking
        || address.is_multicast() // 224/4
        || a >= 240 // 240/4 reserved, and the broadcast address
}

fn is_special_v6(address: Ipv6Addr) -> bool {
    let segments = address.segments();
    address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast() // ff00::/8
        || (segments[0] & 0xfe00) == 0xfc00 // fc00::/7, unique local
        || (segments[0] & 0xffc0) == 0xfe80 // fe80::/10, link-local
        || (segments[0] & 0xffc0) == 0xfec0 // fec0::/10, the retired site-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // 2001:db8::/32, documentation
        || (segments[0] == 0x3fff && segments[1] < 0x1000) // 3fff::/20, documentation
        || (segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]) // 100::/64, discard-only
        || (segments[0] == 0x2001 && segments[1] < 0x0200) // 2001::/23, IETF protocol assignments
        || (segments[0] == 0x0064 && segments[1] == 0xff9b && segments[2] == 0x0001) // 64:ff9b:1::/48, local-use translation
        || segments[..6] == [0, 0, 0, 0, 0, 0] // ::/96, the deprecated IPv4-compatible addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn special(text: &str) -> bool {
        is_special(parse("ip", text).unwrap())
    }

    #[test]
    fn reserved_ranges_are_special() {
        for text in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "169.254.10.10",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "3fff:0fff::1",
            "2001:0000:4136::1",
            "100::1",
            "64:ff9b:1::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(special(text), "{text} is special");
        }
    }

    #[test]
    fn public_addresses_are_not_special() {
        for text in [
            "8.8.8.8",
            "81.2.69.160",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2001:480::1",
            "2001:218::1",
            "2a00:1450:4001::1",
            "3fff:1000::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!special(text), "{text} is public");
        }
    }

    #[test]
    fn mapped_addresses_read_as_ipv4() {
        assert_eq!(
            parse("ip", "::ffff:81.2.69.160").unwrap(),
            "81.2.69.160".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn malformed_addresses_are_refused_with_the_field_named() {
        for text in [
            "",
            "not an ip",
            "1.2.3",
            "1.2.3.256",
            "::g",
            " 1.2.3.4",
            "1.2.3.4/24",
            &"1".repeat(100),
        ] {
            let error = parse("client_ip", text).unwrap_err();
            assert!(
                matches!(&error, ServiceError::InvalidArgument(message) if message.contains("client_ip")),
                "{error}"
            );
        }
    }
}
