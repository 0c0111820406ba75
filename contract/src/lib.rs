//! The contract between schoolgate's agents and its console, written once and used by both:
//! what an event is ([`Event`], its [`Kind`] and [`Severity`]), how long its texts may be
//! ([`text`]), the batch an agent sends and the console's validating read of it ([`wire`]),
//! what an agent says of itself and is asked to do ([`status`]), and the exceptions the
//! console grants and the policy it checks them against ([`granted`]).
//!
//! Pure: values in, values out; no I/O and no clock (times are given).

pub mod event;
pub mod granted;
pub mod status;
pub mod text;
pub mod wire;

pub use event::{DeviceInfo, Event, Kind, PersonInfo, Severity, UnknownKind, UnknownSeverity};
pub use schoolgate_engine::Technique;
