//! [`Directory`]: everyone a school's roster or LDAP names, found by username.

use std::collections::HashMap;

use crate::person::{Person, Username};

/// The people of one school, each username once.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    people: Vec<Person>,
    by_username: HashMap<Username, usize>,
}

/// Two people with one username.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the username {username} is given to more than one person")]
pub struct DuplicateUsername {
    pub username: Username,
}

impl Directory {
    /// The directory of `people`; a username given twice is refused.
    pub fn new(people: Vec<Person>) -> Result<Self, DuplicateUsername> {
        let mut by_username = HashMap::with_capacity(people.len());
        for (i, p) in people.iter().enumerate() {
            if by_username.insert(p.username.clone(), i).is_some() {
                return Err(DuplicateUsername {
                    username: p.username.clone(),
                });
            }
        }
        Ok(Self {
            people,
            by_username,
        })
    }

    /// The person a sign-in names: `raw` as given, else without its domain or realm
    /// (`SCHOOL\alice`, `alice@school.example`). Case does not matter.
    pub fn find(&self, raw: &str) -> Option<&Person> {
        let exact = Username::new(raw).ok()?;
        if let Some(&i) = self.by_username.get(&exact) {
            return self.people.get(i);
        }
        let bare = Username::new(Username::bare(raw)).ok()?;
        self.by_username
            .get(&bare)
            .and_then(|&i| self.people.get(i))
    }

    /// Everyone in `first` and everyone in `second` whose username `first` does not have:
    /// for a school that reads staff from LDAP and pupils, with their classes, from its
    /// roster, where the roster (`first`) wins for anyone in both.
    pub fn merged(first: &Self, second: &Self) -> Self {
        let mut people = first.people.clone();
        people.extend(
            second
                .people
                .iter()
                .filter(|p| !first.by_username.contains_key(&p.username))
                .cloned(),
        );
        let by_username = people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.username.clone(), i))
            .collect();
        Self {
            people,
            by_username,
        }
    }

    pub fn len(&self) -> usize {
        self.people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Person> {
        self.people.iter()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::person::Role;

    fn person(name: &str) -> Person {
        Person {
            username: Username::new(name).unwrap(),
            display_name: name.to_owned(),
            role: Role::Pupil,
            class: None,
            groups: vec!["Pupils".into()],
        }
    }

    #[test]
    fn people_are_found_as_sign_ins_name_them() {
        let d = Directory::new(vec![person("amira.k"), person("ben.t@school.example")]).unwrap();
        assert_eq!(d.find("AMIRA.K").unwrap().display_name, "amira.k");
        assert_eq!(d.find("SCHOOL\\amira.k").unwrap().display_name, "amira.k");
        assert_eq!(
            d.find("amira.k@wifi.realm").unwrap().display_name,
            "amira.k"
        );
        // A directory that keeps the realm in the username is matched as given.
        assert!(d.find("ben.t@school.example").is_some());
        assert!(d.find("nobody").is_none());
        assert!(d.find("").is_none());
        assert!(Directory::new(vec![person("a"), person("A")]).is_err());
    }

    #[test]
    fn a_merge_keeps_the_first_sources_person() {
        let mut amira = person("amira.k");
        amira.class = Some("6B".into());
        let roster = Directory::new(vec![amira]).unwrap();
        let mut staff = person("grace.o");
        staff.role = Role::Staff;
        let ldap = Directory::new(vec![person("amira.k"), staff]).unwrap();
        let both = Directory::merged(&roster, &ldap);
        assert_eq!(both.len(), 2);
        assert_eq!(both.find("amira.k").unwrap().class.as_deref(), Some("6B"));
        assert_eq!(both.find("grace.o").unwrap().role, Role::Staff);
        assert_eq!(Directory::merged(&Directory::default(), &ldap).len(), 2);
    }
}
