//! The roster: a CSV file a school exports from its management information system (SIMS,
//! Arbor, Bromcom…), one person per line under a header line that names the columns.
//!
//! Columns are found by their header, whatever their order, compared without case, spaces,
//! `_`, `-` or `.`:
//! - username (required): `username`, `user`, `login`, `user name`, `samaccountname`, `upn`;
//! - role (required): `role`, `type`, `user type`, `staff or pupil`; its values `pupil`,
//!   `student`, `learner` or `staff`, `teacher`, `employee`, `teaching`, `support`;
//! - display name: `display name`, `name`, `full name`, or else `forename`/`first name`/
//!   `preferred forename` with `surname`/`last name`; the username when there is none;
//! - year: `year`, `year group`, `nc year` (`6` becomes the group `Year 6`; `R` is
//!   `Reception`);
//! - class: `class`, `registration group`, `reg group`, `form`, `tutor group`;
//! - groups: `groups`, `group`, `member of` (several, separated by `;`).
//!
//! Any other column (e-mail, admission number, date of birth…) is ignored and not kept. A
//! UTF-8 byte order mark (Excel's "CSV UTF-8") is skipped. Errors name the line and the
//! column (counted from 1) with the bad value, and every bad line is reported, not just the
//! first; the caller keeps its last good directory until the file reads cleanly.

use std::collections::HashMap;

use crate::directory::Directory;
use crate::person::{MAX_GROUPS, MAX_TEXT, Person, Role, Username, UsernameError};

/// The most people one roster may hold (a large secondary school has about 2,500).
pub const MAX_PEOPLE: usize = 100_000;
/// The largest roster file read, in bytes: room for [`MAX_PEOPLE`] lines of any export's
/// width; anything larger is not a roster.
pub const MAX_BYTES: u64 = 64 << 20;
/// Errors reported from one file at most; the rest are counted in the last one.
const MAX_ERRORS: usize = 100;
/// The longest bad value quoted back in an error, in bytes (cut on a character).
const MAX_QUOTED: usize = 64;

/// A column the roster reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Username,
    Role,
    DisplayName,
    Forename,
    Surname,
    Year,
    Class,
    Groups,
}

impl Column {
    /// The column a header names, if the roster reads it.
    pub fn of_header(header: &str) -> Option<Self> {
        let key: String = header
            .chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-' | '.'))
            .flat_map(char::to_lowercase)
            .collect();
        Some(match key.as_str() {
            "username" | "user" | "login" | "samaccountname" | "upn" | "userprincipalname" => {
                Self::Username
            }
            "role" | "type" | "usertype" | "stafforpupil" => Self::Role,
            "displayname" | "name" | "fullname" => Self::DisplayName,
            "forename" | "firstname" | "givenname" | "preferredforename" | "legalforename" => {
                Self::Forename
            }
            "surname" | "lastname" | "familyname" | "preferredsurname" | "legalsurname" => {
                Self::Surname
            }
            "year" | "yeargroup" | "ncyear" => Self::Year,
            "class" | "registrationgroup" | "reggroup" | "form" | "tutorgroup" => Self::Class,
            "groups" | "group" | "memberof" => Self::Groups,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Role => "role",
            Self::DisplayName => "display name",
            Self::Forename => "forename",
            Self::Surname => "surname",
            Self::Year => "year",
            Self::Class => "class",
            Self::Groups => "groups",
        }
    }
}

/// One thing wrong with a roster, and where.
#[derive(Debug, thiserror::Error)]
#[error("line {line}{}: {kind}", column.map(|c| format!(", column {c}")).unwrap_or_default())]
pub struct RosterError {
    /// Counted from 1.
    pub line: u64,
    /// Counted from 1; `None` for what concerns the whole line.
    pub column: Option<usize>,
    pub kind: RosterErrorKind,
}

/// What is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RosterErrorKind {
    #[error("the file is empty: its first line must name the columns")]
    NoHeader,
    #[error("no {} column in the header line", .0.as_str())]
    MissingColumn(Column),
    #[error("a second {} column (the first is column {first})", column.as_str())]
    DuplicateColumn { column: Column, first: usize },
    #[error("this is not UTF-8 text (export the roster as CSV UTF-8)")]
    NotUtf8,
    #[error("this line cannot be read as CSV: {0}")]
    Csv(#[source] csv::Error),
    #[error("the username {value:?} {why}")]
    Username { value: String, why: UsernameError },
    #[error(
        "the role {value:?} is neither pupil nor staff (pupil, student, learner; staff, teacher, employee)"
    )]
    Role { value: String },
    #[error("the {} is longer than {MAX_TEXT} bytes", .0.as_str())]
    TooLong(Column),
    #[error("more than {MAX_GROUPS} groups")]
    TooManyGroups,
    #[error("{username} is on line {first} already")]
    Duplicate { username: Username, first: u64 },
    #[error("more than {MAX_PEOPLE} people")]
    TooManyPeople,
    #[error("{0} more errors")]
    More(usize),
}

/// Reads a roster. Every error found, by line, if any.
pub fn parse(bytes: &[u8]) -> Result<Directory, Vec<RosterError>> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.byte_records();
    let mut errors = Errors::default();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            errors.push(line_of(&e), None, RosterErrorKind::Csv(e));
            return Err(errors.0);
        }
        None => {
            errors.push(1, None, RosterErrorKind::NoHeader);
            return Err(errors.0);
        }
    };
    let Some(columns) = columns(&header, &mut errors) else {
        return Err(errors.0);
    };
    let mut people = Vec::new();
    let mut first_line: HashMap<Username, u64> = HashMap::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(line_of(&e), None, RosterErrorKind::Csv(e));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let Some(person) = row(&record, &columns, line, &mut errors) else {
            continue;
        };
        if let Some(&first) = first_line.get(&person.username) {
            let at = columns.get(&Column::Username).map(|c| c + 1);
            let username = person.username;
            errors.push(line, at, RosterErrorKind::Duplicate { username, first });
            continue;
        }
        if people.len() == MAX_PEOPLE {
            errors.push(line, None, RosterErrorKind::TooManyPeople);
            break;
        }
        first_line.insert(person.username.clone(), line);
        people.push(person);
    }
    if !errors.0.is_empty() {
        return Err(errors.finish());
    }
    // Usernames were checked one by one above.
    Directory::new(people).map_err(|d| {
        vec![RosterError {
            line: 0,
            column: None,
            kind: RosterErrorKind::Duplicate {
                username: d.username,
                first: 0,
            },
        }]
    })
}

/// Errors so far, at most [`MAX_ERRORS`] kept.
#[derive(Debug, Default)]
struct Errors(Vec<RosterError>, usize);

impl Errors {
    fn push(&mut self, line: u64, column: Option<usize>, kind: RosterErrorKind) {
        if self.0.len() < MAX_ERRORS {
            self.0.push(RosterError { line, column, kind });
        } else {
            self.1 += 1;
        }
    }

    fn finish(mut self) -> Vec<RosterError> {
        if self.1 > 0 {
            let line = self.0.last().map_or(0, |e| e.line);
            self.0.push(RosterError {
                line,
                column: None,
                kind: RosterErrorKind::More(self.1),
            });
        }
        self.0
    }
}

fn line_of(e: &csv::Error) -> u64 {
    e.position().map_or(0, csv::Position::line)
}

/// Where each column the roster reads is (counted from 0), from the header line.
fn columns(header: &csv::ByteRecord, errors: &mut Errors) -> Option<HashMap<Column, usize>> {
    let line = header.position().map_or(1, csv::Position::line);
    let mut at = HashMap::new();
    for (i, field) in header.iter().enumerate() {
        let Ok(text) = std::str::from_utf8(field) else {
            errors.push(line, Some(i + 1), RosterErrorKind::NotUtf8);
            continue;
        };
        let Some(column) = Column::of_header(text) else {
            continue;
        };
        if let Some(first) = at.get(&column) {
            let first = first + 1;
            errors.push(
                line,
                Some(i + 1),
                RosterErrorKind::DuplicateColumn { column, first },
            );
            continue;
        }
        at.insert(column, i);
    }
    for required in [Column::Username, Column::Role] {
        if !at.contains_key(&required) {
            errors.push(line, None, RosterErrorKind::MissingColumn(required));
        }
    }
    errors.0.is_empty().then_some(at)
}

/// The person on one line, or `None` with its errors pushed.
fn row(
    record: &csv::ByteRecord,
    columns: &HashMap<Column, usize>,
    line: u64,
    errors: &mut Errors,
) -> Option<Person> {
    let before = errors.0.len() + errors.1;
    // Columns whose text could not be read at all: not judged again below.
    let mut unread = Vec::new();
    // The trimmed text of `column`, if the line has it and it is not blank.
    let mut field = |column: Column| -> Option<String> {
        let &i = columns.get(&column)?;
        let raw = record.get(i)?;
        let Ok(text) = std::str::from_utf8(raw) else {
            errors.push(line, Some(i + 1), RosterErrorKind::NotUtf8);
            unread.push(column);
            return None;
        };
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        // Usernames and roles are checked, and quoted back, by their own rules.
        let own_rules = matches!(column, Column::Username | Column::Role | Column::Groups);
        if !own_rules && text.len() > MAX_TEXT {
            errors.push(line, Some(i + 1), RosterErrorKind::TooLong(column));
            return None;
        }
        Some(text.to_owned())
    };
    let username = field(Column::Username);
    let role = field(Column::Role);
    let display_name = field(Column::DisplayName);
    let forename = field(Column::Forename);
    let surname = field(Column::Surname);
    let year = field(Column::Year);
    let class = field(Column::Class);
    let groups = field(Column::Groups);
    let at = |column: Column| columns.get(&column).map(|c| c + 1);

    let username = match Username::new(username.as_deref().unwrap_or_default()) {
        Ok(u) => Some(u),
        Err(_) if unread.contains(&Column::Username) => None,
        Err(why) => {
            let value = quoted(username.as_deref().unwrap_or_default());
            errors.push(
                line,
                at(Column::Username),
                RosterErrorKind::Username { value, why },
            );
            None
        }
    };
    let role_text = role.unwrap_or_default();
    let role = Role::parse(&role_text);
    if role.is_none() && !unread.contains(&Column::Role) {
        let value = quoted(&role_text);
        errors.push(line, at(Column::Role), RosterErrorKind::Role { value });
    }
    let groups: Vec<&str> = groups
        .as_deref()
        .map(|g| {
            g.split(';')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if groups.len() > MAX_GROUPS {
        errors.push(line, at(Column::Groups), RosterErrorKind::TooManyGroups);
    } else if groups.iter().any(|g| g.len() > MAX_TEXT) {
        errors.push(
            line,
            at(Column::Groups),
            RosterErrorKind::TooLong(Column::Groups),
        );
    }
    if errors.0.len() + errors.1 > before {
        return None;
    }
    let (username, role) = (username?, role?);
    let display_name = display_name
        .or_else(|| match (forename, surname) {
            (Some(f), Some(s)) => Some(format!("{f} {s}")),
            (f, s) => f.or(s),
        })
        .unwrap_or_else(|| username.to_string());
    let mut person = Person {
        username,
        display_name,
        role,
        class: class.clone(),
        groups: Vec::new(),
    };
    person.join(role.group());
    if let Some(year) = year {
        person.join(&year_group(&year));
    }
    if let Some(class) = &class {
        person.join(class);
    }
    for g in groups {
        person.join(g);
    }
    Some(person)
}

/// The directory group a year names: `6` and `Y6` are `Year 6`, `R` is `Reception`; any
/// other text is the group's name as given.
pub(crate) fn year_group(year: &str) -> String {
    let digits = year
        .strip_prefix(['Y', 'y'])
        .unwrap_or(year)
        .trim_start_matches(['0']);
    if !digits.is_empty() && digits.len() <= 2 && digits.bytes().all(|b| b.is_ascii_digit()) {
        format!("Year {digits}")
    } else if year.eq_ignore_ascii_case("r") || year.eq_ignore_ascii_case("reception") {
        "Reception".to_owned()
    } else {
        year.to_owned()
    }
}

/// `text` cut to [`MAX_QUOTED`] bytes on a character boundary.
fn quoted(text: &str) -> String {
    let mut end = text.len().min(MAX_QUOTED);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const SIMS: &str = "\u{feff}Admission No,Legal Surname,Preferred Forename,Year,Reg Group,Role,Username,Email\n\
        1001,Khan,Amira,6,6B,Pupil,Amira.K,a@x\n\
        1002,Taylor,Ben,Y6,6A,student,ben.t,\n\
        ,Okafor,Grace,,,Teacher,SCHOOL\\grace.o,g@x\n\
        \n";

    #[test]
    fn reads_an_export_by_its_headers() {
        let d = parse(SIMS.as_bytes()).unwrap();
        assert_eq!(d.len(), 3);
        let amira = d.find("amira.k").unwrap();
        assert_eq!(amira.display_name, "Amira Khan");
        assert_eq!(amira.role, Role::Pupil);
        assert_eq!(amira.class.as_deref(), Some("6B"));
        assert_eq!(amira.groups, ["Pupils", "Year 6", "6B"]);
        assert!(amira.in_group("year 6") && !amira.in_group("6A"));
        assert_eq!(d.find("ben.t").unwrap().groups, ["Pupils", "Year 6", "6A"]);
        let grace = d.find("school\\grace.o").unwrap();
        assert_eq!(
            (grace.role, grace.groups.as_slice()),
            (Role::Staff, &["Staff".to_owned()][..])
        );
    }

    #[test]
    fn groups_and_display_names() {
        let d =
            parse(b"username,role,display name,groups\nx,staff,Ms X,Directors; SLT ;Directors\n")
                .unwrap();
        let x = d.find("x").unwrap();
        assert_eq!(x.display_name, "Ms X");
        assert_eq!(x.groups, ["Staff", "Directors", "SLT"]);
        assert_eq!(year_group("R"), "Reception");
        assert_eq!(year_group("07"), "Year 7");
        assert_eq!(year_group("Year 10"), "Year 10");
    }

    /// Every error, each at its line and column, with the bad value.
    #[test]
    fn bad_lines_are_reported_where_they_are() {
        let text = "name,username,role\n\
                    A,a,pupil\n\
                    B,,pupil\n\
                    C,c d,staff\n\
                    D,d,governor\n\
                    E,A,staff\n\
                    F,f\n";
        let errors = parse(text.as_bytes()).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "line 3, column 2: the username \"\" is empty",
                "line 4, column 2: the username \"c d\" holds a space or a control character",
                "line 5, column 3: the role \"governor\" is neither pupil nor staff (pupil, student, learner; staff, teacher, employee)",
                "line 6, column 2: a is on line 2 already",
                "line 7, column 3: the role \"\" is neither pupil nor staff (pupil, student, learner; staff, teacher, employee)",
            ]
        );
    }

    #[test]
    fn headers_must_name_what_is_needed() {
        let shown = |text: &[u8]| -> Vec<String> {
            parse(text)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            shown(b""),
            ["line 1: the file is empty: its first line must name the columns"]
        );
        assert_eq!(
            shown(b"login,name\n"),
            ["line 1: no role column in the header line"]
        );
        assert_eq!(
            shown(b"user,role,Username\n"),
            ["line 1, column 3: a second username column (the first is column 1)"]
        );
        assert_eq!(
            shown(b"user,role\nal\xffce,pupil\n"),
            ["line 2, column 1: this is not UTF-8 text (export the roster as CSV UTF-8)"]
        );
        // An unclosed quote runs to the end of the file: one field holding the rest.
        let unclosed = shown(b"user,role\n\"unclosed,pupil\nnext,pupil");
        assert!(
            unclosed[0].starts_with("line 2, column 1: the username"),
            "{unclosed:?}"
        );
    }

    #[test]
    fn long_values_are_refused_and_quoted_short() {
        let long = "é".repeat(100);
        let text = format!("user,role,class\n{long},pupil,{long}\n");
        let errors = parse(text.as_bytes()).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].column, Some(3));
        match &errors[1].kind {
            RosterErrorKind::Username { value, .. } => assert_eq!(value.len(), 64),
            other => panic!("{other:?}"),
        }
    }
}
