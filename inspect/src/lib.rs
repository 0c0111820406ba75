//! schoolgate's passive inspection: what a connection is, from its first bytes.
//!
//! Everything here is sans-IO: bytes (and, where it matters, an instant) go in, a verdict
//! comes out. Nothing reads a socket, a file or the clock, and nothing panics on any input:
//! every byte comes from a device on the school's network and is treated as hostile.
//!
//! - [`tls`]: the TLS ClientHello: server name, ALPN, ECH (real or GREASE), JA4.
//! - [`quic`]: QUIC Initial packets: derive their keys, decrypt, and join the CRYPTO data
//!   that holds the ClientHello.
//! - [`gquic`]: the server name in a Google QUIC client hello, which is not encrypted.

pub mod capture_file;
pub mod certificate;
pub mod dns;
pub mod echo;
pub mod encrypted;
pub mod filter;
pub mod flow;
#[doc(hidden)]
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod gquic;
pub mod http;
pub mod inspector;
pub mod judge;
pub mod media;
pub mod packet;
pub mod quic;
pub mod reset;
pub mod signature;
pub mod tls;
pub mod wrapped;
