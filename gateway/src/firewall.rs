//! The firewall's planning: the table and its sets, from the policy and what the agent holds.

pub mod counters;
pub mod installed;
pub mod learned;
pub mod listed;
pub mod logged;
pub mod placed;
pub mod ranges;
pub mod ruleset;
