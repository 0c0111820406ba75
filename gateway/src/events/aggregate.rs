//! Turning many sightings into few events, without a clock: `now` is passed in.
//!
//! One page load can ask for the same blocked name dozens of times. [`Aggregator`] keeps one
//! window per device + name + rule. The first sighting is passed on at once, so that what a
//! device was answered is in the journal within the writer's sync interval, whatever happens
//! to the agent after (a `kill -9` loses no name). Repeats inside the window are counted in
//! one follow-up event with its own id, from its first repeat. The follow-up is passed on at
//! each [`Aggregator::checkpoint`] (every second in the daemon) while its count grows, each
//! time with the same id and the running count: a later record with the same id supersedes
//! an earlier one (the console keeps the larger count). So a crash loses at most the
//! repeats counted since the last checkpoint, never a first sighting. The counts of a
//! sighting and its follow-up add up to the sightings.
//!
//! [`Presence`] remembers which devices were already reported today.

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use schoolgate_engine::MacAddr;

#[cfg(test)]
use schoolgate_contract::Severity;
use schoolgate_contract::event::uuid_v7;
use schoolgate_contract::{Event, Technique};

/// How long sightings of one device + name + rule are gathered into one event.
pub const WINDOW: SignedDuration = SignedDuration::from_secs(60);
/// The most pending events held; past it the oldest is released early, so memory is bounded
/// whatever devices do.
pub const MAX_PENDING: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    ip: Option<IpAddr>,
    mac: Option<MacAddr>,
    /// Who was signed in: one pupil's repeats are never counted as the next one's.
    person: Option<String>,
    name: Option<String>,
    rule: Option<String>,
    technique: Option<Technique>,
    destination: Option<String>,
}

impl From<Sighting<'_>> for Key {
    fn from(s: Sighting<'_>) -> Self {
        Self {
            ip: s.ip,
            mac: s.mac,
            person: s.person.map(str::to_owned),
            name: s.name.map(str::to_owned),
            rule: s.rule.map(str::to_owned),
            technique: s.technique,
            destination: s.destination.map(str::to_owned),
        }
    }
}

/// What a window is kept by, borrowed: a sighting looked up with this costs no allocation,
/// so a repeat (most blocked queries) is counted without copying its strings, or without
/// building its event at all ([`Aggregator::repeat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sighting<'a> {
    pub ip: Option<IpAddr>,
    pub mac: Option<MacAddr>,
    /// The username of who was signed in.
    pub person: Option<&'a str>,
    pub name: Option<&'a str>,
    pub rule: Option<&'a str>,
    pub technique: Option<Technique>,
    pub destination: Option<&'a str>,
}

impl<'a> Sighting<'a> {
    /// The window `e` belongs to.
    pub fn of(e: &'a Event) -> Self {
        Self {
            ip: e.device.ip,
            mac: e.device.mac,
            person: e.person.as_ref().map(|p| p.username.as_str()),
            name: e.name.as_deref(),
            rule: e.rule.as_deref(),
            technique: e.technique,
            destination: e.destination.as_deref(),
        }
    }
}

/// Owned keys and borrowed sightings hashed and compared alike, so the table of windows
/// (keyed by [`Key`]) can be asked with a [`Sighting`].
trait AsSighting {
    fn sighting(&self) -> Sighting<'_>;
}

impl AsSighting for Key {
    fn sighting(&self) -> Sighting<'_> {
        Sighting {
            ip: self.ip,
            mac: self.mac,
            person: self.person.as_deref(),
            name: self.name.as_deref(),
            rule: self.rule.as_deref(),
            technique: self.technique,
            destination: self.destination.as_deref(),
        }
    }
}

impl AsSighting for Sighting<'_> {
    fn sighting(&self) -> Sighting<'_> {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn AsSighting + 'a> for Key {
    fn borrow(&self) -> &(dyn AsSighting + 'a) {
        self
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.sighting().hash(state);
    }
}

impl std::hash::Hash for dyn AsSighting + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.sighting().hash(state);
    }
}

impl PartialEq for dyn AsSighting + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.sighting() == other.sighting()
    }
}

impl Eq for dyn AsSighting + '_ {}

/// Open windows, closed one window after their first sighting.
#[derive(Debug)]
pub struct Aggregator {
    window: SignedDuration,
    capacity: usize,
    /// Each window's follow-up (count 0 until a repeat), and whether it changed since it
    /// was last passed on.
    /// (foldhash, seeded per process: a repeat is looked up here on every blocked query,
    /// and SipHash was a visible part of that path's cost.)
    pending: foldhash::HashMap<Key, (Event, bool)>,
    /// Keys in the order they opened, with when they close.
    order: VecDeque<(Timestamp, Key)>,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new(WINDOW, MAX_PENDING)
    }
}

impl Aggregator {
    pub fn new(window: SignedDuration, capacity: usize) -> Self {
        Self {
            window,
            capacity: capacity.max(1),
            pending: foldhash::HashMap::default(),
            order: VecDeque::new(),
        }
    }

    /// Adds one sighting at `event.time`. Returns what is to be passed on now: the sighting
    /// itself if it opens a window, and a follow-up released early because the table was
    /// full.
    pub fn add(&mut self, event: Event) -> Vec<Event> {
        let sighting = Sighting::of(&event);
        if self.repeat(&sighting, event.time, event.count) {
            return Vec::new();
        }
        let key = Key::from(sighting);
        let mut now = Vec::new();
        if self.pending.len() >= self.capacity {
            now.extend(self.pop_oldest());
        }
        let closes = event.time.saturating_add(self.window).unwrap_or(event.time);
        self.order.push_back((closes, key.clone()));
        // The window holds an empty follow-up that the repeats fill.
        let follow = Event {
            count: 0,
            last: None,
            ..event.clone()
        };
        self.pending.insert(key, (follow, false));
        now.push(event);
        now
    }

    /// Counts `count` more sightings at `time` into the window `sighting` belongs to, if one
    /// is open; `false` (and nothing counted) if none is: the sighting must then be
    /// [`add`](Self::add)ed as an event.
    pub fn repeat(&mut self, sighting: &Sighting<'_>, time: Timestamp, count: u32) -> bool {
        let Some((open, changed)) = self.pending.get_mut(sighting as &dyn AsSighting) else {
            return false;
        };
        if open.count == 0 {
            // The first repeat: the follow-up starts, an event of its own: its own id, from
            // its first repeat.
            open.id = uuid_v7(time);
            open.time = time;
            open.last = None;
        } else {
            open.last = Some(time);
        }
        open.count = schoolgate_contract::text::count(
            u64::from(open.count).saturating_add(u64::from(count)),
        );
        *changed = true;
        true
    }

    /// The follow-ups whose window has closed by `now` and that changed since they were
    /// last passed on, oldest first.
    pub fn due(&mut self, now: Timestamp) -> Vec<Event> {
        let mut out = Vec::new();
        while self.order.front().is_some_and(|(closes, _)| *closes <= now) {
            out.extend(self.pop_oldest());
        }
        out
    }

    /// The running follow-ups that changed since they were last passed on, each with the
    /// same id and its count so far (it supersedes the one before).
    pub fn checkpoint(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        for (_, key) in &self.order {
            if let Some((e, changed)) = self.pending.get_mut(key)
                && *changed
            {
                *changed = false;
                out.push(e.clone());
            }
        }
        out
    }

    /// Every follow-up not yet passed on with its last count, at shutdown.
    pub fn drain(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while !self.order.is_empty() {
            out.extend(self.pop_oldest());
        }
        out
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Closes the oldest window: its follow-up, if a repeat filled it and it changed since
    /// it was last passed on.
    fn pop_oldest(&mut self) -> Option<Event> {
        let (_, key) = self.order.pop_front()?;
        self.pending
            .remove(&key)
            .filter(|(e, changed)| e.count > 0 && *changed)
            .map(|(e, _)| e)
    }
}

/// Who has been reported present today.
#[derive(Debug, Default)]
pub struct Presence {
    day: Option<Date>,
    seen: HashSet<(Option<MacAddr>, Option<IpAddr>)>,
}

impl Presence {
    /// Whether a device (by MAC where known, else IP) seen on `today` is new today. A new day
    /// forgets yesterday's devices.
    pub fn first_today(&mut self, mac: Option<MacAddr>, ip: Option<IpAddr>, today: Date) -> bool {
        if self.day != Some(today) {
            self.day = Some(today);
            self.seen.clear();
        }
        let key = if mac.is_some() {
            (mac, None)
        } else {
            (None, ip)
        };
        self.seen.insert(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schoolgate_contract::Kind;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + secs).unwrap()
    }

    fn blocked(secs: i64, ip: &str, name: &str) -> Event {
        let mut e = Event::new(Kind::Blocked, at(secs), Severity::Low);
        e.device.ip = Some(ip.parse().unwrap());
        e.name = Some(name.into());
        e.rule = Some("r".into());
        e
    }

    #[test]
    fn a_first_sighting_goes_at_once_and_its_repeats_follow_in_one_event() {
        let mut a = Aggregator::new(SignedDuration::from_secs(60), 100);
        let first = a.add(blocked(0, "10.0.0.5", "instagram.com"));
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].count, first[0].time), (1, at(0)));
        for s in 1..50 {
            assert!(a.add(blocked(s, "10.0.0.5", "instagram.com")).is_empty());
        }
        assert_eq!(a.add(blocked(10, "10.0.0.6", "instagram.com")).len(), 1);
        assert_eq!(a.add(blocked(20, "10.0.0.5", "tiktok.com")).len(), 1);
        assert!(a.due(at(59)).is_empty());
        let follow = a.due(at(60));
        assert_eq!(follow.len(), 1);
        assert_eq!(follow[0].count, 49);
        assert_eq!((follow[0].time, follow[0].last), (at(1), Some(at(49))));
        assert_ne!(
            follow[0].id, first[0].id,
            "the follow-up is an event of its own"
        );
        // No repeats: nothing follows.
        assert!(a.due(at(80)).is_empty());
        // A sighting after the window opens a new one.
        assert_eq!(a.add(blocked(90, "10.0.0.5", "instagram.com")).len(), 1);
        assert!(a.drain().is_empty());
        assert!(a.is_empty());
    }

    #[test]
    fn a_repeat_is_counted_from_its_borrowed_sighting_alone() {
        let mut a = Aggregator::new(SignedDuration::from_secs(60), 100);
        let mut first = blocked(0, "10.0.0.5", "instagram.com");
        first.person = Some(schoolgate_contract::event::PersonInfo {
            username: "amira.k".into(),
            ..Default::default()
        });
        let sighting = |person, name| Sighting {
            ip: Some("10.0.0.5".parse().unwrap()),
            mac: None,
            person,
            name: Some(name),
            rule: Some("r"),
            technique: None,
            destination: None,
        };
        // Nothing open yet: not counted.
        assert!(!a.repeat(&sighting(Some("amira.k"), "instagram.com"), at(0), 1));
        assert_eq!(a.add(first.clone()).len(), 1);
        // The same window, borrowed: counted. Another person or name: not.
        assert!(a.repeat(&sighting(Some("amira.k"), "instagram.com"), at(1), 1));
        assert!(a.repeat(&sighting(Some("amira.k"), "instagram.com"), at(2), 2));
        assert!(!a.repeat(&sighting(Some("ben.t"), "instagram.com"), at(3), 1));
        assert!(!a.repeat(&sighting(None, "instagram.com"), at(3), 1));
        assert!(!a.repeat(&sighting(Some("amira.k"), "tiktok.com"), at(3), 1));
        // Counted with the event's own repeats, in one follow-up.
        assert!(
            a.add(Event {
                time: at(4),
                ..first
            })
            .is_empty()
        );
        let follow = a.due(at(60));
        assert_eq!(follow.len(), 1);
        assert_eq!(follow[0].count, 4);
        assert_eq!((follow[0].time, follow[0].last), (at(1), Some(at(4))));
    }

    #[test]
    fn a_checkpoint_passes_on_a_running_count_under_one_id() {
        let mut a = Aggregator::new(SignedDuration::from_secs(60), 100);
        a.add(blocked(0, "10.0.0.5", "instagram.com"));
        assert!(a.checkpoint().is_empty(), "no repeat yet");
        for s in 1..=3 {
            a.add(blocked(s, "10.0.0.5", "instagram.com"));
        }
        let one = a.checkpoint();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].count, 3);
        assert!(a.checkpoint().is_empty(), "unchanged since");
        a.add(blocked(4, "10.0.0.5", "instagram.com"));
        let two = a.checkpoint();
        assert_eq!((two[0].id, two[0].count), (one[0].id, 4));
        // Closed unchanged since the last checkpoint: nothing more to pass on.
        assert!(a.due(at(60)).is_empty());
        // Changed after the last checkpoint: the window's close passes it on.
        a.add(blocked(100, "10.0.0.5", "instagram.com"));
        a.add(blocked(101, "10.0.0.5", "instagram.com"));
        a.checkpoint();
        a.add(blocked(102, "10.0.0.5", "instagram.com"));
        let last = a.due(at(160));
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].count, 2);
    }

    #[test]
    fn full_table_releases_the_oldest_early() {
        let mut a = Aggregator::new(SignedDuration::from_secs(60), 2);
        assert_eq!(a.add(blocked(0, "10.0.0.1", "a.com")).len(), 1);
        a.add(blocked(1, "10.0.0.1", "a.com"));
        assert_eq!(a.add(blocked(1, "10.0.0.2", "a.com")).len(), 1);
        let early = a.add(blocked(2, "10.0.0.3", "a.com"));
        assert_eq!(
            early.len(),
            2,
            "the oldest's follow-up, and the new sighting"
        );
        assert_eq!(early[0].device.ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(early[0].count, 1);
        assert_eq!(a.len(), 2);
    }

    fn attempt(secs: i64) -> Event {
        let mut e = Event::new(Kind::BypassAttempt, at(secs), Severity::High);
        e.device.ip = Some("10.0.0.5".parse().unwrap());
        e.technique = Some(Technique::Openvpn);
        e.destination = Some("198.51.100.20:1194".into());
        e
    }

    #[test]
    fn an_alert_goes_at_once_and_its_repeats_follow_in_one_event() {
        let mut a = Aggregator::new(SignedDuration::from_secs(60), 100);
        let first = a.add(attempt(0));
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].count, first[0].time), (1, at(0)));
        for s in 5..=9 {
            assert!(a.add(attempt(s)).is_empty());
        }
        let follow = a.due(at(60));
        assert_eq!(follow.len(), 1);
        assert_eq!(follow[0].count, 5);
        assert_eq!((follow[0].time, follow[0].last), (at(5), Some(at(9))));
        assert_ne!(
            follow[0].id, first[0].id,
            "the follow-up is an event of its own"
        );
        assert_eq!(follow[0].technique, Some(Technique::Openvpn));

        // No repeats: nothing follows, at the window's end or at shutdown.
        assert_eq!(a.add(attempt(100)).len(), 1);
        assert!(a.due(at(200)).is_empty());
        assert_eq!(a.add(attempt(300)).len(), 1);
        assert!(a.drain().is_empty());
        assert!(a.is_empty());
    }

    #[test]
    fn presence_once_per_device_per_day() {
        let mut p = Presence::default();
        let d1 = Date::constant(2026, 11, 23);
        let d2 = Date::constant(2026, 11, 24);
        let mac: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let ip: IpAddr = "10.11.0.5".parse().unwrap();
        assert!(p.first_today(Some(mac), Some(ip), d1));
        assert!(!p.first_today(Some(mac), Some(ip), d1));
        // Same MAC on a new address is the same device.
        assert!(!p.first_today(Some(mac), "10.11.0.6".parse().ok(), d1));
        assert!(p.first_today(None, Some(ip), d1));
        assert!(p.first_today(Some(mac), Some(ip), d2));
    }
}
