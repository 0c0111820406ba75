//! One person as the directory knows them: a username, the name staff see, pupil or staff,
//! and the directory groups they are in (the year, the class, any group the school's system
//! names). The minimum a policy and a safeguarding lead need: no e-mail address, no date of
//! birth, nothing from the school's records beyond these.

/// The longest username kept, in bytes (Active Directory's `sAMAccountName` is at most 20
/// characters and a UPN at most 113; usernames past this are refused, not cut).
pub const MAX_USERNAME: usize = 113;
/// The longest display name, year, class or group name, in bytes.
pub const MAX_TEXT: usize = 128;
/// The most directory groups one person may be in.
pub const MAX_GROUPS: usize = 64;

/// A username, compared without case as directories compare them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(Box<str>);

/// Why a username was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsernameError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_USERNAME} bytes")]
    TooLong,
    #[error("holds a space or a control character")]
    Whitespace,
}

impl Username {
    /// `raw` trimmed and lower-cased.
    pub fn new(raw: &str) -> Result<Self, UsernameError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(UsernameError::Empty);
        }
        if raw.len() > MAX_USERNAME {
            return Err(UsernameError::TooLong);
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UsernameError::Whitespace);
        }
        Ok(Self(raw.to_lowercase().into_boxed_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The account a sign-in names, without the forms systems add around it:
    /// `alice@school.example` (a UPN or RADIUS realm) and `SCHOOL\alice` (a Windows domain)
    /// are both `alice`.
    pub fn bare(raw: &str) -> &str {
        let raw = raw.trim();
        let raw = raw.rsplit_once('\\').map_or(raw, |(_, user)| user);
        raw.split_once('@').map_or(raw, |(user, _)| user)
    }
}

impl serde::Serialize for Username {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Read back by the same rules as any other username: a saved file is input too.
impl<'de> serde::Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::new(&text).map_err(|why| serde::de::Error::custom(format!("username {why}")))
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Pupil or staff: what the seed policies tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Pupil,
    Staff,
}

impl Role {
    /// The words schools' systems use: `pupil`, `student`, `learner`; `staff`, `teacher`,
    /// `employee`, `teaching`, `support` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "pupil" | "pupils" | "student" | "students" | "learner" | "learners" => {
                Some(Self::Pupil)
            }
            "staff" | "teacher" | "teachers" | "employee" | "employees" | "teaching"
            | "support" => Some(Self::Staff),
            _ => None,
        }
    }

    /// The directory group every person of this role is in.
    pub fn group(self) -> &'static str {
        match self {
            Self::Pupil => "Pupils",
            Self::Staff => "Staff",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pupil => "pupil",
            Self::Staff => "staff",
        }
    }
}

/// One person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub username: Username,
    /// The name staff see ("Amira Khan"); the username when the source has none.
    pub display_name: String,
    pub role: Role,
    /// The registration group or form ("6B"), for pupils.
    pub class: Option<String>,
    /// Every directory group the person is in: the role's ("Pupils", "Staff"), the year's
    /// ("Year 6"), the class ("6B") and any other the source names, each once.
    pub groups: Vec<String>,
}

impl Person {
    /// Whether the person is in the directory group `name` (compared without case).
    pub fn in_group(&self, name: &str) -> bool {
        self.groups.iter().any(|g| g.eq_ignore_ascii_case(name))
    }

    /// Adds `group` unless the person is in it already.
    pub(crate) fn join(&mut self, group: &str) {
        if !self.in_group(group) {
            self.groups.push(group.to_owned());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_compared_without_case_and_bare_of_domains() {
        assert_eq!(Username::new(" Alice.K ").unwrap().as_str(), "alice.k");
        assert_eq!(Username::new(""), Err(UsernameError::Empty));
        assert_eq!(Username::new("a b"), Err(UsernameError::Whitespace));
        assert_eq!(
            Username::new(&"x".repeat(MAX_USERNAME + 1)),
            Err(UsernameError::TooLong)
        );
        assert_eq!(Username::bare("alice@school.example"), "alice");
        assert_eq!(Username::bare("SCHOOL\\alice"), "alice");
        assert_eq!(Username::bare("SCHOOL\\alice@realm"), "alice");
        assert_eq!(Username::bare("alice"), "alice");
    }

    #[test]
    fn roles_in_schools_words() {
        assert_eq!(Role::parse("Student"), Some(Role::Pupil));
        assert_eq!(Role::parse(" TEACHER "), Some(Role::Staff));
        assert_eq!(Role::parse("governor"), None);
    }
}
