//! Group membership as disjoint address ranges, for nftables interval maps.
//!
//! The policy places a device by its own entry first, then by the most specific network that
//! holds its address. nftables interval maps refuse overlapping elements, so nested networks
//! (a /24 inside a /16 of another group) and device addresses inside networks are cut here
//! into ranges that do not overlap, each carrying the group the policy would pick for every
//! address in it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// An inclusive range of addresses of one family, as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub first: u128,
    pub last: u128,
}

/// A range and the value every address in it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<T> {
    pub span: Span,
    pub value: T,
}

impl Span {
    /// Every address of `net`.
    pub fn of(net: &IpNet) -> Self {
        match net {
            IpNet::V4(n) => Self {
                first: u128::from(u32::from(n.network())),
                last: u128::from(u32::from(n.broadcast())),
            },
            IpNet::V6(n) => Self {
                first: u128::from(n.network()),
                last: u128::from(n.broadcast()),
            },
        }
    }

    fn single(ip: IpAddr) -> Self {
        let v = match ip {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        Self { first: v, last: v }
    }
}

/// Cuts `entries` (in priority order: earlier entries win where they overlap) into disjoint
/// pieces of one family, sorted by address. Adjacent pieces with the same value are joined.
pub fn disjoint<T: Copy + Eq>(entries: &[(Span, T)]) -> Vec<Piece<T>> {
    let mut taken: Vec<Piece<T>> = Vec::new();
    for &(span, value) in entries {
        // What is left of `span` once every piece already taken is removed.
        let mut free = vec![span];
        for t in &taken {
            free = free.into_iter().flat_map(|f| subtract(f, t.span)).collect();
            if free.is_empty() {
                break;
            }
        }
        taken.extend(free.into_iter().map(|span| Piece { span, value }));
    }
    taken.sort_by_key(|p| p.span);
    let mut joined: Vec<Piece<T>> = Vec::with_capacity(taken.len());
    for p in taken {
        match joined.last_mut() {
            Some(last)
                if last.value == p.value && last.span.last.checked_add(1) == Some(p.span.first) =>
            {
                last.span.last = p.span.last;
            }
            _ => joined.push(p),
        }
    }
    joined
}

/// The address `v` stands for, in the family given.
pub fn address(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX)))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// Sorts `spans` and joins those that overlap or touch.
pub fn merged(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if last.last.checked_add(1).is_none_or(|n| n >= s.first) => {
                last.last = last.last.max(s.last);
            }
            _ => out.push(s),
        }
    }
    out
}

/// `a` without `b`: zero, one or two spans.
pub fn subtract(a: Span, b: Span) -> Vec<Span> {
    if b.last < a.first || b.first > a.last {
        return vec![a];
    }
    let mut out = Vec::with_capacity(2);
    if b.first > a.first {
        out.push(Span {
            first: a.first,
            last: b.first - 1,
        });
    }
    if b.last < a.last {
        out.push(Span {
            first: b.last + 1,
            last: a.last,
        });
    }
    out
}

/// Group membership by address, per family: device entries' addresses first, then networks,
/// most specific first (the order the policy identifies a client in).
pub fn by_address<T: Copy + Eq>(
    devices: &[(IpAddr, T)],
    networks: &[(IpNet, T)],
) -> (Vec<Piece<T>>, Vec<Piece<T>>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for &(ip, value) in devices {
        let ip = ip.to_canonical();
        let list = if ip.is_ipv4() { &mut v4 } else { &mut v6 };
        list.push((Span::single(ip), value));
    }
    let mut nets: Vec<&(IpNet, T)> = networks.iter().collect();
    nets.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
    for (net, value) in nets {
        let list = match net {
            IpNet::V4(_) => &mut v4,
            IpNet::V6(_) => &mut v6,
        };
        list.push((Span::of(net), *value));
    }
    (disjoint(&v4), disjoint(&v6))
}

/// An IPv4 span in nftables syntax: one address, a prefix where the span is exactly one, or
/// `first-last`.
pub fn v4_text(s: Span) -> String {
    let a = |v: u128| Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX));
    span_text(s, 32, |v| a(v).to_string())
}

/// An IPv6 span in nftables syntax.
pub fn v6_text(s: Span) -> String {
    span_text(s, 128, |v| Ipv6Addr::from(v).to_string())
}

fn span_text(s: Span, bits: u32, addr: impl Fn(u128) -> String) -> String {
    if s.first == s.last {
        return addr(s.first);
    }
    let size = s.last.wrapping_sub(s.first).wrapping_add(1);
    if size.is_power_of_two() && s.first.is_multiple_of(size) {
        let prefix = bits - size.trailing_zeros();
        return format!("{}/{prefix}", addr(s.first));
    }
    if s.first == 0 && s.last == u128::MAX >> (128 - bits) {
        return format!("{}/0", addr(0));
    }
    format!("{}-{}", addr(s.first), addr(s.last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn nested_networks_and_devices_become_disjoint_ranges() {
        let devices = [("10.0.5.7".parse().unwrap(), 'd')];
        let networks = [(net("10.0.0.0/16"), 'a'), (net("10.0.5.0/24"), 'b')];
        let (v4, v6) = by_address(&devices, &networks);
        assert!(v6.is_empty());
        let text: Vec<(String, char)> = v4.iter().map(|p| (v4_text(p.span), p.value)).collect();
        assert_eq!(
            text,
            vec![
                ("10.0.0.0-10.0.4.255".to_owned(), 'a'),
                ("10.0.5.0-10.0.5.6".to_owned(), 'b'),
                ("10.0.5.7".to_owned(), 'd'),
                ("10.0.5.8-10.0.5.255".to_owned(), 'b'),
                ("10.0.6.0-10.0.255.255".to_owned(), 'a'),
            ]
        );
    }

    #[test]
    fn whole_prefixes_print_as_prefixes_and_neighbours_join() {
        let networks = [
            (net("10.1.0.0/25"), 1),
            (net("10.1.0.128/25"), 1),
            (net("2001:db8:77::/64"), 2),
        ];
        let (v4, v6) = by_address(&[], &networks);
        assert_eq!(v4.len(), 1);
        assert_eq!(v4_text(v4[0].span), "10.1.0.0/24");
        assert_eq!(v6_text(v6[0].span), "2001:db8:77::/64");
    }

    #[test]
    fn every_address_keeps_the_group_the_policy_picks() {
        // A brute-force check on a small space: the most specific entry wins everywhere.
        let networks = [
            (net("10.0.0.0/28"), 1),
            (net("10.0.0.4/30"), 2),
            (net("10.0.0.8/29"), 3),
            (net("10.0.0.9/32"), 4),
        ];
        let devices = [("10.0.0.5".parse().unwrap(), 9)];
        let (v4, _) = by_address(&devices, &networks);
        for i in 0..16u32 {
            let ip = Ipv4Addr::from(0x0a00_0000 + i);
            let want = if i == 5 {
                9
            } else {
                networks
                    .iter()
                    .filter(|(n, _)| n.contains(&IpAddr::V4(ip)))
                    .max_by_key(|(n, _)| n.prefix_len())
                    .unwrap()
                    .1
            };
            let v = u128::from(u32::from(ip));
            let got: Vec<_> = v4
                .iter()
                .filter(|p| p.span.first <= v && v <= p.span.last)
                .map(|p| p.value)
                .collect();
            assert_eq!(got, vec![want], "{ip}");
        }
        // Disjoint and sorted.
        for w in v4.windows(2) {
            assert!(w[0].span.last < w[1].span.first);
        }
    }
}
