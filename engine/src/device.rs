//! Who is asking: a client's addresses, and the MAC address type the policy uses.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// A string that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a MAC address (expected six hex pairs, e.g. 52:54:00:12:34:56)")]
pub struct MacParseError {
    pub value: String,
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Accepts `52:54:00:12:34:56`, `52-54-00-12-34-56` and `5254.0012.3456`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError {
            value: s.to_owned(),
        };
        let t = s.trim();
        let sep = [':', '-', '.'].into_iter().find(|c| t.contains(*c));
        let groups: Vec<&str> = match sep {
            Some(c) => t.split(c).collect(),
            None => vec![t],
        };
        let shape_ok = match groups.len() {
            6 => sep != Some('.') && groups.iter().all(|g| g.len() == 2),
            3 => sep == Some('.') && groups.iter().all(|g| g.len() == 4),
            1 => t.len() == 12,
            _ => false,
        };
        let hex: String = groups.concat();
        if !shape_ok || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(err());
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(i * 2..i * 2 + 2).ok_or_else(err)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| err())?;
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The addresses the gateway knows for a client. The IP comes from the packet; the MAC, where
/// known, from the neighbour table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub mac: Option<MacAddr>,
}

impl Client {
    pub fn new(ip: IpAddr, mac: Option<MacAddr>) -> Self {
        // An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d) is the IPv4 client.
        Self {
            ip: Some(ip.to_canonical()),
            mac,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_forms() {
        let want = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        for s in [
            "52:54:00:12:34:56",
            "52-54-00-12-34-56",
            "5254.0012.3456",
            "525400123456",
            " 52:54:00:12:34:56 ",
            "52:54:00:12:34:56".to_uppercase().as_str(),
        ] {
            assert_eq!(s.parse::<MacAddr>(), Ok(want), "{s}");
        }
        for s in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "52:54:00:12:34:5g",
            "5:25:40:01:23:456",
            "52::54:00:12:34:56",
        ] {
            assert!(s.parse::<MacAddr>().is_err(), "{s}");
        }
        assert_eq!(want.to_string(), "52:54:00:12:34:56");
    }

    #[test]
    fn v4_mapped_clients_are_v4() {
        let c = Client::new("::ffff:10.10.3.7".parse().unwrap(), None);
        assert_eq!(c.ip, Some("10.10.3.7".parse().unwrap()));
    }
}
