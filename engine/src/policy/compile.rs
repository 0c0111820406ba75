//! The second stage of loading: raw YAML values → a validated [`Policy`].
//!
//! Every check records its error with the value's location and carries on, so one run of
//! `check` shows everything that needs fixing. A value that failed is left out and later
//! checks that depend on it stay quiet rather than repeat the complaint.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::{TimeZone, TimeZoneDatabase};

use super::error::{ErrorKind, Location, PolicyError, PolicyErrors};
use super::gateway::{
    BlockPage, BlockResponse, Console, DEFAULT_RATE_LIMIT, DEFAULT_STATE_DIR, Defences, Dns,
    Firewall, Gateway, LeaseFile, LeaseFormat, OnStop, is_interface_name, parse_upstream,
};
use super::raw::{Ordered, RawGateway, RawPolicy, S};
use super::{
    Action, Audience, Bypass, Device, DeviceId, Exception, Group, GroupId, Groups, ListSource,
    Policy, Quic, Response, Rule, RuleId, ScheduleId, Target,
};
use crate::calendar::{Calendar, DateSpan};
use crate::device::MacAddr;
use crate::domain::{DomainIndex, Listed, TargetId, parse_entry};
use crate::instant::parse_instant;
use crate::schedule::{Days, SECONDS_PER_DAY, Schedule, TimeRange};
use crate::technique::Technique;

/// The longest a term may be, in days.
const MAX_TERM_DAYS: i32 = 366;

/// List files can be long and machine-made; past this many errors in one, the rest are counted.
const MAX_ERRORS_PER_LIST: usize = 20;

/// The time zone database compiled into the program, so that loading a policy reads no files
/// and gives the same answer on every machine.
fn tzdb() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

pub(super) fn from_yaml(
    text: &str,
    file: &Path,
    lists: &dyn ListSource,
) -> Result<Policy, PolicyErrors> {
    let file_name: Arc<str> = file.display().to_string().into();
    let raw: RawPolicy = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return Err(PolicyErrors(vec![yaml_error(&file_name, &e)])),
    };
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cx = Compiler {
        file: file_name,
        base,
        lists,
        errors: Vec::new(),
    };
    let policy = cx.policy(raw);
    if cx.errors.is_empty() {
        Ok(policy)
    } else {
        Err(PolicyErrors(cx.errors))
    }
}

fn yaml_error(file: &Arc<str>, e: &serde_saphyr::Error) -> PolicyError {
    let (line, column) = e
        .location()
        .map_or((1, 1), |l| (l.line().max(1), l.column().max(1)));
    let text = e.without_snippet().to_string();
    // serde-saphyr appends " at line L, column C"; the location is printed in front instead.
    let message = match text.rfind(" at line ") {
        Some(i) if text.get(i..).is_some_and(|t| t.contains(", column ")) => {
            text.get(..i).unwrap_or(&text).to_owned()
        }
        _ => text,
    };
    let message = message
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        .replace("duplicate mapping key: ", "key written twice: ");
    PolicyError {
        at: Location {
            file: file.clone(),
            line,
            column,
        },
        kind: ErrorKind::Yaml { message },
    }
}

struct Compiler<'a> {
    file: Arc<str>,
    base: PathBuf,
    lists: &'a dyn ListSource,
    errors: Vec<PolicyError>,
}

/// Built-in names that policy entries may not take.
const ALWAYS: &str = "always";
const ALL: &str = "all";
const DEFAULT_GROUP: &str = "default";

/// What the validated pieces need from each other while compiling.
struct Names {
    schedules: HashMap<String, ScheduleId>,
    categories: HashMap<String, TargetId>,
    groups: HashMap<String, GroupId>,
    devices: HashMap<String, DeviceId>,
}

impl<'a> Compiler<'a> {
    fn at<T>(&self, s: &S<T>) -> Location {
        Location {
            file: self.file.clone(),
            line: s.referenced.line().max(1),
            column: s.referenced.column().max(1),
        }
    }

    fn error<T>(&mut self, s: &S<T>, kind: ErrorKind) {
        let at = self.at(s);
        self.errors.push(PolicyError { at, kind });
    }

    fn policy(&mut self, raw: RawPolicy) -> Policy {
        if raw.version.value != 1 {
            self.error(
                &raw.version,
                ErrorKind::Version {
                    found: raw.version.value,
                },
            );
        }
        let tz_name = raw.school.timezone.value.trim().to_owned();
        let tz = match tzdb().get(&tz_name) {
            Ok(tz) => tz,
            Err(_) => {
                self.error(
                    &raw.school.timezone,
                    ErrorKind::TimeZone {
                        value: tz_name.clone(),
                    },
                );
                TimeZone::UTC
            }
        };
        let calendar = self.calendar(&raw);
        let mut index = DomainIndex::default();
        let mut targets = Vec::new();
        let (schedules, schedule_names) = self.schedules(&raw.schedules, &tz, &calendar);
        let category_names = self.categories(&raw.categories, &mut index, &mut targets);
        let (groups, devices, networks, group_names, device_names) =
            self.groups(&raw.groups, &schedule_names);
        let names = Names {
            schedules: schedule_names,
            categories: category_names,
            groups: group_names,
            devices: device_names,
        };
        let rules = self.rules(&raw, &names, &mut index, &mut targets);
        let exceptions = self.exceptions(&raw, &names, &tz, &mut index, &mut targets);
        let bypass = self.bypass(&raw, &names, groups.len(), &mut index, &mut targets);
        let gateway = raw.gateway.as_ref().and_then(|g| self.gateway(g));

        let mut by_mac = foldhash::HashMap::default();
        let mut by_ip = foldhash::HashMap::default();
        for (i, d) in devices.iter().enumerate() {
            let id = DeviceId(u32::try_from(i).unwrap_or(u32::MAX));
            if let Some(mac) = d.mac {
                by_mac.insert(mac, id);
            }
            if let Some(ip) = d.ip {
                by_ip.insert(ip, id);
            }
        }
        let mut rules_by_group: Vec<Vec<RuleId>> = vec![Vec::new(); groups.len() + 1];
        for (i, rule) in rules.iter().enumerate() {
            let id = RuleId(u32::try_from(i).unwrap_or(u32::MAX));
            for (g, list) in rules_by_group.iter_mut().enumerate() {
                let group =
                    (g < groups.len()).then(|| GroupId(u32::try_from(g).unwrap_or(u32::MAX)));
                if rule.groups.contains(group) {
                    list.push(id);
                }
            }
        }
        let default_group = names.groups.get(DEFAULT_GROUP).copied();
        Policy {
            source: self.file.clone(),
            school_name: raw.school.name.value.trim().to_owned(),
            tz_name,
            tz,
            calendar,
            schedules,
            targets,
            index,
            groups,
            devices,
            by_mac,
            by_ip,
            networks,
            default_group,
            rules,
            rules_by_group,
            exceptions,
            bypass,
            gateway,
        }
    }

    fn socket_addr(&mut self, s: &S<String>) -> Option<SocketAddr> {
        let parsed = s.value.trim().parse::<SocketAddr>().ok();
        if parsed.is_none() {
            self.error(
                s,
                ErrorKind::SocketAddr {
                    value: s.value.clone(),
                },
            );
        }
        parsed
    }

    fn gateway(&mut self, raw: &S<RawGateway>) -> Option<Gateway> {
        let g = &raw.value;
        let errors_before = self.errors.len();
        let mut lan_interfaces = Vec::new();
        for i in &g.lan_interfaces {
            if is_interface_name(i.value.trim()) {
                lan_interfaces.push(i.value.trim().to_owned());
            } else {
                self.error(
                    i,
                    ErrorKind::Interface {
                        value: i.value.clone(),
                    },
                );
            }
        }
        let mut dns = Dns {
            listen: Vec::new(),
            upstreams: Vec::new(),
            block_response: BlockResponse::Sinkhole,
            rate_limit: DEFAULT_RATE_LIMIT,
            defences: Defences::default(),
        };
        let mut block_response_at = None;
        if let Some(d) = &g.dns {
            dns.listen = d
                .listen
                .iter()
                .filter_map(|a| self.socket_addr(a))
                .collect();
            for u in &d.upstreams {
                match parse_upstream(&u.value) {
                    Some(addr) => dns.upstreams.push(addr),
                    None => self.error(
                        u,
                        ErrorKind::Upstream {
                            value: u.value.clone(),
                        },
                    ),
                }
            }
            if let Some(b) = &d.block_response {
                match b.value.trim() {
                    "sinkhole" => dns.block_response = BlockResponse::Sinkhole,
                    "nxdomain" => dns.block_response = BlockResponse::Nxdomain,
                    _ => self.error(
                        b,
                        ErrorKind::BlockResponse {
                            value: b.value.clone(),
                        },
                    ),
                }
                block_response_at = Some(self.at(b));
            }
            if let Some(r) = &d.rate_limit {
                if r.value == 0 {
                    self.error(r, ErrorKind::RateLimit { value: r.value });
                }
                dns.rate_limit = r.value;
            }
            if let Some(x) = &d.defences {
                dns.defences = Defences {
                    firefox_canary: !x.danger_allow_firefox_doh,
                    private_relay: !x.danger_allow_private_relay,
                    ddr: !x.danger_allow_ddr,
                    strip_ech: !x.danger_keep_ech,
                };
            }
        }
        let block_page = g.block_page.as_ref().and_then(|b| {
            let listen = self.socket_addr(&b.listen)?;
            let listen_v6 = match &b.listen_v6 {
                Some(v6) => match self.socket_addr(v6) {
                    Some(a) if a.is_ipv6() => Some(a),
                    Some(_) => {
                        self.error(
                            v6,
                            ErrorKind::NotIpv6 {
                                value: v6.value.clone(),
                            },
                        );
                        None
                    }
                    None => None,
                },
                None => None,
            };
            Some(BlockPage { listen, listen_v6 })
        });
        if dns.block_response == BlockResponse::Sinkhole && g.block_page.is_none() {
            let at = block_response_at.unwrap_or_else(|| self.at(raw));
            self.errors.push(PolicyError {
                at,
                kind: ErrorKind::SinkholeWithoutBlockPage,
            });
        }
        let metrics = g.metrics.as_ref().and_then(|m| self.socket_addr(&m.listen));
        let console = g.console.as_ref().and_then(|c| {
            let url = c.url.value.trim();
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.len() > "https://".len();
            if !ok {
                self.error(
                    &c.url,
                    ErrorKind::Url {
                        value: c.url.value.clone(),
                    },
                );
                return None;
            }
            Some(Console {
                url: url.to_owned(),
                token_file: PathBuf::from(c.token_file.value.trim()),
                ca_file: c.ca_file.as_ref().map(|f| PathBuf::from(f.value.trim())),
                name: c.name.as_ref().map(|n| n.value.trim().to_owned()),
            })
        });
        let state_dir = g.state_dir.as_ref().map_or_else(
            || PathBuf::from(DEFAULT_STATE_DIR),
            |d| PathBuf::from(d.value.trim()),
        );
        let mut dhcp_leases = Vec::new();
        for l in &g.dhcp_leases {
            let format = match l.value.format.value.trim() {
                "dnsmasq" => LeaseFormat::Dnsmasq,
                "kea" => LeaseFormat::Kea,
                _ => {
                    self.error(
                        &l.value.format,
                        ErrorKind::Choice {
                            what: "lease file format",
                            value: l.value.format.value.clone(),
                            expected: "dnsmasq or kea",
                        },
                    );
                    continue;
                }
            };
            dhcp_leases.push(LeaseFile {
                path: self.base.join(l.value.path.value.trim()),
                format,
            });
        }
        let mut firewall = Firewall::default();
        if let Some(f) = &g.firewall {
            if let Some(enabled) = f.value.enabled {
                firewall.enabled = enabled;
            }
            if let Some(o) = &f.value.on_stop {
                match o.value.trim() {
                    "fail_closed" => firewall.on_stop = OnStop::FailClosed,
                    "fail_open" => firewall.on_stop = OnStop::FailOpen,
                    _ => self.error(
                        o,
                        ErrorKind::Choice {
                            what: "firewall on_stop",
                            value: o.value.clone(),
                            expected: "fail_closed or fail_open",
                        },
                    ),
                }
            }
            if firewall.enabled && lan_interfaces.is_empty() {
                self.errors.push(PolicyError {
                    at: self.at(f),
                    kind: ErrorKind::FirewallWithoutLan,
                });
            }
        }
        let inspection = g
            .inspection
            .as_ref()
            .and_then(|i| i.enabled)
            .unwrap_or(true);
        (self.errors.len() == errors_before).then_some(Gateway {
            inspection,
            lan_interfaces,
            dns,
            block_page,
            metrics,
            state_dir,
            console,
            dhcp_leases,
            firewall,
        })
    }

    fn date(&mut self, s: &S<String>) -> Option<Date> {
        match s.value.trim().parse::<Date>() {
            Ok(d) if s.value.trim().len() == 10 => Some(d),
            _ => {
                self.error(
                    s,
                    ErrorKind::Date {
                        value: s.value.clone(),
                    },
                );
                None
            }
        }
    }

    fn calendar(&mut self, raw: &RawPolicy) -> Calendar {
        let mut terms: Vec<(DateSpan, Location)> = Vec::new();
        for t in &raw.calendar.terms {
            let (from, to) = (self.date(&t.value.from), self.date(&t.value.to));
            let (Some(from), Some(to)) = (from, to) else {
                continue;
            };
            let name = t.value.name.value.trim().to_owned();
            if from > to {
                self.error(&t.value.from, backwards(&name, from, to));
                continue;
            }
            // Schedules are compiled day by day over the terms: a mistyped year must not
            // turn into thousands of years of work.
            let days = (to - from).get_days() + 1;
            if days > MAX_TERM_DAYS {
                self.error(&t.value.to, ErrorKind::TermTooLong { name, days });
                continue;
            }
            terms.push((DateSpan { name, from, to }, self.at(t)));
        }
        terms.sort_by_key(|(t, _)| t.from);
        for pair in terms.windows(2) {
            if let [(a, _), (b, at)] = pair
                && b.from <= a.to
            {
                let kind = ErrorKind::TermOverlap {
                    name: b.name.clone(),
                    other: a.name.clone(),
                };
                self.errors.push(PolicyError {
                    at: at.clone(),
                    kind,
                });
            }
        }
        let mut closures = Vec::new();
        for c in &raw.calendar.closures {
            let name = c.value.name.value.trim().to_owned();
            let span = match (&c.value.on, &c.value.from, &c.value.to) {
                (Some(on), None, None) => self.date(on).map(|d| (d, d)),
                (None, Some(from), Some(to)) => match (self.date(from), self.date(to)) {
                    (Some(f), Some(t)) if f > t => {
                        self.error(from, backwards(&name, f, t));
                        None
                    }
                    (Some(f), Some(t)) => Some((f, t)),
                    _ => None,
                },
                _ => {
                    self.error(c, ErrorKind::ClosureDates);
                    None
                }
            };
            if let Some((from, to)) = span {
                closures.push(DateSpan { name, from, to });
            }
        }
        Calendar::new(terms.into_iter().map(|(t, _)| t).collect(), closures)
    }

    /// Checks a name used as a key (schedule, category, group).
    fn key_name(&mut self, key: &S<String>, reserved: &[(&str, &'static str)]) -> bool {
        let name = key.value.as_str();
        if let Some((_, why)) = reserved.iter().find(|(r, _)| *r == name) {
            self.error(
                key,
                ErrorKind::Reserved {
                    name: name.to_owned(),
                    why,
                },
            );
            return false;
        }
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            self.error(
                key,
                ErrorKind::BadName {
                    name: name.to_owned(),
                },
            );
        }
        valid
    }

    fn schedules(
        &mut self,
        raw: &Ordered<S<super::raw::RawSchedule>>,
        tz: &TimeZone,
        calendar: &Calendar,
    ) -> (Vec<Schedule>, HashMap<String, ScheduleId>) {
        let mut out = vec![Schedule::always(tz)];
        let mut names = HashMap::from([(ALWAYS.to_owned(), ScheduleId(0))]);
        for (key, s) in &raw.0 {
            let reserved = [(ALWAYS, "`always` is built in and means at every moment")];
            if !self.key_name(key, &reserved) {
                continue;
            }
            let mut days = Days::default();
            let mut ok = true;
            for d in &s.value.days {
                match parse_day(&d.value) {
                    Some(i) => {
                        if let Some(slot) = days.0.get_mut(i) {
                            *slot = true;
                        }
                    }
                    None => {
                        self.error(
                            d,
                            ErrorKind::Day {
                                value: d.value.clone(),
                            },
                        );
                        ok = false;
                    }
                }
            }
            if s.value.days.is_empty() {
                self.error(
                    s,
                    ErrorKind::Empty {
                        what: "schedule",
                        name: key.value.clone(),
                        needs: "days",
                    },
                );
                ok = false;
            }
            let ranges = match &s.value.times {
                None => vec![TimeRange::WHOLE_DAY],
                Some(times) => {
                    if times.is_empty() {
                        self.error(
                            s,
                            ErrorKind::Empty {
                                what: "schedule",
                                name: key.value.clone(),
                                needs: "times",
                            },
                        );
                        ok = false;
                    }
                    let mut ranges = Vec::new();
                    for t in times {
                        match parse_range(&t.value) {
                            Ok(r) => ranges.push(r),
                            Err(kind) => {
                                self.error(t, kind);
                                ok = false;
                            }
                        }
                    }
                    ranges
                }
            };
            if !ok {
                continue;
            }
            let label = s
                .value
                .label
                .clone()
                .unwrap_or_else(|| format!("during {}", humanise(&key.value)));
            let id = ScheduleId(u32::try_from(out.len()).unwrap_or(u32::MAX));
            out.push(Schedule::compile(
                key.value.clone(),
                label,
                days,
                ranges,
                s.value.term_time,
                tz,
                calendar,
            ));
            names.insert(key.value.clone(), id);
        }
        (out, names)
    }

    fn categories(
        &mut self,
        raw: &Ordered<S<super::raw::RawCategory>>,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
    ) -> HashMap<String, TargetId> {
        let mut names = HashMap::new();
        for (key, c) in &raw.0 {
            let reserved = [(
                ALL,
                "`all` means every group; a category cannot take that name",
            )];
            if !self.key_name(key, &reserved) {
                continue;
            }
            let id = TargetId(u32::try_from(targets.len()).unwrap_or(u32::MAX));
            let mut n_domains = 0usize;
            for d in &c.value.domains {
                match parse_entry(&d.value) {
                    Ok(entry) => {
                        n_domains += usize::from(matches!(entry, Listed::Domain(_)));
                        index.insert_entry(entry, id);
                    }
                    Err(source) => self.error(d, ErrorKind::Domain { source }),
                }
            }
            for list in &c.value.lists {
                n_domains += self.list(list, id, index);
            }
            let technique = c.value.technique.as_ref().and_then(|t| {
                let found = Technique::from_name(t.value.trim());
                if found.is_none() {
                    self.error(
                        t,
                        ErrorKind::Technique {
                            name: t.value.clone(),
                        },
                    );
                }
                found
            });
            if c.value.lists.is_empty() && c.value.domains.is_empty() {
                self.error(
                    c,
                    ErrorKind::Empty {
                        what: "category",
                        name: key.value.clone(),
                        needs: "lists or domains",
                    },
                );
            }
            let label = c
                .value
                .label
                .clone()
                .unwrap_or_else(|| humanise(&key.value));
            targets.push(Target::Category {
                name: key.value.clone(),
                label,
                description: c.value.description.clone(),
                n_domains,
                technique,
            });
            names.insert(key.value.clone(), id);
        }
        names
    }

    /// Reads one list file (domains, addresses and networks) into the index; returns how many
    /// domains it listed.
    fn list(&mut self, list: &S<String>, id: TargetId, index: &mut DomainIndex) -> usize {
        let path = self.base.join(list.value.trim());
        let text = match self.lists.read_list(&path) {
            Ok(text) => text,
            Err(source) => {
                self.error(list, ErrorKind::ReadList { path, source });
                return 0;
            }
        };
        let list_file: Arc<str> = path.display().to_string().into();
        // A rough count of lines, to size the index once rather than grow it many times.
        index.reserve(text.len() / 16);
        let mut n = 0;
        let mut n_errors = 0;
        // The `[name]` section the lines are in: the app or tool their entries belong to.
        let mut section: Option<Box<str>> = None;
        for (i, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("");
            let trimmed = content.trim();
            if trimmed.is_empty() {
                continue;
            }
            let parsed = match trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                Some(name) if is_section_name(name) => {
                    section = Some(name.into());
                    continue;
                }
                Some(name) => Err(ErrorKind::Section {
                    name: name.to_owned(),
                }),
                None => parse_entry(trimmed).map_err(|source| ErrorKind::Domain { source }),
            };
            match parsed {
                Ok(entry) => {
                    n += usize::from(matches!(entry, Listed::Domain(_)));
                    if let Some(app) = &section {
                        index.set_app(&entry, app.clone());
                    }
                    index.insert_entry(entry, id);
                }
                Err(kind) => {
                    n_errors += 1;
                    if n_errors <= MAX_ERRORS_PER_LIST {
                        let column = content.len() - content.trim_start().len() + 1;
                        let at = Location {
                            file: list_file.clone(),
                            line: i as u64 + 1,
                            column: column as u64,
                        };
                        self.errors.push(PolicyError { at, kind });
                    }
                }
            }
        }
        if n_errors > MAX_ERRORS_PER_LIST {
            self.error(
                list,
                ErrorKind::TooManyListErrors {
                    path: list_file.to_string(),
                    n_more: n_errors - MAX_ERRORS_PER_LIST,
                },
            );
        }
        n
    }

    #[allow(clippy::type_complexity)]
    fn groups(
        &mut self,
        raw: &Ordered<S<super::raw::RawGroup>>,
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
            groups.push(Group {
                name: key.value.clone(),
                description: g.value.description.clone(),
                networks: Vec::new(),
                safe_search: g.value.safe_search,
                report_presence,
                audience,
                quic,
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
                if d.value.mac.is_none() && d.value.ip.is_none() {
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
                });
            }
        }
        // Most specific first, so the first network containing an address is the one to use.
        networks.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        (groups, devices, networks, names, device_names)
    }

    fn network(&mut self, s: &S<String>) -> Option<IpNet> {
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

    fn group_list(&mut self, list: &[S<String>], names: &Names, allow_all: bool) -> Option<Groups> {
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

    /// Resolves `allow:`/`block:` entries: category names, or domains and addresses gathered
    /// into one inline target for this entry.
    fn targets(
        &mut self,
        list: &[S<String>],
        names: &Names,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
    ) -> Vec<TargetId> {
        let mut out = Vec::new();
        let mut inline: Vec<Listed> = Vec::new();
        for item in list {
            let value = item.value.trim();
            if let Some(id) = names.categories.get(value) {
                if !out.contains(id) {
                    out.push(*id);
                }
                continue;
            }
            let entry = parse_entry(value);
            let looks_like_category =
                !value.contains('.') && !matches!(entry, Ok(Listed::Address(..)));
            match entry {
                Ok(entry) if !looks_like_category => inline.push(entry),
                result => {
                    let known = one_of(&names.categories, None);
                    let kind = match result {
                        Err(source) if !looks_like_category => ErrorKind::Target {
                            value: value.to_owned(),
                            categories: known,
                            source,
                        },
                        _ => ErrorKind::Unknown {
                            what: "category",
                            name: value.to_owned(),
                            expected: format!("{known}, or a domain such as youtube.com"),
                        },
                    };
                    self.error(item, kind);
                }
            }
        }
        if !inline.is_empty() {
            let id = TargetId(u32::try_from(targets.len()).unwrap_or(u32::MAX));
            let mut domains = Vec::with_capacity(inline.len());
            for entry in inline {
                domains.push(match &entry {
                    Listed::Domain(d) => d.clone(),
                    Listed::Address(_, text) => text.clone(),
                });
                index.insert_entry(entry, id);
            }
            targets.push(Target::Domains { domains });
            out.push(id);
        }
        out
    }

    fn rules(
        &mut self,
        raw: &RawPolicy,
        names: &Names,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
    ) -> Vec<Rule> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for r in &raw.rules {
            let name = r.value.name.value.trim().to_owned();
            if seen.insert(name.clone(), ()).is_some() {
                self.error(
                    &r.value.name,
                    ErrorKind::Duplicate {
                        what: "rule",
                        name: name.clone(),
                    },
                );
            }
            if r.value.groups.is_empty() {
                self.error(
                    r,
                    ErrorKind::Empty {
                        what: "rule",
                        name: name.clone(),
                        needs: "groups",
                    },
                );
            }
            let groups = self.group_list(&r.value.groups, names, true);
            let (action, list) = match (&r.value.allow, &r.value.block) {
                (Some(a), None) => (Action::Allow, a),
                (None, Some(b)) => (Action::Block, b),
                _ => {
                    self.error(r, ErrorKind::RuleAction { name });
                    continue;
                }
            };
            if list.is_empty() {
                let needs = if action == Action::Allow {
                    "categories or domains to allow"
                } else {
                    "categories or domains to block"
                };
                self.error(
                    r,
                    ErrorKind::Empty {
                        what: "rule",
                        name: name.clone(),
                        needs,
                    },
                );
            }
            let rule_targets = self.targets(list, names, index, targets);
            let when = match &r.value.when {
                None => Some(ScheduleId(0)),
                Some(w) => {
                    let found = names.schedules.get(w.value.trim()).copied();
                    if found.is_none() {
                        self.error(
                            w,
                            ErrorKind::Unknown {
                                what: "schedule",
                                name: w.value.clone(),
                                expected: one_of(&names.schedules, None),
                            },
                        );
                    }
                    found
                }
            };
            if let (Some(groups), Some(when)) = (groups, when) {
                out.push(Rule {
                    name,
                    groups,
                    action,
                    targets: rule_targets,
                    when,
                });
            }
        }
        out
    }

    fn datetime(&mut self, s: &S<String>, tz: &TimeZone) -> Option<Timestamp> {
        let parsed = parse_instant(&s.value, tz);
        if parsed.is_none() {
            self.error(
                s,
                ErrorKind::DateTime {
                    value: s.value.clone(),
                },
            );
        }
        parsed
    }

    fn exceptions(
        &mut self,
        raw: &RawPolicy,
        names: &Names,
        tz: &TimeZone,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
    ) -> Vec<Exception> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for e in &raw.exceptions {
            let v = &e.value;
            let name = v.name.value.trim().to_owned();
            if seen.insert(name.clone(), ()).is_some() {
                self.error(
                    &v.name,
                    ErrorKind::Duplicate {
                        what: "exception",
                        name: name.clone(),
                    },
                );
            }
            let groups = match self.group_list(&v.groups, names, false) {
                Some(Groups::Some(ids)) => ids,
                _ => Vec::new(),
            };
            let mut devices = Vec::new();
            for d in &v.devices {
                match names.devices.get(d.value.trim()) {
                    Some(id) => devices.push(*id),
                    None => {
                        self.error(
                            d,
                            ErrorKind::Unknown {
                                what: "device",
                                name: d.value.clone(),
                                expected: one_of(&names.devices, None),
                            },
                        );
                    }
                }
            }
            let networks: Vec<IpNet> = v.networks.iter().filter_map(|n| self.network(n)).collect();
            if v.groups.is_empty() && v.devices.is_empty() && v.networks.is_empty() {
                self.error(
                    e,
                    ErrorKind::Empty {
                        what: "exception",
                        name: name.clone(),
                        needs: "groups, devices or networks",
                    },
                );
            }
            if v.allow.is_empty() {
                self.error(
                    e,
                    ErrorKind::Empty {
                        what: "exception",
                        name: name.clone(),
                        needs: "categories or domains to allow",
                    },
                );
            }
            let ex_targets = self.targets(&v.allow, names, index, targets);
            let from = self.datetime(&v.from, tz);
            let to = self.datetime(&v.to, tz);
            if v.approved_by.value.trim().is_empty() {
                self.error(
                    &v.approved_by,
                    ErrorKind::Empty {
                        what: "exception",
                        name: name.clone(),
                        needs: "approver in `approved_by`",
                    },
                );
            }
            let (Some(from), Some(to)) = (from, to) else {
                continue;
            };
            if from >= to {
                self.error(
                    &v.from,
                    ErrorKind::Backwards {
                        what: name,
                        from: v.from.value.clone(),
                        to: v.to.value.clone(),
                    },
                );
                continue;
            }
            out.push(Exception {
                name,
                groups,
                devices,
                networks,
                targets: ex_targets,
                from,
                to,
                approved_by: v.approved_by.value.trim().to_owned(),
                reason: v.reason.clone(),
            });
        }
        out
    }

    fn bypass(
        &mut self,
        raw: &RawPolicy,
        names: &Names,
        n_groups: usize,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
    ) -> Bypass {
        let default_response = Response::Alert;
        let mut responses = vec![default_response; n_groups];
        for (key, value) in &raw.bypass.response.0 {
            let response = match value.value.trim() {
                "quarantine" => Some(Response::Quarantine),
                "alert" => Some(Response::Alert),
                "log" => Some(Response::Log),
                _ => {
                    self.error(
                        value,
                        ErrorKind::Response {
                            value: value.value.clone(),
                        },
                    );
                    None
                }
            };
            match names.groups.get(key.value.trim()) {
                Some(g) => {
                    if let (Some(slot), Some(r)) = (responses.get_mut(g.index()), response) {
                        *slot = r;
                    }
                }
                None => {
                    self.error(
                        key,
                        ErrorKind::Unknown {
                            what: "group",
                            name: key.value.clone(),
                            expected: one_of(&names.groups, None),
                        },
                    );
                }
            }
        }
        let quarantine_allow = self.targets(&raw.bypass.quarantine_allow, names, index, targets);
        Bypass {
            responses,
            default_response,
            quarantine_allow,
        }
    }
}

fn group_name(groups: &[Group], id: GroupId) -> String {
    groups
        .get(id.index())
        .map(|g| g.name.clone())
        .unwrap_or_default()
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

fn backwards(name: &str, from: Date, to: Date) -> ErrorKind {
    ErrorKind::Backwards {
        what: name.to_owned(),
        from: from.to_string(),
        to: to.to_string(),
    }
}

/// "one of a, b, c" for the names defined (sorted, `first` in front), for error messages.
fn one_of<V>(defined: &HashMap<String, V>, first: Option<&str>) -> String {
    let mut names: Vec<&str> = defined.keys().map(String::as_str).collect();
    names.sort_unstable();
    names.splice(0..0, first);
    if names.is_empty() {
        "none are defined".to_owned()
    } else {
        format!("one of {}", names.join(", "))
    }
}

fn humanise(name: &str) -> String {
    name.replace(['_', '-'], " ")
}

fn parse_day(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    const DAYS: [[&str; 2]; 7] = [
        ["mon", "monday"],
        ["tue", "tuesday"],
        ["wed", "wednesday"],
        ["thu", "thursday"],
        ["fri", "friday"],
        ["sat", "saturday"],
        ["sun", "sunday"],
    ];
    DAYS.iter().position(|names| names.contains(&s.as_str()))
}

/// Parses `HH:MM-HH:MM`. `24:00` is allowed as an end.
fn parse_range(s: &str) -> Result<TimeRange, ErrorKind> {
    let bad = || ErrorKind::TimeRange {
        value: s.to_owned(),
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start = parse_hm(a.trim(), false).ok_or_else(bad)?;
    let end = parse_hm(b.trim(), true).ok_or_else(bad)?;
    if start == end {
        return Err(ErrorKind::EmptyTimeRange {
            value: s.to_owned(),
        });
    }
    Ok(TimeRange { start, end })
}

fn parse_hm(s: &str, allow_24: bool) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    match (h, m) {
        (24, 0) if allow_24 => Some(SECONDS_PER_DAY),
        (0..=23, 0..=59) => Some(h * 3600 + m * 60),
        _ => None,
    }
}

/// A list section's name: what reports call the app or tool (`instagram`, `psiphon`).
fn is_section_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ranges() {
        let ok = [
            ("08:30-15:30", 8 * 3600 + 1800, 15 * 3600 + 1800),
            ("8:30 - 15:30", 8 * 3600 + 1800, 15 * 3600 + 1800),
            ("22:00-06:00", 22 * 3600, 6 * 3600),
            ("00:00-24:00", 0, SECONDS_PER_DAY),
            ("18:00-24:00", 18 * 3600, SECONDS_PER_DAY),
        ];
        for (s, a, b) in ok {
            assert_eq!(
                parse_range(s).unwrap(),
                TimeRange { start: a, end: b },
                "{s}"
            );
        }
        for s in [
            "08:30",
            "8-9",
            "25:00-26:00",
            "08:60-09:00",
            "24:00-06:00",
            "08:30-08:30",
            "aa:bb-cc:dd",
            "08:30-15:30-16:00",
        ] {
            assert!(parse_range(s).is_err(), "{s}");
        }
        assert!(matches!(
            parse_range("08:30-08:30"),
            Err(ErrorKind::EmptyTimeRange { .. })
        ));
    }

    #[test]
    fn days() {
        assert_eq!(parse_day("Mon"), Some(0));
        assert_eq!(parse_day("sunday"), Some(6));
        assert_eq!(parse_day("mo"), None);
    }
}
