//! `LiveSessions`: who is signed in where, kept in the state directory, and the lookup the
//! resolver, the firewall and inspection make for every request: the person at an address,
//! as the policy sees them.
//!
//! Changes (a sign-in, a sign-out, an expiry) take a lock on the sessions; the lookup takes
//! none. After each change, and after each new policy or directory, an index from address to
//! the person's [`PersonIdentity`] is built for the policy in force and swapped in, so a
//! request costs one atomic load and one hash lookup, with nothing allocated. A request under
//! a policy the index was not built for (a reload in between) is worked out on the spot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use jiff::{SignedDuration, Timestamp};
use schoolgate_engine::Policy;
use schoolgate_engine::person::PersonView;
use schoolgate_engine::policy::PersonIdentity;
use schoolgate_people::sessions::{Change, Place, Session, Sessions, SignIn};
use schoolgate_people::{Directory, Username};
use tracing::warn;

use super::LivePeople;

/// The file the sessions are kept in, in the state directory.
pub const FILE: &str = "sessions.json";

/// The person signed in at an address, as the index holds them.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub username: Username,
    /// `None` when the directory does not know the username: no person is attached.
    pub person: Option<PersonIdentity>,
}

#[derive(Debug)]
struct Index {
    /// The policy the identities were worked out for.
    policy: Option<Arc<Policy>>,
    by_address: HashMap<IpAddr, SignedIn, foldhash::fast::RandomState>,
    /// School devices away from school, by off-site id.
    by_device: HashMap<Box<str>, SignedIn, foldhash::fast::RandomState>,
}

/// A place looked up, borrowed: an address (canonical) or a device's off-site id.
#[derive(Debug, Clone, Copy)]
enum At<'a> {
    Address(IpAddr),
    Device(&'a str),
}

impl At<'_> {
    fn indexed(self, index: &Index) -> Option<&SignedIn> {
        match self {
            Self::Address(ip) => index.by_address.get(&ip),
            Self::Device(id) => index.by_device.get(id),
        }
    }

    fn session(self, sessions: &Sessions) -> Option<&Session> {
        match self {
            Self::Address(ip) => sessions.at(ip),
            Self::Device(id) => sessions.on_device(id),
        }
    }
}

/// The sessions in force.
#[derive(Debug)]
pub struct LiveSessions {
    sessions: Mutex<Sessions>,
    people: Arc<LivePeople>,
    index: ArcSwap<Index>,
    /// Where they are kept; `None` keeps them in memory only.
    path: Option<PathBuf>,
    /// Changed since the last save.
    unsaved: AtomicBool,
    /// Counts the changes to who is where, for those that follow them.
    generation: AtomicU64,
}

impl LiveSessions {
    /// The sessions an earlier run kept in `state_dir` (none if there is no file or it cannot
    /// be read: signing in again puts them back).
    pub fn new(state_dir: Option<&Path>, people: Arc<LivePeople>) -> Arc<Self> {
        let path = state_dir.map(|d| d.join(FILE));
        let saved = path.as_deref().map(read).unwrap_or_default();
        Arc::new(Self {
            sessions: Mutex::new(Sessions::from_saved(saved)),
            people,
            index: ArcSwap::from_pointee(Index {
                policy: None,
                by_address: HashMap::default(),
                by_device: HashMap::default(),
            }),
            path,
            unsaved: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        })
    }

    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The person signed in at `ip`, as `policy` sees them. Allocation-free when the index
    /// was built for `policy`.
    pub fn person_at(&self, policy: &Policy, ip: IpAddr) -> Option<PersonIdentity> {
        self.person_in(policy, At::Address(ip.to_canonical()))
    }

    /// The person signed in on the school device away from school whose off-site id is
    /// `device`, as `policy` sees them.
    pub fn person_on_device(&self, policy: &Policy, device: &str) -> Option<PersonIdentity> {
        self.person_in(policy, At::Device(device))
    }

    fn person_in(&self, policy: &Policy, at: At<'_>) -> Option<PersonIdentity> {
        let index = self.index.load();
        let built_for = index.policy.as_ref().map(Arc::as_ptr);
        if built_for == Some(std::ptr::from_ref(policy)) {
            return at.indexed(&index)?.person;
        }
        drop(index);
        // The policy changed since the index was built: work it out here.
        let username = at.session(&self.sessions())?.username.clone();
        let directory = self.people.current();
        identify(policy, &directory, &username)
    }

    /// Calls `f` with the username signed in at `ip`, borrowed from the index where it is
    /// there (no copy on the path every blocked query takes).
    pub fn with_username_at<R>(&self, ip: IpAddr, f: impl FnOnce(Option<&str>) -> R) -> R {
        self.with_username(At::Address(ip.to_canonical()), |u| {
            f(u.map(Username::as_str))
        })
    }

    fn with_username<R>(&self, at: At<'_>, f: impl FnOnce(Option<&Username>) -> R) -> R {
        let index = self.index.load();
        if let Some(s) = at.indexed(&index) {
            return f(Some(&s.username));
        }
        drop(index);
        // Not indexed yet: copied out, so `f` runs without the sessions' lock held.
        let username = at.session(&self.sessions()).map(|s| s.username.clone());
        f(username.as_ref())
    }

    /// The username signed in at `ip`, for events.
    pub fn username_at(&self, ip: IpAddr) -> Option<Username> {
        self.with_username(At::Address(ip.to_canonical()), |u| u.cloned())
    }

    /// Who is signed in at `ip`, for events: their username, and the directory's entry for
    /// them when it has one.
    pub fn person_info(&self, ip: IpAddr) -> Option<(Username, Option<schoolgate_people::Person>)> {
        self.person_info_in(At::Address(ip.to_canonical()))
    }

    /// Who is signed in on the device away from school whose off-site id is `device`, for
    /// events, as [`person_info`](Self::person_info).
    pub fn person_info_on_device(
        &self,
        device: &str,
    ) -> Option<(Username, Option<schoolgate_people::Person>)> {
        self.person_info_in(At::Device(device))
    }

    fn person_info_in(&self, at: At<'_>) -> Option<(Username, Option<schoolgate_people::Person>)> {
        let username = self.with_username(at, |u| u.cloned())?;
        let person = self.people.current().find(username.as_str()).cloned();
        Some((username, person))
    }

    /// The username a sign-in's `raw` name stands for, and whether the directory knows it:
    /// the directory's own spelling when it finds the person (`SCHOOL\ben.t` and
    /// `ben.t@school.example` are both `ben.t`), else the name without domain or realm, so a
    /// sign-out spelled differently from its sign-in still finds it.
    pub fn username(&self, raw: &str) -> Option<(Username, bool)> {
        if let Some(p) = self.people.current().find(raw) {
            return Some((p.username.clone(), true));
        }
        Username::new(Username::bare(raw)).ok().map(|u| (u, false))
    }

    /// The directory's entry for `username`, if it has one.
    pub fn person_named(&self, username: &str) -> Option<schoolgate_people::Person> {
        self.people.current().find(username).cloned()
    }

    /// Every session, for the status and the console.
    pub fn all(&self) -> Vec<Session> {
        self.sessions().all().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A sign-in; the index is rebuilt for `policy` when someone new is signed in somewhere.
    pub fn sign_in(&self, policy: &Arc<Policy>, sign_in: SignIn, now: Timestamp) -> Vec<Change> {
        self.change(policy, |s| s.sign_in(sign_in, now))
    }

    pub fn sign_out(
        &self,
        policy: &Arc<Policy>,
        username: &Username,
        addresses: &[IpAddr],
        source: &str,
    ) -> Vec<Change> {
        self.change(policy, |s| s.sign_out(username, addresses, source))
    }

    /// A sign-out on a device away from school.
    pub fn sign_out_device(
        &self,
        policy: &Arc<Policy>,
        username: &Username,
        device: &str,
    ) -> Vec<Change> {
        self.change(policy, |s| s.sign_out_device(username, device))
    }

    pub fn reporter_restarted(&self, policy: &Arc<Policy>, source: &str) -> Vec<Change> {
        self.change(policy, |s| s.reporter_restarted(source))
    }

    pub fn expire(
        &self,
        policy: &Arc<Policy>,
        now: Timestamp,
        idle: SignedDuration,
    ) -> Vec<Change> {
        self.change(policy, |s| s.expire(now, idle))
    }

    /// Ends the sessions whose address now belongs to another MAC than the one they signed
    /// in from, as `mac_of` (the neighbour table, else the DHCP leases) says.
    pub fn moved(
        &self,
        policy: &Arc<Policy>,
        mac_of: impl Fn(IpAddr) -> Option<[u8; 6]>,
    ) -> Vec<Change> {
        // Asked without the lock held: a lookup may read the kernel's table.
        let signed: Vec<(IpAddr, [u8; 6])> = self
            .sessions()
            .all()
            .filter_map(|s| Some((s.place.address()?, s.mac?)))
            .collect();
        let moved: Vec<(IpAddr, [u8; 6])> = signed
            .into_iter()
            .filter_map(|(address, mac)| {
                let now = mac_of(address)?;
                (now != mac).then_some((address, now))
            })
            .collect();
        if moved.is_empty() {
            return Vec::new();
        }
        self.change(policy, |s| {
            moved
                .iter()
                .filter_map(|(address, mac)| s.lease(*address, *mac))
                .collect()
        })
    }

    fn change(
        &self,
        policy: &Arc<Policy>,
        f: impl FnOnce(&mut Sessions) -> Vec<Change>,
    ) -> Vec<Change> {
        let mut sessions = self.sessions();
        let changes = f(&mut sessions);
        if changes.is_empty() {
            return changes;
        }
        self.unsaved.store(true, Ordering::Relaxed);
        // An interim update changes who is where for no one.
        let moved = changes.iter().any(|c| !matches!(c, Change::Renewed(_)));
        if moved {
            self.index
                .store(Arc::new(build(policy, &self.people.current(), &sessions)));
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
        changes
    }

    /// A number that changes whenever who is where, or who they are, changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Works out everyone's identity again, for a new policy or a new directory.
    pub fn rebuild(&self, policy: &Arc<Policy>) {
        let sessions = self.sessions();
        self.index
            .store(Arc::new(build(policy, &self.people.current(), &sessions)));
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the sessions to the state directory if they changed since the last save.
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        if !self.unsaved.swap(false, Ordering::Relaxed) {
            return;
        }
        let all = self.all();
        if let Err(e) = write(path, &all) {
            self.unsaved.store(true, Ordering::Relaxed);
            warn!(path = %path.display(), error = %e, "cannot keep the sessions");
        }
    }
}

fn build(policy: &Arc<Policy>, directory: &Directory, sessions: &Sessions) -> Index {
    let mut index = Index {
        policy: Some(Arc::clone(policy)),
        by_address: HashMap::default(),
        by_device: HashMap::default(),
    };
    for s in sessions.all() {
        let signed = SignedIn {
            username: s.username.clone(),
            person: identify(policy, directory, &s.username),
        };
        match &s.place {
            Place::Address(a) => index.by_address.insert(*a, signed),
            Place::Device(id) => index.by_device.insert(id.as_str().into(), signed),
        };
    }
    index
}

/// The person `username` names in `directory`, as `policy` sees them.
fn identify(policy: &Policy, directory: &Directory, username: &Username) -> Option<PersonIdentity> {
    let person = directory.find(username.as_str())?;
    Some(policy.identify_person(&PersonView {
        username: person.username.as_str(),
        class: person.class.as_deref(),
        groups: &person.groups,
    }))
}

fn read(path: &Path) -> Vec<Session> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            warn!(path = %path.display(), error = %e, "the kept sessions cannot be read; starting with none");
            Vec::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "the kept sessions cannot be read; starting with none");
            Vec::new()
        }
    }
}

/// Written beside and renamed over, so a crash leaves the old file or the new, readable only
/// by the agent's user (who is signed in where is personal data).
fn write(path: &Path, sessions: &[Session]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let json = serde_json::to_vec(sessions).map_err(std::io::Error::other)?;
    let next = path.with_extension("json.new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&next)?;
    file.write_all(&json)?;
    file.sync_data()?;
    std::fs::rename(&next, path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const POLICY: &str = "version: 1
school: { name: Test School, timezone: Europe/London }
groups:
  pupils: { directory: [Pupils] }
  staff: { directory: [Staff] }
";

    fn policy() -> Arc<Policy> {
        let no_lists =
            |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
        Arc::new(
            Policy::from_yaml(POLICY, Path::new("/school/policy.yaml"), &no_lists)
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    #[test]
    fn the_person_at_an_address_follows_sign_ins_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let roster = dir.path().join("roster.csv");
        std::fs::write(&roster, "username,role\namira.k,pupil\ngrace.o,staff\n").unwrap();
        let people = LivePeople::new(Some(roster));
        people.reload();
        let live = LiveSessions::new(Some(dir.path()), Arc::clone(&people));
        let p = policy();
        let pc: IpAddr = "10.10.4.21".parse().unwrap();
        assert_eq!(live.person_at(&p, pc), None);
        let now = Timestamp::from_second(1_796_000_000).unwrap();
        let sign_in = |name: &str| SignIn {
            username: Username::new(name).unwrap(),
            addresses: vec![pc],
            device: None,
            mac: None,
            source: "radius wlc1".into(),
            id: None,
        };
        live.sign_in(&p, sign_in("amira.k"), now);
        let pupils = p
            .group_ids()
            .find(|g| p.group(*g).unwrap().name == "pupils");
        assert_eq!(live.person_at(&p, pc).unwrap().group, pupils);
        // Someone the directory does not know: signed in, but no person attached.
        live.sign_in(&p, sign_in("stranger"), now);
        assert_eq!(live.person_at(&p, pc), None);
        assert_eq!(live.username_at(pc).unwrap().as_str(), "stranger");
        live.sign_in(&p, sign_in("grace.o"), now);
        let staff = p.group_ids().find(|g| p.group(*g).unwrap().name == "staff");
        assert_eq!(live.person_at(&p, pc).unwrap().group, staff);
        // Under a policy the index was not built for, worked out on the spot.
        let q = policy();
        assert_eq!(live.person_at(&q, pc).unwrap().group, staff);
        live.save();
        let again = LiveSessions::new(Some(dir.path()), people);
        again.rebuild(&p);
        assert_eq!(again.person_at(&p, pc).unwrap().group, staff);
        assert_eq!(again.len(), 1);
        // Another device has the address now: Grace signed in from 02:..:21, the table says
        // 02:..:99.
        live.sign_in(
            &p,
            SignIn {
                mac: Some([2, 0, 0, 0, 0, 0x21]),
                ..sign_in("grace.o")
            },
            now,
        );
        assert!(live.moved(&p, |_| Some([2, 0, 0, 0, 0, 0x21])).is_empty());
        assert!(live.moved(&p, |_| None).is_empty());
        assert_eq!(live.moved(&p, |_| Some([2, 0, 0, 0, 0, 0x99])).len(), 1);
        assert_eq!(live.person_at(&p, pc), None);
        // A laptop away from school, by its off-site id: a place of its own, found under
        // the indexed policy and any other, and untouched by who has which address.
        live.sign_in(
            &p,
            SignIn {
                addresses: Vec::new(),
                device: Some("laptop7".into()),
                ..sign_in("amira.k")
            },
            now,
        );
        assert_eq!(live.person_on_device(&p, "laptop7").unwrap().group, pupils);
        assert_eq!(live.person_on_device(&q, "laptop7").unwrap().group, pupils);
        assert_eq!(live.person_on_device(&p, "laptop8"), None);
        let (username, person) = live.person_info_on_device("laptop7").unwrap();
        assert_eq!(username.as_str(), "amira.k");
        assert!(person.is_some());
        assert!(live.moved(&p, |_| Some([2, 0, 0, 0, 0, 0x77])).is_empty());
        assert_eq!(live.person_at(&p, pc), None);
        // A damaged file is not fatal.
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        assert!(LiveSessions::new(Some(dir.path()), LivePeople::new(None)).is_empty());
    }
}
