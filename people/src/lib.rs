//! People, for a policy that speaks of pupils, staff and classes: who exists and in which
//! directory groups ([`directory`], [`person`]), read from a school's roster export
//! ([`roster`]) or its LDAP directory ([`ldap`]), and who is signed in where, as Wi-Fi controllers report it ([`radius`]).
//!
//! Pure: bytes in, people out. The agent reads the files, watches them and keeps the last
//! good directory; nothing here touches a file, a socket or the clock.

pub mod directory;
#[doc(hidden)]
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod ldap;
pub mod person;
pub mod radius;
pub mod roster;
pub mod sessions;

pub use directory::Directory;
pub use person::{Person, Role, Username};
