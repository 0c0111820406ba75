//! RADIUS accounting (RFC 2866), which school Wi-Fi controllers and 802.1X switches send when
//! someone signs in to the network: `Start`, `Interim-Update` and `Stop`, each naming the user
//! (`User-Name`), the address they were given (`Framed-IP-Address`, `Framed-IPv6-Address` of
//! RFC 6911) and the device (`Calling-Station-Id`, its MAC).
//!
//! A request is believed only if its Request Authenticator is the MD5 of the packet with the
//! client's shared secret (RFC 2866 §3): a forged or mistyped packet attaches nobody. The
//! packet is read through the shared bounds-checked reader; nothing here panics on what a
//! network sends. The answer ([`response`]) is the same for a repeat, so a retransmission is
//! answered again without being counted twice by the caller (it compares identifiers and
//! authenticators).

use std::net::{Ipv4Addr, Ipv6Addr};

use md5::{Digest, Md5};
use schoolgate_wire::Reader;

/// Accounting-Request.
const ACCOUNTING_REQUEST: u8 = 4;
/// Accounting-Response.
const ACCOUNTING_RESPONSE: u8 = 5;
/// The header: code, identifier, length, authenticator.
/// The bytes of a RADIUS header: code, identifier, length, authenticator.
pub const HEADER: usize = 20;
/// The longest packet RFC 2865 §3 allows.
pub const MAX_PACKET: usize = 4096;

const USER_NAME: u8 = 1;
const NAS_IP_ADDRESS: u8 = 4;
const FRAMED_IP_ADDRESS: u8 = 8;
const CALLING_STATION_ID: u8 = 31;
const NAS_IDENTIFIER: u8 = 32;
const ACCT_STATUS_TYPE: u8 = 40;
const ACCT_SESSION_ID: u8 = 44;
const FRAMED_IPV6_ADDRESS: u8 = 168;

/// What the request says happened (`Acct-Status-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Start,
    Stop,
    InterimUpdate,
    /// The controller restarted: every session it reported has ended.
    AccountingOn,
    AccountingOff,
    Other(u32),
}

impl Status {
    fn of(value: u32) -> Self {
        match value {
            1 => Self::Start,
            2 => Self::Stop,
            3 => Self::InterimUpdate,
            7 => Self::AccountingOn,
            8 => Self::AccountingOff,
            other => Self::Other(other),
        }
    }
}

/// One accounting request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounting {
    pub identifier: u8,
    /// The Request Authenticator: with the identifier, what tells a repeat from a new request.
    pub authenticator: [u8; 16],
    pub status: Status,
    /// `User-Name`, as the controller sent it (a realm or domain may be part of it).
    pub user: Option<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// The device's MAC, from `Calling-Station-Id`, when it holds one.
    pub mac: Option<[u8; 6]>,
    pub session: Option<String>,
    /// The controller, as it names itself (`NAS-Identifier`, else `NAS-IP-Address`).
    pub nas: Option<String>,
}

/// Why a packet was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RadiusError {
    #[error("{0} bytes is too short for a RADIUS packet")]
    TooShort(usize),
    #[error("code {0} is not an Accounting-Request")]
    NotAccounting(u8),
    #[error("the packet says it is {said} bytes long; {got} arrived (at most {MAX_PACKET})")]
    Length { said: usize, got: usize },
    #[error("attribute {kind} at byte {at} runs past the packet or is shorter than its header")]
    Attribute { kind: u8, at: usize },
    #[error("attribute {kind} has {len} bytes of value; it needs {need}")]
    AttributeSize { kind: u8, len: usize, need: usize },
    #[error("the Request Authenticator does not match: a wrong shared secret, or a forged packet")]
    Authenticator,
    #[error("no Acct-Status-Type")]
    NoStatus,
    #[error("User-Name is not UTF-8")]
    UserName,
}

/// Reads an Accounting-Request from a client whose shared secret is `secret`.
pub fn parse_request(packet: &[u8], secret: &[u8]) -> Result<Accounting, RadiusError> {
    let mut r = Reader::new(packet);
    let (Some(code), Some(identifier), Some(length), Some(authenticator)) =
        (r.u8(), r.u8(), r.u16(), r.array::<16>())
    else {
        return Err(RadiusError::TooShort(packet.len()));
    };
    if code != ACCOUNTING_REQUEST {
        return Err(RadiusError::NotAccounting(code));
    }
    let length = usize::from(length);
    // Bytes past the length are padding (RFC 2865 §3); fewer than it is a broken packet.
    let Some(whole) = packet
        .get(..length)
        .filter(|_| (HEADER..=MAX_PACKET).contains(&length))
    else {
        return Err(RadiusError::Length {
            said: length,
            got: packet.len(),
        });
    };
    let attributes = whole.get(HEADER..).unwrap_or_default();
    if request_authenticator(code, identifier, whole.len(), attributes, secret) != authenticator {
        return Err(RadiusError::Authenticator);
    }
    let mut request = Accounting {
        identifier,
        authenticator,
        status: Status::Other(0),
        user: None,
        ipv4: None,
        ipv6: None,
        mac: None,
        session: None,
        nas: None,
    };
    let mut status = None;
    let mut r = Reader::new(attributes);
    while !r.is_empty() {
        let at = HEADER + r.position();
        let (Some(kind), Some(len)) = (r.u8(), r.u8()) else {
            return Err(RadiusError::Attribute { kind: 0, at });
        };
        let Some(value) = usize::from(len).checked_sub(2).and_then(|n| r.take(n)) else {
            return Err(RadiusError::Attribute { kind, at });
        };
        let fixed = |need: usize| {
            if value.len() == need {
                Ok(value)
            } else {
                Err(RadiusError::AttributeSize {
                    kind,
                    len: value.len(),
                    need,
                })
            }
        };
        match kind {
            USER_NAME => {
                let user = std::str::from_utf8(value).map_err(|_| RadiusError::UserName)?;
                request.user = Some(user.to_owned());
            }
            FRAMED_IP_ADDRESS => {
                let v: [u8; 4] = Reader::new(fixed(4)?).array().unwrap_or_default();
                request.ipv4 = Some(Ipv4Addr::from(v));
            }
            FRAMED_IPV6_ADDRESS => {
                let v: [u8; 16] = Reader::new(fixed(16)?).array().unwrap_or_default();
                request.ipv6 = Some(Ipv6Addr::from(v));
            }
            CALLING_STATION_ID => request.mac = mac(value),
            ACCT_STATUS_TYPE => {
                status = Reader::new(fixed(4)?).u32().map(Status::of);
            }
            ACCT_SESSION_ID => request.session = Some(String::from_utf8_lossy(value).into_owned()),
            NAS_IDENTIFIER => request.nas = Some(String::from_utf8_lossy(value).into_owned()),
            NAS_IP_ADDRESS if request.nas.is_none() => {
                let v: [u8; 4] = Reader::new(fixed(4)?).array().unwrap_or_default();
                request.nas = Some(Ipv4Addr::from(v).to_string());
            }
            _ => {}
        }
    }
    request.status = status.ok_or(RadiusError::NoStatus)?;
    Ok(request)
}

/// MD5(code, identifier, length, 16 zero bytes, attributes, secret): RFC 2866 §3.
fn request_authenticator(
    code: u8,
    identifier: u8,
    length: usize,
    attributes: &[u8],
    secret: &[u8],
) -> [u8; 16] {
    let mut h = Md5::new();
    h.update([code, identifier]);
    h.update(u16::try_from(length).unwrap_or(u16::MAX).to_be_bytes());
    h.update([0u8; 16]);
    h.update(attributes);
    h.update(secret);
    h.finalize().into()
}

/// The Accounting-Response to `request` (no attributes): its Response Authenticator is
/// MD5(code, identifier, length, the request's authenticator, secret).
pub fn response(request: &Accounting, secret: &[u8]) -> [u8; HEADER] {
    const LENGTH: u16 = 20;
    let length = LENGTH;
    let mut h = Md5::new();
    h.update([ACCOUNTING_RESPONSE, request.identifier]);
    h.update(length.to_be_bytes());
    h.update(request.authenticator);
    h.update(secret);
    let digest: [u8; 16] = h.finalize().into();
    let mut out = [0u8; HEADER];
    let [code, id, l0, l1, auth @ ..] = &mut out;
    *code = ACCOUNTING_RESPONSE;
    *id = request.identifier;
    [*l0, *l1] = length.to_be_bytes();
    auth.copy_from_slice(&digest);
    out
}

/// The MAC in a `Calling-Station-Id`: twelve hex digits, separated by `-`, `:` or `.` or not
/// at all (`00-11-22-33-44-55`, `0011.2233.4455`, `001122334455`), perhaps followed by `:` and
/// a network name. Anything else names no MAC (a phone number, a port).
fn mac(value: &[u8]) -> Option<[u8; 6]> {
    let mut digits = [0u8; 12];
    let mut n = 0;
    for &b in value {
        if n == 12 {
            // What follows twelve digits may only be a network name after ':'.
            return (b == b':').then(|| pack(&digits));
        }
        match b {
            b'-' | b':' | b'.' => continue,
            _ => {
                let d = char::from(b).to_digit(16)?;
                let slot = digits.get_mut(n)?;
                *slot = u8::try_from(d).ok()?;
                n += 1;
            }
        }
    }
    (n == 12).then(|| pack(&digits))
}

fn pack(digits: &[u8; 12]) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        if let [hi, lo] = pair {
            *o = hi << 4 | lo;
        }
    }
    out
}

/// An Accounting-Request as a client builds one (RFC 2866 §3), for tests and the fuzz body:
/// `attributes` as (type, value), signed with `secret`.
pub fn request(identifier: u8, attributes: &[(u8, &[u8])], secret: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, value) in attributes {
        body.push(*kind);
        body.push(u8::try_from(value.len() + 2).unwrap_or(u8::MAX));
        body.extend_from_slice(value);
    }
    signed_request(identifier, &body, secret)
}

/// An Accounting-Request whose attribute bytes are `body`, as they are, signed with `secret`.
pub fn signed_request(identifier: u8, body: &[u8], secret: &[u8]) -> Vec<u8> {
    let length = HEADER + body.len();
    let auth = request_authenticator(ACCOUNTING_REQUEST, identifier, length, body, secret);
    let mut out = vec![ACCOUNTING_REQUEST, identifier];
    out.extend_from_slice(&u16::try_from(length).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&auth);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    const SECRET: &[u8] = b"testing123";

    fn start() -> Vec<u8> {
        request(
            7,
            &[
                (ACCT_STATUS_TYPE, &1u32.to_be_bytes()),
                (USER_NAME, b"SCHOOL\\amira.k"),
                (FRAMED_IP_ADDRESS, &[10, 10, 4, 21]),
                (CALLING_STATION_ID, b"52-54-00-12-34-56"),
                (ACCT_SESSION_ID, b"4D2A0001"),
                (NAS_IDENTIFIER, b"wlc-1"),
            ],
            SECRET,
        )
    }

    #[test]
    fn a_signed_start_is_read() {
        let a = parse_request(&start(), SECRET).unwrap();
        assert_eq!(a.status, Status::Start);
        assert_eq!(a.user.as_deref(), Some("SCHOOL\\amira.k"));
        assert_eq!(a.ipv4, Some(Ipv4Addr::new(10, 10, 4, 21)));
        assert_eq!(a.mac, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(
            (a.session.as_deref(), a.nas.as_deref()),
            (Some("4D2A0001"), Some("wlc-1"))
        );
        let r = response(&a, SECRET);
        assert_eq!(&r[..4], &[ACCOUNTING_RESPONSE, 7, 0, 20]);
    }

    #[test]
    fn forged_broken_and_other_packets_attach_nobody() {
        let good = start();
        assert_eq!(
            parse_request(&good, b"wrong"),
            Err(RadiusError::Authenticator)
        );
        let mut changed = good.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(
            parse_request(&changed, SECRET),
            Err(RadiusError::Authenticator)
        );
        assert!(matches!(
            parse_request(&good[..19], SECRET),
            Err(RadiusError::TooShort(19))
        ));
        assert!(matches!(
            parse_request(&good[..good.len() - 1], SECRET),
            Err(RadiusError::Length { .. })
        ));
        let mut access = good.clone();
        access[0] = 1;
        assert_eq!(
            parse_request(&access, SECRET),
            Err(RadiusError::NotAccounting(1))
        );
        // Padding after the length is ignored.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 5]);
        assert!(parse_request(&padded, SECRET).is_ok());
        // An attribute shorter than its own header, a wrong-sized address, no status.
        let bad = request(
            1,
            &[
                (ACCT_STATUS_TYPE, &[0, 0, 0, 1]),
                (FRAMED_IP_ADDRESS, &[10, 0, 0]),
            ],
            SECRET,
        );
        assert!(matches!(
            parse_request(&bad, SECRET),
            Err(RadiusError::AttributeSize { .. })
        ));
        let none = request(1, &[(USER_NAME, b"x")], SECRET);
        assert_eq!(parse_request(&none, SECRET), Err(RadiusError::NoStatus));
        let bad_name = request(
            1,
            &[(ACCT_STATUS_TYPE, &[0, 0, 0, 1]), (USER_NAME, b"\xff")],
            SECRET,
        );
        assert_eq!(parse_request(&bad_name, SECRET), Err(RadiusError::UserName));
    }

    #[test]
    fn macs_in_the_forms_controllers_write() {
        let m = Some([0x00, 0x11, 0x22, 0xaa, 0xbb, 0xcc]);
        assert_eq!(mac(b"00-11-22-AA-BB-CC"), m);
        assert_eq!(mac(b"00:11:22:aa:bb:cc"), m);
        assert_eq!(mac(b"0011.22aa.bbcc"), m);
        assert_eq!(mac(b"001122aabbcc"), m);
        assert_eq!(mac(b"00-11-22-AA-BB-CC:SchoolWiFi"), m);
        assert_eq!(mac(b"+441234567890"), None);
        assert_eq!(mac(b"00-11-22-AA-BB"), None);
        assert_eq!(mac(b"00-11-22-AA-BB-CC-DD"), None);
    }
}
