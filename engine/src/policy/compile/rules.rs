//! Rules, exceptions and the bypass response.

use super::*;

impl Compiler<'_> {
    pub(super) fn rules(
        &mut self,
        raw: &RawPolicy,
        names: &Names,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
    ) -> Vec<Rule> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for r in &raw.rules {
            let name = r.value.name.value.trim().to_owned();
            if seen.insert(name.clone(), ()).is_some() {
                self.error(
                    &r.value.name,
                    ErrorKind::Duplicate {
                        what: "rule",
                        name: name.clone(),
                    },
                );
            }
            if r.value.groups.is_empty() {
                self.error(
                    r,
                    ErrorKind::Empty {
                        what: "rule",
                        name: name.clone(),
                        needs: "groups",
                    },
                );
            }
            let groups = self.group_list(&r.value.groups, names, true);
            let (action, list) = match (&r.value.allow, &r.value.block) {
                (Some(a), None) => (Action::Allow, a),
                (None, Some(b)) => (Action::Block, b),
                _ => {
                    self.error(r, ErrorKind::RuleAction { name });
                    continue;
                }
            };
            if list.is_empty() {
                let needs = if action == Action::Allow {
                    "categories or domains to allow"
                } else {
                    "categories or domains to block"
                };
                self.error(
                    r,
                    ErrorKind::Empty {
                        what: "rule",
                        name: name.clone(),
                        needs,
                    },
                );
            }
            if action == Action::Allow {
                self.refuse_locked(list, names, Some(index), "rule");
            }
            let rule_targets = self.targets(list, names, index, targets);
            let when = match &r.value.when {
                None => Some(ScheduleId(0)),
                Some(w) => {
                    let found = names.schedules.get(w.value.trim()).copied();
                    if found.is_none() {
                        self.error(
                            w,
                            ErrorKind::Unknown {
                                what: "schedule",
                                name: w.value.clone(),
                                expected: one_of(&names.schedules, None),
                            },
                        );
                    }
                    found
                }
            };
            if let (Some(groups), Some(when)) = (groups, when) {
                out.push(Rule {
                    name,
                    groups,
                    action,
                    targets: rule_targets,
                    when,
                });
            }
        }
        out
    }

    pub(super) fn datetime(&mut self, s: &S<String>, tz: &TimeZone) -> Option<Timestamp> {
        let parsed = parse_instant(&s.value, tz);
        if parsed.is_none() {
            self.error(
                s,
                ErrorKind::DateTime {
                    value: s.value.clone(),
                },
            );
        }
        parsed
    }

    pub(super) fn exceptions(
        &mut self,
        raw: &RawPolicy,
        names: &Names,
        tz: &TimeZone,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
    ) -> Exceptions {
        let mut out = Exceptions::default();
        for e in &raw.exceptions {
            self.exception(e, names, tz, index, targets, &mut out);
        }
        out
    }

    /// Exceptions from another document (the console's, approved there): each checked as
    /// the policy's own are, with its errors told against `file`; one with an error is left
    /// out and the rest kept, so a bad one never costs the policy or the others. The errors.
    pub(super) fn added_exceptions(
        &mut self,
        (added, file): (Vec<S<RawException>>, Arc<str>),
        names: &Names,
        tz: &TimeZone,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
        out: &mut Exceptions,
    ) -> Vec<PolicyError> {
        let own = std::mem::replace(&mut self.file, file);
        let before = std::mem::take(&mut self.errors);
        let mut skipped = Vec::new();
        for e in &added {
            let kept = out.exceptions.len();
            self.exception(e, names, tz, index, targets, out);
            if !self.errors.is_empty() {
                out.exceptions.truncate(kept);
                skipped.append(&mut self.errors);
            }
        }
        self.file = own;
        self.errors = before;
        skipped
    }

    fn exception(
        &mut self,
        e: &S<RawException>,
        names: &Names,
        tz: &TimeZone,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
        out: &mut Exceptions,
    ) {
        let v = &e.value;
        let name = v.name.value.trim().to_owned();
        if out.exceptions.iter().any(|x| x.name == name) {
            self.error(
                &v.name,
                ErrorKind::Duplicate {
                    what: "exception",
                    name: name.clone(),
                },
            );
        }
        let groups = match self.group_list(&v.groups, names, false) {
            Some(Groups::Some(ids)) => ids,
            _ => Vec::new(),
        };
        let mut devices = Vec::new();
        for d in &v.devices {
            match names.devices.get(d.value.trim()) {
                Some(id) => devices.push(*id),
                None => {
                    self.error(
                        d,
                        ErrorKind::Unknown {
                            what: "device",
                            name: d.value.clone(),
                            expected: one_of(&names.devices, None),
                        },
                    );
                }
            }
        }
        let networks: Vec<IpNet> = v.networks.iter().filter_map(|n| self.network(n)).collect();
        let classes = v
            .classes
            .iter()
            .filter_map(|c| self.directory_group(c))
            .map(|c| {
                ClassId(intern(&mut out.classes, c, |a, b| {
                    a.eq_ignore_ascii_case(b)
                }))
            })
            .collect();
        let people = v
            .people
            .iter()
            .filter_map(|u| self.username(u))
            .map(|u| UserId(intern(&mut out.people, u, |a, b| a == b)))
            .collect();
        if v.groups.is_empty()
            && v.devices.is_empty()
            && v.networks.is_empty()
            && v.classes.is_empty()
            && v.people.is_empty()
        {
            self.error(
                e,
                ErrorKind::Empty {
                    what: "exception",
                    name: name.clone(),
                    needs: "groups, devices, networks, classes or people",
                },
            );
        }
        if v.allow.is_empty() {
            self.error(
                e,
                ErrorKind::Empty {
                    what: "exception",
                    name: name.clone(),
                    needs: "categories or domains to allow",
                },
            );
        }
        self.refuse_locked(&v.allow, names, Some(index), "exception");
        let ex_targets = self.targets(&v.allow, names, index, targets);
        let from = self.datetime(&v.from, tz);
        let to = self.datetime(&v.to, tz);
        if v.approved_by.value.trim().is_empty() {
            self.error(
                &v.approved_by,
                ErrorKind::Empty {
                    what: "exception",
                    name: name.clone(),
                    needs: "approver in `approved_by`",
                },
            );
        }
        let (Some(from), Some(to)) = (from, to) else {
            return;
        };
        if from >= to {
            self.error(
                &v.from,
                ErrorKind::Backwards {
                    what: name,
                    from: v.from.value.clone(),
                    to: v.to.value.clone(),
                },
            );
            return;
        }
        out.exceptions.push(Exception {
            name,
            groups,
            devices,
            networks,
            classes,
            people,
            targets: ex_targets,
            from,
            to,
            approved_by: v.approved_by.value.trim().to_owned(),
            reason: v.reason.clone(),
        });
    }
}

/// The exceptions, and the classes and people they name (each once, the exceptions'
/// `ClassId`s and `UserId`s index them).
#[derive(Debug, Default)]
pub(super) struct Exceptions {
    pub exceptions: Vec<Exception>,
    pub classes: Vec<String>,
    pub people: Vec<String>,
}

/// The position of `value` in `list` (by `same`), added at the end if it is not there.
fn intern(list: &mut Vec<String>, value: String, same: impl Fn(&str, &str) -> bool) -> u32 {
    let i = match list.iter().position(|v| same(v, &value)) {
        Some(i) => i,
        None => {
            list.push(value);
            list.len() - 1
        }
    };
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl Compiler<'_> {
    pub(super) fn bypass(
        &mut self,
        raw: &RawPolicy,
        names: &Names,
        n_groups: usize,
        index: &mut DomainIndex,
        targets: &mut Vec<Target>,
    ) -> Bypass {
        let default_response = Response::Alert;
        let mut responses = vec![default_response; n_groups];
        for (key, value) in &raw.bypass.response.0 {
            let response = match value.value.trim() {
                "quarantine" => Some(Response::Quarantine),
                "alert" => Some(Response::Alert),
                "log" => Some(Response::Log),
                _ => {
                    self.error(
                        value,
                        ErrorKind::Response {
                            value: value.value.clone(),
                        },
                    );
                    None
                }
            };
            match names.groups.get(key.value.trim()) {
                Some(g) => {
                    if let (Some(slot), Some(r)) = (responses.get_mut(g.index()), response) {
                        *slot = r;
                    }
                }
                None => {
                    self.error(
                        key,
                        ErrorKind::Unknown {
                            what: "group",
                            name: key.value.clone(),
                            expected: one_of(&names.groups, None),
                        },
                    );
                }
            }
        }
        self.refuse_locked(
            &raw.bypass.quarantine_allow,
            names,
            Some(index),
            "quarantine_allow",
        );
        let quarantine_allow = self.targets(&raw.bypass.quarantine_allow, names, index, targets);
        Bypass {
            responses,
            default_response,
            quarantine_allow,
        }
    }
}
