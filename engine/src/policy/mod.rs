//! The validated policy: what `policy.yaml` means once every name is resolved, every domain
//! list is indexed and every schedule is compiled into instants.
//!
//! Loading is two stages. [`raw`] reads the YAML as written (unknown keys rejected); `compile`
//! turns that into a [`Policy`], reporting every problem with its file, line and column. A
//! `Policy` cannot be built any other way, so holding one means it is valid.
//!
//! Nothing here reads files or the clock: list files are read through the [`ListSource`] the
//! caller passes in.

mod compile;
pub mod error;
pub mod feed;
pub mod gateway;
mod raw;

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::calendar::Calendar;
use crate::device::{Client, MacAddr};
use crate::domain::{DomainIndex, TargetId};
use crate::person::PersonView;
use crate::schedule::Schedule;
use crate::technique::Technique;

pub use error::{ErrorKind, Location, PolicyError, PolicyErrors};
pub use gateway::Gateway;

/// Reads the list files a policy names. Paths arrive already resolved against the policy
/// file's directory.
pub trait ListSource {
    fn read_list(&self, path: &Path) -> io::Result<String>;
}

impl<F: Fn(&Path) -> io::Result<String>> ListSource for F {
    fn read_list(&self, path: &Path) -> io::Result<String> {
        self(path)
    }
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            pub(crate) fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// A group, by position in the policy.
    GroupId
);
id_type!(
    /// A device entry, by position in the policy.
    DeviceId
);
id_type!(
    /// A rule, by position: earlier rules are read first.
    RuleId
);
id_type!(
    /// An exception, by position.
    ExceptionId
);
id_type!(
    /// A schedule; 0 is the built-in `always`.
    ScheduleId
);
id_type!(
    /// A class (registration group) an exception names, by position among those named.
    ClassId
);
id_type!(
    /// A person an exception names, by position among those named.
    UserId
);

/// Whether a name may be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Block => "block",
        }
    }
}

/// What to do with a device caught trying to get round the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Raise an alert and confine the device to `quarantine_allow` until staff release it.
    Quarantine,
    /// Raise an alert for the safeguarding lead; no change to the device's access.
    Alert,
    /// Record the event only.
    Log,
}

impl Response {
    pub fn as_str(self) -> &'static str {
        match self {
            Response::Quarantine => "quarantine",
            Response::Alert => "alert",
            Response::Log => "log",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub description: Option<String>,
    pub networks: Vec<IpNet>,
    /// Search engines are rewritten to their safe-search forms for this group.
    pub safe_search: bool,
    /// Devices of this group seen on the network in this schedule are reported, once a day.
    pub report_presence: Option<ScheduleId>,
    /// Who uses the group's devices, for the block page's wording.
    pub audience: Audience,
    /// Whether the firewall rejects QUIC (UDP 443) from this group; `None`: the default,
    /// blocked when the group is filtered ([`Policy::blocks_quic`]).
    pub quic: Option<Quic>,
    /// The directory groups whose members are this group's people, as written.
    pub directory: Vec<String>,
    /// The usernames of this group's people, lower-cased.
    pub users: Vec<String>,
}

impl Group {
    /// Whether the group speaks of people (`directory` or `users`), not only of devices.
    pub fn has_people(&self) -> bool {
        !self.directory.is_empty() || !self.users.is_empty()
    }
}

/// A group's `quic:` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quic {
    Block,
    Allow,
}

/// Who uses a group's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Audience {
    /// Children: the block page speaks plainly and sends them to their teacher.
    #[default]
    Pupils,
    /// Adults: the block page names the rule, category and matched domain.
    Staff,
}

/// A device entry: a machine the school knows by MAC and/or IP.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    /// The pupil, class or member of staff, where the school records one.
    pub owner: Option<String>,
    pub mac: Option<MacAddr>,
    pub ip: Option<IpAddr>,
    pub group: GroupId,
    /// The id the device asks by when away from school ([`Policy::off_site_device`]).
    pub off_site_id: Option<String>,
}

/// Something `allow:`/`block:` can name.
#[derive(Debug, Clone)]
pub enum Target {
    /// A named category from `categories:`.
    Category {
        name: String,
        label: String,
        description: Option<String>,
        n_domains: usize,
        /// What reaching this category is an attempt at, if it is a bypass category.
        technique: Option<Technique>,
    },
    /// Domains (and addresses) written directly in one rule, exception or `quarantine_allow`.
    Domains { domains: Vec<Box<str>> },
}

/// Which groups a rule speaks of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    /// `all`: every device, including devices in no group.
    All,
    Some(Vec<GroupId>),
}

impl Groups {
    pub fn contains(&self, group: Option<GroupId>) -> bool {
        match self {
            Groups::All => true,
            Groups::Some(list) => group.is_some_and(|g| list.contains(&g)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub groups: Groups,
    pub action: Action,
    pub targets: Vec<TargetId>,
    pub when: ScheduleId,
}

/// A teacher-directed, time-boxed allowance, approved by a named person.
#[derive(Debug, Clone)]
pub struct Exception {
    pub name: String,
    pub groups: Vec<GroupId>,
    pub devices: Vec<DeviceId>,
    pub networks: Vec<IpNet>,
    /// Classes whose signed-in pupils it covers.
    pub classes: Vec<ClassId>,
    /// People it covers, wherever they sign in.
    pub people: Vec<UserId>,
    pub targets: Vec<TargetId>,
    /// In force for `[from, to)`.
    pub from: Timestamp,
    pub to: Timestamp,
    pub approved_by: String,
    pub reason: Option<String>,
}

impl Exception {
    /// Whether this exception speaks of the request: of the device (by its group, device
    /// entry or network) or of the person signed in on it (by their group, class or name).
    pub fn covers(&self, who: &Identity, client: &Client) -> bool {
        let person = who.person.unwrap_or_default();
        who.group.is_some_and(|g| self.groups.contains(&g))
            || person.group.is_some_and(|g| self.groups.contains(&g))
            || person.class.is_some_and(|c| self.classes.contains(&c))
            || person.user.is_some_and(|u| self.people.contains(&u))
            || who.device.is_some_and(|d| self.devices.contains(&d))
            || client
                .ip
                .is_some_and(|ip| self.networks.iter().any(|n| n.contains(&ip)))
    }
}

/// One kind of exception teachers may ask the console for (`requests:`): these categories,
/// for these groups or classes (or named pupils), for at most so long. An approver still
/// decides each request.
#[derive(Debug, Clone)]
pub struct RequestRule {
    pub name: String,
    /// The categories a request may open, and their names as written.
    pub allow: Vec<TargetId>,
    pub allow_names: Vec<String>,
    pub groups: Vec<GroupId>,
    /// Classes as written; matched without regard to case.
    pub classes: Vec<String>,
    /// Any class (`classes: [all]`).
    pub any_class: bool,
    /// Pupils may be named one by one.
    pub people: bool,
    pub longest_minutes: u32,
}

#[derive(Debug, Clone)]
pub struct Bypass {
    /// Indexed by group; groups not listed take [`Bypass::default_response`].
    pub responses: Vec<Response>,
    /// For groups not listed and devices in no group.
    pub default_response: Response,
    pub quarantine_allow: Vec<TargetId>,
}

/// How the policy sees a client: its device entry, if any, and its group, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The device's group.
    pub group: Option<GroupId>,
    pub device: Option<DeviceId>,
    /// The person signed in on the device, where one is known.
    pub person: Option<PersonIdentity>,
}

/// A person as the policy sees them: their group (the first group in the file naming them or
/// one of their directory groups), and their class and username where an exception names
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PersonIdentity {
    pub group: Option<GroupId>,
    pub class: Option<ClassId>,
    pub user: Option<UserId>,
}

/// Two sorted rule lists read as one, in order, each rule once.
#[derive(Debug, Clone)]
pub(crate) struct MergedRules<'p> {
    a: &'p [RuleId],
    b: &'p [RuleId],
}

impl Iterator for MergedRules<'_> {
    type Item = RuleId;

    fn next(&mut self) -> Option<RuleId> {
        let (a, b) = (self.a.first().copied(), self.b.first().copied());
        let next = match (a, b) {
            (Some(x), Some(y)) => x.min(y),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => return None,
        };
        if a == Some(next) {
            self.a = self.a.get(1..).unwrap_or_default();
        }
        if b == Some(next) {
            self.b = self.b.get(1..).unwrap_or_default();
        }
        Some(next)
    }
}

/// A validated policy. See the module documentation.
#[derive(Debug)]
pub struct Policy {
    pub(crate) source: Arc<str>,
    pub(crate) school_name: String,
    pub(crate) tz_name: String,
    pub(crate) tz: TimeZone,
    pub(crate) calendar: Calendar,
    pub(crate) schedules: Vec<Schedule>,
    pub(crate) targets: Vec<Target>,
    pub(crate) index: DomainIndex,
    pub(crate) groups: Vec<Group>,
    pub(crate) devices: Vec<Device>,
    pub(crate) by_mac: foldhash::HashMap<MacAddr, DeviceId>,
    pub(crate) by_ip: foldhash::HashMap<IpAddr, DeviceId>,
    /// Devices by their off-site id (lower case).
    pub(crate) by_off_site_id: foldhash::HashMap<String, DeviceId>,
    /// Every group network, most specific prefix first.
    pub(crate) networks: Vec<(IpNet, GroupId)>,
    pub(crate) default_group: Option<GroupId>,
    pub(crate) rules: Vec<Rule>,
    /// For each group, the rules that speak of it in order; the extra last entry is for
    /// devices in no group (the `all` rules).
    pub(crate) rules_by_group: Vec<Vec<RuleId>>,
    /// The groups with `directory` or `users`, in file order.
    pub(crate) person_groups: Vec<GroupId>,
    /// The classes exceptions name (`ClassId` indexes this), as written.
    pub(crate) classes: Vec<String>,
    /// The people exceptions name (`UserId` indexes this), lower-cased.
    pub(crate) people: Vec<String>,
    pub(crate) exceptions: Vec<Exception>,
    /// What teachers may ask for, in file order.
    pub(crate) requests: Vec<RequestRule>,
    pub(crate) bypass: Bypass,
    pub(crate) gateway: Option<Gateway>,
    /// The categories' feeds, in the file's order.
    pub(crate) feeds: Vec<feed::Feed>,
}

impl Policy {
    /// Builds a policy from YAML text. `file` names the text in error messages and is the base
    /// for relative list paths. Every problem found is returned, each with its location.
    pub fn from_yaml(
        text: &str,
        file: &Path,
        lists: &dyn ListSource,
    ) -> Result<Policy, PolicyErrors> {
        compile::from_yaml(text, file, lists)
    }

    /// [`Policy::from_yaml`] with the exceptions of a second document added (`added`: its
    /// text and file name), as the agent adds the console's approved requests. The policy
    /// file's own errors refuse it; an added exception with an error is left out and its
    /// errors, told against the added file, come back beside the policy.
    pub fn from_yaml_with(
        text: &str,
        file: &Path,
        lists: &dyn ListSource,
        added: Option<(&str, &Path)>,
    ) -> Result<(Policy, Vec<PolicyError>), PolicyErrors> {
        compile::from_yaml_with(text, file, lists, added)
    }

    /// What teachers may ask the console for, in file order.
    pub fn request_rules(&self) -> &[RequestRule] {
        &self.requests
    }

    /// The file this policy was read from, as given to [`Policy::from_yaml`].
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn school_name(&self) -> &str {
        &self.school_name
    }

    /// The school's IANA time zone name.
    pub fn timezone_name(&self) -> &str {
        &self.tz_name
    }

    pub fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    pub fn schedule(&self, id: ScheduleId) -> Option<&Schedule> {
        self.schedules.get(id.index())
    }

    /// The group of devices that match no device entry or network, if the policy names one.
    pub fn default_group(&self) -> Option<GroupId> {
        self.default_group
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Every group's id, in policy order.
    pub fn group_ids(&self) -> impl Iterator<Item = GroupId> + '_ {
        (0..self.groups.len()).filter_map(|i| u32::try_from(i).ok().map(GroupId))
    }

    pub fn group(&self, id: GroupId) -> Option<&Group> {
        self.groups.get(id.index())
    }

    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    pub fn device(&self, id: DeviceId) -> Option<&Device> {
        self.devices.get(id.index())
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn rule(&self, id: RuleId) -> Option<&Rule> {
        self.rules.get(id.index())
    }

    pub fn exceptions(&self) -> &[Exception] {
        &self.exceptions
    }

    pub fn exception(&self, id: ExceptionId) -> Option<&Exception> {
        self.exceptions.get(id.index())
    }

    /// Every category and inline domain list, `TargetId` indexing them.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    pub fn target(&self, id: TargetId) -> Option<&Target> {
        self.targets.get(id.0 as usize)
    }

    /// The category a target is, if it is one.
    pub fn category_name(&self, id: TargetId) -> Option<&str> {
        match self.target(id)? {
            Target::Category { name, .. } => Some(name),
            Target::Domains { .. } => None,
        }
    }

    pub fn categories(&self) -> impl Iterator<Item = (TargetId, &Target)> {
        self.targets.iter().enumerate().filter_map(|(i, t)| {
            let id = TargetId(u32::try_from(i).ok()?);
            matches!(t, Target::Category { .. }).then_some((id, t))
        })
    }

    /// How many distinct domains the policy lists, over all categories and rules.
    pub fn n_domains(&self) -> usize {
        self.index.n_domains()
    }

    /// Every address and network the policy lists, with the target listing it.
    pub fn listed_addresses(&self) -> &[crate::address::ListedAddress] {
        self.index.addresses.entries()
    }

    /// How this gateway runs, if the policy says.
    pub fn gateway(&self) -> Option<&Gateway> {
        self.gateway.as_ref()
    }

    /// The lists the agent fetches and keeps current, in the file's order.
    pub fn feeds(&self) -> &[feed::Feed] {
        &self.feeds
    }

    /// Whether any rule blocks anything for `group`: such groups get the resolver's
    /// defences that keep names visible (ECH stripped).
    pub fn is_filtered(&self, group: Option<GroupId>) -> bool {
        self.rules_for(group)
            .iter()
            .filter_map(|id| self.rule(*id))
            .any(|r| r.action == Action::Block)
    }

    /// Whether QUIC (UDP 443) is rejected for `group`: as the group says, else when a rule
    /// blocks anything for it (browsers then fall back to TCP, where the name is seen).
    pub fn blocks_quic(&self, group: GroupId) -> bool {
        match self.group(group).and_then(|g| g.quic) {
            Some(Quic::Block) => true,
            Some(Quic::Allow) => false,
            None => self.is_filtered(Some(group)),
        }
    }

    pub fn bypass(&self) -> &Bypass {
        &self.bypass
    }

    /// The bypass response for a request's sender: the group of the person signed in, when
    /// one is and a group of the policy names them (the ban follows the person: a pupil is a
    /// pupil on any computer), else the device's group's.
    pub fn bypass_response_of(&self, identity: &Identity) -> Response {
        match identity.person.and_then(|p| p.group) {
            Some(group) => self.bypass_response(Some(group)),
            None => self.bypass_response(identity.group),
        }
    }

    /// The bypass response for a group (or for devices in no group).
    pub fn bypass_response(&self, group: Option<GroupId>) -> Response {
        group
            .and_then(|g| self.bypass.responses.get(g.index()).copied())
            .unwrap_or(self.bypass.default_response)
    }

    /// Finds the client's device entry and group. A device entry wins over networks (by MAC
    /// first, then by IP); among networks the most specific prefix wins; a client matching
    /// nothing falls in the group named `default` if there is one.
    pub fn identify(&self, client: &Client) -> Identity {
        let device = client
            .mac
            .and_then(|m| self.by_mac.get(&m))
            .or_else(|| client.ip.and_then(|ip| self.by_ip.get(&ip.to_canonical())))
            .copied();
        let group = match device.and_then(|d| self.devices.get(d.index())) {
            Some(d) => Some(d.group),
            None => client
                .ip
                .map(|ip| ip.to_canonical())
                .and_then(|ip| self.networks.iter().find(|(n, _)| n.contains(&ip)))
                .map(|(_, g)| *g)
                .or(self.default_group),
        };
        Identity {
            group,
            device,
            person: None,
        }
    }

    /// The device whose off-site id is `id` (any case), and who it is as the policy sees it:
    /// its group and entry, as [`identify`](Self::identify) finds them at school. `None` for an
    /// id no device has, which is how a revoked id (taken out of the file) is refused.
    pub fn off_site_device(&self, id: &str) -> Option<Identity> {
        let device = if id.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_off_site_id.get(&id.to_ascii_lowercase())
        } else {
            self.by_off_site_id.get(id)
        }
        .copied()?;
        let d = self.devices.get(device.index())?;
        Some(Identity {
            group: Some(d.group),
            device: Some(device),
            person: None,
        })
    }

    /// How the policy sees `person`: the first group (in file order) whose `users` names them
    /// or whose `directory` names one of their directory groups, and their class and username
    /// if an exception names them. Nothing is allocated.
    pub fn identify_person(&self, person: &PersonView<'_>) -> PersonIdentity {
        let group = self.person_groups.iter().copied().find(|g| {
            self.group(*g).is_some_and(|g| {
                g.users
                    .iter()
                    .any(|u| u.eq_ignore_ascii_case(person.username))
                    || g.directory
                        .iter()
                        .any(|d| person.groups.iter().any(|p| p.eq_ignore_ascii_case(d)))
            })
        });
        let class = person.class.and_then(|c| {
            let i = self
                .classes
                .iter()
                .position(|k| k.eq_ignore_ascii_case(c))?;
            u32::try_from(i).ok().map(ClassId)
        });
        let user = self
            .people
            .iter()
            .position(|u| u.eq_ignore_ascii_case(person.username))
            .and_then(|i| u32::try_from(i).ok().map(UserId));
        PersonIdentity { group, class, user }
    }

    /// The class an exception names, as written there.
    pub fn class_name(&self, id: ClassId) -> Option<&str> {
        self.classes.get(id.index()).map(String::as_str)
    }

    /// The username an exception names, lower-cased.
    pub fn username(&self, id: UserId) -> Option<&str> {
        self.people.get(id.index()).map(String::as_str)
    }

    /// The groups that speak of people, in file order.
    pub fn person_groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.person_groups.iter().copied()
    }

    /// Whether `ip` is inside a group's network or a device entry: the resolver answers only
    /// these clients.
    pub fn serves(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|(n, _)| n.contains(&ip)) || self.by_ip.contains_key(&ip)
    }

    /// The rules that speak of `group`, in order.
    pub(crate) fn rules_for(&self, group: Option<GroupId>) -> &[RuleId] {
        let i = group.map_or(self.groups.len(), |g| g.index());
        self.rules_by_group.get(i).map_or(&[], Vec::as_slice)
    }

    /// The rules that speak of the request's device group or of its person's group, in file
    /// order, each once: a rule matches when it names either.
    pub(crate) fn rules_for_identity(&self, who: &Identity) -> MergedRules<'_> {
        let person = who
            .person
            .and_then(|p| p.group)
            .filter(|g| Some(*g) != who.group);
        MergedRules {
            a: self.rules_for(who.group),
            b: person.map_or(&[][..], |g| self.rules_for(Some(g))),
        }
    }
}
