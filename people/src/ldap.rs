//! The directory from LDAP or Active Directory: the entries a search returned, turned into
//! people by the school's [`Mapping`] (which attribute is the username, which groups or
//! organisational units make a pupil or a member of staff).
//!
//! The agent searches (with `ldap3`) and hands the entries here; nothing here touches a socket.
//! Group membership is read both ways directories keep it: `memberOf` on the user (Active
//! Directory, OpenLDAP's memberof overlay) and `member`/`uniqueMember`/`memberUid` on group
//! entries (OpenLDAP's groupOfNames, posixGroup). Groups within groups count: a user in
//! "6B", which is a member of "Year 6", is in both.
//!
//! Entries that are not people the policy speaks of are skipped and counted, not fatal: a
//! directory holds service accounts and computers beside pupils and staff, and one odd entry
//! must not keep a school on yesterday's directory. A search that yields no pupil and no
//! member of staff at all is refused: that is a wrong filter or base, not an empty school.

use std::collections::{HashMap, HashSet};

use crate::directory::Directory;
use crate::person::{MAX_GROUPS, MAX_TEXT, Person, Role, Username, UsernameError};
use crate::roster::{MAX_PEOPLE, year_group};

/// The most group entries read.
pub const MAX_GROUP_ENTRIES: usize = 100_000;
/// How deep groups within groups are followed.
const MAX_NESTING: usize = 16;
/// Entries named in a report of what was skipped, at most.
const MAX_NAMED: usize = 20;

/// How a school's directory is read into people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The attribute that holds the username (`sAMAccountName` in Active Directory, `uid` in
    /// OpenLDAP).
    pub username: String,
    /// The attribute that holds the name staff see (`displayName`; else `cn`).
    pub display_name: String,
    /// The attribute that holds a pupil's class or registration group, if any.
    pub class: Option<String>,
    /// The attribute that holds a pupil's year, if any (`6` becomes the group `Year 6`).
    pub year: Option<String>,
    /// Who is a pupil: members of these groups, or entries under these units.
    pub pupils: Vec<RoleMatch>,
    /// Who is staff, likewise. Someone both is a pupil: the stricter rules and the DSL's eye.
    pub staff: Vec<RoleMatch>,
}

/// One way to recognise a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleMatch {
    /// Membership of the group of this name (compared without case).
    Group(String),
    /// An entry under this DN (`OU=Pupils,DC=school,DC=example`), normalised.
    Under(String),
}

impl RoleMatch {
    /// A DN suffix when `text` holds `=`, else a group name.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text.contains('=') {
            Self::Under(normalise_dn(text))
        } else {
            Self::Group(text.to_owned())
        }
    }

    fn matches(&self, dn: &str, groups: &[String]) -> bool {
        match self {
            Self::Group(name) => groups.iter().any(|g| g.eq_ignore_ascii_case(name)),
            Self::Under(suffix) => dn
                .strip_suffix(suffix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.ends_with(',')),
        }
    }
}

/// A user entry as a search returned it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    /// Attribute names as the server spelled them, each with its values.
    pub attributes: Vec<(String, Vec<String>)>,
}

impl Entry {
    /// The values of the attribute `name` (compared without case), or none.
    pub fn values(&self, name: &str) -> &[String] {
        self.attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The first non-blank value of `name`, trimmed.
    fn first(&self, name: &str) -> Option<&str> {
        self.values(name)
            .iter()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }
}

/// What the search read and what it made of it.
#[derive(Debug)]
pub struct Synced {
    pub directory: Directory,
    pub skipped: Skipped,
}

/// Entries that did not become people, by why.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Entries without the username attribute (computers, contacts, most service accounts).
    pub no_username: usize,
    /// Entries whose username cannot be one, with their DN (the first few).
    pub bad_username: Vec<(String, UsernameError)>,
    pub bad_username_count: usize,
    /// People in neither the pupils' nor the staff's groups or units.
    pub no_role: usize,
    /// Usernames a second entry had; the first entry was kept.
    pub duplicate: Vec<Username>,
    pub duplicate_count: usize,
    /// Entries past [`MAX_PEOPLE`].
    pub too_many: usize,
}

impl Skipped {
    pub fn total(&self) -> usize {
        self.no_username
            + self.bad_username_count
            + self.no_role
            + self.duplicate_count
            + self.too_many
    }
}

/// Why a search's entries were not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    #[error(
        "the search returned {entries} entries and none is a pupil or member of staff \
         ({} without the username attribute, {} in neither role's groups): check the base, \
         the filter and the role groups",
        skipped.no_username, skipped.no_role
    )]
    NoPeople { entries: usize, skipped: Skipped },
}

/// The people among `users`, with their groups from their own `memberOf` and from `groups`.
pub fn directory(mapping: &Mapping, users: &[Entry], groups: &[Entry]) -> Result<Synced, MapError> {
    let graph = Groups::new(groups);
    let mut skipped = Skipped::default();
    let mut people = Vec::new();
    let mut seen = HashSet::new();
    for user in users {
        let Some(raw) = user.first(&mapping.username) else {
            skipped.no_username += 1;
            continue;
        };
        let username = match Username::new(raw) {
            Ok(u) => u,
            Err(why) => {
                skipped.bad_username_count += 1;
                if skipped.bad_username.len() < MAX_NAMED {
                    skipped.bad_username.push((cut(&user.dn, MAX_TEXT), why));
                }
                continue;
            }
        };
        let dn = normalise_dn(&user.dn);
        let mut names = graph.of_user(&dn, &username, user.values("memberOf"));
        let role = if mapping.pupils.iter().any(|m| m.matches(&dn, &names)) {
            Role::Pupil
        } else if mapping.staff.iter().any(|m| m.matches(&dn, &names)) {
            Role::Staff
        } else {
            skipped.no_role += 1;
            continue;
        };
        if seen.contains(&username) {
            skipped.duplicate_count += 1;
            if skipped.duplicate.len() < MAX_NAMED {
                skipped.duplicate.push(username);
            }
            continue;
        }
        if people.len() == MAX_PEOPLE {
            skipped.too_many += 1;
            continue;
        }
        let text = |attr: &Option<String>| {
            attr.as_deref()
                .and_then(|a| user.first(a))
                .map(|v| cut(v, MAX_TEXT))
        };
        let class = text(&mapping.class);
        let year = text(&mapping.year).map(|y| year_group(&y));
        // Else the common name, which Active Directory also puts first in the DN.
        let rdn_cn = dn
            .starts_with("cn=")
            .then(|| first_rdn_value(&user.dn))
            .filter(|n| !n.is_empty());
        let display_name = user
            .first(&mapping.display_name)
            .or_else(|| user.first("cn"))
            .or(rdn_cn.as_deref())
            .map_or_else(|| username.to_string(), |n| cut(n, MAX_TEXT));
        let mut person = Person {
            username: username.clone(),
            display_name,
            role,
            class: class.clone(),
            groups: Vec::new(),
        };
        // The role's, the year's and the class's groups first: they are what policies name,
        // and they must survive the bound on groups.
        person.join(role.group());
        for g in year.iter().chain(class.iter()) {
            person.join(g);
        }
        names.sort();
        for g in &names {
            if person.groups.len() == MAX_GROUPS {
                break;
            }
            person.join(&cut(g, MAX_TEXT));
        }
        seen.insert(username);
        people.push(person);
    }
    if people.is_empty() {
        return Err(MapError::NoPeople {
            entries: users.len(),
            skipped,
        });
    }
    // Each username was let in once above.
    let directory = Directory::new(people).map_err(|_| MapError::NoPeople {
        entries: users.len(),
        skipped: skipped.clone(),
    })?;
    Ok(Synced { directory, skipped })
}

/// The group entries, as who is in what.
struct Groups {
    /// Each group's name, by its normalised DN.
    name_of: HashMap<String, String>,
    /// The groups (normalised DNs) each member DN is directly in.
    by_member: HashMap<String, Vec<String>>,
    /// The groups each `memberUid` is directly in.
    by_uid: HashMap<String, Vec<String>>,
}

impl Groups {
    fn new(entries: &[Entry]) -> Self {
        let mut groups = Self {
            name_of: HashMap::new(),
            by_member: HashMap::new(),
            by_uid: HashMap::new(),
        };
        for g in entries.iter().take(MAX_GROUP_ENTRIES) {
            let dn = normalise_dn(&g.dn);
            let name = g
                .first("cn")
                .map_or_else(|| first_rdn_value(&g.dn), str::to_owned);
            groups.name_of.insert(dn.clone(), name);
            for m in g.values("member").iter().chain(g.values("uniqueMember")) {
                // groupOfUniqueNames may add `#'0101'B` after the DN.
                let m = m.split_once('#').map_or(m.as_str(), |(dn, _)| dn);
                let by = groups.by_member.entry(normalise_dn(m)).or_default();
                by.push(dn.clone());
            }
            for uid in g.values("memberUid") {
                let by = groups.by_uid.entry(uid.trim().to_lowercase()).or_default();
                by.push(dn.clone());
            }
        }
        groups
    }

    /// The names of every group a user is in, directly or through groups within groups.
    fn of_user(&self, dn: &str, username: &Username, member_of: &[String]) -> Vec<String> {
        let mut found: HashSet<String> = HashSet::new();
        // Names of groups known only from `memberOf`, read from the DN as the server wrote it.
        let named_here: HashMap<String, String> = member_of
            .iter()
            .map(|d| (normalise_dn(d), first_rdn_value(d)))
            .collect();
        let mut frontier: Vec<String> = named_here.keys().cloned().collect();
        frontier.extend(self.by_member.get(dn).into_iter().flatten().cloned());
        let uid = Username::bare(username.as_str());
        frontier.extend(self.by_uid.get(uid).into_iter().flatten().cloned());
        for _ in 0..MAX_NESTING {
            let mut next = Vec::new();
            for group in frontier {
                if found.insert(group.clone()) {
                    next.extend(self.by_member.get(&group).into_iter().flatten().cloned());
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        let names: Vec<String> = found
            .iter()
            .map(|dn| {
                self.name_of
                    .get(dn)
                    .or_else(|| named_here.get(dn))
                    .cloned()
                    .unwrap_or_else(|| first_rdn_value(dn))
            })
            .filter(|n| !n.is_empty())
            .collect();
        names
    }
}

/// A DN as compared here: lower case, without the spaces allowed around `,`, `+` and `=`.
pub fn normalise_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut escaped = false;
    let mut after_separator = true;
    for c in dn.trim().chars() {
        if escaped {
            out.extend(c.to_lowercase());
            escaped = false;
            after_separator = false;
            continue;
        }
        match c {
            '\\' => {
                out.push(c);
                escaped = true;
            }
            ',' | '=' | '+' => {
                while out.ends_with(' ') && !out.ends_with("\\ ") {
                    out.pop();
                }
                out.push(c);
                after_separator = true;
            }
            ' ' if after_separator => {}
            _ => {
                out.extend(c.to_lowercase());
                after_separator = false;
            }
        }
    }
    out
}

/// The value of a DN's first component, unescaped: `Year 6` from `CN=Year 6,OU=Groups,…`.
pub fn first_rdn_value(dn: &str) -> String {
    let mut bytes = Vec::new();
    let mut chars = dn.trim().chars().peekable();
    // Past the attribute type.
    for c in chars.by_ref() {
        if c == '=' {
            break;
        }
    }
    let mut buf = [0; 4];
    while let Some(c) = chars.next() {
        match c {
            ',' | '+' => break,
            '\\' => {
                let Some(next) = chars.next() else { break };
                let hex = chars.peek().and_then(|low| {
                    let high = next.to_digit(16)?;
                    Some(high * 16 + low.to_digit(16)?)
                });
                match hex {
                    Some(byte) => {
                        chars.next();
                        bytes.push(u8::try_from(byte).unwrap_or(b'?'));
                    }
                    None => bytes.extend_from_slice(next.encode_utf8(&mut buf).as_bytes()),
                }
            }
            _ => bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// `text` cut to `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn entry(dn: &str, attributes: &[(&str, &[&str])]) -> Entry {
        Entry {
            dn: dn.to_owned(),
            attributes: attributes
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
        }
    }

    fn ad_mapping() -> Mapping {
        Mapping {
            username: "sAMAccountName".into(),
            display_name: "displayName".into(),
            class: Some("department".into()),
            year: None,
            pupils: vec![RoleMatch::parse("OU=Pupils, DC=school,DC=example")],
            staff: vec![RoleMatch::parse("Staff")],
        }
    }

    #[test]
    fn active_directory_users_by_unit_and_member_of() {
        let users = [
            entry(
                "CN=Amira Khan,OU=6B,OU=Pupils,DC=school,DC=example",
                &[
                    ("sAMAccountName", &["Amira.K"]),
                    ("displayName", &["Amira Khan"]),
                    ("department", &["6B"]),
                    ("memberOf", &["CN=Year 6,OU=Groups,DC=school,DC=example"]),
                ],
            ),
            entry(
                "CN=Grace Okafor,OU=Staff,DC=school,DC=example",
                &[
                    ("samaccountname", &["grace.o"]),
                    ("memberOf", &["CN=Staff,OU=Groups,DC=school,DC=example"]),
                ],
            ),
            // A computer: no username attribute in this mapping's sense.
            entry("CN=ICT-03,OU=Computers,DC=school,DC=example", &[]),
            // A service account in neither role.
            entry(
                "CN=backup,OU=Service,DC=school,DC=example",
                &[("sAMAccountName", &["backup"])],
            ),
            // A second entry with Amira's username.
            entry(
                "CN=Amira K2,OU=Pupils,DC=school,DC=example",
                &[("sAMAccountName", &["amira.k"])],
            ),
            entry(
                "CN=Bad,OU=Pupils,DC=school,DC=example",
                &[("sAMAccountName", &["two words"])],
            ),
        ];
        let synced = directory(&ad_mapping(), &users, &[]).unwrap();
        let d = &synced.directory;
        assert_eq!(d.len(), 2);
        let amira = d.find("SCHOOL\\amira.k").unwrap();
        assert_eq!(amira.role, Role::Pupil);
        assert_eq!(amira.display_name, "Amira Khan");
        assert_eq!(amira.class.as_deref(), Some("6B"));
        assert_eq!(amira.groups, ["Pupils", "6B", "Year 6"]);
        let grace = d.find("grace.o").unwrap();
        assert_eq!(
            (grace.role, grace.display_name.as_str()),
            (Role::Staff, "Grace Okafor")
        );
        assert_eq!(grace.groups, ["Staff"]);
        let s = &synced.skipped;
        assert_eq!((s.no_username, s.no_role, s.duplicate_count), (1, 1, 1));
        assert_eq!(s.bad_username.len(), 1);
        assert_eq!(s.bad_username[0].1, UsernameError::Whitespace);
        assert_eq!(s.total(), 4);
    }

    #[test]
    fn openldap_groups_by_member_and_member_uid_and_within_groups() {
        let mapping = Mapping {
            username: "uid".into(),
            display_name: "displayName".into(),
            class: None,
            year: Some("employeeType".into()),
            pupils: vec![RoleMatch::parse("pupils")],
            staff: vec![RoleMatch::parse("staff")],
        };
        let users = [
            entry(
                "uid=amira.k,ou=people,dc=school,dc=example",
                &[
                    ("uid", &["amira.k"]),
                    ("cn", &["Amira Khan"]),
                    ("employeeType", &["6"]),
                ],
            ),
            entry(
                "uid=grace.o,ou=people,dc=school,dc=example",
                &[("uid", &["grace.o"])],
            ),
        ];
        let groups = [
            entry(
                "cn=6B,ou=groups,dc=school,dc=example",
                &[
                    ("cn", &["6B"]),
                    ("member", &["UID=Amira.K, ou=People,dc=school,dc=example"]),
                ],
            ),
            // 6B is within Pupils.
            entry(
                "cn=Pupils,ou=groups,dc=school,dc=example",
                &[("member", &["cn=6B,ou=groups,dc=school,dc=example"])],
            ),
            entry(
                "cn=staff,ou=groups,dc=school,dc=example",
                &[("cn", &["Staff"]), ("memberUid", &["grace.o"])],
            ),
            // A loop of groups ends.
            entry(
                "cn=a,ou=groups,dc=school,dc=example",
                &[(
                    "member",
                    &[
                        "cn=b,ou=groups,dc=school,dc=example",
                        "uid=grace.o,ou=people,dc=school,dc=example",
                    ],
                )],
            ),
            entry(
                "cn=b,ou=groups,dc=school,dc=example",
                &[("member", &["cn=a,ou=groups,dc=school,dc=example"])],
            ),
        ];
        let d = directory(&mapping, &users, &groups).unwrap().directory;
        let amira = d.find("amira.k").unwrap();
        assert_eq!(amira.role, Role::Pupil);
        assert_eq!(amira.display_name, "Amira Khan");
        assert_eq!(amira.groups, ["Pupils", "Year 6", "6B"]);
        let grace = d.find("grace.o").unwrap();
        assert_eq!(grace.role, Role::Staff);
        assert_eq!(grace.groups, ["Staff", "a", "b"]);
    }

    #[test]
    fn a_search_with_no_people_is_refused() {
        let users = [entry("cn=x,dc=example", &[("sAMAccountName", &["x"])])];
        let e = directory(&ad_mapping(), &users, &[]).unwrap_err();
        let MapError::NoPeople { entries, skipped } = &e;
        assert_eq!((*entries, skipped.no_role), (1, 1));
        assert!(e.to_string().contains("none is a pupil or member of staff"));
    }

    #[test]
    fn long_values_are_cut_on_characters() {
        let long = "é".repeat(100);
        let users = [entry(
            "cn=x,ou=pupils,dc=school,dc=example",
            &[
                ("sAMAccountName", &["x"]),
                ("displayName", &[long.as_str()]),
            ],
        )];
        let d = directory(&ad_mapping(), &users, &[]).unwrap().directory;
        let x = d.find("x").unwrap();
        assert_eq!(x.display_name.len(), MAX_TEXT);
        assert!(x.display_name.chars().all(|c| c == 'é'));
    }

    #[test]
    fn dns_compare_as_directories_compare_them() {
        assert_eq!(
            normalise_dn(" CN=Year 6 , OU=Groups,DC=School "),
            "cn=year 6,ou=groups,dc=school"
        );
        assert_eq!(normalise_dn("cn=a\\, b,dc=x"), "cn=a\\, b,dc=x");
        assert_eq!(first_rdn_value("CN=Year 6,OU=Groups"), "Year 6");
        assert_eq!(first_rdn_value("cn=Smith\\, J,ou=x"), "Smith, J");
        assert_eq!(first_rdn_value("cn=caf\\C3\\A9,ou=x"), "café");
        assert_eq!(first_rdn_value("garbage"), "");
        assert_eq!(first_rdn_value("cn=trailing\\"), "trailing");
        let under = RoleMatch::parse("OU=Pupils,DC=school,DC=example");
        assert!(under.matches("cn=a,ou=pupils,dc=school,dc=example", &[]));
        assert!(under.matches("ou=pupils,dc=school,dc=example", &[]));
        assert!(!under.matches("cn=a,ou=expupils,dc=school,dc=example", &[]));
    }

    /// An attribute value: anything, a plausible username, or the DN of the pupils' group (so
    /// that people are made, not only refused).
    fn value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy as _;
        proptest::prop_oneof![
            ".{0,200}",
            "[a-z.]{1,10}",
            proptest::strategy::Just("cn=a,ou=g".to_owned()).boxed(),
        ]
    }

    proptest::proptest! {
        /// Whatever a directory server sends, the mapping neither panics nor lets through a
        /// person past the bounds: usernames valid, texts cut on characters within
        /// `MAX_TEXT`, at most `MAX_GROUPS` groups.
        #[test]
        fn any_entries_map_within_bounds(
            users in proptest::collection::vec(
                ("[a-zA-Z=,\\\\ #+0-9é]{0,40}",
                 proptest::collection::vec(("(uid|cn|memberOf|displayName|departmentNumber|x)", proptest::collection::vec(value(), 0..4)), 0..6)),
                0..12),
            groups in proptest::collection::vec(
                ("[a-zA-Z=,\\\\ #+0-9]{0,40}",
                 proptest::collection::vec(("(cn|member|memberUid|uniqueMember)", proptest::collection::vec(value(), 0..4)), 0..4)),
                0..8),
        ) {
            let entry = |(dn, attributes): (String, Vec<(String, Vec<String>)>)| Entry { dn, attributes };
            let users: Vec<Entry> = users.into_iter().map(entry).collect();
            let groups: Vec<Entry> = groups.into_iter().map(entry).collect();
            let mapping = Mapping {
                username: "uid".into(),
                display_name: "displayName".into(),
                class: Some("departmentNumber".into()),
                year: Some("x".into()),
                pupils: vec![RoleMatch::parse("a"), RoleMatch::parse("ou=a")],
                staff: vec![RoleMatch::parse("b")],
            };
            if let Ok(synced) = directory(&mapping, &users, &groups) {
                for p in synced.directory.iter() {
                    proptest::prop_assert!(Username::new(p.username.as_str()).is_ok());
                    proptest::prop_assert!(p.display_name.len() <= MAX_TEXT);
                    proptest::prop_assert!(p.class.as_ref().is_none_or(|c| c.len() <= MAX_TEXT));
                    proptest::prop_assert!(p.groups.len() <= MAX_GROUPS);
                    proptest::prop_assert!(p.groups.iter().all(|g| g.len() <= MAX_TEXT));
                }
            }
            for u in &users {
                let _ = normalise_dn(&u.dn);
                let _ = first_rdn_value(&u.dn);
            }
        }
    }
}
