//! Network addresses: which IP addresses are publicly routable, and IP networks in CIDR
//! notation. Used wherever Berth connects somewhere on someone else's say-so (Client ID
//! Metadata Documents, WebAssembly guests' outbound HTTP), so that a name cannot lead a request
//! to loopback, a private network or a cloud metadata endpoint. And which address a request
//! came from when it passed reverse proxies the operator trusts ([`TrustedProxies`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

/// Whether `ip` is a publicly routable unicast address: one that an outbound request made on
/// behalf of a client or a guest may reach.
///
/// Refused: unspecified, loopback (unless `allow_loopback`, for tests), private (RFC 1918),
/// shared (CGNAT), link-local, multicast, broadcast, documentation, benchmarking and reserved
/// IPv4 ranges; for IPv6 everything outside global unicast `2000::/3`, and inside it the
/// documentation, ORCHID, Teredo and 6to4 ranges. IPv4-mapped, IPv4-compatible and NAT64
/// (`64:ff9b::/96`) addresses are judged by the IPv4 address they carry.
pub fn is_public_address(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4, allow_loopback),
        IpAddr::V6(v6) => is_public_v6(v6, allow_loopback),
    }
}

fn is_public_v4(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    let [a, b, c, _] = ip.octets();
    let refused = a == 0                                  // "this network", 0.0.0.0/8
        || a == 10                                        // private
        || (a == 100 && (64..128).contains(&b))           // shared address space (CGNAT)
        || (a == 169 && b == 254)                         // link-local
        || (a == 172 && (16..32).contains(&b))            // private
        || (a == 192 && b == 0 && c == 0)                 // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                 // documentation (TEST-NET-1)
        || (a == 192 && b == 88 && c == 99)               // 6to4 relay anycast
        || (a == 192 && b == 168)                         // private
        || (a == 198 && (b == 18 || b == 19))             // benchmarking
        || (a == 198 && b == 51 && c == 100)              // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113)               // documentation (TEST-NET-3)
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    let segments = ip.segments();
    let embedded_v4 = || {
        let [.., a, b, c, d] = ip.octets();
        Ipv4Addr::new(a, b, c, d)
    };
    match segments {
        // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d) forms.
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => {
            !ip.is_unspecified() && is_public_v4(embedded_v4(), allow_loopback)
        }
        // NAT64 well-known prefix: reaches the IPv4 address it carries.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => is_public_v4(embedded_v4(), allow_loopback),
        [first, second, ..] => {
            let global_unicast = first & 0xe000 == 0x2000;
            // 2001::/23: IETF protocol assignments (Teredo, ORCHID...); 2001:db8::/32 and 3fff::/20:
            // documentation; 2002::/16: 6to4.
            let refused = (first == 0x2001 && (second < 0x0200 || second == 0x0db8))
                || first == 0x2002
                || (first & 0xfff0) == 0x3ff0;
            global_unicast && !refused
        }
    }
}

/// An IP network in CIDR notation (`10.1.0.0/16`, `fd00::/8`); a bare address is a network of
/// that one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    base: IpAddr,
    prefix: u8,
}

/// Why a network was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP network in CIDR notation (such as 10.1.0.0/16 or fd00::/8)")]
pub struct InvalidNetwork(pub String);

impl IpNetwork {
    /// The network's first address and prefix length.
    pub fn new(base: IpAddr, prefix: u8) -> Option<Self> {
        let bits = if base.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then(|| Self { base: mask(base, prefix), prefix })
    }

    /// Whether `ip` is in the network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is judged
    /// as the IPv4 address it carries, and the other way round.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let base = self.base.to_canonical();
        let prefix = match (self.base, base) {
            // A network written as ::ffff:a.b.c.d/n covers the IPv4 network a.b.c.d/(n - 96).
            (IpAddr::V6(_), IpAddr::V4(_)) => self.prefix.saturating_sub(96),
            _ => self.prefix,
        };
        ip.is_ipv4() == base.is_ipv4() && mask(ip, prefix) == base
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & kept))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & kept))
        }
    }
}

impl FromStr for IpNetwork {
    type Err = InvalidNetwork;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidNetwork(text.to_owned());
        let trimmed = text.trim();
        let (address, prefix) = match trimmed.split_once('/') {
            Some((address, prefix)) => {
                // Digits only: `u8::from_str` would also take a leading `+`.
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                (address, Some(prefix.parse::<u8>().map_err(|_| invalid())?))
            }
            None => (trimmed, None),
        };
        let base: IpAddr = address.parse().map_err(|_| invalid())?;
        let prefix = prefix.unwrap_or(if base.is_ipv4() { 32 } else { 128 });
        if mask(base, prefix) != base {
            // 10.1.2.3/16 is more likely a typo than a way to write 10.1.0.0/16.
            return Err(invalid());
        }
        Self::new(base, prefix).ok_or_else(invalid)
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// The reverse proxies in front of Berth (`BERTH_TRUSTED_PROXIES`), which decide whether a
/// request's `X-Forwarded-For` header says where it came from.
///
/// A client writes whatever it likes into that header, so it is read only when the connection
/// comes from a trusted proxy, and then from the right: each trusted proxy appends the address
/// it received the request from, so the first address from the right that is not a trusted
/// proxy is the client's. With no proxies configured (the default) the header is ignored.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNetwork]>);

/// At most this many `X-Forwarded-For` entries are looked at, from the right.
const MAX_FORWARDED_HOPS: usize = 32;

impl TrustedProxies {
    /// Trusts proxies in `networks`.
    pub fn new(networks: Vec<IpNetwork>) -> Self {
        Self(networks.into())
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(ip))
    }

    /// The client's address of a request that came on a connection from `peer`, carrying the
    /// `X-Forwarded-For` header lines `forwarded_for` (in the order received).
    ///
    /// An entry that is not an IP address (`unknown`, an obfuscated name, garbage) ends the
    /// walk: the address that passed it on, a trusted proxy, stands for the client. If every
    /// address is a trusted proxy, the leftmost is the client.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let lines: Vec<&str> = forwarded_for.into_iter().collect();
        let entries = lines.iter().rev().flat_map(|line| line.rsplit(',')).take(MAX_FORWARDED_HOPS);
        let mut client = peer;
        for entry in entries {
            match forwarded_ip(entry.trim()) {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client.to_canonical()
    }
}

/// An `X-Forwarded-For` entry's address: `203.0.113.7`, `2001:db8::1`, or with a port
/// (`203.0.113.7:41234`, `[2001:db8::1]:41234`), as some proxies write it.
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_publicly_routable_addresses_are_public() {
        for public in ["93.184.215.14", "1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111"] {
            assert!(is_public_address(ip(public), false), "{public}");
        }
        for refused in [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "2001::1",
            "2001:0010::1",
            "2002:c0a8:0101::1",
            "100::1",
            "3fff::1",
            "64:ff9b:1::1",
            // IPv4 carried in IPv6
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(!is_public_address(ip(refused), false), "{refused}");
        }
        assert!(is_public_address(ip("::ffff:8.8.8.8"), false), "a mapped public IPv4 address is public");
        assert!(is_public_address(ip("64:ff9b::8.8.8.8"), false), "NAT64 of a public address is public");
    }

    #[test]
    fn the_test_relaxation_admits_loopback_and_nothing_else() {
        for loopback in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert!(!is_public_address(ip(loopback), false), "{loopback}");
            assert!(is_public_address(ip(loopback), true), "{loopback}");
        }
        for still_refused in ["10.0.0.1", "192.168.0.1", "169.254.169.254", "0.0.0.0", "::", "fe80::1", "fc00::1"] {
            assert!(!is_public_address(ip(still_refused), true), "{still_refused}");
        }
    }

    #[test]
    fn networks_parse_from_cidr_notation_and_bare_addresses() {
        let net = |text: &str| text.parse::<IpNetwork>();
        assert_eq!(net("10.1.0.0/16").unwrap().to_string(), "10.1.0.0/16");
        assert_eq!(net(" 127.0.0.1 ").unwrap().to_string(), "127.0.0.1/32");
        assert_eq!(net("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert_eq!(net("::1").unwrap().to_string(), "::1/128");
        assert_eq!(net("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        for bad in
            ["", "10.1.2.3/16", "10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/+8", "example.com", "10.0.0/8"]
        {
            assert_eq!(net(bad), Err(InvalidNetwork(bad.to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let net = |text: &str| text.parse::<IpNetwork>().unwrap();
        let private = net("10.1.0.0/16");
        assert!(private.contains(ip("10.1.0.0")));
        assert!(private.contains(ip("10.1.255.255")));
        assert!(!private.contains(ip("10.2.0.1")));
        assert!(private.contains(ip("::ffff:10.1.2.3")), "a mapped address is its IPv4 address");
        assert!(!private.contains(ip("::a01:203")), "an IPv4-compatible address is IPv6");
        let one = net("127.0.0.1");
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        assert!(!one.contains(ip("::1")));
        assert!(net("::ffff:127.0.0.0/104").contains(ip("127.9.9.9")));
        assert!(net("fd00::/8").contains(ip("fd12::1")));
        assert!(!net("fd00::/8").contains(ip("fe80::1")));
        assert!(net("0.0.0.0/0").contains(ip("192.168.0.1")));
        assert!(!net("0.0.0.0/0").contains(ip("fd12::1")));
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies_read_from_the_right() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()]);
        let client = |peer: &str, lines: &[&str]| proxies.client_ip(ip(peer), lines.iter().copied()).to_string();
        // Straight from a client: its header is its own invention.
        assert_eq!(client("203.0.113.9", &["198.51.100.1"]), "203.0.113.9");
        // Through one proxy; a spoofed entry on the left is never reached.
        assert_eq!(client("10.0.0.2", &["6.6.6.6, 198.51.100.1"]), "198.51.100.1");
        // Through two proxies, over two header lines, with ports and brackets.
        assert_eq!(client("::1", &["6.6.6.6", "[2001:db8::7]:4711, 10.0.0.3:80"]), "2001:db8::7");
        assert_eq!(client("10.0.0.2", &["198.51.100.1:4711"]), "198.51.100.1");
        // No header, every hop trusted, or garbage: the nearest trusted address stands in.
        assert_eq!(client("10.0.0.2", &[]), "10.0.0.2");
        assert_eq!(client("10.0.0.2", &["10.0.0.9, 10.0.0.8"]), "10.0.0.9");
        assert_eq!(client("10.0.0.2", &["198.51.100.1, unknown, 10.0.0.8"]), "10.0.0.8");
        assert_eq!(client("10.0.0.2", &["198.51.100.1,"]), "10.0.0.2");
        // A mapped IPv4 address is that address.
        assert_eq!(client("::ffff:10.0.0.2", &["::ffff:198.51.100.1"]), "198.51.100.1");
        // Nothing configured: the header is ignored.
        assert_eq!(TrustedProxies::default().client_ip(ip("10.0.0.2"), ["198.51.100.1"]).to_string(), "10.0.0.2");
    }

    #[test]
    fn a_long_forwarded_chain_is_read_only_so_far() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let chain = std::iter::repeat_n("10.0.0.1", 1000).collect::<Vec<_>>().join(",");
        let line = format!("198.51.100.1,{chain}");
        assert_eq!(proxies.client_ip(ip("10.0.0.2"), [line.as_str()]).to_string(), "10.0.0.1");
    }
}
