//! Instants written by people: RFC 3339 with an offset, or a local date and time in the
//! school's zone (`YYYY-MM-DDTHH:MM[:SS]`).

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// Parses `text` as an instant. A local time skipped by a clock change moves forward by the
/// gap; a repeated one takes its first occurrence. A date without a time is refused: it would
/// silently mean midnight.
pub fn parse_instant(text: &str, tz: &TimeZone) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    if !text.contains(['T', 't', ' ']) {
        return None;
    }
    let dt = text.parse::<DateTime>().ok()?;
    tz.to_ambiguous_timestamp(dt).compatible().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let tz = jiff::tz::db().get("Europe/London").unwrap();
        let utc = |s: &str| s.parse::<Timestamp>().unwrap();
        let cases = [
            ("2026-11-24T13:00", Some(utc("2026-11-24T13:00:00Z"))),
            ("2026-11-24T13:00:30", Some(utc("2026-11-24T13:00:30Z"))),
            ("2026-11-24 13:00", Some(utc("2026-11-24T13:00:00Z"))),
            ("2027-06-01T09:00", Some(utc("2027-06-01T08:00:00Z"))),
            ("2027-06-01T09:00+01:00", Some(utc("2027-06-01T08:00:00Z"))),
            ("2027-06-01T09:00:00Z", Some(utc("2027-06-01T09:00:00Z"))),
            // In the spring gap: 01:30 does not happen; it moves to 02:30 BST.
            ("2027-03-28T01:30", Some(utc("2027-03-28T01:30:00Z"))),
            // In the autumn fold: the first 01:30 (BST).
            ("2027-10-31T01:30", Some(utc("2027-10-31T00:30:00Z"))),
            ("2026-11-24", None),
            ("13:00", None),
            ("tomorrow", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_instant(text, &tz), want, "{text}");
        }
    }
}
