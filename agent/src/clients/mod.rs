//! Who is asking: from a client's address to its MAC, device name and owner.
//!
//! The MAC comes from the kernel's neighbour table ([`neighbours`]), and failing that from a
//! current DHCP lease ([`leases`]); the name from the policy's device entries, and failing that
//! from the lease's host name. [`Directory`] keeps both tables and answers lookups.

pub mod leases;
pub mod neighbours;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use schoolgate_engine::MacAddr;
use schoolgate_engine::policy::gateway::LeaseFile;
use tracing::{debug, info, warn};

use leases::Lease;

use crate::recent::Recent;

/// The neighbour table is read again on a miss at most this often, so a flood of queries from
/// unknown addresses cannot turn into a flood of netlink dumps. Misses are rare: the table is
/// kept current from the kernel's change notifications.
const MISS_REFRESH: Duration = Duration::from_millis(250);
/// An address's first miss reads the table sooner: a device new to the network sends its
/// first query microseconds after its ARP request created the entry, often before the change
/// notification is applied, and a device known by its MAC must not be judged by its address.
const FIRST_MISS_REFRESH: Duration = Duration::from_millis(20);
/// An address counts as missed again (a first miss) after this long.
const MISS_MEMORY: Duration = Duration::from_secs(60);
/// Addresses remembered as missed, at most (routed subnets miss every time).
const MISSED_MAX: usize = 65_536;

/// Neighbour entries and leases, by address.
#[derive(Debug)]
pub struct Directory {
    neighbours: RwLock<foldhash::HashMap<IpAddr, MacAddr>>,
    /// When the table was last read, in milliseconds since `started` (`-1`: never). Atomic:
    /// every query from a client without a neighbour entry (a routed subnet) looks at it.
    last_dump: AtomicI64,
    started: Instant,
    /// `false` when netlink cannot be used (the lookups then rely on leases alone).
    netlink: bool,
    leases: ArcSwap<HashMap<IpAddr, Lease>>,
    lease_files: Vec<LeaseFile>,
    /// Addresses that missed lately (taken on misses only).
    missed: std::sync::Mutex<Recent<IpAddr>>,
}

impl Directory {
    /// A directory reading the neighbour table (if `netlink`) and these lease files.
    pub fn new(netlink: bool, lease_files: Vec<LeaseFile>) -> Arc<Self> {
        let d = Arc::new(Self {
            neighbours: RwLock::new(foldhash::HashMap::default()),
            last_dump: AtomicI64::new(-1),
            started: crate::clock::instant(),
            netlink,
            leases: ArcSwap::from_pointee(HashMap::new()),
            lease_files,
            missed: std::sync::Mutex::new(Recent::new(MISS_MEMORY, MISSED_MAX)),
        });
        d.read_leases();
        d
    }

    /// The MAC behind `ip` at `now`: from the neighbour table, else from a current lease. On a
    /// neighbour-table miss the table is read again (rate-limited, sooner for an address's
    /// first miss), in case a change notification was missed or is still on its way.
    pub fn mac(&self, ip: IpAddr, now: Timestamp) -> Option<MacAddr> {
        let ip = ip.to_canonical();
        let mut mac = self.neighbour(ip);
        if mac.is_none() && self.netlink {
            let at = crate::clock::instant();
            let interval = if self.first_miss(ip, at) {
                FIRST_MISS_REFRESH
            } else {
                MISS_REFRESH
            };
            if self.refresh_due(interval, at) {
                self.refresh_neighbours();
                mac = self.neighbour(ip);
            }
        }
        mac.or_else(|| self.with_lease(ip, now, |l| l.mac))
    }

    /// Whether `ip` has not missed in the last [`MISS_MEMORY`]; remembers that it has now.
    fn first_miss(&self, ip: IpAddr, now: Instant) -> bool {
        let mut missed = self.missed.lock().unwrap_or_else(|e| e.into_inner());
        missed.first(&ip, now)
    }

    /// Every address in the neighbour table or a current lease.
    pub fn known(&self, now: Timestamp) -> Vec<IpAddr> {
        let mut all: Vec<IpAddr> = self
            .neighbours
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        let leases = self.leases.load();
        all.extend(leases.values().filter(|l| l.is_current(now)).map(|l| l.ip));
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The host name in `ip`'s current DHCP lease.
    pub fn hostname(&self, ip: IpAddr, now: Timestamp) -> Option<String> {
        self.with_lease(ip.to_canonical(), now, |l| l.hostname.clone())
    }

    fn with_lease<T>(
        &self,
        ip: IpAddr,
        now: Timestamp,
        f: impl FnOnce(&Lease) -> Option<T>,
    ) -> Option<T> {
        let leases = self.leases.load();
        leases.get(&ip).filter(|l| l.is_current(now)).and_then(f)
    }

    fn neighbour(&self, ip: IpAddr) -> Option<MacAddr> {
        let table = self.neighbours.read().unwrap_or_else(|e| e.into_inner());
        table.get(&ip).copied()
    }

    /// Whether the table was last read `interval` or more ago; if so, the caller reads it
    /// (only one caller is told so when several ask at once).
    fn refresh_due(&self, interval: Duration, now: Instant) -> bool {
        let now = i64::try_from(now.saturating_duration_since(self.started).as_millis())
            .unwrap_or(i64::MAX);
        let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        let last = self.last_dump.load(Ordering::Relaxed);
        if last >= 0 && now.saturating_sub(last) < interval {
            return false;
        }
        self.last_dump
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Reads the kernel's neighbour table again.
    pub fn refresh_neighbours(&self) {
        match neighbours::dump() {
            Ok(entries) => {
                debug!(n = entries.len(), "neighbour table read");
                let mut table = self.neighbours.write().unwrap_or_else(|e| e.into_inner());
                *table = entries.into_iter().collect();
            }
            Err(e) => warn!(error = %e, "cannot read the neighbour table"),
        }
    }

    /// Reads every lease file again. A file that cannot be read leaves its leases out.
    pub fn read_leases(&self) {
        let mut all = HashMap::new();
        for f in &self.lease_files {
            match std::fs::read_to_string(&f.path) {
                Ok(text) => {
                    let leases = leases::parse(f.format, &text);
                    info!(path = %f.path.display(), n = leases.len(), "DHCP leases read");
                    all.extend(leases.into_iter().map(|l| (l.ip, l)));
                }
                Err(e) => warn!(path = %f.path.display(), error = %e, "cannot read DHCP leases"),
            }
        }
        self.leases.store(Arc::new(all));
    }

    /// The lease files, for watching.
    pub fn lease_paths(&self) -> Vec<PathBuf> {
        self.lease_files.iter().map(|f| f.path.clone()).collect()
    }

    /// Follows the kernel's neighbour changes on a thread of its own, so a device's MAC is
    /// known by the time its first query arrives (it had to resolve the gateway's address
    /// first). The thread lives as long as the process.
    pub fn follow_changes(self: &Arc<Self>) {
        if !self.netlink {
            return;
        }
        let d = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("neighbours".into())
            .spawn(move || {
                let result = neighbours::listen(|batch| {
                    let mut table = d.neighbours.write().unwrap_or_else(|e| e.into_inner());
                    for ip in batch.removed {
                        table.remove(&ip);
                    }
                    table.extend(batch.entries);
                    true
                });
                if let Err(e) = result {
                    warn!(error = %e, "cannot follow neighbour changes; reading the table periodically");
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the neighbour thread");
        }
    }

    /// Keeps the neighbour table fresh: read every `interval`, in case a change notification
    /// was lost (netlink drops them when its buffer is full).
    pub async fn keep_fresh(self: Arc<Self>, interval: Duration) {
        if !self.netlink {
            return;
        }
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            let d = Arc::clone(&self);
            if d.refresh_due(interval / 2, crate::clock::instant()) {
                let _ = tokio::task::spawn_blocking(move || d.refresh_neighbours()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_address_first_miss_is_told_once_a_minute() {
        let d = Directory::new(false, Vec::new());
        let ip: IpAddr = "10.77.0.5".parse().unwrap();
        let t = Instant::now();
        assert!(d.first_miss(ip, t));
        assert!(!d.first_miss(ip, t + Duration::from_secs(59)));
        assert!(d.first_miss("10.77.0.6".parse().unwrap(), t));
        assert!(d.first_miss(ip, t + MISS_MEMORY + Duration::from_secs(1)));
    }

    #[test]
    fn the_table_is_read_again_at_most_once_per_interval() {
        let d = Directory::new(false, Vec::new());
        let t = Instant::now();
        assert!(d.refresh_due(FIRST_MISS_REFRESH, t));
        assert!(!d.refresh_due(FIRST_MISS_REFRESH, t + Duration::from_millis(5)));
        assert!(d.refresh_due(FIRST_MISS_REFRESH, t + Duration::from_millis(30)));
        assert!(!d.refresh_due(MISS_REFRESH, t + Duration::from_millis(100)));
    }
}
