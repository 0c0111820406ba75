//! The agent's clock: the system's, or shifted for a trial or a demonstration (`run
//! --clock-from INSTANT`: the clock starts there and runs at the normal rate). Every part of
//! the daemon reads the time here, so decisions, the firewall's timeouts and events all agree.
//! The monotonic clock, for durations and deadlines, is read here too ([`instant`]), so the
//! shell's reads of time are in one place.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

/// Milliseconds added to the system's time.
static SHIFT_MS: AtomicI64 = AtomicI64::new(0);

/// The time now, as the agent sees it.
pub fn now() -> Timestamp {
    let real = Timestamp::now();
    match SHIFT_MS.load(Ordering::Relaxed) {
        0 => real,
        ms => real
            .checked_add(SignedDuration::from_millis(ms))
            .unwrap_or(real),
    }
}

/// The time now as a duration since the Unix epoch (a captured frame's time).
pub fn since_epoch() -> Duration {
    Duration::try_from(now().duration_since(Timestamp::UNIX_EPOCH)).unwrap_or_default()
}

/// The monotonic clock: for how long something took and when a wait ends, never for what
/// the policy decides.
pub fn instant() -> Instant {
    Instant::now()
}

/// Makes the clock read `start` now, and run on from there.
pub fn start_at(start: Timestamp) {
    let shift = start.duration_since(Timestamp::now());
    let ms = i64::try_from(shift.as_millis()).unwrap_or(0);
    SHIFT_MS.store(ms, Ordering::Relaxed);
}

/// How far the clock is shifted, if at all.
pub fn shift() -> Option<SignedDuration> {
    match SHIFT_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(SignedDuration::from_millis(ms)),
    }
}
