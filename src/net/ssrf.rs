//! The outbound address guard (SSRF), pure part: which IP addresses the gateway may connect to.
//!
//! Remote servers and resource authors choose URLs the gateway fetches (resource metadata named
//! in a `WWW-Authenticate` header, issuers, token endpoints, remote MCP server URLs). Without a
//! guard they could make the gateway reach the pod network, the node's loopback services or the
//! cloud provider's metadata endpoint (which hands out credentials). Enforcement happens where the
//! address is connected to (see `guard` and the gateway's connector); this module only decides.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Flag that lifts the guard for private networks (named in refusals).
pub const ALLOW_PRIVATE_FLAG: &str = "--outbound-allow-private-networks";

/// Start of every refusal message; lets layers that only see an error's text (the gateway's
/// transport errors) recognise a refusal.
pub const REFUSAL_PREFIX: &str = "refused to connect to a ";

/// What kind of address an IP is, as far as the guard cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Globally routable unicast.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918, IPv6 unique-local (fc00::/7) and deprecated site-local (fec0::/10), local-use
    /// NAT64 (64:ff9b:1::/48).
    Private,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// Carrier-grade NAT, 100.64.0.0/10 (also used for some cloud and overlay networks).
    SharedAddressSpace,
    /// Documentation, benchmarking, protocol-assignment, future-use and unassigned ranges.
    Reserved,
    /// Instance-metadata endpoints of cloud providers, which hand out credentials.
    CloudMetadata,
    /// 0.0.0.0/8 and ::; connecting to them reaches the local host on Linux.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
}

impl AddressClass {
    /// How refusals name the class; every text starts with "a " (see [`REFUSAL_PREFIX`]).
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Loopback => "a private address (loopback)",
            AddressClass::Private => "a private address (private network)",
            AddressClass::LinkLocal => "a private address (link-local)",
            AddressClass::SharedAddressSpace => "a private address (shared address space)",
            AddressClass::Reserved => "a reserved address",
            AddressClass::CloudMetadata => "a cloud-metadata address",
            AddressClass::Unspecified => "a non-unicast address (unspecified)",
            AddressClass::Broadcast => "a non-unicast address (broadcast)",
            AddressClass::Multicast => "a non-unicast address (multicast)",
        }
    }

    /// Classes refused whatever the policy: nothing legitimate lives there, and metadata
    /// endpoints hand out the node's or pod's cloud credentials.
    pub fn is_never_allowed(self) -> bool {
        matches!(
            self,
            AddressClass::CloudMetadata
                | AddressClass::Unspecified
                | AddressClass::Broadcast
                | AddressClass::Multicast
        )
    }
}

/// Which addresses outbound connections may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressPolicy {
    /// Public addresses only (the default of `run`: in a cluster, a resource author must not
    /// reach the pod network or the metadata endpoint).
    PublicOnly,
    /// Also loopback, private, link-local, shared and reserved addresses (the default of
    /// `serve`: on a laptop the identity provider and the MCP servers are often local). Cloud
    /// metadata and non-unicast addresses stay refused.
    AllowPrivate,
}

impl AddressPolicy {
    /// The policy for an `allowPrivateNetworks`-style switch.
    pub fn from_allow_private(allow: bool) -> Self {
        if allow {
            AddressPolicy::AllowPrivate
        } else {
            AddressPolicy::PublicOnly
        }
    }

    pub fn allows_private(self) -> bool {
        self == AddressPolicy::AllowPrivate
    }

    /// Whether an address of `class` may be connected to.
    pub fn permits(self, class: AddressClass) -> bool {
        match self {
            AddressPolicy::PublicOnly => class == AddressClass::Public,
            AddressPolicy::AllowPrivate => !class.is_never_allowed(),
        }
    }
}

/// A connection the guard refused. The message names the host (never a URL, which may carry
/// keys in its query) and the kind of address, not the address itself: callers of the gateway
/// need not learn the internal network's layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused to connect to {} for {host}; {}", .class.describe(), self.remedy())]
pub struct AddressRefused {
    /// The host as the URL named it.
    pub host: String,
    /// The refused address.
    pub address: IpAddr,
    pub class: AddressClass,
}

impl AddressRefused {
    fn remedy(&self) -> String {
        if self.class.is_never_allowed() {
            "such addresses are never allowed".to_owned()
        } else {
            format!("set {ALLOW_PRIVATE_FLAG} to allow")
        }
    }
}

/// Check one address `host` resolved (or literally is) to.
pub fn check(host: &str, address: IpAddr, policy: AddressPolicy) -> Result<(), AddressRefused> {
    let class = classify(address);
    if policy.permits(class) {
        Ok(())
    } else {
        Err(AddressRefused {
            host: host.to_owned(),
            address,
            class,
        })
    }
}

/// Check a URL host that is an IP literal (`127.0.0.1`, `[::1]`). Resolvers are skipped for
/// literals, so they must be checked before connecting. Host names pass (the resolver checks
/// what they resolve to).
pub fn check_literal_host(host: &str, policy: AddressPolicy) -> Result<(), AddressRefused> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => check(host, ip, policy),
        Err(_) => Ok(()),
    }
}

/// Keep the resolved addresses of `host` that the policy permits. Refused when none remains,
/// naming the first refused one's class. An empty input stays empty (the connector reports
/// that the name has no addresses).
pub fn filter_resolved(
    host: &str,
    addresses: impl IntoIterator<Item = std::net::SocketAddr>,
    policy: AddressPolicy,
) -> Result<Vec<std::net::SocketAddr>, AddressRefused> {
    let mut kept = Vec::new();
    let mut first_refusal = None;
    for addr in addresses {
        match check(host, addr.ip(), policy) {
            Ok(()) => kept.push(addr),
            Err(refused) => {
                first_refusal.get_or_insert(refused);
            }
        }
    }
    match first_refusal {
        Some(refused) if kept.is_empty() => Err(refused),
        _ => Ok(kept),
    }
}

/// Whether an error text (a transport error's chain, flattened) is a guard refusal.
pub fn is_refusal_text(text: &str) -> bool {
    text.contains(REFUSAL_PREFIX)
        && (text.contains(ALLOW_PRIVATE_FLAG) || text.contains("never allowed"))
}

/// The class of an address. IPv6 addresses that carry an IPv4 address (mapped, compatible,
/// NAT64, 6to4, Teredo) are classified as that IPv4 address, so `::ffff:127.0.0.1` is loopback.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Well-known metadata endpoints: AWS/GCP/Azure/OCI/DigitalOcean IMDS, AWS ECS task
/// credentials, Alibaba Cloud, Azure WireServer.
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
];

/// AWS IMDS over IPv6.
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    let [a, b, c, d, e, f, g, h] = net;
    u128::from(ip) & mask == u128::from(Ipv6Addr::new(a, b, c, d, e, f, g, h)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    if METADATA_V4.contains(&ip) {
        return AddressClass::CloudMetadata;
    }
    // First match wins: broadcast before the future-use 240.0.0.0/4 that contains it.
    const RANGES: [([u8; 4], u32, AddressClass); 16] = [
        ([0, 0, 0, 0], 8, AddressClass::Unspecified),
        ([127, 0, 0, 0], 8, AddressClass::Loopback),
        ([10, 0, 0, 0], 8, AddressClass::Private),
        ([172, 16, 0, 0], 12, AddressClass::Private),
        ([192, 168, 0, 0], 16, AddressClass::Private),
        ([169, 254, 0, 0], 16, AddressClass::LinkLocal),
        ([100, 64, 0, 0], 10, AddressClass::SharedAddressSpace),
        ([255, 255, 255, 255], 32, AddressClass::Broadcast),
        ([224, 0, 0, 0], 4, AddressClass::Multicast),
        ([192, 0, 0, 0], 24, AddressClass::Reserved),
        ([192, 0, 2, 0], 24, AddressClass::Reserved),
        ([198, 51, 100, 0], 24, AddressClass::Reserved),
        ([203, 0, 113, 0], 24, AddressClass::Reserved),
        ([198, 18, 0, 0], 15, AddressClass::Reserved),
        ([192, 88, 99, 0], 24, AddressClass::Reserved),
        ([240, 0, 0, 0], 4, AddressClass::Reserved),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(AddressClass::Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if METADATA_V6.contains(&ip) {
        return AddressClass::CloudMetadata;
    }
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some(embedded) = embedded_v4(ip) {
        return classify_v4(embedded);
    }
    const RANGES: [([u16; 8], u32, AddressClass); 9] = [
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, AddressClass::Private),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, AddressClass::Reserved),
        (
            [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
            32,
            AddressClass::Reserved,
        ),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, AddressClass::Reserved),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, AddressClass::Reserved),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, AddressClass::Private),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, AddressClass::LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, AddressClass::Private),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, AddressClass::Multicast),
    ];
    if let Some((_, _, class)) = RANGES
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return *class;
    }
    // Only 2000::/3 is allocated for global unicast.
    if in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        AddressClass::Public
    } else {
        AddressClass::Reserved
    }
}

fn is_mapped_or_compatible(ip: Ipv6Addr) -> bool {
    in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) || in_v6(ip, [0; 8], 96)
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped (::ffff:0:0/96), IPv4-compatible
/// (::/96), NAT64 (64:ff9b::/96), 6to4 (2002::/16) and Teredo (2001::/32, the client address).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if is_mapped_or_compatible(ip) || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return Some(low32);
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    if in_v6(ip, [0x2001, 0, 0, 0, 0, 0, 0, 0], 32) {
        // Teredo obfuscates the client address by inverting its bits.
        return Some(Ipv4Addr::from(!((bits & 0xffff_ffff) as u32)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().expect("ip literal"))
    }

    #[test]
    fn ipv4_ranges() {
        let cases = [
            ("8.8.8.8", AddressClass::Public),
            ("1.1.1.1", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.255.254", AddressClass::Loopback),
            ("10.0.0.1", AddressClass::Private),
            ("10.255.255.255", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("172.32.0.1", AddressClass::Public),
            ("172.15.255.255", AddressClass::Public),
            ("192.168.1.1", AddressClass::Private),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("100.64.0.1", AddressClass::SharedAddressSpace),
            ("100.127.255.255", AddressClass::SharedAddressSpace),
            ("100.128.0.1", AddressClass::Public),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("255.255.255.255", AddressClass::Broadcast),
            ("224.0.0.1", AddressClass::Multicast),
            ("239.255.255.250", AddressClass::Multicast),
            ("192.0.2.1", AddressClass::Reserved),
            ("198.51.100.7", AddressClass::Reserved),
            ("203.0.113.9", AddressClass::Reserved),
            ("198.18.0.1", AddressClass::Reserved),
            ("198.19.255.255", AddressClass::Reserved),
            ("192.0.0.8", AddressClass::Reserved),
            ("240.0.0.1", AddressClass::Reserved),
            ("255.255.255.254", AddressClass::Reserved),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn cloud_metadata_endpoints() {
        for ip in [
            "169.254.169.254",
            "169.254.170.2",
            "100.100.100.200",
            "168.63.129.16",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "::ffff:100.100.100.200",
        ] {
            assert_eq!(class(ip), AddressClass::CloudMetadata, "{ip}");
        }
        // Neighbours are only link-local / shared.
        assert_eq!(class("169.254.169.253"), AddressClass::LinkLocal);
        assert_eq!(class("100.100.100.201"), AddressClass::SharedAddressSpace);
    }

    #[test]
    fn ipv6_ranges() {
        let cases = [
            ("2606:4700:4700::1111", AddressClass::Public),
            ("2a00:1450:4001::200e", AddressClass::Public),
            ("::", AddressClass::Unspecified),
            ("::1", AddressClass::Loopback),
            ("fc00::1", AddressClass::Private),
            ("fd12:3456:789a::1", AddressClass::Private),
            ("fec0::1", AddressClass::Private),
            ("fe80::1", AddressClass::LinkLocal),
            ("febf::1", AddressClass::LinkLocal),
            ("ff02::1", AddressClass::Multicast),
            ("2001:db8::1", AddressClass::Reserved),
            ("3fff::1", AddressClass::Reserved),
            ("100::1", AddressClass::Reserved),
            ("2001:2::1", AddressClass::Reserved),
            ("64:ff9b:1::1", AddressClass::Private),
            ("4000::1", AddressClass::Reserved),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_embedding_ipv4_is_classified_as_the_ipv4_address() {
        let cases = [
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:10.1.2.3", AddressClass::Private),
            ("::ffff:8.8.8.8", AddressClass::Public),
            ("::ffff:0.0.0.0", AddressClass::Unspecified),
            ("::127.0.0.1", AddressClass::Loopback),
            ("::10.0.0.1", AddressClass::Private),
            ("64:ff9b::127.0.0.1", AddressClass::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressClass::CloudMetadata),
            ("64:ff9b::8.8.8.8", AddressClass::Public),
            // 6to4 of 192.168.0.1 and of 8.8.8.8.
            ("2002:c0a8:0001::1", AddressClass::Private),
            ("2002:7f00:0001::1", AddressClass::Loopback),
            ("2002:0808:0808::1", AddressClass::Public),
            // Teredo with client 127.0.0.1 (inverted: 80ff:fffe).
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                AddressClass::Loopback,
            ),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn public_only_refuses_everything_but_public() {
        let p = AddressPolicy::PublicOnly;
        assert!(p.permits(AddressClass::Public));
        for c in [
            AddressClass::Loopback,
            AddressClass::Private,
            AddressClass::LinkLocal,
            AddressClass::SharedAddressSpace,
            AddressClass::Reserved,
            AddressClass::CloudMetadata,
            AddressClass::Unspecified,
            AddressClass::Broadcast,
            AddressClass::Multicast,
        ] {
            assert!(!p.permits(c), "{c:?}");
        }
    }

    #[test]
    fn allow_private_still_refuses_metadata_and_non_unicast() {
        let p = AddressPolicy::AllowPrivate;
        for c in [
            AddressClass::Public,
            AddressClass::Loopback,
            AddressClass::Private,
            AddressClass::LinkLocal,
            AddressClass::SharedAddressSpace,
            AddressClass::Reserved,
        ] {
            assert!(p.permits(c), "{c:?}");
        }
        for c in [
            AddressClass::CloudMetadata,
            AddressClass::Unspecified,
            AddressClass::Broadcast,
            AddressClass::Multicast,
        ] {
            assert!(!p.permits(c), "{c:?}");
        }
        assert_eq!(AddressPolicy::from_allow_private(true), p);
        assert_eq!(
            AddressPolicy::from_allow_private(false),
            AddressPolicy::PublicOnly
        );
    }

    #[test]
    fn refusals_name_host_and_class_and_the_way_out() {
        let err = check(
            "localhost",
            "127.0.0.1".parse().expect("ip"),
            AddressPolicy::PublicOnly,
        )
        .expect_err("loopback refused");
        let text = err.to_string();
        assert_eq!(
            text,
            "refused to connect to a private address (loopback) for localhost; set \
             --outbound-allow-private-networks to allow"
        );
        assert!(is_refusal_text(&format!("dns error: {text}")));
        let meta = check(
            "metadata.google.internal",
            "169.254.169.254".parse().expect("ip"),
            AddressPolicy::AllowPrivate,
        )
        .expect_err("metadata refused");
        let text = meta.to_string();
        assert!(text.starts_with(REFUSAL_PREFIX), "{text}");
        assert!(text.contains("cloud-metadata"), "{text}");
        assert!(text.contains("never allowed"), "{text}");
        assert!(!text.contains("169.254"), "no internal address in {text}");
        assert!(is_refusal_text(&text));
        assert!(!is_refusal_text("Connection refused (os error 111)"));
    }

    #[test]
    fn literal_hosts_are_checked_and_names_pass() {
        let p = AddressPolicy::PublicOnly;
        assert!(check_literal_host("127.0.0.1", p).is_err());
        assert!(check_literal_host("[::1]", p).is_err());
        let mapped = check_literal_host("[::ffff:127.0.0.1]", p).expect_err("mapped loopback");
        assert_eq!(mapped.class, AddressClass::Loopback);
        assert!(check_literal_host("8.8.8.8", p).is_ok());
        assert!(check_literal_host("[2606:4700:4700::1111]", p).is_ok());
        assert!(
            check_literal_host("localhost", p).is_ok(),
            "names are resolved later"
        );
        assert!(check_literal_host("[::1]", AddressPolicy::AllowPrivate).is_ok());
        assert!(check_literal_host("169.254.169.254", AddressPolicy::AllowPrivate).is_err());
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let addr = |s: &str| s.parse::<SocketAddr>().expect("socket addr");
        let p = AddressPolicy::PublicOnly;
        let kept = filter_resolved(
            "mixed.example",
            [addr("10.0.0.1:0"), addr("8.8.8.8:0"), addr("[::1]:0")],
            p,
        )
        .expect("a public address remains");
        assert_eq!(kept, [addr("8.8.8.8:0")]);
        let err = filter_resolved("internal.example", [addr("10.0.0.1:0"), addr("[::1]:0")], p)
            .expect_err("nothing remains");
        assert_eq!(err.class, AddressClass::Private);
        assert_eq!(err.host, "internal.example");
        assert_eq!(
            filter_resolved("none.example", [], p).expect("empty stays empty"),
            Vec::<SocketAddr>::new()
        );
        let allowed = filter_resolved(
            "localhost",
            [addr("127.0.0.1:0"), addr("169.254.169.254:0")],
            AddressPolicy::AllowPrivate,
        )
        .expect("loopback allowed");
        assert_eq!(allowed, [addr("127.0.0.1:0")]);
    }
}
