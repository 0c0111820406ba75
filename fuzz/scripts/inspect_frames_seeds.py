#!/usr/bin/env python3
"""Writes fuzz/seeds/inspect_frames/: one seed per frame shape the inspector reads, built
from the protocols' specifications (no capture is copied). A seed is a run of frames, each
preceded by its length in one byte (so a frame is at most 255 bytes: longer ones are cut,
as the fuzzer's inputs are). Run from the repository: python3 fuzz/scripts/inspect_frames_seeds.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(__file__), "..", "seeds", "inspect_frames")
PUPIL4, SERVER4 = bytes([10, 10, 3, 7]), bytes([192, 0, 2, 10])
PUPIL6 = bytes.fromhex("fd000010000000000000000000000007")
SERVER6 = bytes.fromhex("20010db8000000000000000000000010")
MAC_A, MAC_B = bytes.fromhex("02000000000a"), bytes.fromhex("02000000000b")


def ether(payload, ethertype=0x0800, vlan=None):
    head = MAC_B + MAC_A
    if vlan is not None:
        head += struct.pack(">HH", 0x8100, vlan)
    return head + struct.pack(">H", ethertype) + payload


def sll(payload, proto=0x0800):
    # Linux cooked capture v1: packet type, ARPHRD, address length, address (8), protocol.
    return struct.pack(">HHH", 0, 1, 6) + MAC_A + b"\0\0" + struct.pack(">H", proto) + payload


def null(payload, family=2):
    return struct.pack("<I", family) + payload


def ipv4(proto, payload, src=PUPIL4, dst=SERVER4, flags_frag=0x4000, options=b""):
    ihl = 5 + len(options) // 4
    return struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), 1,
                       flags_frag, 64, proto, 0, src, dst) + options + payload


def ipv6(next_header, payload, src=PUPIL6, dst=SERVER6):
    return struct.pack(">IHBB16s16s", 0x60000000, len(payload), next_header, 64, src, dst) + payload


def udp(sport, dport, payload):
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport, dport, payload=b"", flags=0x18, seq=1, ack=0):
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


def dns_query(name, qtype=1):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + struct.pack(">HH", qtype, 1)


def client_hello(sni, alpn=b"h2"):
    name = sni.encode()
    ext_sni = struct.pack(">HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    protos = bytes([len(alpn)]) + alpn
    ext_alpn = struct.pack(">HHH", 16, len(protos) + 2, len(protos)) + protos
    ext_versions = struct.pack(">HHB", 43, 3, 2) + b"\x03\x04"
    exts = ext_sni + ext_alpn + ext_versions
    body = b"\x03\x03" + bytes(32) + b"\0" + struct.pack(">H", 2) + b"\x13\x01" + b"\x01\x00"
    body += struct.pack(">H", len(exts)) + exts
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def frames(*fs):
    out = b""
    for f in fs:
        f = f[:255]
        out += bytes([len(f)]) + f
    return out


def syn(sport, dport, v6=False):
    seg = tcp(sport, dport, flags=0x02, seq=0)
    return ipv6(6, seg) if v6 else ipv4(6, seg)


SEEDS = {
    # DNS over UDP, plain Ethernet.
    "ethernet_udp_dns": frames(ether(ipv4(17, udp(40000, 53, dns_query("www.instagram.com"))))),
    # A TLS handshake's start in a VLAN: SYN, the server's SYN-ACK, the ClientHello.
    "vlan_tcp_tls_hello": frames(
        ether(syn(50000, 443), vlan=20),
        ether(ipv4(6, tcp(443, 50000, flags=0x12, seq=0, ack=1), src=SERVER4, dst=PUPIL4), vlan=20),
        ether(ipv4(6, tcp(50000, 443, client_hello("www.tiktok.com"), ack=1)), vlan=20)),
    # The same over IPv6 in a Linux cooked capture, on a port that is not 443.
    "sll_ipv6_tls_other_port": frames(
        sll(syn(50001, 8443, v6=True), 0x86DD),
        sll(ipv6(6, tcp(50001, 8443, client_hello("proxy.example", b"http/1.1"), ack=1)), 0x86DD)),
    # HTTP with a Host header, from a BSD loopback capture.
    "null_http_get": frames(
        null(syn(50002, 80)),
        null(ipv4(6, tcp(50002, 80, b"GET / HTTP/1.1\r\nHost: www.facebook.com\r\n\r\n", ack=1)))),
    # A QUIC Initial's long header (version 1, DCID 8, token 0), cut as a frame is.
    "raw_ipv6_quic_initial": frames(ipv6(17, udp(50003, 443, b"\xc3\x00\x00\x00\x01\x08"
                                                   + bytes(range(8)) + b"\x00\x00" + b"\x44\xd0"
                                                   + bytes(range(200))))),
    # ICMP echo request and a reply carrying a different payload (how ICMP tunnels look).
    "ethernet_icmp_echoes": frames(
        ether(ipv4(1, struct.pack(">BBHHH", 8, 0, 0, 7, 1) + b"abcdefghijklmnop" * 4)),
        ether(ipv4(1, struct.pack(">BBHHH", 0, 0, 0, 7, 1) + bytes(range(64)), src=SERVER4, dst=PUPIL4))),
    # ICMPv6 echo.
    "ethernet_icmpv6_echo": frames(ether(ipv6(58, struct.pack(">BBHHH", 128, 0, 0, 7, 1) + bytes(48)), 0x86DD)),
    # WireGuard handshake initiation (type 1, 148 bytes).
    "raw_ipv4_wireguard_init": frames(ipv4(17, udp(50004, 51820, b"\x01\0\0\0" + bytes(range(144))))),
    # OpenVPN over UDP: P_CONTROL_HARD_RESET_CLIENT_V2 with a session id.
    "ethernet_openvpn_reset": frames(ether(ipv4(17, udp(50005, 1194, b"\x38" + bytes(range(8)) + b"\0\0\0\0\0")))),
    # DNS over TCP (length-prefixed) and DNS over TLS's first bytes.
    "ethernet_dns_tcp_and_dot": frames(
        ether(syn(50006, 53)),
        ether(ipv4(6, tcp(50006, 53, struct.pack(">H", 33) + dns_query("discord.com"), ack=1))),
        ether(syn(50007, 853)),
        ether(ipv4(6, tcp(50007, 853, client_hello("dns.google", b"dot"), ack=1)))),
    # SSH and SOCKS5 as a client opens them.
    "ethernet_ssh_and_socks": frames(
        ether(ipv4(6, tcp(50008, 22, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", ack=1))),
        ether(ipv4(6, tcp(50009, 1080, b"\x05\x01\x00", ack=1))),
        ether(ipv4(6, tcp(1080, 50009, b"\x05\x00", ack=1), src=SERVER4, dst=PUPIL4))),
    # IPv4 fragments (first with MF, then the rest) and a header with options.
    "ethernet_ipv4_fragments_and_options": frames(
        ether(ipv4(17, udp(50010, 53, dns_query("a.example"))[:16], flags_frag=0x2000)),
        ether(ipv4(17, b"tail", flags_frag=0x0002)),
        ether(ipv4(17, udp(50011, 53, dns_query("b.example")), options=b"\x94\x04\x00\x00"))),
    # IPv6 with a hop-by-hop header before UDP, and an IPv6 fragment header.
    "ethernet_ipv6_extension_headers": frames(
        ether(ipv6(0, b"\x11\x00" + bytes(6) + udp(50012, 53, dns_query("c.example"))), 0x86DD),
        ether(ipv6(44, b"\x11\x00\x00\x01\x00\x00\x00\x2a" + udp(50013, 53, dns_query("d.example"))), 0x86DD)),
    # Not IP at all: ARP, and an Ethernet type nobody reads.
    "ethernet_not_ip": frames(ether(bytes(28), 0x0806), ether(bytes(40), 0x88CC)),
    # Cut everywhere: a bare Ethernet header, an IPv4 header claiming more than it has, a TCP
    # header with a data offset past its end.
    "cut_short": frames(ether(b""), ether(ipv4(6, b"")[:12]),
                        ether(ipv4(6, struct.pack(">HHIIBB", 1, 2, 0, 0, 0xF0, 2)))),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"{len(SEEDS)} seeds in {os.path.normpath(OUT)}")
