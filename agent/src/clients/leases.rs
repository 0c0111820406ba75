//! DHCP lease files: which MAC and host name hold which address. Text in, leases out; no I/O.
//!
//! Lease files are written by the DHCP server from what devices send (host names are chosen by
//! pupils), so every line is treated as hostile: bad lines are skipped, names are bounded.

use std::collections::HashMap;
use std::net::IpAddr;

use jiff::Timestamp;
use schoolgate_engine::MacAddr;
use schoolgate_engine::policy::gateway::LeaseFormat;

use schoolgate_contract::text::bounded;

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: IpAddr,
    pub mac: Option<MacAddr>,
    pub hostname: Option<String>,
    /// When it ends; `None` for a lease that never does.
    pub expires: Option<Timestamp>,
}

impl Lease {
    pub fn is_current(&self, now: Timestamp) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

/// Parses a lease file in `format`. Lines that do not parse are skipped.
pub fn parse(format: LeaseFormat, text: &str) -> Vec<Lease> {
    match format {
        LeaseFormat::Dnsmasq => parse_dnsmasq(text),
        LeaseFormat::Kea => parse_kea(text),
    }
}

/// dnsmasq: `expiry mac ip hostname client-id` (IPv4), or `expiry iaid ip hostname duid`
/// after a `duid` line (IPv6, no MAC). Expiry 0 means never; hostname `*` means none.
fn parse_dnsmasq(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let expiry: i64 = f.next()?.parse().ok()?;
            let second = f.next()?;
            let ip: IpAddr = f.next()?.parse().ok()?;
            let host = f.next();
            Some(Lease {
                ip,
                mac: second.parse().ok(),
                hostname: host.filter(|h| *h != "*").map(bounded),
                expires: (expiry != 0)
                    .then(|| Timestamp::from_second(expiry).ok())
                    .flatten(),
            })
        })
        .collect()
}

/// Kea memfile CSV. Columns are found by the header's names, so both the v4 and v6 files and
/// later versions with more columns read the same. Kea appends a row each time a lease
/// changes: the last row for an address wins. State 0 is an active lease. Leases come out in
/// address order.
fn parse_kea(text: &str) -> Vec<Lease> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(address), Some(expire)) = (col("address"), col("expire")) else {
        return Vec::new();
    };
    let (hwaddr, hostname, state) = (col("hwaddr"), col("hostname"), col("state"));
    let mut by_ip: HashMap<IpAddr, Lease> = HashMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let field = |i: Option<usize>| i.and_then(|i| fields.get(i)).map(|f| f.trim());
        let Some(ip) = field(Some(address)).and_then(|a| a.parse::<IpAddr>().ok()) else {
            continue;
        };
        let Some(expires) = field(Some(expire)).and_then(|e| e.parse::<i64>().ok()) else {
            continue;
        };
        if field(state).is_some_and(|s| s != "0") {
            by_ip.remove(&ip);
            continue;
        }
        let hostname = field(hostname)
            // Kea escapes commas in host names as `&#x2c`.
            .map(|h| h.replace("&#x2c", ","))
            .map(|h| h.trim_end_matches('.').to_owned())
            .filter(|h| !h.is_empty())
            .map(|h| bounded(&h));
        by_ip.insert(
            ip,
            Lease {
                ip,
                mac: field(hwaddr).and_then(|m| m.parse().ok()),
                hostname,
                // Kea writes 0 expiry for leases that never end (valid lifetime infinite).
                expires: (expires != 0)
                    .then(|| Timestamp::from_second(expires).ok())
                    .flatten(),
            },
        );
    }
    let mut leases: Vec<Lease> = by_ip.into_values().collect();
    leases.sort_by_key(|l| l.ip);
    leases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsmasq_leases() {
        let text = "\
1790000000 52:54:00:aa:bb:01 10.77.0.10 pupil-laptop 01:52:54:00:aa:bb:01
0 52:54:00:aa:bb:02 10.77.0.11 * *
garbage line
1790000000 not-a-mac 10.77.0.12 phone *
duid 00:01:00:01:2c:3d:4e:5f:52:54:00:aa:bb:01
1790000000 1234 2001:db8:77::10 pupil-laptop 00:01:00:01
";
        let l = parse(LeaseFormat::Dnsmasq, text);
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].mac, "52:54:00:aa:bb:01".parse().ok());
        assert_eq!(l[0].hostname.as_deref(), Some("pupil-laptop"));
        assert_eq!(l[0].expires, Timestamp::from_second(1_790_000_000).ok());
        assert_eq!(l[1].hostname, None);
        assert_eq!(l[1].expires, None);
        assert_eq!(l[2].mac, None);
        assert_eq!(l[3].ip, "2001:db8:77::10".parse::<IpAddr>().unwrap());
        assert!(l[0].is_current(Timestamp::from_second(1_789_999_999).unwrap()));
        assert!(!l[0].is_current(Timestamp::from_second(1_790_000_000).unwrap()));
    }

    #[test]
    fn kea_leases_last_row_wins() {
        let text = "\
address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id
10.77.0.20,52:54:00:5a:00:01,,3600,1790000000,1,0,0,staff-laptop.,0,,0
10.77.0.21,52:54:00:5a:00:02,,3600,1790000000,1,0,0,a&#x2cb,0,,0
10.77.0.20,52:54:00:5a:00:01,,3600,1790003600,1,0,0,staff-laptop.,0,,0
10.77.0.22,52:54:00:5a:00:03,,3600,1790000000,1,0,0,gone,0,,0
10.77.0.22,52:54:00:5a:00:03,,3600,1790000000,1,0,0,gone,2,,0
10.77.0.x,bad,,,,,,,,,,
";
        let l = parse(LeaseFormat::Kea, text);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[0].hostname.as_deref(), Some("staff-laptop"));
        assert_eq!(l[0].expires, Timestamp::from_second(1_790_003_600).ok());
        assert_eq!(l[1].hostname.as_deref(), Some("a,b"));
        assert!(parse(LeaseFormat::Kea, "").is_empty());
        assert!(parse(LeaseFormat::Kea, "no,columns\n1,2").is_empty());
    }
}
