//! Schedules: when a rule is in force, as instants.
//!
//! A schedule is written in local time (`days`, `times`, `term_time`). It is compiled into
//! *windows*: half-open intervals `[start, end)` of Unix seconds, produced by converting each
//! day's local ranges to instants in the school's time zone. Being active and the next change
//! are both read from the same merged windows, so they can never disagree, DST included.
//!
//! Conversions use jiff's "compatible" rule: a local time skipped by the spring change moves
//! forward by the gap; a local time repeated by the autumn change takes its first occurrence.
//! A range crossing midnight belongs to the day it starts on, for `days` and `term_time` alike.
//!
//! Term-time schedules are compiled completely (they have no windows outside terms). Other
//! schedules repeat forever, so they are compiled for the calendar's span plus a year either
//! side (at most seven years in all), and computed on the spot for instants outside that.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::calendar::Calendar;

pub(crate) const SECONDS_PER_DAY: u32 = 86_400;

/// A local time-of-day range `[start, end)`, in seconds since midnight. `end` may be 86 400
/// (`24:00`). When `end <= start` the range runs past midnight into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: u32,
    pub end: u32,
}

impl TimeRange {
    pub const WHOLE_DAY: TimeRange = TimeRange {
        start: 0,
        end: SECONDS_PER_DAY,
    };

    pub fn crosses_midnight(self) -> bool {
        self.end <= self.start
    }
}

/// Day-of-week set, Monday first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Days(pub [bool; 7]);

impl Days {
    pub fn contains(self, day: Weekday) -> bool {
        let i = day.to_monday_zero_offset();
        usize::try_from(i)
            .ok()
            .and_then(|i| self.0.get(i))
            .copied()
            .unwrap_or(false)
    }

    pub fn all(self) -> bool {
        self.0.iter().all(|d| *d)
    }
}

/// Where a schedule's windows come from.
#[derive(Debug, Clone)]
enum Windows {
    /// In force at every instant.
    Always,
    /// Every window there will ever be (term-time schedules).
    Complete(Vec<Window>),
    /// Windows precomputed for `[valid_from, valid_to)`; outside that, computed on demand.
    Periodic {
        table: Vec<Window>,
        valid_from: i64,
        valid_to: i64,
    },
}

/// One stretch of time a schedule is in force: `[start, end)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

/// A compiled schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    /// How explanations name it, e.g. "in the school day".
    pub label: String,
    pub days: Days,
    pub ranges: Vec<TimeRange>,
    pub term_time: bool,
    windows: Windows,
    /// Needed to compute windows outside the precomputed span.
    tz: TimeZone,
}

/// Whether a schedule is in force at an instant, and when that next changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub active: bool,
    /// The next instant (Unix seconds) the schedule switches on or off; `None` if never.
    pub next_change: Option<i64>,
}

impl Schedule {
    /// The built-in schedule that is always in force.
    pub fn always(tz: &TimeZone) -> Self {
        Self {
            name: "always".into(),
            label: "at any time".into(),
            days: Days([true; 7]),
            ranges: vec![TimeRange::WHOLE_DAY],
            term_time: false,
            windows: Windows::Always,
            tz: tz.clone(),
        }
    }

    /// Compiles a schedule. `days` must not be empty and `ranges` must not contain empty ranges
    /// (the loader reports those with their location).
    pub fn compile(
        name: String,
        label: String,
        days: Days,
        ranges: Vec<TimeRange>,
        term_time: bool,
        tz: &TimeZone,
        calendar: &Calendar,
    ) -> Self {
        let windows = if !term_time && days.all() && covers_whole_day(&ranges) {
            Windows::Always
        } else if term_time {
            let mut table = Vec::new();
            for term in calendar.terms() {
                push_windows(
                    &mut table,
                    term.from,
                    term.to,
                    days,
                    &ranges,
                    Some(calendar),
                    tz,
                );
            }
            Windows::Complete(merge(table))
        } else {
            match calendar.span() {
                Some((first, last)) => {
                    // A year either side of the calendar, but never more than seven years in
                    // all, however far apart the terms are.
                    let from = first
                        .saturating_sub(366.days())
                        .max(last.saturating_sub(6.years()));
                    let to = last.saturating_add(366.days());
                    let mut table = Vec::new();
                    push_windows(&mut table, from, to, days, &ranges, None, tz);
                    // Instants this close to either end of the table could need windows from
                    // outside it: a weekly schedule changes at least once in any 8 days.
                    let margin = i64::from(SECONDS_PER_DAY) * 9;
                    let valid_from = local_midnight(from, tz).saturating_add(margin);
                    let valid_to = local_midnight(to, tz).saturating_sub(margin);
                    Windows::Periodic {
                        table: merge(table),
                        valid_from,
                        valid_to,
                    }
                }
                None => Windows::Periodic {
                    table: Vec::new(),
                    valid_from: 0,
                    valid_to: 0,
                },
            }
        };
        Self {
            name,
            label,
            days,
            ranges,
            term_time,
            windows,
            tz: tz.clone(),
        }
    }

    pub fn is_always(&self) -> bool {
        matches!(self.windows, Windows::Always)
    }

    /// Whether the schedule is in force at `now` (Unix seconds) and when that next changes.
    pub fn state(&self, now: i64) -> State {
        match &self.windows {
            Windows::Always => State {
                active: true,
                next_change: None,
            },
            Windows::Complete(table) => state_in(table, now),
            Windows::Periodic {
                table,
                valid_from,
                valid_to,
            } if *valid_from <= now && now < *valid_to => state_in(table, now),
            Windows::Periodic { .. } => {
                // Outside the precomputed span: build the windows around `now`. A weekly
                // schedule that is not always on changes at least once in any 8 days.
                let today = self.tz.to_datetime(timestamp(now)).date();
                let mut table = Vec::new();
                let from = today.saturating_sub(1.day());
                let to = today.saturating_add(8.days());
                push_windows(
                    &mut table,
                    from,
                    to,
                    self.days,
                    &self.ranges,
                    None,
                    &self.tz,
                );
                state_in(&merge(table), now)
            }
        }
    }

    /// The window in force at `now` (from `now` to its end), else the next one: "the next
    /// lesson". `None` for `always`, and for a schedule that never comes round again.
    pub fn current_or_next(&self, now: i64) -> Option<(i64, i64)> {
        let here = self.state(now);
        if here.active {
            return here.next_change.map(|end| (now, end));
        }
        let start = here.next_change?;
        let end = self.state(start).next_change?;
        Some((start, end))
    }

    /// Every window that starts in `[from, to)`, for display and tests.
    pub fn windows_between(&self, from: i64, to: i64, calendar: &Calendar) -> Vec<Window> {
        let first = self
            .tz
            .to_datetime(timestamp(from))
            .date()
            .saturating_sub(1.day());
        let last = self.tz.to_datetime(timestamp(to)).date();
        let mut table = Vec::new();
        let cal = self.term_time.then_some(calendar);
        if self.is_always() {
            return vec![Window {
                start: from,
                end: to,
            }];
        }
        push_windows(
            &mut table,
            first,
            last,
            self.days,
            &self.ranges,
            cal,
            &self.tz,
        );
        merge(table)
            .into_iter()
            .filter(|w| w.end > from && w.start < to)
            .collect()
    }
}

fn covers_whole_day(ranges: &[TimeRange]) -> bool {
    // Every day is selected, so a range crossing midnight covers [start, 24:00) of one day and
    // [00:00, end) of the next: as far as coverage goes, both pieces fall on every day.
    let mut pieces: Vec<(u32, u32)> = Vec::new();
    for r in ranges {
        if r.crosses_midnight() {
            pieces.push((r.start, SECONDS_PER_DAY));
            pieces.push((0, r.end));
        } else {
            pieces.push((r.start, r.end));
        }
    }
    pieces.sort_unstable();
    let mut covered = 0;
    for (start, end) in pieces {
        if start > covered {
            return false;
        }
        covered = covered.max(end);
    }
    covered >= SECONDS_PER_DAY
}

fn timestamp(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap_or(if second < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The instant `time` on `date` happens in `tz`, by the compatible rule.
fn instant(date: Date, seconds: u32, tz: &TimeZone) -> Option<i64> {
    let (date, seconds) = if seconds >= SECONDS_PER_DAY {
        (date.checked_add(1.day()).ok()?, seconds - SECONDS_PER_DAY)
    } else {
        (date, seconds)
    };
    let h = i8::try_from(seconds / 3600).ok()?;
    let m = i8::try_from(seconds / 60 % 60).ok()?;
    let s = i8::try_from(seconds % 60).ok()?;
    let time = Time::new(h, m, s, 0).ok()?;
    let ts = tz
        .to_ambiguous_timestamp(DateTime::from_parts(date, time))
        .compatible()
        .ok()?;
    Some(ts.as_second())
}

fn local_midnight(date: Date, tz: &TimeZone) -> i64 {
    instant(date, 0, tz).unwrap_or(0)
}

/// Appends the windows of every day in `[from, to]` (inclusive) that the schedule selects.
fn push_windows(
    out: &mut Vec<Window>,
    from: Date,
    to: Date,
    days: Days,
    ranges: &[TimeRange],
    term_calendar: Option<&Calendar>,
    tz: &TimeZone,
) {
    let mut date = from;
    while date <= to {
        let selected =
            days.contains(date.weekday()) && term_calendar.is_none_or(|cal| cal.is_term_day(date));
        if selected {
            for r in ranges {
                let end_secs = if r.crosses_midnight() {
                    r.end + SECONDS_PER_DAY
                } else {
                    r.end
                };
                if let (Some(start), Some(end)) =
                    (instant(date, r.start, tz), instant(date, end_secs, tz))
                {
                    // A range that falls wholly in a spring-forward gap can come out empty.
                    if start < end {
                        out.push(Window { start, end });
                    }
                }
            }
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
}

/// Sorts windows and joins those that overlap or touch, so every boundary is a real change.
fn merge(mut windows: Vec<Window>) -> Vec<Window> {
    windows.sort_unstable_by_key(|w| (w.start, w.end));
    let mut out: Vec<Window> = Vec::with_capacity(windows.len());
    for w in windows {
        match out.last_mut() {
            Some(last) if w.start <= last.end => last.end = last.end.max(w.end),
            _ => out.push(w),
        }
    }
    out
}

fn state_in(table: &[Window], now: i64) -> State {
    // The last window starting at or before `now`.
    let i = table.partition_point(|w| w.start <= now);
    if let Some(w) = i.checked_sub(1).and_then(|j| table.get(j))
        && now < w.end
    {
        return State {
            active: true,
            next_change: Some(w.end),
        };
    }
    State {
        active: false,
        next_change: table.get(i).map(|w| w.start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::DateSpan;
    use jiff::civil::date;

    fn london() -> TimeZone {
        jiff::tz::db().get("Europe/London").unwrap()
    }

    fn hm(h: u32, m: u32) -> u32 {
        h * 3600 + m * 60
    }

    fn at(s: &str) -> i64 {
        london()
            .to_ambiguous_timestamp(s.parse().unwrap())
            .compatible()
            .unwrap()
            .as_second()
    }

    fn weekdays() -> Days {
        Days([true, true, true, true, true, false, false])
    }

    #[test]
    fn whole_day_every_day_is_always() {
        let tz = london();
        let cal = Calendar::default();
        let s = Schedule::compile(
            "x".into(),
            "x".into(),
            Days([true; 7]),
            vec![
                TimeRange {
                    start: hm(12, 0),
                    end: hm(12, 0) + 1,
                },
                TimeRange {
                    start: hm(12, 0) + 1,
                    end: hm(12, 0),
                },
            ],
            false,
            &tz,
            &cal,
        );
        assert!(s.is_always());
        let s = Schedule::compile(
            "x".into(),
            "x".into(),
            weekdays(),
            vec![TimeRange::WHOLE_DAY],
            false,
            &tz,
            &cal,
        );
        assert!(!s.is_always());
    }

    #[test]
    fn overnight_range_belongs_to_the_day_it_starts() {
        let tz = london();
        let cal = Calendar::default();
        // Friday only, 22:00-06:00: runs Friday night into Saturday morning, not Thursday's.
        let s = Schedule::compile(
            "night".into(),
            "at night".into(),
            Days([false, false, false, false, true, false, false]),
            vec![TimeRange {
                start: hm(22, 0),
                end: hm(6, 0),
            }],
            false,
            &tz,
            &cal,
        );
        // 2026-11-27 is a Friday.
        let cases = [
            ("2026-11-27T05:00", false), // Thursday's night is not selected
            ("2026-11-27T21:59", false),
            ("2026-11-27T22:00", true),
            ("2026-11-28T03:00", true),
            ("2026-11-28T05:59:59", true),
            ("2026-11-28T06:00", false),
            ("2026-11-28T22:30", false),
        ];
        for (t, want) in cases {
            assert_eq!(s.state(at(t)).active, want, "{t}");
        }
        assert_eq!(
            s.state(at("2026-11-27T12:00")).next_change,
            Some(at("2026-11-27T22:00"))
        );
        assert_eq!(
            s.state(at("2026-11-28T01:00")).next_change,
            Some(at("2026-11-28T06:00"))
        );
        assert_eq!(
            s.state(at("2026-11-28T07:00")).next_change,
            Some(at("2026-12-04T22:00"))
        );
    }

    #[test]
    fn term_time_schedule_is_complete_and_ends_with_the_calendar() {
        let tz = london();
        let cal = Calendar::new(
            vec![DateSpan {
                name: "T".into(),
                from: date(2026, 9, 3),
                to: date(2026, 12, 18),
            }],
            vec![DateSpan {
                name: "INSET".into(),
                from: date(2026, 11, 27),
                to: date(2026, 11, 27),
            }],
        );
        let s = Schedule::compile(
            "sd".into(),
            "sd".into(),
            weekdays(),
            vec![TimeRange {
                start: hm(8, 30),
                end: hm(15, 30),
            }],
            true,
            &tz,
            &cal,
        );
        // Thursday 26 Nov 16:00 → next is Monday 30 Nov 08:30 (Friday is INSET).
        assert_eq!(
            s.state(at("2026-11-26T16:00")).next_change,
            Some(at("2026-11-30T08:30"))
        );
        // After the last day of term: never again.
        assert_eq!(
            s.state(at("2026-12-18T15:30")),
            State {
                active: false,
                next_change: None
            }
        );
        assert_eq!(
            s.state(at("2030-01-01T10:00")),
            State {
                active: false,
                next_change: None
            }
        );
    }

    #[test]
    fn periodic_schedule_outside_the_precomputed_span_is_computed_on_demand() {
        let tz = london();
        let cal = Calendar::new(
            vec![DateSpan {
                name: "T".into(),
                from: date(2026, 9, 3),
                to: date(2026, 12, 18),
            }],
            vec![],
        );
        let no_cal = Calendar::default();
        let r = vec![TimeRange {
            start: hm(8, 30),
            end: hm(15, 30),
        }];
        let with = Schedule::compile(
            "a".into(),
            "a".into(),
            weekdays(),
            r.clone(),
            false,
            &tz,
            &cal,
        );
        let without = Schedule::compile("a".into(), "a".into(), weekdays(), r, false, &tz, &no_cal);
        for t in [
            "2026-11-24T10:00",
            "2026-11-28T10:00",
            "2031-06-02T08:29:59",
            "2031-06-06T15:00",
            "2027-03-28T09:00",
        ] {
            assert_eq!(with.state(at(t)), without.state(at(t)), "{t}");
        }
        assert_eq!(
            without.state(at("2031-06-06T15:00")).next_change,
            Some(at("2031-06-06T15:30"))
        );
        assert_eq!(
            without.state(at("2031-06-06T16:00")).next_change,
            Some(at("2031-06-09T08:30"))
        );
    }

    #[test]
    fn dst_changes_keep_local_times() {
        let tz = london();
        let cal = Calendar::default();
        let s = Schedule::compile(
            "sd".into(),
            "sd".into(),
            Days([true; 7]),
            vec![TimeRange {
                start: hm(8, 30),
                end: hm(15, 30),
            }],
            false,
            &tz,
            &cal,
        );
        // Spring forward: Sunday 2027-03-28 at 01:00 GMT. 08:30 BST is 07:30 UTC.
        let st = s.state(at("2027-03-28T00:30"));
        assert_eq!(st.next_change, Some(at("2027-03-28T08:30")));
        assert_eq!(
            st.next_change,
            Some(
                "2027-03-28T07:30:00Z"
                    .parse::<Timestamp>()
                    .unwrap()
                    .as_second()
            )
        );
        // Fall back: Sunday 2027-10-31 at 02:00 BST. 15:30 GMT is 15:30 UTC.
        let st = s.state(at("2027-10-31T12:00"));
        assert_eq!(
            st.next_change,
            Some(
                "2027-10-31T15:30:00Z"
                    .parse::<Timestamp>()
                    .unwrap()
                    .as_second()
            )
        );
    }

    #[test]
    fn ranges_in_the_dst_gap_and_fold() {
        let tz = london();
        let cal = Calendar::default();
        // 00:30-02:30 across both changes: 2 hours of clock time, 1 hour on the spring day
        // (01:00-02:00 does not exist) and 3 hours on the autumn day (01:00-02:00 happens twice).
        let s = Schedule::compile(
            "n".into(),
            "n".into(),
            Days([false, false, false, false, false, false, true]),
            vec![TimeRange {
                start: hm(0, 30),
                end: hm(2, 30),
            }],
            false,
            &tz,
            &cal,
        );
        let spring = s.windows_between(at("2027-03-28T00:00"), at("2027-03-28T12:00"), &cal);
        assert_eq!(spring.len(), 1);
        assert_eq!(spring[0].end - spring[0].start, 3600);
        // Wholly inside the gap: both ends move forward an hour.
        let sunday = Days([false, false, false, false, false, false, true]);
        let inside = Schedule::compile(
            "g".into(),
            "g".into(),
            sunday,
            vec![TimeRange {
                start: hm(1, 15),
                end: hm(1, 45),
            }],
            false,
            &tz,
            &cal,
        );
        let w = inside.windows_between(at("2027-03-28T00:00"), at("2027-03-28T12:00"), &cal);
        let utc = |s: &str| s.parse::<Timestamp>().unwrap().as_second();
        assert_eq!(
            w,
            vec![Window {
                start: utc("2027-03-28T01:15:00Z"),
                end: utc("2027-03-28T01:45:00Z")
            }]
        );
        // Start pushed past the end: no window that night, but the next Sunday as usual.
        let past = Schedule::compile(
            "p".into(),
            "p".into(),
            sunday,
            vec![TimeRange {
                start: hm(1, 30),
                end: hm(2, 15),
            }],
            false,
            &tz,
            &cal,
        );
        assert!(
            past.windows_between(at("2027-03-28T00:00"), at("2027-03-28T12:00"), &cal)
                .is_empty()
        );
        assert_eq!(
            past.windows_between(at("2027-04-04T00:00"), at("2027-04-04T12:00"), &cal)
                .len(),
            1
        );
        let autumn = s.windows_between(at("2027-10-31T00:00"), at("2027-10-31T12:00"), &cal);
        assert_eq!(autumn.len(), 1);
        assert_eq!(autumn[0].end - autumn[0].start, 3 * 3600);
    }
}
