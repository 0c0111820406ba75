//! Who may do what: roles, passwords (argon2id), random tokens and their hashes, and login
//! throttling. No I/O and no clock: instants are passed in.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};

/// What a user may see and do. Checked on the server for every page and action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The designated safeguarding lead: everything, case notes included.
    Dsl,
    /// IT staff: agents, policy status, technical detail; not case notes.
    It,
}

impl Role {
    /// Whether this role reads case notes and outcomes, triages alerts and releases devices.
    pub fn handles_cases(self) -> bool {
        self == Self::Dsl
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dsl => "dsl",
            Self::It => "it",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role that is not `dsl` or `it`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role {0:?} is not dsl or it")]
pub struct BadRole(pub String);

impl FromStr for Role {
    type Err = BadRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dsl" => Ok(Self::Dsl),
            "it" => Ok(Self::It),
            other => Err(BadRole(other.to_owned())),
        }
    }
}

/// A password could not be hashed (the system's randomness failed, or argon2 refused).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

fn argon2() -> Argon2<'static> {
    // OWASP's first argon2id choice: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id hash of `password` in PHC form, with a random salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt = random_bytes::<16>().map_err(|()| HashError("no randomness".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches `hash` (a PHC string).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash to compare against when the user does not exist, so a wrong name costs as long
/// as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("no such user").unwrap_or_default())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ()> {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).map_err(|_| ())?;
    Ok(b)
}

/// A new random secret as 64 hex digits (256 bits): session cookies, CSRF tokens, agent
/// tokens (with a prefix).
pub fn random_token() -> Result<String, HashError> {
    random_bytes::<32>()
        .map(|b| hex(&b))
        .map_err(|()| HashError("no randomness".into()))
}

/// SHA-256 of a token, as hex: what is stored, so a copy of the database holds no live
/// session or agent token. A fast hash is enough: the tokens are 256 random bits.
pub fn token_hash(token: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The issuer authenticator apps show beside the account name.
const TOTP_ISSUER: &str = "schoolgate";

/// A new TOTP secret (160 random bits, RFC 4226's recommendation), as base32 text.
pub fn new_totp_secret() -> Result<String, HashError> {
    random_bytes::<20>()
        .map(|b| totp_rs::Secret::from(b).to_base32())
        .map_err(|()| HashError("no randomness".into()))
}

fn totp(secret: &str, account: &str) -> Option<totp_rs::Totp> {
    let bytes = totp_rs::Secret::try_from_base32(secret).ok()?;
    totp_rs::Builder::new()
        .with_secret(bytes)
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some(TOTP_ISSUER))
        .build()
        .ok()
}

/// The `otpauth://` URL an authenticator app takes (as text or a QR code).
pub fn totp_url(secret: &str, account: &str) -> Option<String> {
    totp(secret, account)?.to_url().ok()
}

/// The time step `code` is valid for at `now_s` (one step of clock skew either way), if it
/// is. The caller accepts each step once.
pub fn totp_check(secret: &str, code: &str, now_s: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    totp(secret, "")?.check(&code, now_s)
}

/// Failed logins remembered per user name and per address: after [`Throttle::LIMIT`]
/// failures in [`Throttle::WINDOW_MS`], further attempts are refused until the window has
/// passed since the oldest of them.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: HashMap<String, Vec<i64>>,
}

impl Throttle {
    pub const LIMIT: usize = 5;
    pub const WINDOW_MS: i64 = 15 * 60 * 1000;
    /// Keys remembered at most; past it the oldest-failing are forgotten.
    const KEYS: usize = 10_000;

    /// If `key` is locked out at `now_ms`, when it may try again.
    pub fn locked_until(&self, key: &str, now_ms: i64) -> Option<i64> {
        let f = self.failures.get(key)?;
        let recent: Vec<i64> = f
            .iter()
            .copied()
            .filter(|t| now_ms - t < Self::WINDOW_MS)
            .collect();
        (recent.len() >= Self::LIMIT)
            .then(|| recent.iter().min().copied().unwrap_or(now_ms) + Self::WINDOW_MS)
    }

    pub fn failed(&mut self, key: &str, now_ms: i64) {
        if self.failures.len() >= Self::KEYS && !self.failures.contains_key(key) {
            self.failures
                .retain(|_, f| f.iter().any(|t| now_ms - t < Self::WINDOW_MS));
            if self.failures.len() >= Self::KEYS {
                self.failures.clear();
            }
        }
        let f = self.failures.entry(key.to_owned()).or_default();
        f.retain(|t| now_ms - t < Self::WINDOW_MS);
        f.push(now_ms);
    }

    pub fn succeeded(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_codes_are_checked_with_one_step_of_skew() {
        let secret = new_totp_secret().unwrap();
        assert_ne!(secret, new_totp_secret().unwrap());
        let url = totp_url(&secret, "dsl").unwrap();
        assert!(url.starts_with("otpauth://totp/schoolgate:dsl?"), "{url}");
        let t = totp(&secret, "").unwrap();
        let now = 1_795_946_523;
        let code = t.generate(now);
        assert_eq!(totp_check(&secret, &code.to_string(), now), Some(now / 30));
        // A code from the previous step is still taken; two steps back is not.
        let old = t.generate(now - 30).to_string();
        assert_eq!(totp_check(&secret, &old, now), Some(now / 30 - 1));
        let older = t.generate(now - 60).to_string();
        assert_eq!(totp_check(&secret, &older, now), None);
        assert_eq!(totp_check(&secret, "12 34", now), None);
        assert_eq!(totp_check("not base32!", &code.to_string(), now), None);
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horse ", &h));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
        assert!(!verify_password("anything", decoy_hash()));
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same_secret(&a, &a.clone()) && !same_secret(&a, &b));
    }

    #[test]
    fn the_sixth_failure_in_fifteen_minutes_is_locked_out() {
        let mut t = Throttle::default();
        for i in 0..5 {
            assert_eq!(t.locked_until("dsl", i * 1000), None);
            t.failed("dsl", i * 1000);
        }
        assert_eq!(t.locked_until("dsl", 5000), Some(Throttle::WINDOW_MS));
        assert_eq!(t.locked_until("other", 5000), None);
        assert_eq!(t.locked_until("dsl", Throttle::WINDOW_MS + 1), None);
        t.succeeded("dsl");
        assert_eq!(t.locked_until("dsl", 5000), None);
    }
}
