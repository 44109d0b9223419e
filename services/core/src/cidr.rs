//! IP networks in CIDR notation ("203.0.113.0/24", "2001:db8::/32"): what selectors and locks name
//! by network, and the test of whether a client address lies inside one.
//!
//! The arithmetic (masking, containment) is `ipnet`'s. What stays here is the reading of what a
//! person typed, because the refusals go back to that person and must say what is wrong: a prefix
//! out of range, host bits set past it (with the network probably meant), or `/0`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// A network: an address whose bits past the prefix are all zero, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

/// Why a text is not a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// Not `address/prefix` with a valid address.
    Malformed,
    /// The prefix is not a number within the address family's bits.
    Prefix { max: u8 },
    /// `/0`: every address of the family.
    Everything,
    /// Bits past the prefix are set; the network the person probably meant.
    HostBits { network: Cidr },
    /// Broader than a selector or a lock may name (see [`MIN_PREFIX_V4`]).
    TooBroad { min: u8 },
}

/// The broadest IPv4 network a selector or a lock may name: a /8. Without a floor, two halves
/// (`0.0.0.0/1` and `128.0.0.0/1`) end every live session with the `sessions:terminate`
/// permission alone, while ending everything at once needs `sessions:terminate-all` (admin).
/// With it, covering the whole address space takes 256 deliberate, audited calls.
pub const MIN_PREFIX_V4: u8 = 8;
/// The broadest IPv6 network a selector or a lock may name: a /16 (`::/1` is refused).
pub const MIN_PREFIX_V6: u8 = 16;

impl Cidr {
    /// Parses `address/prefix`. A bare address is that one address (`/32` or `/128`). Host bits
    /// set past the prefix are refused rather than silently cleared: `10.1.2.3/16` is more likely
    /// a typo than a wish for `10.1.0.0/16`, and a lock or a kill must cover what was meant. `/0`
    /// is refused: a network of every address is not a network but an "everyone", which has its
    /// own, more deliberate commands.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let (address, prefix) = split(text, Some(3))?;
        if prefix == 0 {
            return Err(CidrError::Everything);
        }
        let network = Cidr(net(address, prefix).trunc());
        if network.network() != address {
            return Err(CidrError::HostBits { network });
        }
        Ok(network.unmapped())
    }

    /// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/120`) as the IPv4 network it means
    /// (`10.0.0.0/24`): [`Cidr::contains`] takes mapped client addresses as IPv4, so the mapped
    /// form would otherwise cover no address at all — a lock or a kill that silently misses.
    /// Found by the `cidr` fuzz target.
    fn unmapped(self) -> Self {
        match (self.network(), self.prefix()) {
            (IpAddr::V6(address), prefix) if prefix >= 96 => match address.to_ipv4_mapped() {
                Some(v4) => Cidr(net(IpAddr::V4(v4), prefix - 96)),
                None => self,
            },
            _ => self,
        }
    }

    /// Reads a network as most tools do: surrounding blanks ignored, host bits cleared, `/0`
    /// allowed. For networks that were checked strictly where they were made (a lock pushed to an
    /// agent), where refusing to read one would be worse than reading it generously.
    pub fn parse_lenient(text: &str) -> Option<Self> {
        let (address, prefix) = split(text.trim(), None).ok()?;
        Some(Cidr(net(address, prefix).trunc()).unmapped())
    }

    /// `Err(TooBroad)` when this network is broader than a selector or lock may name.
    pub fn check_breadth(&self) -> Result<Self, CidrError> {
        let min = match self.network() {
            IpAddr::V4(_) => MIN_PREFIX_V4,
            IpAddr::V6(_) => MIN_PREFIX_V6,
        };
        if self.prefix() < min {
            return Err(CidrError::TooBroad { min });
        }
        Ok(*self)
    }

    /// The network's first address.
    pub fn network(&self) -> IpAddr {
        self.0.network()
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `address` lies inside. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, how a
    /// dual-stack gateway may report an IPv4 client) is taken as the IPv4 address it carries.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.contains(&address.to_canonical())
    }

    /// Whether the address written as `text` lies inside; text that is no address does not.
    pub fn contains_text(&self, text: &str) -> bool {
        text.parse().is_ok_and(|address| self.contains(address))
    }

    /// For an IPv4 network of at least a /8: the dotted text every address inside starts with
    /// (`10.1.` for `10.1.0.0/16`, `10.1.2.` for `10.1.2.0/23`'s first whole octets). Lets a store
    /// narrow its candidates with a prefix match before testing each one exactly.
    pub fn ipv4_text_prefix(&self) -> Option<String> {
        let IpAddr::V4(network) = self.network() else {
            return None;
        };
        let whole_octets = usize::from(self.prefix() / 8);
        if whole_octets == 0 {
            return None;
        }
        let octets = network.octets();
        let mut prefix: String = octets[..whole_octets.min(4)]
            .iter()
            .map(|octet| format!("{octet}."))
            .collect();
        if whole_octets == 4 {
            // A single address: its whole text (with a trailing dot, the address itself would not
            // match).
            prefix.pop();
        }
        Some(prefix)
    }
}

/// The address and the prefix length (the family's full length when none is written); a prefix of
/// more than `max_digits` digits (`/0008`) is refused when a maximum is given.
fn split(text: &str, max_digits: Option<usize>) -> Result<(IpAddr, u8), CidrError> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().map_err(|_| CidrError::Malformed)?;
    let max = match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    let prefix = match prefix {
        None => max,
        // Digits only: `u8::from_str` would take a leading '+', CIDR does not.
        Some(prefix)
            if prefix.is_empty()
                || max_digits.is_some_and(|digits| prefix.len() > digits)
                || !prefix.bytes().all(|b| b.is_ascii_digit()) =>
        {
            return Err(CidrError::Prefix { max });
        }
        Some(prefix) => match prefix.parse::<u8>() {
            Ok(prefix) if prefix <= max => prefix,
            _ => return Err(CidrError::Prefix { max }),
        },
    };
    Ok((address, prefix))
}

/// The network of `address` with `prefix`, which `split` has checked against the family.
fn net(address: IpAddr, prefix: u8) -> IpNet {
    IpNet::new(address, prefix).unwrap_or_else(|_| IpNet::from(address))
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix())
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Cidr::parse(text)
    }
}

impl CidrError {
    /// The complaint about `field` holding `value`, for a person.
    pub fn describe(&self, field: &str, value: &str) -> String {
        match self {
            CidrError::Malformed => {
                format!("{field} {value:?} is not a network in CIDR notation (such as 203.0.113.0/24 or 2001:db8::/32)")
            }
            CidrError::Prefix { max } => {
                format!("{field} {value:?} has a bad prefix length; it must be a number from 1 to {max}")
            }
            CidrError::Everything => format!(
                "{field} {value:?} covers every address; name a smaller network (or act on everyone explicitly)"
            ),
            CidrError::HostBits { network } => {
                format!("{field} {value:?} has bits set past the prefix length; did you mean {network}?")
            }
            CidrError::TooBroad { min } => format!(
                "{field} {value:?} is too broad: a network must be a /{min} or narrower (ending everyone is an end-all, which needs the sessions:terminate-all permission)"
            ),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        Cidr::parse(text).unwrap_or_else(|error| panic!("{text}: {error:?}"))
    }

    #[test]
    fn networks_parse_and_print_normalised() {
        assert_eq!(cidr("203.0.113.0/24").to_string(), "203.0.113.0/24");
        assert_eq!(cidr("2001:0db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("10.0.0.0/8").prefix(), 8);
    }

    #[test]
    fn nonsense_is_refused_with_the_reason() {
        assert_eq!(Cidr::parse("nope/8"), Err(CidrError::Malformed));
        assert_eq!(Cidr::parse(""), Err(CidrError::Malformed));
        assert_eq!(Cidr::parse("10.0.0.0/33"), Err(CidrError::Prefix { max: 32 }));
        assert_eq!(Cidr::parse("10.0.0.0/"), Err(CidrError::Prefix { max: 32 }));
        assert_eq!(Cidr::parse("10.0.0.0/+8"), Err(CidrError::Prefix { max: 32 }));
        assert_eq!(Cidr::parse("::/129"), Err(CidrError::Prefix { max: 128 }));
        assert_eq!(Cidr::parse("0.0.0.0/0"), Err(CidrError::Everything));
        assert_eq!(Cidr::parse("::/0"), Err(CidrError::Everything));
        assert_eq!(
            Cidr::parse("10.1.2.3/16"),
            Err(CidrError::HostBits {
                network: cidr("10.1.0.0/16")
            })
        );
        assert_eq!(
            CidrError::HostBits {
                network: cidr("10.1.0.0/16")
            }
            .describe("target.cidr", "10.1.2.3/16"),
            "target.cidr \"10.1.2.3/16\" has bits set past the prefix length; did you mean 10.1.0.0/16?"
        );
    }

    #[test]
    fn ipv4_mapped_networks_are_their_ipv4_network() {
        // The fuzz target's crash: this network used to contain no address, not even its own.
        let mapped = cidr("::ffff:10.0.0.0/120");
        assert_eq!(mapped, cidr("10.0.0.0/24"));
        assert!(mapped.contains(mapped.network()));
        assert!(mapped.contains_text("::ffff:10.0.0.7"));
        assert!(mapped.contains_text("10.0.0.7"));
        assert_eq!(cidr("::ffff:0:0/96").to_string(), "0.0.0.0/0");
        assert!(cidr("::ffff:0:0/96").check_breadth().is_err());
    }

    #[test]
    fn networks_broader_than_the_floor_are_too_broad() {
        assert_eq!(cidr("0.0.0.0/1").check_breadth(), Err(CidrError::TooBroad { min: 8 }));
        assert_eq!(cidr("128.0.0.0/1").check_breadth(), Err(CidrError::TooBroad { min: 8 }));
        assert_eq!(cidr("10.0.0.0/7").check_breadth(), Err(CidrError::TooBroad { min: 8 }));
        assert!(cidr("10.0.0.0/8").check_breadth().is_ok());
        assert_eq!(cidr("::/1").check_breadth(), Err(CidrError::TooBroad { min: 16 }));
        assert!(cidr("2001::/16").check_breadth().is_ok());
    }

    #[test]
    fn containment_respects_the_prefix_and_the_family() {
        let network = cidr("203.0.113.0/24");
        assert!(network.contains_text("203.0.113.7"));
        assert!(network.contains_text("203.0.113.255"));
        assert!(!network.contains_text("203.0.114.1"));
        assert!(!network.contains_text("2001:db8::1"));
        assert!(!network.contains_text("not an address"));
        // An IPv4 client reported in IPv6 form is the same client.
        assert!(network.contains_text("::ffff:203.0.113.9"));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains_text("2001:db8:ffff::1"));
        assert!(!v6.contains_text("2001:db9::1"));
        assert!(!v6.contains_text("203.0.113.7"));
        let odd = cidr("10.1.2.0/23");
        assert!(odd.contains_text("10.1.3.200"));
        assert!(!odd.contains_text("10.1.4.0"));
    }

    #[test]
    fn ipv4_networks_give_a_text_prefix_for_narrowing() {
        assert_eq!(cidr("10.0.0.0/8").ipv4_text_prefix().as_deref(), Some("10."));
        assert_eq!(cidr("10.1.2.0/23").ipv4_text_prefix().as_deref(), Some("10.1."));
        assert_eq!(cidr("10.1.2.3/32").ipv4_text_prefix().as_deref(), Some("10.1.2.3"));
        assert_eq!(cidr("128.0.0.0/1").ipv4_text_prefix(), None);
        assert_eq!(cidr("2001:db8::/32").ipv4_text_prefix(), None);
    }
}

#[cfg(test)]
mod lenient_tests {
    use super::*;

    #[test]
    fn lenient_reading_clears_host_bits_and_takes_everything() {
        assert_eq!(
            Cidr::parse_lenient(" 203.0.113.7/24 ")
                .map(|c| c.to_string())
                .as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(Cidr::parse_lenient("10.1.2.3").map(|c| c.prefix()), Some(32));
        assert!(Cidr::parse_lenient("0.0.0.0/0").is_some_and(|c| c.contains_text("8.8.8.8")));
        assert_eq!(Cidr::parse_lenient("10.0.0.0/+8"), None);
        assert_eq!(Cidr::parse_lenient("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse_lenient("nope"), None);
    }
}
