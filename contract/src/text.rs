//! How long the texts of an event may be, and the one way they are cut and cleaned.
//!
//! Every text in an event came from a pupil's device or passed through one: a name asked,
//! a host name chosen in a DHCP lease, a certificate's subject. Each is bounded and cleaned
//! where the event is made (the agent) and again where it is read (the console), so that
//! nothing a device sends can grow a page or a log line, break a line, or make a name read
//! backwards (`moc.\u{202e}exe.elgoog`); it is escaped again wherever it is shown.

/// The longest name, rule, group, category, destination or device text, in bytes (a DNS
/// name's longest).
pub const MAX_NAME: usize = 253;
/// The longest evidence, in bytes.
pub const MAX_EVIDENCE: usize = 1000;
/// The longest technique name taken from the wire, in bytes.
pub const MAX_TECHNIQUE: usize = 64;
/// The most events one batch may carry.
pub const MAX_BATCH: usize = 5000;
/// The largest `count` one event may carry: far above what a device can do in an
/// aggregation window, and small enough that no sum over the events a database can hold
/// (fewer than nine billion rows) overflows 64 bits.
pub const MAX_COUNT: u32 = 1_000_000_000;
/// `n` as an event's count: at most [`MAX_COUNT`], so the console never refuses it. (A
/// loss or a run of repeats that large is reported as the bound.)
pub fn count(n: u64) -> u32 {
    u32::try_from(n.min(u64::from(MAX_COUNT))).unwrap_or(MAX_COUNT)
}

/// How far ahead of the console's clock an agent's time may be, in milliseconds.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// `text` with control characters and bidirectional controls replaced by U+FFFD, cut to at
/// most `max` bytes on a character boundary.
pub fn bounded_to(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if c.is_control() || reorders(c) {
            '\u{fffd}'
        } else {
            c
        };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// [`bounded_to`] at [`MAX_NAME`]: the bound of every name an event carries.
pub fn bounded(text: &str) -> String {
    bounded_to(text, MAX_NAME)
}

/// Whether `c` is a bidirectional control: embeddings, overrides and isolates (U+202A–E,
/// U+2066–9), and the marks (U+200E–F, U+061C).
pub fn reorders(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_cuts_and_cleans() {
        assert_eq!(bounded("a\nb"), "a\u{fffd}b");
        let long = "é".repeat(300);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_NAME && cut.chars().all(|c| c == 'é'));
        assert_eq!(
            bounded("moc.\u{202e}exe.elgoog\u{2066}x\u{200f}"),
            "moc.\u{fffd}exe.elgoog\u{fffd}x\u{fffd}"
        );
        // A replacement never pushes the text past its bound.
        assert_eq!(bounded_to("ab\n", 3), "ab");
    }

    #[test]
    fn a_count_is_held_within_what_the_console_takes() {
        assert_eq!(count(0), 0);
        assert_eq!(count(7), 7);
        assert_eq!(count(u64::from(MAX_COUNT)), MAX_COUNT);
        assert_eq!(count(u64::MAX), MAX_COUNT);
    }
}
