//! Fuzzing entry points, shared by `fuzz/` and the tests that replay its seeds: an agent's
//! batch (JSON carrying pupils' strings) through the wire contract, as the console takes it.

use schoolgate_contract::text::{
    MAX_BATCH, MAX_COUNT, MAX_EVIDENCE, MAX_NAME, MAX_SKEW_MS, reorders,
};
use schoolgate_contract::wire::parse_batch;

/// Bytes as the body of `POST /api/v1/events`: parsed, each event received, and its texts
/// written as CSV. What comes out must hold the contract's bounds. Must never panic.
#[allow(
    clippy::panic,
    reason = "an assertion a fuzzer reports as a crash: a bound the contract promises is broken"
)]
pub fn batch(data: &[u8]) {
    let Ok(batch) = parse_batch(data) else {
        return;
    };
    if batch.events.len() + batch.refused.len() > MAX_BATCH {
        panic!("a batch past its bound was taken");
    }
    let now = 1_795_514_523_123;
    let received = jiff::Timestamp::from_millisecond(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    for e in batch.events {
        let e = e.at(received);
        if !(1..=MAX_COUNT).contains(&e.count) || e.time.as_millisecond() > now + MAX_SKEW_MS {
            panic!("count {} or time {} outside the contract", e.count, e.time);
        }
        let texts = [
            (&e.name, MAX_NAME),
            (&e.rule, MAX_NAME),
            (&e.group, MAX_NAME),
            (&e.device.name, MAX_NAME),
            (&e.device.owner, MAX_NAME),
            (&e.evidence, MAX_EVIDENCE),
        ];
        for (t, max) in texts {
            if let Some(t) = t
                && (t.len() > max || t.chars().any(|c| c.is_control() || reorders(c)))
            {
                panic!("a text from a device kept unbounded or uncleaned: {t:?}");
            }
        }
        let row = texts.iter().map(|(t, _)| (*t).clone().unwrap_or_default());
        let _ = crate::web::csv::document(&["a", "b", "c", "d", "e", "f"], [row]);
    }
}

#[cfg(test)]
mod tests {
    /// The checked-in seeds of the `agent_batch` fuzz target, replayed.
    #[test]
    fn agent_batch_seeds_hold_the_contract() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/agent_batch");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            super::batch(&data);
            n += 1;
        }
        assert!(n >= 7, "expected the checked-in seeds in {}", dir.display());
    }
}
