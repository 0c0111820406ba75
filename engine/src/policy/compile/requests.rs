//! What teachers may ask for (`requests:`): categories only (a site is asked for through a
//! category IT lists it in), for groups, classes or named pupils, for a bounded time.

use super::*;

/// The longest any request may last: a week, as the console's supervised use.
pub(crate) const LONGEST_MINUTES: u32 = 7 * 24 * 60;

impl Compiler<'_> {
    pub(super) fn requests(
        &mut self,
        list: &[S<RawRequestRule>],
        names: &Names,
    ) -> Vec<RequestRule> {
        let mut out: Vec<RequestRule> = Vec::new();
        for r in list {
            let v = &r.value;
            let name = v.name.value.trim().to_owned();
            if out.iter().any(|x| x.name == name) {
                self.error(
                    &v.name,
                    ErrorKind::Duplicate {
                        what: "request",
                        name: name.clone(),
                    },
                );
            }
            self.refuse_locked(&v.allow, names, None, "request");
            let mut allow = Vec::new();
            let mut allow_names = Vec::new();
            for c in &v.allow {
                let c_name = c.value.trim();
                match names.categories.get(c_name) {
                    Some(id) => {
                        if !allow.contains(id) {
                            allow.push(*id);
                            allow_names.push(c_name.to_owned());
                        }
                    }
                    None => self.error(
                        c,
                        ErrorKind::Unknown {
                            what: "category",
                            name: c_name.to_owned(),
                            expected: one_of(&names.categories, None),
                        },
                    ),
                }
            }
            if v.allow.is_empty() {
                self.error(
                    r,
                    ErrorKind::Empty {
                        what: "request",
                        name: name.clone(),
                        needs: "categories in `allow`",
                    },
                );
            }
            let groups = match self.group_list(&v.groups, names, false) {
                Some(Groups::Some(ids)) => ids,
                _ => Vec::new(),
            };
            let mut classes = Vec::new();
            let mut any_class = false;
            for c in &v.classes {
                if c.value.trim() == ALL {
                    any_class = true;
                } else if let Some(class) = self.directory_group(c) {
                    classes.push(class);
                }
            }
            if v.groups.is_empty() && v.classes.is_empty() && !v.people {
                self.error(
                    r,
                    ErrorKind::Empty {
                        what: "request",
                        name: name.clone(),
                        needs: "groups, classes or `people: true` it may be for",
                    },
                );
            }
            let longest = v.longest_minutes.value;
            if longest == 0 || longest > LONGEST_MINUTES {
                self.error(
                    &v.longest_minutes,
                    ErrorKind::RequestMinutes { value: longest },
                );
            }
            out.push(RequestRule {
                name,
                allow,
                allow_names,
                groups,
                classes,
                any_class,
                people: v.people,
                longest_minutes: longest,
            });
        }
        out
    }
}
