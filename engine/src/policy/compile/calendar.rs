//! Dates, the calendar's terms and closures, and the schedules compiled into windows.

use super::*;

impl Compiler<'_> {
    pub(super) fn date(&mut self, s: &S<String>) -> Option<Date> {
        match s.value.trim().parse::<Date>() {
            Ok(d) if s.value.trim().len() == 10 => Some(d),
            _ => {
                self.error(
                    s,
                    ErrorKind::Date {
                        value: s.value.clone(),
                    },
                );
                None
            }
        }
    }

    pub(super) fn calendar(&mut self, raw: &RawPolicy) -> Calendar {
        let mut terms: Vec<(DateSpan, Location)> = Vec::new();
        for t in &raw.calendar.terms {
            let (from, to) = (self.date(&t.value.from), self.date(&t.value.to));
            let (Some(from), Some(to)) = (from, to) else {
                continue;
            };
            let name = t.value.name.value.trim().to_owned();
            if from > to {
                self.error(&t.value.from, backwards(&name, from, to));
                continue;
            }
            // Schedules are compiled day by day over the terms: a mistyped year must not
            // turn into thousands of years of work.
            let days = (to - from).get_days() + 1;
            if days > MAX_TERM_DAYS {
                self.error(&t.value.to, ErrorKind::TermTooLong { name, days });
                continue;
            }
            terms.push((DateSpan { name, from, to }, self.at(t)));
        }
        terms.sort_by_key(|(t, _)| t.from);
        for pair in terms.windows(2) {
            if let [(a, _), (b, at)] = pair
                && b.from <= a.to
            {
                let kind = ErrorKind::TermOverlap {
                    name: b.name.clone(),
                    other: a.name.clone(),
                };
                self.errors.push(PolicyError {
                    at: at.clone(),
                    kind,
                });
            }
        }
        let mut closures = Vec::new();
        for c in &raw.calendar.closures {
            let name = c.value.name.value.trim().to_owned();
            let span = match (&c.value.on, &c.value.from, &c.value.to) {
                (Some(on), None, None) => self.date(on).map(|d| (d, d)),
                (None, Some(from), Some(to)) => match (self.date(from), self.date(to)) {
                    (Some(f), Some(t)) if f > t => {
                        self.error(from, backwards(&name, f, t));
                        None
                    }
                    (Some(f), Some(t)) => Some((f, t)),
                    _ => None,
                },
                _ => {
                    self.error(c, ErrorKind::ClosureDates);
                    None
                }
            };
            if let Some((from, to)) = span {
                closures.push(DateSpan { name, from, to });
            }
        }
        Calendar::new(terms.into_iter().map(|(t, _)| t).collect(), closures)
    }

    pub(super) fn schedules(
        &mut self,
        raw: &Ordered<S<crate::policy::raw::RawSchedule>>,
        tz: &TimeZone,
        calendar: &Calendar,
    ) -> (Vec<Schedule>, HashMap<String, ScheduleId>) {
        let mut out = vec![Schedule::always(tz)];
        let mut names = HashMap::from([(ALWAYS.to_owned(), ScheduleId(0))]);
        for (key, s) in &raw.0 {
            let reserved = [(ALWAYS, "`always` is built in and means at every moment")];
            if !self.key_name(key, &reserved) {
                continue;
            }
            let mut days = Days::default();
            let mut ok = true;
            for d in &s.value.days {
                match parse_day(&d.value) {
                    Some(i) => {
                        if let Some(slot) = days.0.get_mut(i) {
                            *slot = true;
                        }
                    }
                    None => {
                        self.error(
                            d,
                            ErrorKind::Day {
                                value: d.value.clone(),
                            },
                        );
                        ok = false;
                    }
                }
            }
            if s.value.days.is_empty() {
                self.error(
                    s,
                    ErrorKind::Empty {
                        what: "schedule",
                        name: key.value.clone(),
                        needs: "days",
                    },
                );
                ok = false;
            }
            let ranges = match &s.value.times {
                None => vec![TimeRange::WHOLE_DAY],
                Some(times) => {
                    if times.is_empty() {
                        self.error(
                            s,
                            ErrorKind::Empty {
                                what: "schedule",
                                name: key.value.clone(),
                                needs: "times",
                            },
                        );
                        ok = false;
                    }
                    let mut ranges = Vec::new();
                    for t in times {
                        match parse_range(&t.value) {
                            Ok(r) => ranges.push(r),
                            Err(kind) => {
                                self.error(t, kind);
                                ok = false;
                            }
                        }
                    }
                    ranges
                }
            };
            if !ok {
                continue;
            }
            let label = s
                .value
                .label
                .clone()
                .unwrap_or_else(|| format!("during {}", humanise(&key.value)));
            let id = ScheduleId(u32::try_from(out.len()).unwrap_or(u32::MAX));
            out.push(Schedule::compile(
                key.value.clone(),
                label,
                days,
                ranges,
                s.value.term_time,
                tz,
                calendar,
            ));
            names.insert(key.value.clone(), id);
        }
        (out, names)
    }
}

fn parse_day(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    const DAYS: [[&str; 2]; 7] = [
        ["mon", "monday"],
        ["tue", "tuesday"],
        ["wed", "wednesday"],
        ["thu", "thursday"],
        ["fri", "friday"],
        ["sat", "saturday"],
        ["sun", "sunday"],
    ];
    DAYS.iter().position(|names| names.contains(&s.as_str()))
}

/// Parses `HH:MM-HH:MM`. `24:00` is allowed as an end.
fn parse_range(s: &str) -> Result<TimeRange, ErrorKind> {
    let bad = || ErrorKind::TimeRange {
        value: s.to_owned(),
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start = parse_hm(a.trim(), false).ok_or_else(bad)?;
    let end = parse_hm(b.trim(), true).ok_or_else(bad)?;
    if start == end {
        return Err(ErrorKind::EmptyTimeRange {
            value: s.to_owned(),
        });
    }
    Ok(TimeRange { start, end })
}

fn parse_hm(s: &str, allow_24: bool) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    match (h, m) {
        (24, 0) if allow_24 => Some(SECONDS_PER_DAY),
        (0..=23, 0..=59) => Some(h * 3600 + m * 60),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ranges() {
        let ok = [
            ("08:30-15:30", 8 * 3600 + 1800, 15 * 3600 + 1800),
            ("8:30 - 15:30", 8 * 3600 + 1800, 15 * 3600 + 1800),
            ("22:00-06:00", 22 * 3600, 6 * 3600),
            ("00:00-24:00", 0, SECONDS_PER_DAY),
            ("18:00-24:00", 18 * 3600, SECONDS_PER_DAY),
        ];
        for (s, a, b) in ok {
            assert_eq!(
                parse_range(s).unwrap(),
                TimeRange { start: a, end: b },
                "{s}"
            );
        }
        for s in [
            "08:30",
            "8-9",
            "25:00-26:00",
            "08:60-09:00",
            "24:00-06:00",
            "08:30-08:30",
            "aa:bb-cc:dd",
            "08:30-15:30-16:00",
        ] {
            assert!(parse_range(s).is_err(), "{s}");
        }
        assert!(matches!(
            parse_range("08:30-08:30"),
            Err(ErrorKind::EmptyTimeRange { .. })
        ));
    }

    #[test]
    fn days() {
        assert_eq!(parse_day("Mon"), Some(0));
        assert_eq!(parse_day("sunday"), Some(6));
        assert_eq!(parse_day("mo"), None);
    }
}
