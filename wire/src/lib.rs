//! Reading bytes that came off the wire, with every bound checked: [`Reader`], which every
//! hand-written parser in the gateway core and in inspection reads through, and [`dns`], the
//! one reader of a DNS message's header and question that the resolver and inspection share.
//!
//! Bytes come from pupils' devices and from the internet: nothing here indexes without a
//! check or panics, and nothing allocates.

pub mod dns;
mod reader;

pub use reader::Reader;
