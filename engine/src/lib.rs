//! schoolgate's policy engine: `policy.yaml` in, decisions out.
//!
//! Everything here is pure: no sockets, no files, no clock. Text, addresses and instants go
//! in; a [`Policy`] or a [`Decision`] comes out. The gateway agent, its CLI and the console
//! all decide through [`decide()`], so they always agree.
//!
//! - [`policy`]: loading and validating `policy.yaml` (two stages: raw YAML, then [`Policy`]).
//! - [`domain`]: domain-name normalisation and the index of every listed domain.
//! - [`address`]: listed addresses and networks, matched like domains.
//! - [`calendar`], [`schedule`]: terms and closures; schedules compiled into instants.
//! - [`device`]: client addresses and MACs.
//! - [`person`]: the person signed in on a device, as the decision reads them.
//! - [`decide`](mod@decide): the decision function.
//! - [`classify`](mod@classify): what a name or address is (category, app, technique).
//! - [`explain`]: decisions as a sentence or JSON.
//! - [`request`]: whether a teacher's request is one the policy lets them make.
//! - [`technique`]: the fixed vocabulary of ways round the filter.

pub mod address;
pub mod calendar;
pub mod classify;
pub mod decide;
pub mod device;
pub mod domain;
pub mod explain;
pub mod fnv;
#[doc(hidden)]
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod instant;
pub mod person;
pub mod policy;
pub mod request;
pub mod schedule;
pub mod technique;
pub mod text;

pub use classify::{Classified, classify};
pub use decide::{Decision, Matched, Reason, decide, decide_as};
pub use device::{Client, MacAddr};
pub use person::PersonView;
pub use policy::{Action, ListSource, Policy, PolicyError, PolicyErrors, RequestRule};
pub use request::{Ask, AskRefused};
pub use technique::Technique;
