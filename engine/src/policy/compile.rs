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
    BlockPage, BlockResponse, Console, DEFAULT_LDAP_FILTER, DEFAULT_LDAP_GROUPS_FILTER,
    DEFAULT_LDAP_SYNC_MINUTES, DEFAULT_OFF_SITE_RATE_LIMIT, DEFAULT_RATE_LIMIT,
    DEFAULT_SESSION_IDLE_MINUTES, DEFAULT_STATE_DIR, Defences, Dns, Firewall, Gateway, Ldap,
    LeaseFile, LeaseFormat, OffSite, OnStop, Radius, RadiusClient, SignInEndpoint,
    is_interface_name, parse_upstream,
};
use super::raw::{
    Ordered, RawAdded, RawException, RawGateway, RawLdap, RawOffSite, RawPolicy, RawRadius,
    RawRequestRule, S,
};
use super::{
    Action, Audience, Bypass, ClassId, Device, DeviceId, Exception, Group, GroupId, Groups,
    ListSource, Policy, Quic, RequestRule, Response, Rule, RuleId, ScheduleId, Target, UserId,
};
use crate::calendar::{Calendar, DateSpan};
use crate::device::MacAddr;
use crate::domain::{DomainIndex, Listed, TargetId, parse_entry, parse_listed};
use crate::instant::parse_instant;
use crate::schedule::{Days, SECONDS_PER_DAY, Schedule, TimeRange};
use crate::technique::Technique;

mod calendar;
mod categories;
mod gateway;
mod groups;
mod requests;
mod rules;

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
    from_yaml_with(text, file, lists, None).map(|(policy, _)| policy)
}

/// [`from_yaml`] with the exceptions of another document (`added`: its text and file) added
/// to the policy's own. The policy's errors refuse it; an added exception with an error is
/// left out, and its errors (against the added file) come back beside the policy. A whole
/// added document that is not YAML adds nothing and is one such error.
pub(super) fn from_yaml_with(
    text: &str,
    file: &Path,
    lists: &dyn ListSource,
    added: Option<(&str, &Path)>,
) -> Result<(Policy, Vec<PolicyError>), PolicyErrors> {
    let file_name: Arc<str> = file.display().to_string().into();
    let raw: RawPolicy = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return Err(PolicyErrors(vec![yaml_error(&file_name, &e)])),
    };
    let mut skipped = Vec::new();
    let added = added.map(|(text, path)| {
        let name: Arc<str> = path.display().to_string().into();
        let doc = match serde_saphyr::from_str::<RawAdded>(text) {
            Ok(doc) => doc,
            Err(e) => {
                skipped.push(yaml_error(&name, &e));
                RawAdded::default()
            }
        };
        (doc.exceptions, name)
    });
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cx = Compiler {
        file: file_name,
        base,
        lists,
        errors: Vec::new(),
        locked: Vec::new(),
        feed_dir: PathBuf::new(),
        feeds: Vec::new(),
    };
    let (policy, more) = cx.policy(raw, added);
    skipped.extend(more);
    if cx.errors.is_empty() {
        Ok((policy, skipped))
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
    /// The locked categories, with their names.
    locked: Vec<(TargetId, String)>,
    /// Where feeds' copies are kept (the state directory's `feeds`), and the feeds read.
    feed_dir: PathBuf,
    feeds: Vec<crate::policy::feed::Feed>,
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

    /// The policy from `raw`, with the `added` exceptions (and their file's name) that pass;
    /// the added ones' errors.
    fn policy(
        &mut self,
        raw: RawPolicy,
        added: Option<(Vec<S<RawException>>, Arc<str>)>,
    ) -> (Policy, Vec<PolicyError>) {
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
        // Feeds' copies live in the state directory, which the gateway section names.
        self.feed_dir = raw
            .gateway
            .as_ref()
            .and_then(|g| g.value.state_dir.as_ref())
            .map_or_else(
                || PathBuf::from(super::gateway::DEFAULT_STATE_DIR),
                |d| PathBuf::from(d.value.trim()),
            )
            .join("feeds");
        let category_names = self.categories(&raw.categories, &mut index, &mut targets);
        let (groups, devices, networks, group_names, device_names) =
            self.groups(&raw.groups, &schedule_names);
        let names = Names {
            schedules: schedule_names,
            categories: category_names,
            groups: group_names,
            devices: device_names,
        };
        // A locked category is blocked for everyone at every moment, before any rule of
        // the file; what would open it is refused where it is written.
        let mut rules: Vec<Rule> = self
            .locked
            .iter()
            .map(|(id, name)| Rule {
                name: format!("Locked category {name}"),
                groups: Groups::All,
                action: Action::Block,
                targets: vec![*id],
                when: ScheduleId(0),
            })
            .collect();
        rules.extend(self.rules(&raw, &names, &mut index, &mut targets));
        let mut compiled = self.exceptions(&raw, &names, &tz, &mut index, &mut targets);
        let skipped = match added {
            Some(added) => {
                self.added_exceptions(added, &names, &tz, &mut index, &mut targets, &mut compiled)
            }
            None => Vec::new(),
        };
        let rules::Exceptions {
            exceptions,
            classes,
            people,
        } = compiled;
        let requests = self.requests(&raw.requests, &names);
        let bypass = self.bypass(&raw, &names, groups.len(), &mut index, &mut targets);
        let gateway = raw.gateway.as_ref().and_then(|g| self.gateway(g));

        let mut by_mac = foldhash::HashMap::default();
        let mut by_ip = foldhash::HashMap::default();
        let mut by_off_site_id = foldhash::HashMap::default();
        for (i, d) in devices.iter().enumerate() {
            let id = DeviceId(u32::try_from(i).unwrap_or(u32::MAX));
            if let Some(o) = &d.off_site_id {
                by_off_site_id.insert(o.clone(), id);
            }
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
        let person_groups = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.has_people())
            .map(|(i, _)| GroupId(u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        let policy = Policy {
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
            by_off_site_id,
            networks,
            default_group,
            rules,
            rules_by_group,
            person_groups,
            classes,
            people,
            exceptions,
            requests,
            bypass,
            gateway,
            feeds: std::mem::take(&mut self.feeds),
        };
        (policy, skipped)
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
}

fn group_name(groups: &[Group], id: GroupId) -> String {
    groups
        .get(id.index())
        .map(|g| g.name.clone())
        .unwrap_or_default()
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
