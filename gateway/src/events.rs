//! Events made from sightings.

pub mod aggregate;
