//! The gateway firewall: one nftables table the agent owns, closing the routes round the
//! filtering resolver (other resolvers, DoT/DoQ, QUIC, remembered addresses).
//!
//! - [`learner`]: the thread that feeds answers in and follows the schedule.
//! - [`nflog`]: the thread bound to the NFLOG group.
//! - [`nft`]: loading it with the `nft` tool.
//!
//! The planning is the gateway core's (`schoolgate_gateway::firewall`): the table, the
//! addresses learned from DNS answers and from the policy's lists and which each group is
//! refused now, the ranges, what the filled sets hold, NFLOG's packets read, the counters.
//! This module only carries its plans out.
//!
//! [`Firewall`] is the daemon's handle: it loads the table at start (keeping the quarantined
//! devices of a table left by an earlier run), again on every policy change, and on stop
//! leaves it (`fail_closed`) or removes it (`fail_open`).

pub mod learner;
pub mod nflog;
pub mod nft;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;

use jiff::Timestamp;
use schoolgate_engine::policy::Identity;
use schoolgate_engine::policy::gateway::OnStop;
use schoolgate_engine::{Client, MacAddr, Policy};
use tracing::{debug, info, warn};

use self::nft::{Nft, NftError};
use schoolgate_gateway::firewall::counters;
use schoolgate_gateway::firewall::installed::Installed;
use schoolgate_gateway::firewall::learned::Learned;
use schoolgate_gateway::firewall::listed::{self, Listed};
use schoolgate_gateway::firewall::placed::Placed;
use schoolgate_gateway::firewall::ruleset::{self, Quarantined, Settings, State};

/// A name the resolver answered, and each address with its TTL in seconds.
pub type Answer = (Box<str>, Vec<(IpAddr, u32)>);

/// A flow inspection judged blocked, to be refused for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// UDP from the device to the server's address and port.
    Quic {
        client: IpAddr,
        server: std::net::SocketAddr,
    },
    /// One TCP connection.
    Tcp {
        client: std::net::SocketAddr,
        server: std::net::SocketAddr,
    },
}

/// The agent's table in the kernel, and what it holds.
#[derive(Debug)]
pub struct Firewall {
    nft: Nft,
    settings: Settings,
    on_stop: OnStop,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    quarantined: Quarantined,
    learned: Learned,
    installed: Installed,
    /// When a decision behind the learned sets next changes.
    next_change: Option<Timestamp>,
    /// What the listed sets hold.
    listed: Listed,
    /// Addresses judged apart from their group, as the table holds them.
    placed: Placed,
}

impl Firewall {
    /// Loads the table for `policy`. Quarantined devices found in a table an earlier run
    /// left behind (after a crash, or a `fail_closed` stop) stay quarantined.
    pub fn start(
        nft: Nft,
        settings: Settings,
        on_stop: OnStop,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<Self, NftError> {
        let mut inner = Inner::default();
        match nft.list_table() {
            Ok(Some(json)) => {
                inner.quarantined = quarantined_in(&json);
                info!(
                    ips = inner.quarantined.ips.len(),
                    macs = inner.quarantined.macs.len(),
                    "picked up the firewall table left by an earlier run"
                );
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot read an earlier firewall table"),
        }
        let fw = Self {
            nft,
            settings,
            on_stop,
            inner: Mutex::new(inner),
        };
        fw.apply(policy, now)?;
        Ok(fw)
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds the whole table for `policy` at `now` and loads it in one transaction. On
    /// failure the table in force stays as it was.
    pub fn apply(&self, policy: &Policy, now: Timestamp) -> Result<(), NftError> {
        let mut inner = self.inner();
        // Profiles name the old policy's groups and exceptions: until they are worked out
        // again for this one (within a second), every address is judged as its group.
        let placed = std::mem::take(&mut inner.placed);
        if let Err(e) = self.load_whole(policy, &mut inner, now) {
            inner.placed = placed;
            return Err(e);
        }
        info!(
            learned = inner.learned.len(),
            installed = inner.installed.len(),
            "firewall table loaded"
        );
        Ok(())
    }

    /// Loads the whole table, its filled sets judged at `now`.
    fn load_whole(
        &self,
        policy: &Policy,
        inner: &mut Inner,
        now: Timestamp,
    ) -> Result<(), NftError> {
        let wanted = inner.learned.enforce(policy, &inner.placed, now);
        let state = State {
            blocked: wanted.blocked.clone(),
            placed: inner.placed.clone(),
            quarantined: inner.quarantined.clone(),
            quarantine_allow: wanted.quarantine_allow.clone(),
            listed: listed::enforce(policy, &inner.placed, now),
        };
        self.nft
            .load(&ruleset::build(policy, &self.settings, &state))?;
        inner.installed.reset(&wanted, now.as_millisecond());
        inner.next_change = wanted.next_change;
        inner.listed = state.listed;
        Ok(())
    }

    /// Records DNS answers (name, and each address with its TTL) and adds the addresses
    /// the policy refuses now to the table, without reloading it.
    pub fn learn(
        &self,
        policy: &Policy,
        answers: &[Answer],
        now: Timestamp,
    ) -> Result<(), NftError> {
        let mut inner = self.inner();
        let now_ms = now.as_millisecond();
        let mut touched = HashSet::new();
        for (name, addresses) in answers {
            touched.extend(inner.learned.learn(name, addresses.iter().copied(), now_ms));
        }
        if touched.is_empty() {
            return Ok(());
        }
        let wanted = inner
            .learned
            .enforce_on(policy, &inner.placed, touched.iter().copied(), now);
        if let Some(t) = wanted.next_change {
            inner.next_change = Some(inner.next_change.map_or(t, |n| n.min(t)));
        }
        let changes = inner.installed.changes(&wanted, Some(&touched), now_ms);
        self.send(policy, &changes, &mut inner, now)
    }

    /// Judges every learned address again at `now` (a schedule window opened or closed, or
    /// time passed) and changes the sets to match. Returns when to do so next.
    pub fn refresh(&self, policy: &Policy, now: Timestamp) -> Result<(), NftError> {
        let mut inner = self.inner();
        let now_ms = now.as_millisecond();
        inner.learned.forget_expired(now_ms);
        if inner.listed.next_change.is_some_and(|t| t <= now) {
            let fresh = listed::enforce(policy, &inner.placed, now);
            let text = ruleset::relist(policy, &inner.placed, &inner.listed, &fresh);
            if !text.is_empty() {
                debug!("changing the firewall's listed address sets");
                if let Err(e) = self.nft.load(&text) {
                    warn!(error = %e, "cannot change the listed address sets; loading the whole table");
                    return self.load_whole(policy, &mut inner, now);
                }
            }
            inner.listed = fresh;
        }
        let wanted = inner.learned.enforce(policy, &inner.placed, now);
        inner.next_change = wanted.next_change;
        let changes = inner.installed.changes(&wanted, None, now_ms);
        self.send(policy, &changes, &mut inner, now)
    }

    fn send(
        &self,
        policy: &Policy,
        changes: &ruleset::Changes,
        inner: &mut Inner,
        now: Timestamp,
    ) -> Result<(), NftError> {
        if changes.is_empty() {
            return Ok(());
        }
        debug!(
            add = changes.add.len(),
            remove = changes.remove.len(),
            "changing the firewall's address sets"
        );
        match self.nft.load(&ruleset::update(policy, changes)) {
            Ok(()) => Ok(()),
            Err(e) => {
                // The sets are no longer what `installed` says: load the whole table, which
                // puts them right.
                warn!(error = %e, "cannot change the address sets; loading the whole table");
                self.load_whole(policy, inner, now)
            }
        }
    }

    /// Judges `clients` (each address with the identity found for it: device entry, group,
    /// signed-in person) apart from their group where the decision engine would. Addresses
    /// that only moved between existing profiles change in place; new or vanished profiles
    /// (a kind of person signed in for the first time, an exception began or ended) reload
    /// the table. Returns whether anything changed.
    pub fn place(
        &self,
        policy: &Policy,
        clients: impl IntoIterator<Item = (Identity, Client)>,
        now: Timestamp,
    ) -> Result<bool, NftError> {
        let fresh = Placed::new(policy, clients);
        let mut inner = self.inner();
        if fresh == inner.placed {
            return Ok(false);
        }
        if fresh.not_placed > 0 {
            warn!(
                addresses = fresh.not_placed,
                "too many kinds of people and exceptions at once: some addresses are judged as their group"
            );
        }
        if fresh.same_profiles(&inner.placed) {
            // The same profiles judge the same way whichever address stands for each, so
            // only the addresses that moved change (and nothing, if none did).
            let text = ruleset::replace(&inner.placed, &fresh);
            let moved = if text.is_empty() {
                Ok(())
            } else {
                self.nft.load(&text)
            };
            match moved {
                Ok(()) => {
                    inner.placed = fresh;
                    return Ok(true);
                }
                Err(e) => {
                    warn!(error = %e, "cannot move addresses between profiles; loading the whole table")
                }
            }
        }
        let old = std::mem::replace(&mut inner.placed, fresh);
        debug!(
            profiles = inner.placed.profiles.len(),
            "loading the table for new profiles"
        );
        if let Err(e) = self.load_whole(policy, &mut inner, now) {
            inner.placed = old;
            return Err(e);
        }
        Ok(true)
    }

    /// How many addresses are judged apart from their group, and in how many profiles.
    pub fn placed_counts(&self) -> (usize, usize) {
        let inner = self.inner();
        (inner.placed.at.len(), inner.placed.profiles.len())
    }

    /// Puts a device in the quarantine sets (by whatever of its address and MAC is known),
    /// without reloading the table. It stays there across policy changes and restarts.
    pub fn quarantine(&self, ip: Option<IpAddr>, mac: Option<MacAddr>) -> Result<(), NftError> {
        let mut inner = self.inner();
        let q = &mut inner.quarantined;
        let ip = ip.map(|i| i.to_canonical()).filter(|i| !q.ips.contains(i));
        let mac = mac.filter(|m| !q.macs.contains(m));
        q.ips.extend(ip);
        q.macs.extend(mac);
        let text = ruleset::quarantine(ip, mac);
        if text.is_empty() {
            return Ok(());
        }
        self.nft.load(&text)
    }

    /// Takes a device out of the quarantine sets (whatever of its address and MAC they
    /// hold). Returns whether anything was there.
    pub fn release(&self, ip: Option<IpAddr>, mac: Option<MacAddr>) -> Result<bool, NftError> {
        let mut inner = self.inner();
        let q = &mut inner.quarantined;
        let ip = ip.map(|i| i.to_canonical()).filter(|i| q.ips.contains(i));
        let mac = mac.filter(|m| q.macs.contains(m));
        let text = ruleset::release(ip, mac);
        if text.is_empty() {
            return Ok(false);
        }
        self.nft.load(&text)?;
        q.ips.retain(|i| Some(*i) != ip);
        q.macs.retain(|m| Some(*m) != mac);
        Ok(true)
    }

    /// Refuses each of `flows` for `ttl`, in one transaction: a QUIC flow's UDP is dropped
    /// (the browser falls back to TCP, where the name is read again and reset); a TCP
    /// connection's later packets from the device are answered by a reset.
    pub fn block_flows(&self, flows: &[Flow], ttl: std::time::Duration) -> Result<(), NftError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let text: String = flows
            .iter()
            .map(|f| match *f {
                Flow::Quic { client, server } => ruleset::block_quic(client, server, ms),
                Flow::Tcp { client, server } => ruleset::block_tcp(client, server, ms),
            })
            .collect();
        if text.is_empty() {
            return Ok(());
        }
        self.nft.load(&text)
    }

    /// The quarantined devices the table holds.
    pub fn quarantined(&self) -> Quarantined {
        self.inner().quarantined.clone()
    }

    /// When a decision behind the filled sets next changes, if ever.
    pub fn next_change(&self) -> Option<Timestamp> {
        let inner = self.inner();
        match (inner.next_change, inner.listed.next_change) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether addresses for `name` are known and good at `now`.
    pub fn knows(&self, name: &str, now: Timestamp) -> bool {
        self.inner().learned.knows(name, now.as_millisecond())
    }

    /// Addresses held, and addresses not learned because the store was full.
    pub fn learned_counts(&self) -> (usize, u64) {
        let inner = self.inner();
        (inner.learned.len(), inner.learned.dropped)
    }

    /// The table's rule counters and what the agent holds, as OpenMetrics families.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        match self.nft.list_table() {
            Ok(Some(json)) => counters::render(&counters::read(&json), &mut out),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot read the firewall's counters"),
        }
        let (held, dropped) = self.learned_counts();
        let _ = write!(
            out,
            "# HELP schoolgate_firewall_learned_addresses Addresses learned from DNS answers and held.\n\
             # TYPE schoolgate_firewall_learned_addresses gauge\n\
             schoolgate_firewall_learned_addresses {held}\n\
             # HELP schoolgate_firewall_learned_refused Addresses not learned because the store was full.\n\
             # TYPE schoolgate_firewall_learned_refused counter\n\
             schoolgate_firewall_learned_refused_total {dropped}\n"
        );
        let (placed, profiles) = self.placed_counts();
        let _ = write!(
            out,
            "# HELP schoolgate_firewall_placed_addresses Addresses judged apart from their group (someone signed in, an exception naming the device or its network).\n\
             # TYPE schoolgate_firewall_placed_addresses gauge\n\
             schoolgate_firewall_placed_addresses {placed}\n\
             # HELP schoolgate_firewall_profiles Profiles those addresses share, each a chain of its own.\n\
             # TYPE schoolgate_firewall_profiles gauge\n\
             schoolgate_firewall_profiles {profiles}\n"
        );
        out
    }

    /// What the policy asks for when the agent stops: leave the table, or remove it.
    pub fn stop(&self) -> Result<(), NftError> {
        match self.on_stop {
            OnStop::FailClosed => {
                info!("leaving the firewall table in place (fail_closed)");
                Ok(())
            }
            OnStop::FailOpen => {
                info!("removing the firewall table (fail_open)");
                self.nft.load(&ruleset::removal())
            }
        }
    }
}

/// The quarantined devices in a table listed as JSON (`nft -j list table`). Elements that do
/// not read as addresses are left out.
pub fn quarantined_in(json: &str) -> Quarantined {
    let mut out = Quarantined::default();
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(json) else {
        return out;
    };
    for set in schoolgate_gateway::firewall::counters::listed(&doc, "set") {
        let name = set.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        let elems = set
            .get("elem")
            .and_then(|e| e.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let texts = elems.iter().filter_map(|e| e.as_str());
        match name {
            "quarantine_v4" | "quarantine_v6" => out
                .ips
                .extend(texts.filter_map(|t| t.parse::<IpAddr>().ok())),
            "quarantine_mac" => out
                .macs
                .extend(texts.filter_map(|t| t.parse::<MacAddr>().ok())),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantined_devices_are_read_back_from_a_listed_table() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "schoolgate", "handle": 1}},
            {"set": {"family": "inet", "name": "quarantine_mac", "table": "schoolgate", "type": "ether_addr", "handle": 2, "elem": ["52:54:00:aa:bb:cd"]}},
            {"set": {"family": "inet", "name": "quarantine_v4", "table": "schoolgate", "type": "ipv4_addr", "handle": 3, "elem": ["10.10.3.9", "not-an-ip"]}},
            {"set": {"family": "inet", "name": "quarantine_v6", "table": "schoolgate", "type": "ipv6_addr", "handle": 4}},
            {"set": {"family": "inet", "name": "blocked_group_pupils_v4", "table": "schoolgate", "type": "ipv4_addr", "handle": 5, "elem": [{"elem": {"val": "198.51.100.20", "timeout": 300, "expires": 290}}]}}]}"#;
        let q = quarantined_in(json);
        assert_eq!(q.ips, vec!["10.10.3.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            q.macs,
            vec!["52:54:00:aa:bb:cd".parse::<MacAddr>().unwrap()]
        );
        assert_eq!(quarantined_in("garbage"), Quarantined::default());
    }
}
