//! Egress policy for every request the host sends on a tenant's behalf
//! (callback delivery, components' `wasi:http`, URLs a notifier returns):
//! loopback, private, link-local, CGNAT, multicast, reserved and cloud
//! metadata addresses are refused unless the operator allows them in
//! `[egress] allow`. Addresses are checked after DNS, and the caller then
//! connects to exactly the addresses that passed, so a name cannot resolve
//! to a public address for the check and a private one for the connection.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// Why a destination is refused. The text names the address class only,
/// never whether anything listens there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918, IPv6 unique-local and site-local.
    Private,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// 100.64.0.0/10 (carrier-grade NAT).
    SharedAddressSpace,
    /// Multicast and broadcast.
    Multicast,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// Documentation, benchmarking, IETF and future-use ranges.
    Reserved,
    /// A cloud instance-metadata address; never allowed.
    Metadata,
    /// The service's own listeners.
    OwnService,
    /// The name did not resolve.
    NotFound,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self {
            Refusal::Loopback => "a loopback address",
            Refusal::Private => "a private address",
            Refusal::LinkLocal => "a link-local address",
            Refusal::SharedAddressSpace => "a carrier-grade NAT address",
            Refusal::Multicast => "a multicast or broadcast address",
            Refusal::Unspecified => "an unspecified address",
            Refusal::Reserved => "a reserved address",
            Refusal::Metadata => "a cloud metadata address",
            Refusal::OwnService => "this service's own listener",
            Refusal::NotFound => return f.write_str("destination refused by the egress policy: the host name does not resolve"),
        };
        write!(f, "destination refused by the egress policy: {class}")
    }
}

impl std::error::Error for Refusal {}

/// The operator's exceptions (`[egress] allow`) and the service's own
/// listeners.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    allow: Vec<(IpAddr, u8)>,
    own: Vec<SocketAddr>,
}

impl EgressPolicy {
    /// Parses `[egress] allow`: addresses (`127.0.0.1`, `::1`) or CIDR
    /// ranges (`10.0.0.0/8`). `LIVESNAP_EGRESS_ALLOW` (comma-separated) adds
    /// to them.
    pub fn from_config(allow: &[String]) -> Result<Self, String> {
        let env = std::env::var("LIVESNAP_EGRESS_ALLOW").unwrap_or_default();
        let entries = allow.iter().map(String::as_str).chain(env.split(',').map(str::trim).filter(|s| !s.is_empty()));
        let allow = entries
            .map(|e| parse_net(e).ok_or_else(|| format!("[egress] allow: '{e}' is not an IP address or CIDR range")))
            .collect::<Result<_, _>>()?;
        Ok(Self { allow, own: Vec::new() })
    }

    /// Also refuses the service's own listeners (known once they are bound).
    pub fn with_own(mut self, own: &[SocketAddr]) -> Self {
        self.own = own.to_vec();
        self
    }

    /// Allows the addresses the host of `url` resolves to now (for a
    /// destination the operator named, such as `capture --callback-url`).
    pub fn allow_url_host(&mut self, url: &str) {
        let Ok(u) = url::Url::parse(url) else { return };
        // Any port resolves the name; rtsp:// and rtmp:// have no known default.
        let Some(host) = u.host_str() else { return };
        let port = u.port_or_known_default().unwrap_or(0);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        for a in (host, port).to_socket_addrs().into_iter().flatten() {
            let ip = canonical(a.ip());
            self.allow.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
    }

    /// The decision for one address.
    pub fn check(&self, addr: SocketAddr) -> Result<(), Refusal> {
        let ip = canonical(addr.ip());
        let own = self
            .own
            .iter()
            .any(|o| o.port() == addr.port() && (canonical(o.ip()) == ip || o.ip().is_unspecified() && classify(ip).is_some()));
        if own {
            return Err(Refusal::OwnService);
        }
        match classify(ip) {
            None => Ok(()),
            Some(Refusal::Metadata) => Err(Refusal::Metadata),
            Some(_) if self.allow.iter().any(|(net, bits)| contains(*net, *bits, ip)) => Ok(()),
            Some(r) => Err(r),
        }
    }

    /// The addresses of `addrs` that pass; the first refusal when none does.
    pub fn vet(&self, addrs: impl IntoIterator<Item = SocketAddr>) -> Result<Vec<SocketAddr>, Refusal> {
        let mut first = None;
        let passed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match self.check(*a) {
                Ok(()) => true,
                Err(r) => {
                    first.get_or_insert(r);
                    false
                }
            })
            .collect();
        match (passed.is_empty(), first) {
            (false, _) => Ok(passed),
            (true, Some(r)) => Err(r),
            (true, None) => Err(Refusal::NotFound),
        }
    }

    /// Resolves `host:port` (blocking) and vets the result.
    pub fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs = (host, port).to_socket_addrs().map_err(|_| Refusal::NotFound)?;
        self.vet(addrs)
    }
}

/// A resolver for ureq that hands it only vetted addresses, so delivery
/// connects to exactly what the policy passed.
#[derive(Debug)]
pub struct VettingResolver(pub std::sync::Arc<EgressPolicy>);

impl ureq::unversioned::resolver::Resolver for VettingResolver {
    fn resolve(
        &self,
        uri: &http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let vetted =
            self.0.resolve(host, port).map_err(|r| ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, r)))?;
        let mut out = self.empty();
        for a in vetted.into_iter().take(16) {
            out.push(a);
        }
        Ok(out)
    }
}

/// The refusal inside a ureq error, if that is what it is.
pub fn refusal_of(e: &ureq::Error) -> Option<Refusal> {
    match e {
        ureq::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<Refusal>()).copied(),
        _ => None,
    }
}

fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip.parse::<IpAddr>().ok()?, Some(bits.parse::<u8>().ok()?)),
        None => (s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok()?, None),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((canonical(ip), bits))
}

fn contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64,
/// 6to4) are judged as that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !matches!(u128::from(v6), 0 | 1) {
        return Some(low); // IPv4-compatible (deprecated)
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low); // NAT64
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8)); // 6to4
    }
    None
}

/// Why an address is not an ordinary public one, or `None` if it is.
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if [[169, 254, 169, 254], [169, 254, 170, 2], [100, 100, 100, 200]].contains(&v4.octets()) {
                Some(Refusal::Metadata)
            } else if a == 0 {
                Some(Refusal::Unspecified)
            } else if v4.is_loopback() {
                Some(Refusal::Loopback)
            } else if v4.is_private() {
                Some(Refusal::Private)
            } else if v4.is_link_local() {
                Some(Refusal::LinkLocal)
            } else if a == 100 && (b & 0xc0) == 64 {
                Some(Refusal::SharedAddressSpace)
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some(Refusal::Multicast)
            } else if a >= 240
                || (a, b, c) == (192, 0, 0)
                || (a, b, c) == (192, 0, 2)
                || (a, b, c) == (198, 51, 100)
                || (a, b, c) == (203, 0, 113)
                || (a == 198 && (b & 0xfe) == 18)
            {
                Some(Refusal::Reserved)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if s == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
                Some(Refusal::Metadata)
            } else if v6.is_unspecified() {
                Some(Refusal::Unspecified)
            } else if v6.is_loopback() {
                Some(Refusal::Loopback)
            } else if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
                Some(Refusal::Private)
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some(Refusal::LinkLocal)
            } else if v6.is_multicast() {
                Some(Refusal::Multicast)
            } else if s[..4] == [0x100, 0, 0, 0] || (s[0], s[1]) == (0x2001, 0xdb8) {
                Some(Refusal::Reserved)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> EgressPolicy {
        let allow: Vec<(IpAddr, u8)> = allow.iter().map(|a| parse_net(a).unwrap()).collect();
        EgressPolicy { allow, own: Vec::new() }
    }

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 80)
    }

    // Decided with no packet sent: the ranges outside loopback are only ever
    // judged here.
    #[test]
    fn every_internal_spelling_is_refused_by_default() {
        let p = policy(&[]);
        for (ip, why) in [
            ("127.0.0.1", Refusal::Loopback),
            ("127.255.0.9", Refusal::Loopback),
            ("::1", Refusal::Loopback),
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("::ffff:7f00:1", Refusal::Loopback),
            ("::127.0.0.1", Refusal::Loopback),
            ("64:ff9b::7f00:1", Refusal::Loopback),
            ("2002:7f00:1::", Refusal::Loopback),
            ("10.0.0.1", Refusal::Private),
            ("172.16.5.4", Refusal::Private),
            ("192.168.1.1", Refusal::Private),
            ("::ffff:10.0.0.1", Refusal::Private),
            ("fd12:3456::1", Refusal::Private),
            ("169.254.169.254", Refusal::Metadata),
            ("::ffff:169.254.169.254", Refusal::Metadata),
            ("fd00:ec2::254", Refusal::Metadata),
            ("100.100.100.200", Refusal::Metadata),
            ("169.254.1.1", Refusal::LinkLocal),
            ("fe80::1", Refusal::LinkLocal),
            ("100.64.0.1", Refusal::SharedAddressSpace),
            ("224.0.0.1", Refusal::Multicast),
            ("255.255.255.255", Refusal::Multicast),
            ("ff02::1", Refusal::Multicast),
            ("0.0.0.0", Refusal::Unspecified),
            ("::", Refusal::Unspecified),
            ("240.0.0.1", Refusal::Reserved),
            ("198.18.0.1", Refusal::Reserved),
            ("2001:db8::1", Refusal::Reserved),
        ] {
            assert_eq!(p.check(at(ip)), Err(why), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert_eq!(p.check(at(ip)), Ok(()), "{ip}");
        }
    }

    #[test]
    fn url_spellings_of_loopback_parse_to_loopback() {
        // The WHATWG parser (url crate) normalises decimal, hex and octal
        // hosts, so the policy sees the address a connection would reach.
        for url in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            let u = url::Url::parse(url).unwrap();
            let ip: IpAddr = match u.host().unwrap() {
                url::Host::Ipv4(v4) => v4.into(),
                url::Host::Ipv6(v6) => v6.into(),
                url::Host::Domain(d) => panic!("{url} parsed as a name: {d}"),
            };
            assert_eq!(classify(ip), Some(Refusal::Loopback), "{url}");
        }
    }

    #[test]
    fn operator_exceptions_and_what_they_cannot_open() {
        let p = policy(&["127.0.0.1", "10.1.0.0/16"]).with_own(&["127.0.0.1:8080".parse().unwrap(), "0.0.0.0:1935".parse().unwrap()]);
        assert_eq!(p.check("127.0.0.1:9000".parse().unwrap()), Ok(()));
        assert_eq!(p.check("127.0.0.2:9000".parse().unwrap()), Err(Refusal::Loopback));
        assert_eq!(p.check("10.1.200.3:80".parse().unwrap()), Ok(()));
        assert_eq!(p.check("10.2.0.1:80".parse().unwrap()), Err(Refusal::Private));
        assert_eq!(p.check("127.0.0.1:8080".parse().unwrap()), Err(Refusal::OwnService));
        assert_eq!(p.check("[::ffff:127.0.0.1]:8080".parse().unwrap()), Err(Refusal::OwnService));
        assert_eq!(p.check("127.0.0.1:1935".parse().unwrap()), Err(Refusal::OwnService));
        assert_eq!(policy(&["169.254.0.0/16"]).check(at("169.254.169.254")), Err(Refusal::Metadata));
        assert!(EgressPolicy::from_config(&["not-an-ip".into()]).is_err());
    }

    #[test]
    fn a_name_is_judged_by_every_address_it_resolves_to() {
        // What a rebinding resolver could answer: only the public address passes.
        let p = policy(&[]);
        let answer = [at("169.254.169.254"), at("93.184.216.34")];
        assert_eq!(p.vet(answer), Ok(vec![at("93.184.216.34")]));
        assert_eq!(p.vet([at("10.0.0.1"), at("127.0.0.1")]), Err(Refusal::Private));
        assert_eq!(p.vet([]), Err(Refusal::NotFound));
        assert!(!Refusal::Loopback.to_string().contains("refused connection"));
    }
}
