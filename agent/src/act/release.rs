//! Release requests (`schoolgate-agent release`, the console's commands) applied: each
//! device named leaves the quarantine (list, state file, firewall sets) and a `released`
//! event records who released it and why.

use std::net::IpAddr;

use jiff::Timestamp;
use schoolgate_engine::Policy;
use tracing::{info, warn};

use super::{Actor, Who};
use crate::report::events::{Event, Kind, Severity, bounded};

impl Actor {
    /// Applies the release requests waiting in the state directory: each device named leaves
    /// the quarantine (list, state file, firewall sets) and a `released` event records who
    /// released it and why (`who` names the device at an address under `policy` at `now`). A
    /// request naming no quarantined device is logged and dropped.
    pub fn apply_releases(&self, policy: &Policy, now: Timestamp, who: impl Fn(IpAddr) -> Who) {
        let (requests, bad) = match crate::act::quarantine::take_requests(&self.state_dir) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot read the release requests");
                return;
            }
        };
        if bad > 0 {
            warn!(
                lines = bad,
                "release requests that could not be read were skipped"
            );
        }
        for request in requests {
            let released = self.quarantine.release(&request.device);
            if released.is_empty() {
                warn!(device = %request.device, "release asked for a device that is not quarantined");
                continue;
            }
            if let Err(e) = self.quarantine.save(&self.state_dir) {
                warn!(error = %e, "cannot write the quarantine list");
            }
            for r in released {
                if let Some(fw) = &self.firewall
                    && let Err(e) = fw.release(r.ip, r.mac)
                {
                    warn!(error = %e, "cannot take the device out of the firewall's quarantine");
                }
                info!(device = %request.device, by = %request.by, "device released from quarantine");
                let mut e = Event::new(Kind::Released, now, Severity::Info);
                if let Some(ip) = r.ip {
                    (e.device, e.group) = self.describe(policy, &who(ip), now);
                }
                e.device.mac = e.device.mac.or(r.mac);
                e.device.name = e.device.name.or(r.device);
                e.evidence = Some(bounded(&format!(
                    "released by {} at {}: {}",
                    request.by, request.time, request.reason
                )));
                self.events.emit(e);
            }
        }
    }
}
