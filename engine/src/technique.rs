//! The fixed vocabulary of ways round the filter. Inspection reports one of these for each
//! bypass attempt it sees, a category may name the one its entries stand for, and the
//! console filters on them, so the words are the same everywhere.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a device tried to get round the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Technique {
    /// DNS sent to a resolver other than the school's.
    ExternalDns,
    DnsOverTls,
    DnsOverHttps,
    DnsOverQuic,
    Dnscrypt,
    Tor,
    Openvpn,
    Wireguard,
    Ipsec,
    Ssh,
    SocksProxy,
    HttpProxy,
    CircumventionTool,
    VpnApp,
    EncryptedClientHello,
    DnsTunnel,
    IcmpTunnel,
    /// A proxy whose bytes are random from the first (Shadowsocks, VMess, obfs4).
    EncryptedProxy,
    /// A proxy that carries the device's own TLS inside TLS to a server of its own (Trojan,
    /// VLESS, V2Ray over TLS).
    TlsProxy,
}

impl Technique {
    /// Every technique, in the order above.
    pub const ALL: [Self; 19] = [
        Self::ExternalDns,
        Self::DnsOverTls,
        Self::DnsOverHttps,
        Self::DnsOverQuic,
        Self::Dnscrypt,
        Self::Tor,
        Self::Openvpn,
        Self::Wireguard,
        Self::Ipsec,
        Self::Ssh,
        Self::SocksProxy,
        Self::HttpProxy,
        Self::CircumventionTool,
        Self::VpnApp,
        Self::EncryptedClientHello,
        Self::DnsTunnel,
        Self::IcmpTunnel,
        Self::EncryptedProxy,
        Self::TlsProxy,
    ];

    /// The technique's name on the wire and in `policy.yaml` (`dns_over_https`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExternalDns => "external_dns",
            Self::DnsOverTls => "dns_over_tls",
            Self::DnsOverHttps => "dns_over_https",
            Self::DnsOverQuic => "dns_over_quic",
            Self::Dnscrypt => "dnscrypt",
            Self::Tor => "tor",
            Self::Openvpn => "openvpn",
            Self::Wireguard => "wireguard",
            Self::Ipsec => "ipsec",
            Self::Ssh => "ssh",
            Self::SocksProxy => "socks_proxy",
            Self::HttpProxy => "http_proxy",
            Self::CircumventionTool => "circumvention_tool",
            Self::VpnApp => "vpn_app",
            Self::EncryptedClientHello => "encrypted_client_hello",
            Self::DnsTunnel => "dns_tunnel",
            Self::IcmpTunnel => "icmp_tunnel",
            Self::EncryptedProxy => "encrypted_proxy",
            Self::TlsProxy => "tls_proxy",
        }
    }

    /// The technique's name in words, for lists and titles ("used DNS over TLS", "used a
    /// VPN app"): short, with an article where English wants one.
    pub fn words(self) -> &'static str {
        match self {
            Self::ExternalDns => "an outside DNS server",
            Self::DnsOverTls => "DNS over TLS",
            Self::DnsOverHttps => "DNS over HTTPS",
            Self::DnsOverQuic => "DNS over QUIC",
            Self::Dnscrypt => "DNSCrypt",
            Self::Tor => "Tor",
            Self::Openvpn => "a VPN (OpenVPN)",
            Self::Wireguard => "a VPN (WireGuard)",
            Self::Ipsec => "a VPN (IPsec)",
            Self::Ssh => "an SSH tunnel",
            Self::SocksProxy => "a proxy (SOCKS)",
            Self::HttpProxy => "a web proxy",
            Self::CircumventionTool => "a filter-dodging tool",
            Self::VpnApp => "a VPN app",
            Self::EncryptedClientHello => "a hidden site name (ECH)",
            Self::DnsTunnel => "a DNS tunnel",
            Self::IcmpTunnel => "a ping (ICMP) tunnel",
            Self::EncryptedProxy => "an encrypted proxy",
            Self::TlsProxy => "a proxy hidden in TLS",
        }
    }

    /// The technique in words a safeguarding lead reads without a glossary.
    pub fn plain(self) -> &'static str {
        match self {
            Self::ExternalDns => "a DNS server outside school, so the school's filter is not asked",
            Self::DnsOverTls => {
                "encrypted DNS (DNS over TLS), which hides look-ups from the school's filter"
            }
            Self::DnsOverHttps => {
                "encrypted DNS (DNS over HTTPS), which hides look-ups from the school's filter"
            }
            Self::DnsOverQuic => {
                "encrypted DNS (DNS over QUIC), which hides look-ups from the school's filter"
            }
            Self::Dnscrypt => {
                "encrypted DNS (DNSCrypt), which hides look-ups from the school's filter"
            }
            Self::Tor => "the Tor network, which hides where the device is going",
            Self::Openvpn => "a VPN (OpenVPN), which tunnels past the school's filter",
            Self::Wireguard => "a VPN (WireGuard), which tunnels past the school's filter",
            Self::Ipsec => "a VPN (IPsec), which tunnels past the school's filter",
            Self::Ssh => {
                "an SSH connection to a computer outside school, which can tunnel past the filter"
            }
            Self::SocksProxy => {
                "a proxy server (SOCKS), which relays traffic past the school's filter"
            }
            Self::HttpProxy => "a web proxy, which relays traffic past the school's filter",
            Self::CircumventionTool => "a tool made to get round school filters",
            Self::VpnApp => "a VPN app, which tunnels past the school's filter",
            Self::EncryptedClientHello => {
                "encrypted client hello (ECH), which hides the site's name from the filter"
            }
            Self::DnsTunnel => "a tunnel hidden inside DNS look-ups",
            Self::IcmpTunnel => "a tunnel hidden inside ping (ICMP) packets",
            Self::EncryptedProxy => {
                "a proxy whose traffic is scrambled from its first byte (Shadowsocks and the like), which relays traffic past the school's filter"
            }
            Self::TlsProxy => {
                "a proxy disguised as an ordinary secure website (Trojan, V2Ray and the like), which relays traffic past the school's filter"
            }
        }
    }

    /// The technique a name on the wire or in `policy.yaml` stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for Technique {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for t in Technique::ALL {
            assert_eq!(Technique::from_name(t.as_str()), Some(t));
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
        assert_eq!(Technique::DnsOverHttps.as_str(), "dns_over_https");
        assert_eq!(Technique::from_name("DoH"), None);
        assert!(Technique::ALL.iter().all(|t| !t.plain().contains('_')));
        // Each reads after "tried to get round the school's filter using …".
        for t in Technique::ALL {
            let p = t.plain();
            assert!(
                ["a ", "an ", "the ", "encrypted "]
                    .iter()
                    .any(|start| p.starts_with(start)),
                "{t:?}: {p}"
            );
        }
    }

    #[test]
    fn each_technique_has_its_own_words() {
        let mut words: Vec<_> = Technique::ALL.iter().map(|t| t.words()).collect();
        assert!(words.iter().all(|w| !w.contains('_') && !w.is_empty()));
        words.sort_unstable();
        words.dedup();
        assert_eq!(
            words.len(),
            Technique::ALL.len(),
            "two techniques read the same"
        );
    }
}
