//! The gateway firewall: one nftables table the agent owns, closing the routes round the
//! filtering resolver (other resolvers, DoT/DoQ, QUIC, remembered addresses).
//!
//! - [`ruleset`]: the table, built from the policy and `now` (pure).
//! - [`ranges`]: group membership cut into disjoint address ranges (pure).
//! - [`nft`]: loading it with the `nft` tool.

pub mod nft;
pub mod ranges;
pub mod ruleset;
