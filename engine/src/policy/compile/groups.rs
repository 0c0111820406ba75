//! Groups: their devices and networks, and lists of group names.

use super::*;

impl Compiler<'_> {
    #[allow(clippy::type_complexity)]
    pub(super) fn groups(
        &mut self,
        raw: &Ordered<S<crate::policy::raw::RawGroup>>,
        schedules: &HashMap<String, ScheduleId>,
    ) -> (
        Vec<Group>,
        Vec<Device>,
        Vec<(IpNet, GroupId)>,
        HashMap<String, GroupId>,
        HashMap<String, DeviceId>,
    ) {
        let mut groups: Vec<Group> = Vec::new();
        let mut devices: Vec<Device> = Vec::new();
        let mut networks: Vec<(IpNet, GroupId)> = Vec::new();
        let mut names = HashMap::new();
        let mut device_names: HashMap<String, DeviceId> = HashMap::new();
        let mut seen_mac: HashMap<MacAddr, DeviceId> = HashMap::new();
        let mut seen_off_site: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut seen_ip: HashMap<IpAddr, DeviceId> = HashMap::new();
        for (key, g) in &raw.0 {
            let reserved = [(ALL, "`all` is built in and means every group")];
            if !self.key_name(key, &reserved) {
                continue;
            }
            let gid = GroupId(u32::try_from(groups.len()).unwrap_or(u32::MAX));
            let report_presence = g.value.report_presence.as_ref().and_then(|w| {
                let found = schedules.get(w.value.trim()).copied();
                if found.is_none() {
                    let expected = one_of(schedules, None);
                    self.error(
                        w,
                        ErrorKind::Unknown {
                            what: "schedule",
                            name: w.value.clone(),
                            expected,
                        },
                    );
                }
                found
            });
            let audience = match g.value.audience.as_ref() {
                None => Audience::Pupils,
                Some(a) => match a.value.trim() {
                    "pupils" => Audience::Pupils,
                    "staff" => Audience::Staff,
                    _ => {
                        self.error(
                            a,
                            ErrorKind::Choice {
                                what: "audience",
                                value: a.value.clone(),
                                expected: "pupils or staff",
                            },
                        );
                        Audience::Pupils
                    }
                },
            };
            let quic = g.value.quic.as_ref().and_then(|q| match q.value.trim() {
                "block" => Some(Quic::Block),
                "allow" => Some(Quic::Allow),
                _ => {
                    self.error(
                        q,
                        ErrorKind::Choice {
                            what: "quic",
                            value: q.value.clone(),
                            expected: "block or allow",
                        },
                    );
                    None
                }
            });
            let directory = g
                .value
                .directory
                .iter()
                .filter_map(|d| self.directory_group(d))
                .collect();
            let users = g
                .value
                .users
                .iter()
                .filter_map(|u| self.username(u))
                .collect();
            groups.push(Group {
                name: key.value.clone(),
                description: g.value.description.clone(),
                networks: Vec::new(),
                safe_search: g.value.safe_search,
                report_presence,
                audience,
                quic,
                directory,
                users,
            });
            names.insert(key.value.clone(), gid);
            for n in &g.value.networks {
                let Some(net) = self.network(n) else { continue };
                if let Some((_, other)) = networks.iter().find(|(m, _)| *m == net) {
                    let other = group_name(&groups, *other);
                    self.error(
                        n,
                        ErrorKind::DuplicateNetwork {
                            value: net.to_string(),
                            group: key.value.clone(),
                            other,
                        },
                    );
                    continue;
                }
                networks.push((net, gid));
                if let Some(group) = groups.last_mut() {
                    group.networks.push(net);
                }
            }
            for d in &g.value.devices {
                let name = d.value.name.value.trim().to_owned();
                if d.value.mac.is_none() && d.value.ip.is_none() && d.value.off_site_id.is_none() {
                    self.error(d, ErrorKind::DeviceWithoutAddress { name: name.clone() });
                    continue;
                }
                let mut ok = true;
                let mut mac = None;
                if let Some(m) = &d.value.mac {
                    match m.value.parse::<MacAddr>() {
                        Ok(parsed) => match seen_mac.get(&parsed) {
                            Some(other) => {
                                let kind = duplicate_device(
                                    &devices,
                                    &groups,
                                    format!("MAC {parsed}"),
                                    &name,
                                    gid,
                                    *other,
                                );
                                self.error(m, kind);
                                ok = false;
                            }
                            None => mac = Some(parsed),
                        },
                        Err(_) => {
                            self.error(
                                m,
                                ErrorKind::Mac {
                                    value: m.value.clone(),
                                },
                            );
                            ok = false;
                        }
                    }
                }
                let mut ip = None;
                if let Some(s) = &d.value.ip {
                    match s.value.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
                        Ok(parsed) => match seen_ip.get(&parsed) {
                            Some(other) => {
                                let kind = duplicate_device(
                                    &devices,
                                    &groups,
                                    format!("IP {parsed}"),
                                    &name,
                                    gid,
                                    *other,
                                );
                                self.error(s, kind);
                                ok = false;
                            }
                            None => ip = Some(parsed),
                        },
                        Err(_) => {
                            self.error(
                                s,
                                ErrorKind::Ip {
                                    value: s.value.clone(),
                                },
                            );
                            ok = false;
                        }
                    }
                }
                let mut off_site_id = None;
                if let Some(o) = &d.value.off_site_id {
                    let id = o.value.trim().to_ascii_lowercase();
                    if !is_off_site_id(&id) {
                        self.error(
                            o,
                            ErrorKind::OffSiteId {
                                value: o.value.clone(),
                            },
                        );
                        ok = false;
                    } else if !seen_off_site.insert(id.clone()) {
                        self.error(
                            o,
                            ErrorKind::Duplicate {
                                what: "off-site id",
                                name: id,
                            },
                        );
                        ok = false;
                    } else {
                        off_site_id = Some(id);
                    }
                }
                if device_names.contains_key(&name) {
                    self.error(
                        &d.value.name,
                        ErrorKind::Duplicate {
                            what: "device",
                            name: name.clone(),
                        },
                    );
                    ok = false;
                }
                if !ok {
                    continue;
                }
                let did = DeviceId(u32::try_from(devices.len()).unwrap_or(u32::MAX));
                if let Some(mac) = mac {
                    seen_mac.insert(mac, did);
                }
                if let Some(ip) = ip {
                    seen_ip.insert(ip, did);
                }
                device_names.insert(name.clone(), did);
                devices.push(Device {
                    name,
                    owner: d.value.owner.clone(),
                    mac,
                    ip,
                    group: gid,
                    off_site_id,
                });
            }
        }
        // Most specific first, so the first network containing an address is the one to use.
        networks.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        (groups, devices, networks, names, device_names)
    }

    pub(super) fn network(&mut self, s: &S<String>) -> Option<IpNet> {
        let text = s.value.trim();
        let net = match text.parse::<IpNet>() {
            Ok(n) => n,
            // A bare address is a network of one.
            Err(_) => match text.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip.to_canonical()),
                Err(_) => {
                    self.error(
                        s,
                        ErrorKind::Network {
                            value: s.value.clone(),
                        },
                    );
                    return None;
                }
            },
        };
        if net.trunc() != net {
            self.error(
                s,
                ErrorKind::NetworkHostBits {
                    value: text.to_owned(),
                    suggestion: net.trunc().to_string(),
                },
            );
            return None;
        }
        Some(net)
    }

    pub(super) fn group_list(
        &mut self,
        list: &[S<String>],
        names: &Names,
        allow_all: bool,
    ) -> Option<Groups> {
        let mut ids = Vec::new();
        let mut all = false;
        for g in list {
            let name = g.value.trim();
            if name == ALL && allow_all {
                all = true;
            } else if let Some(id) = names.groups.get(name) {
                ids.push(*id);
            } else {
                let extra = if allow_all { Some(ALL) } else { None };
                self.error(
                    g,
                    ErrorKind::Unknown {
                        what: "group",
                        name: name.to_owned(),
                        expected: one_of(&names.groups, extra),
                    },
                );
            }
        }
        Some(if all { Groups::All } else { Groups::Some(ids) })
    }
}

fn duplicate_device(
    devices: &[Device],
    groups: &[Group],
    key: String,
    name: &str,
    group: GroupId,
    other: DeviceId,
) -> ErrorKind {
    let (other_name, other_group) = devices
        .get(other.index())
        .map(|o| (o.name.clone(), group_name(groups, o.group)))
        .unwrap_or_default();
    ErrorKind::DuplicateDevice {
        key,
        name: name.to_owned(),
        group: group_name(groups, group),
        other: other_name,
        other_group,
    }
}

impl Compiler<'_> {
    /// A directory group's name as written (trimmed); empty or over-long names are errors.
    pub(super) fn directory_group(&mut self, name: &S<String>) -> Option<String> {
        let text = name.value.trim();
        if text.is_empty() || text.len() > MAX_PERSON_TEXT || text.chars().any(char::is_control) {
            self.error(
                name,
                ErrorKind::DirectoryName {
                    value: name.value.clone(),
                },
            );
            return None;
        }
        Some(text.to_owned())
    }

    /// A username, lower-cased; one with spaces or control characters, empty or over-long is
    /// an error.
    pub(super) fn username(&mut self, name: &S<String>) -> Option<String> {
        let text = name.value.trim();
        if text.is_empty()
            || text.len() > MAX_PERSON_TEXT
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            self.error(
                name,
                ErrorKind::Username {
                    value: name.value.clone(),
                },
            );
            return None;
        }
        Some(text.to_lowercase())
    }
}

/// The longest username, directory group or class name a policy may give, in bytes.
const MAX_PERSON_TEXT: usize = 128;

/// Whether `id` can be a device's off-site id: one DNS label (it is the first label of the
/// name a device asks DNS over TLS by), of lower-case letters, digits and hyphens, 1 to 63
/// long, neither starting nor ending with a hyphen.
pub(super) fn is_off_site_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}
