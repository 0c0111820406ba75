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
    /// A teacher: asks for exceptions for their classes and sees their own requests; no
    /// alerts, incidents, pupils' histories or reports.
    Teacher,
    /// A Director or other member of staff who decides teachers' requests (as the DSL may,
    /// per `console.yaml`); sees the requests, nothing of pupils' activity.
    Approver,
    /// IT's lead: what IT sees, and the accounts page (users and agents).
    Admin,
}

impl Role {
    pub const ALL: [Self; 5] = [
        Self::Dsl,
        Self::It,
        Self::Teacher,
        Self::Approver,
        Self::Admin,
    ];

    /// Whether this role reads case notes and outcomes, triages alerts and releases devices.
    pub fn handles_cases(self) -> bool {
        self == Self::Dsl
    }

    /// Whether this role sees what the gateways recorded: incidents, devices, people,
    /// reports, the audit log. Teachers and approvers see only requests.
    pub fn sees_records(self) -> bool {
        matches!(self, Self::Dsl | Self::It | Self::Admin)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dsl => "dsl",
            Self::It => "it",
            Self::Teacher => "teacher",
            Self::Approver => "approver",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role {0:?} is not dsl, it, teacher, approver or admin")]
pub struct BadRole(pub String);

impl FromStr for Role {
    type Err = BadRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dsl" => Ok(Self::Dsl),
            "it" => Ok(Self::It),
            "teacher" => Ok(Self::Teacher),
            "approver" => Ok(Self::Approver),
            "admin" => Ok(Self::Admin),
            other => Err(BadRole(other.to_owned())),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A secret could not be made: the system's randomness failed, argon2 refused, or sealing
/// failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    #[error("the system's randomness failed")]
    NoRandomness,
    #[error("cannot hash the password: {0}")]
    Argon2(argon2::password_hash::Error),
    #[error("cannot seal a secret")]
    Seal,
}

fn argon2() -> Argon2<'static> {
    // OWASP's first argon2id choice: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id hash of `password` in PHC form, with a random salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt = random_bytes::<16>().map_err(|()| HashError::NoRandomness)?;
    let salt = SaltString::encode_b64(&salt).map_err(HashError::Argon2)?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(HashError::Argon2)
}

/// Whether `password` matches `hash` (a PHC string).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// A name the command line or the accounts page was given that cannot be one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadName {
    #[error("{0:?} is not a user name: a user name is 1 to 64 printable characters")]
    User(String),
    #[error(
        "{0:?} is not an agent name: an agent name is 1 to 64 letters, digits, '-', '_' or '.'"
    )]
    Agent(String),
}

/// A user name as typed, trimmed: 1 to 64 printable characters.
pub fn user_name(name: &str) -> Result<String, BadName> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(BadName::User(name.to_owned()));
    }
    Ok(name.to_owned())
}

/// An agent name as typed, trimmed: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn agent_name(name: &str) -> Result<String, BadName> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(BadName::Agent(name.to_owned()));
    }
    Ok(name.to_owned())
}

/// Why a new password was not hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NewPassword {
    #[error(transparent)]
    Weak(#[from] WeakPassword),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("the hashing task stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// `password` checked for `user` and hashed, off the async threads (argon2 takes a while).
pub async fn hash_new_password(password: String, user: &str) -> Result<String, NewPassword> {
    check_password(&password, user)?;
    Ok(tokio::task::spawn_blocking(move || hash_password(&password)).await??)
}

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WeakPassword {
    #[error("a password needs at least {MIN_PASSWORD} characters; this one has {0}")]
    Short(usize),
    #[error("a password may have at most {MAX_PASSWORD} characters; this one has {0}")]
    Long(usize),
    #[error("this password is too easy to guess ({0}); a few unrelated words make a good one")]
    Guessable(String),
}

/// The fewest characters a password may have.
pub const MIN_PASSWORD: usize = 12;
/// The most (argon2 hashes any length, but nobody types more).
pub const MAX_PASSWORD: usize = 256;

/// Whether `password` may be used by `user`: long enough, and not guessable by zxcvbn's
/// estimate (common passwords, repeats, sequences, dates, words, and the user's own name)
/// at its score 3 ("safely unguessable": about 10^8 guesses or more).
pub fn check_password(password: &str, user: &str) -> Result<(), WeakPassword> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(WeakPassword::Short(n));
    }
    if n > MAX_PASSWORD {
        return Err(WeakPassword::Long(n));
    }
    let estimate = zxcvbn::zxcvbn(password, &[user, "schoolgate", "school"]);
    if estimate.score() < zxcvbn::Score::Three {
        let why = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map_or_else(|| "it is a common pattern".to_owned(), |w| w.to_string());
        return Err(WeakPassword::Guessable(why));
    }
    Ok(())
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
        .map_err(|()| HashError::NoRandomness)
}

/// SHA-256 of a token, as hex: what is stored, so a copy of the database holds no live
/// session or agent token. A fast hash is enough: the tokens are 256 random bits.
pub fn token_hash(token: &str) -> String {
    schoolgate_serve::secret::token_hash(token)
}

pub(crate) use schoolgate_serve::secret::hex;

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Seals small secrets the console must read back (TOTP secrets) with a key kept outside
/// the database (ChaCha20-Poly1305), so a copy of the database or a dump of it holds none.
/// Text stored before sealing began is read as it is until sealed.
pub struct Sealer(ring::aead::LessSafeKey);

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// What sealed text starts with.
pub const SEALED: &str = "sealed:v1:";

impl Sealer {
    /// A sealer with `key` (32 bytes).
    pub fn new(key: &[u8; 32]) -> Self {
        let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key)
            .map(ring::aead::LessSafeKey::new);
        // A 32-byte key is always the right length for ChaCha20-Poly1305.
        #[allow(clippy::expect_used)]
        Self(key.expect("a 32-byte ChaCha20-Poly1305 key"))
    }

    /// A sealer with a fresh random key (tests, and a console that keeps nothing).
    pub fn random() -> Result<Self, HashError> {
        random_bytes::<32>()
            .map(|k| Self::new(&k))
            .map_err(|()| HashError::NoRandomness)
    }

    /// `plain` sealed, as text.
    pub fn seal(&self, plain: &str) -> Result<String, HashError> {
        let nonce = random_bytes::<12>().map_err(|()| HashError::NoRandomness)?;
        let mut data = plain.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::empty(),
                &mut data,
            )
            .map_err(|_| HashError::Seal)?;
        Ok(format!("{SEALED}{}{}", hex(&nonce), hex(&data)))
    }

    /// The text `stored` holds: unsealed, or as it is if it was never sealed; `None` if it
    /// was sealed with another key or damaged.
    pub fn open(&self, stored: &str) -> Option<String> {
        let Some(sealed) = stored.strip_prefix(SEALED) else {
            return Some(stored.to_owned());
        };
        let bytes = unhex(sealed)?;
        let (nonce, data) = bytes.split_at_checked(12)?;
        let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, ring::aead::Aad::empty(), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

/// Hex text as bytes, if it is hex.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

/// The issuer authenticator apps show beside the account name.
const TOTP_ISSUER: &str = "schoolgate";

/// A new TOTP secret (160 random bits, RFC 4226's recommendation), as base32 text.
pub fn new_totp_secret() -> Result<String, HashError> {
    random_bytes::<20>()
        .map(|b| totp_rs::Secret::from(b).to_base32())
        .map_err(|()| HashError::NoRandomness)
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

/// What a sign-in attempt is counted against: the account named, the address it came from
/// ([`address_key`]), and the two together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The name typed. Throttled with growing delays (never a hard lock, so guessing from
    /// elsewhere cannot keep the owner out for long).
    account: String,
    /// The name is an account's: its record is never evicted.
    known: bool,
    address: String,
    /// When the attempt was counted.
    at_ms: i64,
}

impl Attempt {
    pub fn new(account: &str, known: bool, address: &str) -> Self {
        Self {
            account: account.to_owned(),
            known,
            address: address.to_owned(),
            at_ms: 0,
        }
    }

    /// This attempt, counted at `at_ms`.
    #[must_use]
    pub fn at(mut self, at_ms: i64) -> Self {
        self.at_ms = at_ms;
        self
    }

    /// When it was counted.
    pub fn at_ms(&self) -> i64 {
        self.at_ms
    }
}

/// An attempt refused before its password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// When an attempt may be made again.
    pub until_ms: i64,
    /// The first refusal of this kind in its window: audit it (later ones are not, so a
    /// flood of attempts cannot flood the audit log).
    pub audit: bool,
}

/// The key an address is throttled by (an IPv6 address's /64), as connections are counted.
pub use schoolgate_serve::address_key;

/// Recent attempts of one key.
#[derive(Debug, Default)]
struct Record {
    /// Attempts counted in the window, oldest first: failures and those still being checked.
    times: std::collections::VecDeque<i64>,
    /// Refusals before this instant are already in the audit log.
    audited_until: i64,
}

impl Record {
    fn expire(&mut self, now_ms: i64) {
        while self
            .times
            .front()
            .is_some_and(|t| now_ms - t >= Throttle::WINDOW_MS)
        {
            self.times.pop_front();
        }
    }

    fn last(&self) -> i64 {
        self.times.back().copied().unwrap_or(i64::MIN)
    }

    fn forget(&mut self, at_ms: i64) {
        if let Some(i) = self.times.iter().rposition(|t| *t == at_ms) {
            self.times.remove(i);
        }
    }
}

/// When an attempt may be made, from each of its keys' attempts in the window (oldest
/// first; see [`Throttle::keys`]: the account, the address, the pair): `None` now, else the
/// instant and which key holds it back. The rules of [`Throttle`], kept apart so the
/// attempts may be counted here or in the database that several consoles share.
pub fn ready_at(times: [&[i64]; 3], now_ms: i64) -> Option<(i64, usize)> {
    /// When a hard-limited key may try again, if it is locked.
    fn locked(times: &[i64], limit: usize) -> Option<i64> {
        (times.len() >= limit).then(|| times.first().map_or(0, |t| t + Throttle::WINDOW_MS))
    }
    /// When an account may try again: after [`Throttle::LIMIT`] attempts, each one more
    /// waits twice as long as the last, from one second up to [`Throttle::MAX_DELAY_MS`].
    fn delayed(times: &[i64]) -> Option<i64> {
        let over = times.len().checked_sub(Throttle::LIMIT)?;
        let delay = 1000_i64
            .checked_shl(u32::try_from(over).unwrap_or(u32::MAX))
            .filter(|d| *d > 0)
            .map_or(Throttle::MAX_DELAY_MS, |d| d.min(Throttle::MAX_DELAY_MS));
        Some(
            times
                .last()
                .copied()
                .unwrap_or(i64::MIN)
                .saturating_add(delay),
        )
    }
    let mut until = None::<(i64, usize)>;
    for (i, t) in times.iter().enumerate() {
        let ready = match i {
            0 => delayed(t),
            1 => locked(t, Throttle::ADDRESS_LIMIT),
            _ => locked(t, Throttle::LIMIT),
        };
        if let Some(t) = ready.filter(|t| *t > now_ms)
            && until.is_none_or(|(u, _)| t > u)
        {
            until = Some((t, i));
        }
    }
    until
}

/// Sign-in attempts, counted *before* the password is checked (an attempt still being
/// checked counts as a failure until it succeeds), so simultaneous guesses cannot slip past
/// the limit while each waits for its hash.
///
/// - The name and the address together: [`Throttle::LIMIT`] attempts in
///   [`Throttle::WINDOW_MS`], then refused until the window has passed since the oldest.
/// - The address alone (many names from one place): [`Throttle::ADDRESS_LIMIT`], likewise.
/// - The account alone (one name from many places): growing delays, at most
///   [`Throttle::MAX_DELAY_MS`], so the owner is slowed, never locked out.
///
/// Records of accounts that exist are never evicted; the rest are bounded, the least
/// recently used evicted first.
#[derive(Debug, Default)]
pub struct Throttle {
    accounts: HashMap<String, Record>,
    others: HashMap<String, Record>,
}

impl Throttle {
    pub const LIMIT: usize = 5;
    pub const ADDRESS_LIMIT: usize = 20;
    pub const WINDOW_MS: i64 = 15 * 60 * 1000;
    pub const MAX_DELAY_MS: i64 = 60 * 1000;
    /// Records of unknown names, addresses and pairs kept at most.
    pub const KEYS: usize = 10_000;

    /// The keys `a` is counted against: the account, the address, the two together (each
    /// with whether it is a known account's, whose record is never evicted).
    pub fn keys(a: &Attempt) -> [(bool, String); 3] {
        [
            (a.known, format!("user:{}", a.account)),
            (false, format!("addr:{}", a.address)),
            (false, format!("pair:{}@{}", a.account, a.address)),
        ]
    }

    fn record(&mut self, account: bool, key: &str) -> Option<&mut Record> {
        if account {
            self.accounts.get_mut(key)
        } else {
            self.others.get_mut(key)
        }
    }

    /// Counts `attempt` at `now_ms`, or refuses it. A counted attempt is a failure until
    /// [`Throttle::succeeded`] or [`Throttle::abandoned`] says otherwise.
    pub fn begin(&mut self, mut attempt: Attempt, now_ms: i64) -> Result<Attempt, Refusal> {
        let keys = Self::keys(&attempt);
        let mut times: [Vec<i64>; 3] = Default::default();
        for ((known, key), t) in keys.iter().zip(&mut times) {
            if let Some(r) = self.record(*known, key) {
                r.expire(now_ms);
                t.extend(r.times.iter().copied());
            }
        }
        let [a, b, c] = &times;
        if let Some((until_ms, i)) = ready_at([a, b, c], now_ms) {
            let mut audit = false;
            if let Some((known, key)) = keys.get(i)
                && let Some(r) = self.record(*known, key)
                && r.audited_until <= now_ms
            {
                r.audited_until = now_ms + Self::WINDOW_MS;
                audit = true;
            }
            return Err(Refusal { until_ms, audit });
        }
        attempt.at_ms = now_ms;
        for (known, key) in keys {
            if !known && !self.others.contains_key(&key) && self.others.len() >= Self::KEYS {
                self.evict(now_ms);
            }
            let map = if known {
                &mut self.accounts
            } else {
                &mut self.others
            };
            map.entry(key).or_default().times.push_back(now_ms);
        }
        Ok(attempt)
    }

    /// Makes room: the expired go, and if that is not a tenth of the table, the least
    /// recently used tenth (so a flood of new keys costs one scan per thousand, not per key).
    fn evict(&mut self, now_ms: i64) {
        self.others.retain(|_, r| {
            r.expire(now_ms);
            !r.times.is_empty() || r.audited_until > now_ms
        });
        let room = Self::KEYS / 10;
        if self.others.len() + room > Self::KEYS {
            let mut last: Vec<i64> = self.others.values().map(Record::last).collect();
            let n = (self.others.len() + room).saturating_sub(Self::KEYS);
            if let Some(i) = n.checked_sub(1)
                && i < last.len()
            {
                let (_, cut, _) = last.select_nth_unstable(i);
                let cut = *cut;
                self.others.retain(|_, r| r.last() > cut);
            }
        }
    }

    /// The password was right: the account and the pair start again; the address keeps
    /// its other attempts.
    pub fn succeeded(&mut self, attempt: &Attempt) {
        let [(known, account), (_, address), (_, pair)] = Self::keys(attempt);
        if known {
            self.accounts.remove(&account);
        } else {
            self.others.remove(&account);
        }
        self.others.remove(&pair);
        if let Some(r) = self.others.get_mut(&address) {
            r.forget(attempt.at_ms);
        }
    }

    /// The attempt was never checked (the console was too busy): it does not count.
    pub fn abandoned(&mut self, attempt: &Attempt) {
        for (known, key) in Self::keys(attempt) {
            if let Some(r) = self.record(known, &key) {
                r.forget(attempt.at_ms);
            }
        }
    }

    /// Whether a refusal for `key` (a login form with a bad token, from one address) is the
    /// first in its window: only that one is audited.
    pub fn first_in_window(&mut self, key: &str, now_ms: i64) -> bool {
        if !self.others.contains_key(key) && self.others.len() >= Self::KEYS {
            self.evict(now_ms);
        }
        let r = self.others.entry(key.to_owned()).or_default();
        if r.audited_until > now_ms {
            return false;
        }
        r.audited_until = now_ms + Self::WINDOW_MS;
        true
    }

    /// Records kept (accounts, others).
    pub fn len(&self) -> (usize, usize) {
        (self.accounts.len(), self.others.len())
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
    fn sealed_secrets_open_with_their_key_only() {
        let a = Sealer::random().unwrap();
        let sealed = a.seal("JBSWY3DPEHPK3PXP").unwrap();
        assert!(sealed.starts_with(SEALED) && !sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(
            sealed,
            a.seal("JBSWY3DPEHPK3PXP").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(a.open(&sealed).as_deref(), Some("JBSWY3DPEHPK3PXP"));
        assert_eq!(Sealer::random().unwrap().open(&sealed), None);
        assert_eq!(
            a.open("JBSWY3DPEHPK3PXP").as_deref(),
            Some("JBSWY3DPEHPK3PXP")
        );
        // One hex digit of the tag changed (to another digit, whatever it was).
        let mut damaged = sealed.clone();
        let last = damaged.pop().unwrap();
        damaged.push(if last == '0' { '1' } else { '0' });
        assert_eq!(a.open(&damaged), None);
        assert_eq!(a.open(&format!("{SEALED}zz")), None);
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
    fn common_and_patterned_passwords_are_refused() {
        for weak in [
            "aaaaaaaaaaaa",
            "password1234",
            "Password1234!",
            "qwertyuiopas",
            "123456789012",
            "dsl-dsl-dsl-dsl",
            "schoolgate2026",
        ] {
            assert!(
                matches!(check_password(weak, "dsl"), Err(WeakPassword::Guessable(_))),
                "{weak}"
            );
        }
        assert_eq!(check_password("short", "dsl"), Err(WeakPassword::Short(5)));
        for good in [
            "a long enough password",
            "plum vessel gravity lantern",
            "correct horse battery staple",
            "a different long passphrase",
        ] {
            assert_eq!(check_password(good, "dsl"), Ok(()), "{good}");
        }
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

    const MIN: i64 = 60_000;

    fn begin(t: &mut Throttle, name: &str, addr: &str, now: i64) -> Result<Attempt, Refusal> {
        t.begin(Attempt::new(name, name == "dsl", addr), now)
    }

    #[test]
    fn the_sixth_attempt_from_one_place_is_refused_for_the_window() {
        let mut t = Throttle::default();
        for i in 0..5 {
            begin(&mut t, "dsl", "192.0.2.1", i * 1000).unwrap();
        }
        // Counted before any password was checked: in-flight attempts count.
        let r = begin(&mut t, "dsl", "192.0.2.1", 5000).unwrap_err();
        assert_eq!(
            r,
            Refusal {
                until_ms: Throttle::WINDOW_MS,
                audit: true
            }
        );
        // Refused again: not audited again within the window.
        assert!(!begin(&mut t, "dsl", "192.0.2.1", 6000).unwrap_err().audit);
        // Another account from the same place is not held up.
        begin(&mut t, "it", "192.0.2.1", 6000).unwrap();
        // The window passes since the oldest attempt.
        begin(&mut t, "dsl", "192.0.2.1", Throttle::WINDOW_MS).unwrap();
    }

    #[test]
    fn guesses_from_elsewhere_only_slow_the_owner_down() {
        let mut t = Throttle::default();
        for i in 0..5 {
            begin(&mut t, "dsl", &format!("198.51.100.{i}"), 0).unwrap();
        }
        // The account waits 1 s after the fifth, then 2 s, 4 s… at most a minute.
        let r = begin(&mut t, "dsl", "192.0.2.1", 500).unwrap_err();
        assert_eq!(r.until_ms, 1000);
        let a = begin(&mut t, "dsl", "192.0.2.1", 1000).unwrap();
        assert_eq!(
            begin(&mut t, "dsl", "192.0.2.9", 1000)
                .unwrap_err()
                .until_ms,
            3000
        );
        // A guesser trying each time it may: the waits double up to the cap, never past it.
        let (mut now, mut waits) = (3000, Vec::new());
        for i in 0..12 {
            begin(&mut t, "dsl", &format!("203.0.113.{i}"), now).unwrap();
            let r = begin(&mut t, "dsl", "192.0.2.1", now).unwrap_err();
            waits.push((r.until_ms - now) / 1000);
            now = r.until_ms;
        }
        assert_eq!(waits, [4, 8, 16, 32, 60, 60, 60, 60, 60, 60, 60, 60]);
        assert!(now < Throttle::WINDOW_MS + MIN);
        // The right password resets the account.
        t.succeeded(&a);
        begin(&mut t, "dsl", "192.0.2.1", now).unwrap();
    }

    #[test]
    fn an_abandoned_attempt_does_not_count() {
        let mut t = Throttle::default();
        for i in 0..10 {
            let a = begin(&mut t, "dsl", "192.0.2.1", i).unwrap();
            t.abandoned(&a);
        }
        begin(&mut t, "dsl", "192.0.2.1", 10).unwrap();
    }

    #[test]
    fn many_names_from_one_address_are_limited_too() {
        let mut t = Throttle::default();
        for i in 0..Throttle::ADDRESS_LIMIT {
            begin(&mut t, &format!("user{i}"), "192.0.2.1", 0).unwrap();
        }
        assert!(begin(&mut t, "dsl", "192.0.2.1", 1).is_err());
    }

    #[test]
    fn an_ipv6_host_is_one_key_per_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), "2001:db8:1:2::/64");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: std::net::IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7");
    }

    #[test]
    fn a_flood_of_addresses_evicts_the_oldest_and_never_an_account() {
        let mut t = Throttle::default();
        for i in 0..5 {
            begin(&mut t, "dsl", "192.0.2.1", i).unwrap();
        }
        // Many more keys than the table holds: addresses each guessing an unknown name.
        for i in 0..(Throttle::KEYS as i64) {
            let addr = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            begin(&mut t, &format!("nobody{i}"), &addr, 10 + i).unwrap_or_else(|_| panic!("{i}"));
        }
        let (accounts, others) = t.len();
        assert_eq!(accounts, 1);
        assert!(others <= Throttle::KEYS, "{others}");
        // The account's record survived: its delay still applies.
        assert!(begin(&mut t, "dsl", "198.51.100.7", 20).is_err());
    }
}
