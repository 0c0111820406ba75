//! The school calendar: terms, and the closures (half terms, INSET days, bank holidays) inside
//! them. Dates are civil dates in the school's time zone and both ends are inclusive.

use jiff::civil::Date;

/// A named span of days, both ends inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateSpan {
    pub name: String,
    pub from: Date,
    pub to: Date,
}

impl DateSpan {
    pub fn contains(&self, date: Date) -> bool {
        self.from <= date && date <= self.to
    }
}

/// Terms and closures. "Term time" is a day inside a term and not inside a closure.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    /// Sorted by start; validated not to overlap.
    terms: Vec<DateSpan>,
    /// Sorted by start; closures may overlap each other.
    closures: Vec<DateSpan>,
}

impl Calendar {
    /// `terms` must not overlap (the loader checks this and says where).
    pub fn new(mut terms: Vec<DateSpan>, mut closures: Vec<DateSpan>) -> Self {
        terms.sort_by_key(|t| t.from);
        closures.sort_by_key(|c| c.from);
        Self { terms, closures }
    }

    pub fn terms(&self) -> &[DateSpan] {
        &self.terms
    }

    pub fn closures(&self) -> &[DateSpan] {
        &self.closures
    }

    /// The term that `date` falls in, if any (closures not considered).
    pub fn term_on(&self, date: Date) -> Option<&DateSpan> {
        let i = self.terms.partition_point(|t| t.from <= date);
        let term = self.terms.get(i.checked_sub(1)?)?;
        term.contains(date).then_some(term)
    }

    /// The first closure that `date` falls in, if any.
    pub fn closure_on(&self, date: Date) -> Option<&DateSpan> {
        self.closures
            .iter()
            .take_while(|c| c.from <= date)
            .find(|c| c.contains(date))
    }

    /// Inside a term and not inside a closure.
    pub fn is_term_day(&self, date: Date) -> bool {
        self.term_on(date).is_some() && self.closure_on(date).is_none()
    }

    /// The first and last day of all terms together.
    pub fn span(&self) -> Option<(Date, Date)> {
        let first = self.terms.first()?.from;
        let last = self.terms.iter().map(|t| t.to).max()?;
        Some((first, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn span(name: &str, from: Date, to: Date) -> DateSpan {
        DateSpan {
            name: name.into(),
            from,
            to,
        }
    }

    #[test]
    fn term_days_exclude_closures_and_include_both_ends() {
        let cal = Calendar::new(
            vec![
                span("Spring 2027", date(2027, 1, 5), date(2027, 3, 26)),
                span("Autumn 2026", date(2026, 9, 3), date(2026, 12, 18)),
            ],
            vec![
                span("INSET day", date(2026, 11, 27), date(2026, 11, 27)),
                span("Autumn half term", date(2026, 10, 26), date(2026, 10, 30)),
            ],
        );
        let cases = [
            (date(2026, 9, 2), false, "day before term"),
            (date(2026, 9, 3), true, "first day of term"),
            (date(2026, 10, 23), true, "last day before half term"),
            (date(2026, 10, 26), false, "first day of half term"),
            (date(2026, 10, 30), false, "last day of half term"),
            (date(2026, 11, 2), true, "back after half term"),
            (date(2026, 11, 26), true, "day before INSET"),
            (date(2026, 11, 27), false, "INSET day"),
            (date(2026, 11, 30), true, "after INSET"),
            (date(2026, 12, 18), true, "last day of term"),
            (date(2026, 12, 19), false, "Christmas holiday"),
            (date(2027, 1, 4), false, "day before spring term"),
            (date(2027, 1, 5), true, "first day of spring term"),
        ];
        for (d, want, why) in cases {
            assert_eq!(cal.is_term_day(d), want, "{d} ({why})");
        }
        assert_eq!(cal.span(), Some((date(2026, 9, 3), date(2027, 3, 26))));
        assert_eq!(
            cal.term_on(date(2027, 2, 1)).map(|t| t.name.as_str()),
            Some("Spring 2027")
        );
    }
}
