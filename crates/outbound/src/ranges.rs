//! Which addresses are public: the IANA special-purpose address registries (IPv4 and IPv6), the
//! multicast and reserved blocks, and the IPv6 forms that carry an IPv4 address (mapped, NAT64,
//! 6to4), whose embedded address decides. Also [`Net`], a network written `a.b.c.d/n` or
//! `x:y::/n`, for the operator's allow list.
//!
//! One table per family, so the documentation, the tests and the check read the same list.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// IPv4 blocks that are never fetched from without the operator's leave: every entry of the
/// IANA IPv4 Special-Purpose Address Registry (also those marked globally reachable, which are
/// anycast services no file is served from), multicast and the reserved 240/4.
pub const V4_REFUSED: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this network"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space (carrier NAT)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link-local (cloud metadata)",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation (TEST-NET-1)",
    ),
    (Ipv4Addr::new(192, 31, 196, 0), 24, "AS112"),
    (Ipv4Addr::new(192, 52, 193, 0), 24, "AMT"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (
        Ipv4Addr::new(192, 175, 48, 0),
        24,
        "AS112 direct delegation",
    ),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation (TEST-NET-2)",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation (TEST-NET-3)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "limited broadcast"),
];

/// IPv6 blocks whose last 32 bits (or, for 6to4, bits 16 to 47) are an IPv4 address that the
/// packets end up at: that address decides.
const V6_EMBEDDING: &[(Ipv6Addr, u8, Embedded)] = &[
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        96,
        Embedded::Last32,
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        96,
        Embedded::Last32,
    ),
    (
        Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
        16,
        Embedded::SixToFour,
    ),
];

#[derive(Clone, Copy)]
enum Embedded {
    Last32,
    SixToFour,
}

/// IPv6 blocks that are never fetched from without the operator's leave: every entry of the
/// IANA IPv6 Special-Purpose Address Registry but the three forms above (whose embedded IPv4
/// address decides), and the deprecated or local blocks. Anything outside 2000::/3 (global
/// unicast) is refused as well; the entries outside it are listed to name them in errors.
pub const V6_REFUSED: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    // `::a.b.c.d`: deprecated, and no stack sends it to the IPv4 address.
    (Ipv6Addr::UNSPECIFIED, 96, "IPv4-compatible"),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0),
        96,
        "IPv4-translated",
    ),
    // Local-use NAT64: where the IPv4 address sits depends on the operator's prefix length.
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-use NAT64",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0),
        64,
        "dummy prefix",
    ),
    // Teredo (2001::/32), ORCHID, AMT, AS112 and the other protocol assignments.
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments (Teredo)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0),
        48,
        "AS112 direct delegation",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "segment routing",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique local",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

fn v4_in(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn v6_in(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// The IPv4 address that packets to `ip` reach, when `ip` is one of the IPv6 forms that carry
/// one (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    V6_EMBEDDING
        .iter()
        .find(|(net, prefix, _)| v6_in(ip, *net, *prefix))
        .map(|(_, _, how)| match how {
            Embedded::Last32 => Ipv4Addr::from(bits as u32),
            Embedded::SixToFour => Ipv4Addr::from((bits >> 80) as u32),
        })
}

/// Why `ip` is not public (the name of its block), or `None` for a public address.
pub fn special_purpose(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => V4_REFUSED
            .iter()
            .find(|(net, prefix, _)| v4_in(v4, *net, *prefix))
            .map(|(_, _, name)| *name),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return special_purpose(IpAddr::V4(v4));
            }
            if let Some((_, _, name)) = V6_REFUSED
                .iter()
                .find(|(net, prefix, _)| v6_in(v6, *net, *prefix))
            {
                return Some(name);
            }
            let global_unicast = Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0);
            (!v6_in(v6, global_unicast, 3)).then_some("not global unicast")
        }
    }
}

/// Whether `ip` is an address on the public internet (see [`special_purpose`]).
pub fn is_public(ip: IpAddr) -> bool {
    special_purpose(ip).is_none()
}

/// A network: an address and a prefix length, written `10.1.2.0/24`, `fd00::/8`, or a bare
/// address (the one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address is its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, unmap(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => v4_in(ip, net, self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => v6_in(ip, net, self.prefix),
            _ => false,
        }
    }
}

/// `ip`, with an IPv4-mapped IPv6 address as the IPv4 address it is.
pub(crate) fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a network (a.b.c.d/n, x:y::/n, or an address)")]
pub struct BadNet(String);

impl FromStr for Net {
    type Err = BadNet;

    fn from_str(s: &str) -> Result<Net, BadNet> {
        let bad = || BadNet(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = unmap(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Net { addr, prefix })
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        !is_public(ip.parse().unwrap())
    }

    /// The first, a middle and the last address of every IPv4 block of the issue, and the
    /// public neighbours just outside them.
    #[test]
    fn every_special_purpose_ipv4_block_is_refused() {
        for ip in [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.0",
            "10.200.1.1",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.255",
            "192.0.2.7",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.0.1",
            "192.168.255.255",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.200",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "250.1.2.3",
            "255.255.255.254",
            "255.255.255.255",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
        for ip in [
            "1.0.0.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.88.98.255",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "203.0.112.255",
            "223.255.255.255",
        ] {
            assert!(!refused(ip), "{ip} is public");
        }
    }

    #[test]
    fn every_special_purpose_ipv6_block_is_refused() {
        for ip in [
            "::",
            "::1",
            "::2",
            "::7f00:1",
            "::8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b:1::808:808",
            "64:ff9b:1:ffff::1",
            "100::1",
            "100::ffff:ffff:ffff:ffff",
            "100:0:0:1::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:1::1",
            "2001:20::1",
            "2001:1ff:ffff::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "2620:4f:8000::1",
            "3fff::1",
            "3fff:fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            "ff0e::1",
            "4000::1",
            "1::1",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
        for ip in [
            "2606:4700::1111",
            "2a00:1450::1",
            "2001:200::1",
            "2001:db9::1",
            "2620:4f:8001::1",
            "3ffe::1",
            "2000::1",
        ] {
            assert!(!refused(ip), "{ip} is public");
        }
    }

    /// IPv4-mapped, NAT64 and 6to4 addresses reach their IPv4 address: that address decides.
    #[test]
    fn ipv6_forms_of_an_ipv4_address_are_judged_by_it() {
        for (ip, v4) in [
            ("::ffff:127.0.0.1", "127.0.0.1"),
            ("::ffff:7f00:1", "127.0.0.1"),
            ("::ffff:169.254.169.254", "169.254.169.254"),
            ("::ffff:8.8.8.8", "8.8.8.8"),
            ("64:ff9b::127.0.0.1", "127.0.0.1"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
            ("64:ff9b::198.18.0.1", "198.18.0.1"),
            ("64:ff9b::8.8.8.8", "8.8.8.8"),
            ("2002:7f00:1::", "127.0.0.1"),
            ("2002:a00:1:1::1", "10.0.0.1"),
            ("2002:c0a8:101::1", "192.168.1.1"),
            ("2002:808:808::1", "8.8.8.8"),
        ] {
            let ip: Ipv6Addr = ip.parse().unwrap();
            let v4: Ipv4Addr = v4.parse().unwrap();
            assert_eq!(embedded_v4(ip), Some(v4), "{ip}");
            assert_eq!(is_public(ip.into()), is_public(v4.into()), "{ip}");
        }
        assert!(is_public("64:ff9b::8.8.8.8".parse().unwrap()));
        assert!(is_public("2002:808:808::1".parse().unwrap()));
        assert!(!is_public("2002:7f00:1::".parse().unwrap()));
        assert_eq!(embedded_v4("2606:4700::1111".parse().unwrap()), None);
        assert_eq!(embedded_v4("::7f00:1".parse().unwrap()), None);
    }

    #[test]
    fn a_refusal_names_the_block() {
        let name = |ip: &str| special_purpose(ip.parse().unwrap());
        assert_eq!(name("169.254.169.254"), Some("link-local (cloud metadata)"));
        assert_eq!(name("::ffff:10.0.0.1"), Some("private"));
        assert_eq!(name("2001::1"), Some("IETF protocol assignments (Teredo)"));
        assert_eq!(name("4000::1"), Some("not global unicast"));
        assert_eq!(name("8.8.8.8"), None);
    }

    #[test]
    fn networks_parse_and_contain() {
        let net: Net = "127.0.0.2/32".parse().unwrap();
        assert!(net.contains("127.0.0.2".parse().unwrap()));
        assert!(net.contains("::ffff:127.0.0.2".parse().unwrap()));
        assert!(!net.contains("127.0.0.1".parse().unwrap()));
        let net: Net = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.255.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert_eq!(net.to_string(), "10.1.0.0/16");
        let host: Net = "192.168.1.5".parse().unwrap();
        assert_eq!(host.to_string(), "192.168.1.5/32");
        let v6: Net = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let all: Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "fd00::/129",
            "host/8",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            assert!(bad.parse::<Net>().is_err(), "{bad}");
        }
    }
}
