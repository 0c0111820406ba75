//! The school's time zone: every time a page, a CSV download or an e-mail shows is in it,
//! and days and weeks begin at its midnight, so a 09:10 incident in June reads 09:10, not
//! 08:10. Days are civil days: one in spring has 23 hours and one in autumn 25 (jiff knows
//! the rules; its time zone database is built in, so a host without one still agrees).

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// The time zone a console shows, by its IANA name (`Europe/London`).
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

/// A name that is not a time zone jiff knows.
#[derive(Debug, thiserror::Error)]
#[error("{name:?} is not a time zone (use an IANA name such as Europe/London)")]
#[non_exhaustive]
pub struct UnknownZone {
    pub name: String,
}

impl TryFrom<String> for Zone {
    type Error = UnknownZone;

    fn try_from(name: String) -> Result<Self, UnknownZone> {
        match TimeZone::get(&name) {
            Ok(tz) => Ok(Self { name, tz }),
            Err(_) => Err(UnknownZone { name }),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::try_from(name).map_err(serde::de::Error::custom)
    }
}

impl Default for Zone {
    /// The schools this was written for are in the United Kingdom.
    fn default() -> Self {
        Self::try_from("Europe/London".to_owned()).unwrap_or_else(|_| Self::utc())
    }
}

impl Zone {
    pub fn utc() -> Self {
        Self {
            name: "UTC".to_owned(),
            tz: TimeZone::UTC,
        }
    }

    /// The IANA name, for headers (`time (Europe/London)`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn zoned(&self, ms: i64) -> Option<Zoned> {
        Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| t.to_zoned(self.tz.clone()))
    }

    fn format(&self, ms: i64, format: &str) -> String {
        self.zoned(ms)
            .map(|z| z.strftime(format).to_string())
            .unwrap_or_default()
    }

    /// `ms` as pages show it (`2026-06-15 09:10:03`).
    pub fn when(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%d %H:%M:%S")
    }

    /// `ms` with its offset, for CSV files read elsewhere (`2026-06-15 09:10:03 +01:00`):
    /// the hour that repeats when the clocks go back stays told apart.
    pub fn when_exact(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%d %H:%M:%S %:z")
    }

    /// `ms` as RFC 3339 with its offset (`2026-06-15T09:10:03+01:00`), for records other
    /// systems read.
    pub fn iso(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%dT%H:%M:%S%:z")
    }

    /// `ms` to the minute with the zone's abbreviation, for e-mail (`2026-06-15 09:10 BST`).
    pub fn minute(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%d %H:%M %Z")
    }

    /// From `from_ms` to `to_ms` to the minute, the date once when it is one day
    /// (`2026-06-15 09:10 to 10:10`; `2026-06-15 09:10` when they are the same minute).
    pub fn span(&self, from_ms: i64, to_ms: i64) -> String {
        let from = self.format(from_ms, "%Y-%m-%d %H:%M");
        let to = self.format(to_ms, "%Y-%m-%d %H:%M");
        if from == to {
            return from;
        }
        match (from.split_once(' '), to.split_once(' ')) {
            (Some((d1, _)), Some((d2, t2))) if d1 == d2 => format!("{from} to {t2}"),
            _ => format!("{from} to {to}"),
        }
    }

    /// `ms`'s hour (`06-15 09:00`), for charts.
    pub fn hour(&self, ms: i64) -> String {
        self.format(ms, "%m-%d %H:00")
    }

    /// `ms`'s date (`2026-06-15`).
    pub fn date_of(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%d")
    }

    /// `ms`'s day and date (`Mon 2026-06-15`).
    pub fn day_of(&self, ms: i64) -> String {
        self.format(ms, "%a %Y-%m-%d")
    }

    /// A local date and time as a browser's `datetime-local` field sends it
    /// (`2026-06-15T09:10`), here; a time the clocks skip is the first instant after it.
    pub fn local(&self, text: &str) -> Option<i64> {
        let civil = text.trim().parse::<jiff::civil::DateTime>().ok()?;
        civil
            .to_zoned(self.tz.clone())
            .ok()
            .map(|z| z.timestamp().as_millisecond())
    }

    /// `ms` as a `datetime-local` field shows it (`2026-06-15T09:10`).
    pub fn field(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%dT%H:%M")
    }

    fn start_of(&self, date: Date) -> Option<i64> {
        date.to_zoned(self.tz.clone())
            .and_then(|z| z.start_of_day())
            .ok()
            .map(|z| z.timestamp().as_millisecond())
    }

    /// The start of `date` (`YYYY-MM-DD`) here.
    pub fn day_start(&self, date: &str) -> Option<i64> {
        self.start_of(date.trim().parse::<Date>().ok()?)
    }

    /// The start of the day holding `ms`.
    pub fn floor_day(&self, ms: i64) -> i64 {
        self.zoned(ms)
            .and_then(|z| self.start_of(z.date()))
            .unwrap_or(ms)
    }

    /// The start of the day `days` after the one holding `ms` (before it when negative).
    pub fn add_days(&self, ms: i64, days: i64) -> i64 {
        self.zoned(ms)
            .and_then(|z| z.date().checked_add(days.days()).ok())
            .and_then(|d| self.start_of(d))
            .unwrap_or(ms)
    }

    /// `ms` moved on `weeks` weeks at the same time of day here (so a 09:10 lesson is at
    /// 09:10 across a change of the clocks).
    pub fn weeks_later(&self, ms: i64, weeks: i64) -> i64 {
        self.zoned(ms)
            .and_then(|z| z.checked_add(weeks.weeks()).ok())
            .map_or(ms, |z| z.timestamp().as_millisecond())
    }

    /// The last instant at or before `now_ms` that was `day` at `time` here (a time the
    /// clocks skip is taken as the first instant after it).
    pub fn last_at(&self, day: Weekday, time: jiff::civil::Time, now_ms: i64) -> Option<i64> {
        let today = self.zoned(now_ms)?.date();
        (0..=7)
            .filter_map(|back| today.checked_sub(i64::from(back).days()).ok())
            .filter(|d| d.weekday() == day)
            .filter_map(|d| d.to_datetime(time).to_zoned(self.tz.clone()).ok())
            .map(|z| z.timestamp().as_millisecond())
            .find(|t| *t <= now_ms)
    }

    /// The last whole week (Monday 00:00 to Monday 00:00 here) ending at or before `ms`.
    pub fn week_before(&self, ms: i64) -> (i64, i64) {
        let (monday, _) = self.week_of(ms);
        (self.add_days(monday, -7), monday)
    }

    /// Monday 00:00 of the week holding `ms`, and the Monday after.
    pub fn week_of(&self, ms: i64) -> (i64, i64) {
        let Some(date) = self.zoned(ms).map(|z| z.date()) else {
            return (ms, ms);
        };
        let back = i64::from(date.weekday().to_monday_zero_offset());
        let monday = date
            .checked_sub(back.days())
            .ok()
            .filter(|d| d.weekday() == Weekday::Monday)
            .and_then(|d| self.start_of(d))
            .unwrap_or(ms);
        (monday, self.add_days(monday, 7))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn london() -> Zone {
        Zone::try_from("Europe/London".to_owned()).unwrap()
    }

    #[test]
    fn a_summer_morning_reads_as_the_school_saw_it() {
        let z = london();
        assert_eq!(z.when(ms("2026-06-15T08:10:03Z")), "2026-06-15 09:10:03");
        assert_eq!(
            z.when_exact(ms("2026-06-15T08:10:03Z")),
            "2026-06-15 09:10:03 +01:00"
        );
        assert_eq!(z.minute(ms("2026-06-15T08:10:03Z")), "2026-06-15 09:10 BST");
        assert_eq!(
            z.iso(ms("2026-06-15T08:10:03Z")),
            "2026-06-15T09:10:03+01:00"
        );
        // In winter London is on UTC.
        assert_eq!(z.when(ms("2026-11-24T10:02:03Z")), "2026-11-24 10:02:03");
        assert_eq!(z.minute(ms("2026-11-24T10:02:03Z")), "2026-11-24 10:02 GMT");
    }

    #[test]
    fn days_start_at_local_midnight_and_change_length_with_the_clocks() {
        let z = london();
        assert_eq!(z.day_start("2026-06-15"), Some(ms("2026-06-14T23:00:00Z")));
        assert_eq!(
            z.floor_day(ms("2026-06-14T23:30:00Z")),
            ms("2026-06-14T23:00:00Z")
        );
        // The clocks went forward on Sunday 29 March 2026 and back on Sunday 25 October.
        let spring = z.day_start("2026-03-29").unwrap();
        assert_eq!(z.add_days(spring, 1) - spring, 23 * 3_600_000);
        let autumn = z.day_start("2026-10-25").unwrap();
        assert_eq!(z.add_days(autumn, 1) - autumn, 25 * 3_600_000);
        assert_eq!(z.day_start("not a date"), None);
    }

    #[test]
    fn weeks_run_from_monday_midnight_local() {
        let z = london();
        // Sunday 00:30 BST is still Saturday 23:30 UTC: the week is the one before Sunday's.
        let (from, to) = z.week_of(ms("2026-06-13T23:30:00Z"));
        assert_eq!(from, ms("2026-06-07T23:00:00Z"));
        assert_eq!(to, ms("2026-06-14T23:00:00Z"));
        // Monday 00:30 BST starts a new week, which a UTC week would put in the old one.
        let (from, _) = z.week_of(ms("2026-06-14T23:30:00Z"));
        assert_eq!(from, ms("2026-06-14T23:00:00Z"));
        // The week the clocks go back is an hour longer.
        let (from, to) = z.week_of(ms("2026-10-22T12:00:00Z"));
        assert_eq!(to - from, (7 * 24 + 1) * 3_600_000);
        assert_eq!(z.day_of(from), "Mon 2026-10-19");
    }

    #[test]
    fn a_weekly_send_time_is_found_in_local_time() {
        let z = london();
        let monday_0730 = jiff::civil::time(7, 30, 0, 0);
        // Wednesday 10 June 2026: the last Monday 07:30 BST was 8 June, 06:30 UTC.
        let now = ms("2026-06-10T12:00:00Z");
        let due = z.last_at(Weekday::Monday, monday_0730, now).unwrap();
        assert_eq!(due, ms("2026-06-08T06:30:00Z"));
        // It covers the week before: Monday 1 June 00:00 BST to Monday 8 June.
        assert_eq!(
            z.week_before(due),
            (ms("2026-05-31T23:00:00Z"), ms("2026-06-07T23:00:00Z"))
        );
        // On Monday at 07:29 the last one is a week earlier; at 07:30, today's.
        let just_before = ms("2026-06-08T06:29:00Z");
        assert_eq!(
            z.last_at(Weekday::Monday, monday_0730, just_before),
            Some(ms("2026-06-01T06:30:00Z"))
        );
        assert_eq!(z.last_at(Weekday::Monday, monday_0730, due), Some(due));
    }

    #[test]
    fn an_unknown_zone_is_refused_by_name() {
        let e = Zone::try_from("Europe/Lundon".to_owned()).unwrap_err();
        assert!(e.to_string().contains("\"Europe/Lundon\""), "{e}");
        assert_eq!(Zone::default().name(), "Europe/London");
    }
}
