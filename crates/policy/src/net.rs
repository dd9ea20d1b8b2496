//! IP networks (CIDRs) for zone `networks`, rule `from` entries and source matching.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are treated as the IPv4 address they carry,
//! both in the model and for packet sources, so a dual-stack listener cannot be used to slip past
//! an IPv4 rule.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address with a prefix length and no host bits set.
///
/// Displays as `10.20.0.0/16`; a single host displays as the bare address (`10.20.1.10`), the
/// form it is written in. Ordered by address, then prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Returns the address with IPv4-mapped IPv6 turned into IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn mask_v4(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask_v6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl Cidr {
    /// A network from an address and prefix length; fails when the prefix is too long or host
    /// bits are set (`10.20.1.0/16` is a typo, not `10.20.0.0/16`).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, String> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let ok = match addr {
            IpAddr::V4(a) => {
                if prefix > 32 {
                    return Err(format!("prefix /{prefix} is longer than 32 bits"));
                }
                u32::from(a) & !mask_v4(prefix) == 0
            }
            IpAddr::V6(a) => {
                if prefix > 128 {
                    return Err(format!("prefix /{prefix} is longer than 128 bits"));
                }
                u128::from(a) & !mask_v6(prefix) == 0
            }
        };
        if !ok {
            let net = Self::truncate(addr, prefix);
            return Err(format!(
                "host bits are set in {addr}/{prefix}; did you mean {net}?"
            ));
        }
        Ok(Self { addr, prefix })
    }

    /// The network of `addr` with the host bits cleared.
    fn truncate(addr: IpAddr, prefix: u8) -> Self {
        match addr {
            IpAddr::V4(a) => Self {
                addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix.min(32)))),
                prefix: prefix.min(32),
            },
            IpAddr::V6(a) => Self {
                addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix.min(128)))),
                prefix: prefix.min(128),
            },
        }
    }

    /// A network holding exactly one address (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        let addr = canonical_ip(addr);
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True for `0.0.0.0/0` and `::/0`.
    pub fn is_any(&self) -> bool {
        self.prefix == 0
    }

    /// True when the network is a single host.
    pub fn is_host(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    /// True when `ip` (after IPv4-mapped normalisation) lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                (u32::from(ip) & mask_v4(self.prefix)) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                (u128::from(ip) & mask_v6(self.prefix)) == u128::from(net)
            }
            _ => false,
        }
    }

    /// True when the two networks share at least one address.
    pub fn overlaps(&self, other: &Self) -> bool {
        if self.prefix <= other.prefix {
            self.contains(other.addr)
        } else {
            other.contains(self.addr)
        }
    }

    /// True when every address of `other` is in `self`.
    pub fn covers(&self, other: &Self) -> bool {
        self.prefix <= other.prefix && self.contains(other.addr)
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// Parses `10.0.0.0/8`, `fd00::/8`, or a single address (`10.20.1.10`, `::1`).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.split_once('/') {
            Some((a, p)) => {
                let addr: IpAddr = a
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{a}` is not an IP address"))?;
                let prefix: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{p}` is not a prefix length"))?;
                Self::new(addr, prefix)
            }
            None => {
                let addr: IpAddr = s
                    .parse()
                    .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
                Ok(Self::host(addr))
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_contains() {
        let n: Cidr = "10.20.0.0/16".parse().unwrap();
        assert!(n.contains(ip("10.20.1.10")));
        assert!(!n.contains(ip("10.21.0.1")));
        assert!(n.contains(ip("::ffff:10.20.3.4")));
        let h: Cidr = "10.20.1.10".parse().unwrap();
        assert!(h.is_host() && h.contains(ip("10.20.1.10")));
        let v6: Cidr = "fd00:1::/32".parse().unwrap();
        assert!(v6.contains(ip("fd00:1::5")) && !v6.contains(ip("fd00:2::5")));
        assert!(!v6.contains(ip("10.20.1.10")));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.is_any() && any.contains(ip("192.0.2.1")));
    }

    #[test]
    fn mapped_cidr_becomes_v4() {
        let n: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(n.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn rejects_host_bits_and_junk() {
        let e = "10.20.1.0/16".parse::<Cidr>().unwrap_err();
        assert!(e.contains("10.20.0.0/16"), "{e}");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("plc-1".parse::<Cidr>().is_err());
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
    }

    #[test]
    fn overlaps_and_covers() {
        let a: Cidr = "10.0.0.0/8".parse().unwrap();
        let b: Cidr = "10.1.0.0/16".parse().unwrap();
        let c: Cidr = "11.0.0.0/8".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a) && !a.overlaps(&c));
        assert!(a.covers(&b) && !b.covers(&a));
        let h: Cidr = "10.1.2.3".parse().unwrap();
        assert!(b.covers(&h) && h.overlaps(&b) && !h.covers(&b));
    }

    #[test]
    fn displays_hosts_bare() {
        for (text, shown) in [
            ("10.20.1.10", "10.20.1.10"),
            ("10.20.1.10/32", "10.20.1.10"),
            ("10.20.0.0/16", "10.20.0.0/16"),
            ("::1", "::1"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
        ] {
            assert_eq!(text.parse::<Cidr>().unwrap().to_string(), shown, "{text}");
        }
    }
}
