//! The gateway firewall: one nftables table the agent owns, closing the routes round the
//! filtering resolver (other resolvers, DoT/DoQ, QUIC, remembered addresses).
//!
//! - [`ruleset`]: the table, built from the policy and what the agent holds (pure).
//! - [`ranges`]: group membership cut into disjoint address ranges (pure).
//! - [`nft`]: loading it with the `nft` tool.
//!
//! [`Firewall`] is the daemon's handle: it loads the table at start (keeping the quarantined
//! devices of a table left by an earlier run), again on every policy change, and on stop
//! leaves it (`fail_closed`) or removes it (`fail_open`).

pub mod nft;
pub mod ranges;
pub mod ruleset;

use std::net::IpAddr;
use std::sync::Mutex;

use schoolgate_engine::policy::gateway::OnStop;
use schoolgate_engine::{MacAddr, Policy};
use tracing::{info, warn};

use self::nft::{Nft, NftError};
use self::ruleset::{Quarantined, Settings, State};

/// The agent's table in the kernel, and what it holds.
#[derive(Debug)]
pub struct Firewall {
    nft: Nft,
    settings: Settings,
    on_stop: OnStop,
    state: Mutex<State>,
}

impl Firewall {
    /// Loads the table for `policy`. Quarantined devices found in a table an earlier run
    /// left behind (after a crash, or a `fail_closed` stop) stay quarantined.
    pub fn start(
        nft: Nft,
        settings: Settings,
        on_stop: OnStop,
        policy: &Policy,
    ) -> Result<Self, NftError> {
        let mut state = State::default();
        match nft.list_table() {
            Ok(Some(json)) => {
                state.quarantined = quarantined_in(&json);
                info!(
                    ips = state.quarantined.ips.len(),
                    macs = state.quarantined.macs.len(),
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
            state: Mutex::new(state),
        };
        fw.apply(policy)?;
        Ok(fw)
    }

    /// Builds the table for `policy` and loads it in one transaction. On failure the table
    /// in force stays as it was.
    pub fn apply(&self, policy: &Policy) -> Result<(), NftError> {
        let text = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            ruleset::build(policy, &self.settings, &state)
        };
        self.nft.load(&text)?;
        info!("firewall table loaded");
        Ok(())
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
    let objects = doc
        .get("nftables")
        .and_then(|v| v.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for set in objects.iter().filter_map(|o| o.get("set")) {
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
