//! The classifiers a flow's first packets go to: TCP (TLS, HTTP, SSH, SOCKS, proxies, the
//! tunnel signatures), UDP from the client (QUIC, DNS, DoQ, WireGuard, OpenVPN, STUN…) and
//! from the server, each returning what it found (`Found`) once it knows.

use super::*;

/// A verdict on a flow, before it has its time and addresses.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub(super) carrier: Option<Carrier>,
    pub(super) name: Option<String>,
    pub(super) name_source: Option<NameSource>,
    pub(super) also_names: Vec<String>,
    pub(super) technique: Option<Technique>,
    pub(super) evidence: String,
    pub(super) alpn: Vec<String>,
    pub(super) ja4: Option<String>,
    pub(super) ech: Option<Ech>,
}

impl Found {
    pub(super) fn nothing(carrier: Carrier) -> Self {
        Self {
            carrier: Some(carrier),
            ..Self::default()
        }
    }

    pub(super) fn name(carrier: Carrier, name: String, source: NameSource) -> Self {
        Self {
            carrier: Some(carrier),
            name: Some(name),
            name_source: Some(source),
            ..Self::default()
        }
    }

    pub(super) fn technique(carrier: Carrier, technique: Technique) -> Self {
        Self {
            carrier: Some(carrier),
            technique: Some(technique),
            ..Self::default()
        }
    }

    pub(super) fn into_observation(
        self,
        time: Duration,
        key: &FlowKey,
        client_mac: Option<[u8; 6]>,
    ) -> Observation {
        let mut evidence = self.evidence;
        schoolgate_engine::text::cut_to_bytes(&mut evidence, MAX_EVIDENCE);
        Observation {
            time,
            client: key.client,
            server: key.server,
            client_mac,
            carrier: self.carrier.unwrap_or(Carrier::Tcp),
            name: self.name,
            name_source: self.name_source,
            also_names: self.also_names,
            technique: self.technique,
            evidence,
            alpn: self.alpn,
            ja4: self.ja4,
            ech: self.ech,
            resume: None,
        }
    }
}

/// What a ClientHello says, as a verdict.
pub(super) fn hello_found(h: tls::ClientHello, carrier: Carrier, key: &FlowKey) -> Found {
    let mut found = Found::nothing(carrier);
    let sni = h.sni.clone();
    let alpn = if h.alpn.is_empty() {
        "none".to_owned()
    } else {
        h.alpn.join(",")
    };
    let via = if carrier == Carrier::Quic {
        "QUIC Initial"
    } else {
        "TLS"
    };
    found.evidence = match (&sni, &h.odd_sni) {
        (Some(s), _) => format!("{via} SNI {s}, ALPN {}, to {}", alpn, key.server),
        // Not a host name, so never a name to decide on; what was sent is still evidence.
        (None, Some(odd)) => format!(
            "{via} SNI \"{odd}\" (not a host name), ALPN {}, to {}",
            alpn, key.server
        ),
        (None, None) => format!(
            "{via} ClientHello without SNI, ALPN {}, to {}",
            alpn, key.server
        ),
    };
    if h.ech == Ech::Real {
        found.technique = Some(Technique::EncryptedClientHello);
        found
            .evidence
            .push_str(", with Encrypted Client Hello (the real name is hidden)");
    } else if h.alpn.is_empty() && sni.as_deref().is_some_and(signature::tor_like_sni) {
        found.technique = Some(Technique::Tor);
        found
            .evidence
            .push_str(": a random www name and no ALPN, as Tor clients send");
    } else if h.alpn.iter().any(|a| a == "dot") {
        found.technique = Some(Technique::DnsOverTls);
    } else if h.alpn.iter().any(|a| a == "doq" || a.starts_with("doq-")) {
        found.technique = Some(Technique::DnsOverQuic);
    } else if key.server.port() == DOT_PORT {
        found.technique = Some(if carrier == Carrier::Quic {
            Technique::DnsOverQuic
        } else {
            Technique::DnsOverTls
        });
    }
    if let Some(s) = sni {
        found.name = Some(s);
        found.name_source = Some(NameSource::Sni);
    }
    found.alpn = h.alpn;
    found.ja4 = Some(h.ja4);
    found.ech = Some(h.ech);
    found
}

/// Tries every TCP classifier on what the flow has so far.
pub(super) fn classify_tcp(f: &mut flow::Flow, key: &FlowKey, give_up: bool) -> Option<Found> {
    let up = &f.up.bytes;
    // SSH: either side's banner.
    if let Some(banner) = signature::ssh_banner(up).or_else(|| signature::ssh_banner(&f.down.bytes))
    {
        let mut found = Found::technique(Carrier::Tcp, Technique::Ssh);
        found.evidence = format!("SSH banner {banner:?} on port {}", key.server.port());
        return Some(found);
    }
    // DNSCrypt over TCP: a length-framed answer with the resolver's magic.
    if f.down
        .bytes
        .get(2..)
        .is_some_and(signature::dnscrypt_answer)
    {
        let mut found = Found::technique(Carrier::Tcp, Technique::Dnscrypt);
        found.evidence = format!(
            "DNSCrypt answer over TCP (resolver magic r6fnvWj8) from {}",
            key.server
        );
        return Some(found);
    }
    if up.is_empty() {
        return None;
    }
    match tls::from_records(up) {
        TlsParsed::Hello(h) => {
            let mut found = hello_found(h, Carrier::Tcp, key);
            // No SNI and nothing else told: the server's certificate may say where it went.
            if found.name.is_none() && found.technique.is_none() {
                match certificate::from_server(&f.down.bytes) {
                    certificate::Names::Incomplete if !give_up => return None,
                    certificate::Names::Names(names) => {
                        found.evidence = format!(
                            "{}; the server's certificate names {}",
                            found.evidence,
                            names.join(", ")
                        );
                        let mut names = names.into_iter();
                        found.name = names.next();
                        found.name_source = Some(NameSource::Certificate);
                        found.also_names = names.collect();
                    }
                    _ => {}
                }
            }
            return Some(found);
        }
        TlsParsed::Incomplete { .. } => return None,
        TlsParsed::NotHello => {}
    }
    match http::request(up) {
        http::Parsed::Request(r) => {
            let mut found = match r.host.clone() {
                Some(h) => Found::name(Carrier::Tcp, h, NameSource::Host),
                None => Found::nothing(Carrier::Tcp),
            };
            let host = r.host.as_deref().unwrap_or("(none)");
            found.evidence = format!("HTTP {} request for {host} to {}", r.method, key.server);
            if r.proxy {
                found.technique = Some(Technique::HttpProxy);
                found.evidence = format!(
                    "HTTP {} {host} sent to {}: a proxy request",
                    r.method, key.server
                );
            }
            return Some(found);
        }
        http::Parsed::Incomplete => return None,
        http::Parsed::NotHttp => {}
    }
    // SOCKS: the greeting, then the server's fitting reply.
    if f.socks.is_none() {
        f.socks = signature::socks_hello(up);
    }
    if let Some(hello) = &f.socks {
        if !f.down.bytes.is_empty() {
            if signature::socks_reply(hello, &f.down.bytes) {
                let mut found = Found::technique(Carrier::Tcp, Technique::SocksProxy);
                found.evidence = match hello {
                    signature::SocksHello::V5 { .. } => {
                        format!("SOCKS5 greeting to {} and its answer", key.server)
                    }
                    signature::SocksHello::V4 { destination } => {
                        format!(
                            "SOCKS4 request for {destination} to {} and its answer",
                            key.server
                        )
                    }
                };
                if let signature::SocksHello::V4 { destination } = hello
                    && let Some((host, _)) = destination.rsplit_once(':')
                    && host.parse::<IpAddr>().is_err()
                {
                    found.name = Some(host.to_owned());
                    found.name_source = Some(NameSource::Socks);
                }
                return Some(found);
            }
            f.socks = None;
        } else {
            return None;
        }
    }
    // OpenVPN over TCP, either side alone: a reset, then control messages under its
    // session ID.
    for (bytes, side) in [(up, "client"), (&f.down.bytes, "server")] {
        if signature::openvpn_tcp_side(bytes) {
            let mut found = Found::technique(Carrier::Tcp, Technique::Openvpn);
            found.evidence = format!(
                "OpenVPN session over TCP to {}: a hard reset from the {side}, then control messages under its session ID",
                key.server
            );
            return Some(found);
        }
    }
    // OpenVPN over TCP: a length-framed client reset, then the server's echo.
    if let Some(first) = signature::openvpn_tcp_packet(up)
        && let Some(session) = signature::openvpn_client_reset(first)
    {
        f.openvpn = Some(session);
        if let Some(reply) = signature::openvpn_tcp_packet(&f.down.bytes) {
            if signature::openvpn_server_reset(reply, &session) {
                let mut found = Found::technique(Carrier::Tcp, Technique::Openvpn);
                found.evidence =
                    format!("OpenVPN session reset to {} over TCP, answered", key.server);
                return Some(found);
            }
            // A server reset that does not show the client's session (tls-crypt): the
            // sides' control messages will tell.
            if signature::openvpn_reset(reply).is_some() {
                return None;
            }
            return Some(Found::nothing(Carrier::Tcp));
        }
        return None;
    }
    // DNS over TCP.
    if key.server.port() == 53
        && let Some(msg) = up.get(2..)
        && let Some(q) = dns::query(msg)
    {
        let mut found = Found::name(Carrier::Tcp, q.name.clone(), NameSource::Dns);
        found.evidence = format!("DNS query {} over TCP to {}", q.name, key.server);
        if !flow::local(key.server.ip()) {
            found.technique = Some(Technique::ExternalDns);
        }
        return Some(found);
    }
    // A fully encrypted proxy: random bytes from both sides' first data, and nothing above
    // recognised either. Only a connection seen from its SYNs shows its first data (the
    // middle of a TLS session is random too).
    if f.up.from_start() && encrypted::fully_encrypted(up) {
        if f.down.bytes.is_empty() {
            // Wait for the server's answer, unless the flow is being given up on.
            return give_up.then(|| Found::nothing(Carrier::Tcp));
        }
        if f.down.from_start() && encrypted::fully_encrypted(&f.down.bytes) {
            let mut found = Found::technique(Carrier::Tcp, Technique::EncryptedProxy);
            found.evidence = format!(
                "fully encrypted connection to {}: {} bytes from the client and {} from the server, \
                 neither with a readable byte pattern or a known protocol's header",
                key.server,
                up.len(),
                f.down.bytes.len()
            );
            return Some(found);
        }
    }
    // Nothing fits the client's first bytes; a server that speaks first (SSH) may still.
    if f.down.bytes.is_empty() && up.len() < 8 {
        return None;
    }
    Some(Found::nothing(Carrier::Tcp))
}

/// Classifies a datagram from the client.
pub(super) fn classify_udp_client(
    f: &mut flow::Flow,
    key: &FlowKey,
    payload: &[u8],
) -> Option<Found> {
    // QUIC Initial(s).
    let first_dcid = f.quic.as_ref().map(|(d, _)| d.clone());
    let initial = quic::client_initial(payload, first_dcid.as_deref());
    if let Ok(initial) = initial {
        let (_, crypto) = f
            .quic
            .get_or_insert_with(|| (initial.dcid.clone(), quic::Crypto::default()));
        for (offset, data) in &initial.crypto {
            crypto.add(*offset, data);
        }
        return match tls::from_handshake(crypto.contiguous(), tls::Transport::Quic) {
            TlsParsed::Hello(h) => Some(hello_found(h, Carrier::Quic, key)),
            TlsParsed::Incomplete { .. } => None,
            TlsParsed::NotHello => Some(Found::nothing(Carrier::Quic)),
        };
    }
    if let Some(sni) = gquic::sni(payload) {
        let mut found = Found::name(Carrier::Quic, sni.clone(), NameSource::Sni);
        found.evidence = format!("Google QUIC hello SNI {sni} to {}", key.server);
        return Some(found);
    }
    // A version whose Initials cannot be read (a new one, a private one; Google's clear
    // hellos are read above): still QUIC by its shape, a client's long header in a datagram
    // padded to 1,200 bytes (RFC 9000 §14.1), so the flow is judged by its address now (a
    // listed resolver on DoQ's port).
    if let Err(quic::QuicError::UnknownVersion(version)) = initial
        && version != 0
        && f.quic.is_none()
        && payload.len() >= quic::MIN_CLIENT_DATAGRAM
        && payload.first().is_some_and(|b| b & 0x40 != 0)
    {
        let mut found = Found::nothing(Carrier::Quic);
        found.evidence = format!(
            "QUIC long header of version {version:#010x}, whose Initial cannot be read, in a {}-byte datagram to {}",
            payload.len(),
            key.server
        );
        return Some(found);
    }
    if signature::wireguard(payload) == Some(signature::WireGuard::Initiation) {
        let mut found = Found::technique(Carrier::Udp, Technique::Wireguard);
        found.evidence = format!(
            "WireGuard handshake initiation (148 bytes, type 1) to {}",
            key.server
        );
        return Some(found);
    }
    let (marked, ike) = match payload {
        [0, 0, 0, 0, rest @ ..] => (true, rest),
        _ => (false, payload),
    };
    if signature::ike_initiation(ike) {
        let mut found = Found::technique(Carrier::Udp, Technique::Ipsec);
        found.evidence = format!("IKE exchange start to {}", key.server);
        return Some(found);
    }
    if marked && key.server.port() == 4500 && signature::ike_message(ike) {
        let mut found = Found::technique(Carrier::Udp, Technique::Ipsec);
        found.evidence = format!("IKE message on the NAT-traversal port to {}", key.server);
        return Some(found);
    }
    if key.server.port() == 4500 && signature::nat_t(payload) {
        let mut found = Found::technique(Carrier::Udp, Technique::Ipsec);
        found.evidence = format!(
            "IPsec NAT traversal (keepalive or ESP in UDP) to {}",
            key.server
        );
        return Some(found);
    }
    if let Some(q) = dns::query(payload)
        && signature::dnscrypt_certificate_name(&q.name)
    {
        let mut found = Found::technique(Carrier::Udp, Technique::Dnscrypt);
        found.evidence = dnscrypt_certificate_evidence(&q.name, key.server);
        return Some(found);
    }
    if let Some(session) = signature::openvpn_client_reset(payload) {
        f.openvpn = Some(session);
    }
    None
}

/// WireGuard seen mid-session (its handshake was before the capture began, or is only
/// repeated every two minutes): data messages whose receiver index stays the same in
/// each direction.
pub(super) fn wireguard_session(
    f: &mut flow::Flow,
    from_client: bool,
    payload: &[u8],
) -> Option<Found> {
    let index = signature::wireguard_data(payload)?;
    let side = usize::from(!from_client);
    let known = f.wg_index.get_mut(side)?;
    match known {
        Some(i) if *i != index => return None,
        _ => *known = Some(index),
    }
    f.wg_data += 1;
    (f.wg_data >= WG_DATA).then(|| {
        let mut found = Found::technique(Carrier::Udp, Technique::Wireguard);
        found.evidence = format!("{WG_DATA} WireGuard data messages with the same receiver index");
        found
    })
}

/// A call: STUN or TURN (its set-up, from either side), or RTP media from one side (a call
/// the capture joined late). Neither is a name or a technique: the flow is judged by the
/// server's address, whose listed network says whose call it is.
pub(super) fn call(
    f: &mut flow::Flow,
    from_client: bool,
    key: &FlowKey,
    payload: &[u8],
) -> Option<Found> {
    if let Some(message) = media::stun(payload) {
        let mut found = Found::nothing(Carrier::Udp);
        found.evidence = format!(
            "{} {} {}: the set-up of a call or a peer-to-peer link",
            message.words(),
            if from_client { "to" } else { "from" },
            key.server
        );
        return Some(found);
    }
    let stream = f.rtp.get_mut(usize::from(!from_client))?.push(payload)?;
    let mut found = Found::nothing(Carrier::Udp);
    found.evidence = format!(
        "RTP media (payload type {}, SSRC {:#010x}) {} {}: a call's voice or video",
        stream.payload_type,
        stream.ssrc,
        if from_client { "to" } else { "from" },
        key.server
    );
    Some(found)
}

/// What a DNSCrypt client's first question shows.
pub(super) fn dnscrypt_certificate_evidence(name: &str, server: SocketAddr) -> String {
    format!("DNS question for a DNSCrypt resolver's certificate ({name}) to {server}")
}

/// OpenVPN from either side's packets alone: a reset, then control messages under its
/// session ID.
pub(super) fn openvpn_session(
    f: &mut flow::Flow,
    from_client: bool,
    payload: &[u8],
) -> Option<Found> {
    let side = f.openvpn_sides.get_mut(usize::from(!from_client))?;
    side.push(payload).then(|| {
        let mut found = Found::technique(Carrier::Udp, Technique::Openvpn);
        found.evidence = format!(
            "OpenVPN session: a hard reset from the {}, then control messages under its session ID",
            if from_client { "client" } else { "server" }
        );
        found
    })
}

/// Classifies a datagram from the server (answers that confirm what the client began).
pub(super) fn classify_udp_server(
    f: &mut flow::Flow,
    key: &FlowKey,
    payload: &[u8],
) -> Option<Found> {
    if signature::dnscrypt_answer(payload) {
        let mut found = Found::technique(Carrier::Udp, Technique::Dnscrypt);
        found.evidence = format!(
            "DNSCrypt answer (resolver magic r6fnvWj8) from {}",
            key.server
        );
        return Some(found);
    }
    if let Some(session) = &f.openvpn
        && signature::openvpn_server_reset(payload, session)
    {
        let mut found = Found::technique(Carrier::Udp, Technique::Openvpn);
        found.evidence = "OpenVPN session reset, answered by the server".to_owned();
        return Some(found);
    }
    if signature::wireguard(payload) == Some(signature::WireGuard::Response) {
        let mut found = Found::technique(Carrier::Udp, Technique::Wireguard);
        found.evidence = "WireGuard handshake response (92 bytes, type 2)".to_owned();
        return Some(found);
    }
    None
}
