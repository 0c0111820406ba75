//! The one question everything asks: may this device reach this name now, and why?
//!
//! [`decide`] is a pure function of the policy, the client, the name, the instant and whether
//! the device is quarantined. The DNS resolver, the firewall, packet inspection, `explain` and
//! the console all call it, so they can never disagree.
//!
//! Order of reading: quarantine (only `quarantine_allow` is reachable), then exceptions (an
//! active exception covering the device allows), then rules in file order (the first rule
//! that speaks of the device's group, lists the name and is in force decides), else allow.
//!
//! Every decision carries `until`: the next instant at which the decision for this device and
//! name changes, or `None` if it never will under this policy. Instants are read to the whole
//! second.

use jiff::Timestamp;
use smallvec::SmallVec;

use crate::address::address_literal;
use crate::device::Client;
use crate::domain::{Matches, QueryName, TargetId};
use crate::person::PersonView;
use crate::policy::{Action, ExceptionId, Identity, Policy, RuleId};

/// What decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No exception or rule speaks of this name for this device: allowed.
    NoRule,
    Rule(RuleId),
    Exception(ExceptionId),
    /// The device is quarantined: only `quarantine_allow` is reachable.
    Quarantine,
}

/// The listed domain that matched, and the category (or inline list) it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched<'p> {
    pub target: TargetId,
    pub domain: &'p str,
}

/// The answer, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'p> {
    pub action: Action,
    /// The client's device entry and group.
    pub identity: Identity,
    pub reason: Reason,
    pub matched: Option<Matched<'p>>,
    /// The next instant this decision changes, if it ever does.
    pub until: Option<Timestamp>,
}

impl Decision<'_> {
    /// The name of the rule that decided, if a rule did.
    pub fn rule_name<'a>(&self, policy: &'a Policy) -> Option<&'a str> {
        match self.reason {
            Reason::Rule(id) => policy.rule(id).map(|r| r.name.as_str()),
            _ => None,
        }
    }

    /// The category the name matched, if the target that matched is one.
    pub fn category<'a>(&self, policy: &'a Policy) -> Option<&'a str> {
        self.matched.and_then(|m| policy.category_name(m.target))
    }
}

/// Decides whether `client`, with `person` signed in on it (if anyone is), may reach `name`
/// at `now`. `name` may be anything a device sent: it is normalised here, and a name that
/// cannot be a domain matches no list. A name that is an address (`192.0.2.1`,
/// `[2001:db8::1]`) matches the listed addresses and networks.
///
/// A rule decides when it names the device's group or the person's: rules are read in file
/// order, so a rule for a device group placed first holds whoever signs in.
pub fn decide<'p>(
    policy: &'p Policy,
    client: &Client,
    person: Option<&PersonView<'_>>,
    name: &str,
    now: Timestamp,
    quarantined: bool,
) -> Decision<'p> {
    let mut identity = policy.identify(client);
    identity.person = person.map(|p| policy.identify_person(p));
    decide_as(policy, client, identity, name, now, quarantined)
}

/// As [`decide`], for a caller that has already identified the client.
pub fn decide_as<'p>(
    policy: &'p Policy,
    client: &Client,
    identity: Identity,
    name: &str,
    now: Timestamp,
    quarantined: bool,
) -> Decision<'p> {
    let mut matches = Matches::new();
    if let Some(ip) = address_literal(name) {
        policy.index.addresses.lookup(ip, &mut matches);
    } else if let Some(q) = QueryName::new(name) {
        policy.index.lookup(q.as_str(), &mut matches);
    }
    if quarantined {
        let allowed = best_match(&policy.bypass.quarantine_allow, &matches);
        return Decision {
            action: if allowed.is_some() {
                Action::Allow
            } else {
                Action::Block
            },
            identity,
            reason: Reason::Quarantine,
            matched: allowed,
            until: None,
        };
    }
    let no_rule = Decision {
        action: Action::Allow,
        identity,
        reason: Reason::NoRule,
        matched: None,
        until: None,
    };
    if matches.is_empty() {
        return no_rule;
    }
    let relevant = Relevant::new(policy, client, identity, &matches);
    let second = whole_second(now);
    let (action, reason, matched) = relevant.verdict_at(policy, second);
    let until = relevant
        .next_change(policy, second, (action, reason))
        .and_then(|s| Timestamp::from_second(s).ok());
    Decision {
        action,
        identity,
        reason,
        matched,
        until,
    }
}

/// The exceptions and rules that could ever decide for this device and name, in the order
/// they are read, each with the listed domain it matched.
struct Relevant<'p> {
    exceptions: SmallVec<[(ExceptionId, Matched<'p>); 2]>,
    rules: SmallVec<[(RuleId, Matched<'p>); 4]>,
}

impl<'p> Relevant<'p> {
    fn new(policy: &'p Policy, client: &Client, identity: Identity, matches: &Matches<'p>) -> Self {
        let mut exceptions = SmallVec::new();
        for (i, e) in policy.exceptions.iter().enumerate() {
            if let Some(m) = best_match(&e.targets, matches)
                && e.covers(&identity, client)
            {
                exceptions.push((ExceptionId(i as u32), m));
            }
        }
        let mut rules = SmallVec::new();
        for id in policy.rules_for_identity(&identity) {
            if let Some(rule) = policy.rule(id)
                && let Some(m) = best_match(&rule.targets, matches)
            {
                rules.push((id, m));
                // A rule in force at every moment hides every rule after it.
                if policy.schedule(rule.when).is_some_and(|s| s.is_always()) {
                    break;
                }
            }
        }
        Self { exceptions, rules }
    }

    fn verdict_at(&self, policy: &Policy, second: i64) -> (Action, Reason, Option<Matched<'p>>) {
        for (id, m) in &self.exceptions {
            if let Some(e) = policy.exception(*id)
                && e.from.as_second() <= second
                && second < e.to.as_second()
            {
                return (Action::Allow, Reason::Exception(*id), Some(*m));
            }
        }
        for (id, m) in &self.rules {
            if let Some(rule) = policy.rule(*id)
                && policy
                    .schedule(rule.when)
                    .is_some_and(|s| s.state(second).active)
            {
                return (rule.action, Reason::Rule(*id), Some(*m));
            }
        }
        (Action::Allow, Reason::NoRule, None)
    }

    /// The earliest instant after `second` at which anything relevant switches on or off.
    fn next_event(&self, policy: &Policy, second: i64) -> Option<i64> {
        let exceptions = self.exceptions.iter().filter_map(|(id, _)| {
            let e = policy.exception(*id)?;
            let (from, to) = (e.from.as_second(), e.to.as_second());
            if second < from {
                Some(from)
            } else if second < to {
                Some(to)
            } else {
                None
            }
        });
        let rules = self.rules.iter().filter_map(|(id, _)| {
            let rule = policy.rule(*id)?;
            policy.schedule(rule.when)?.state(second).next_change
        });
        exceptions.chain(rules).filter(|t| *t > second).min()
    }

    /// The first instant after `second` at which the verdict differs from `current`.
    fn next_change(&self, policy: &Policy, second: i64, current: (Action, Reason)) -> Option<i64> {
        // A switch may leave the verdict as it was (a rule read earlier still decides), so
        // step through switches until one changes it. Every step moves forward to a real
        // window boundary, and there are few of them before something changes; the bound is
        // only a guard, and stopping there still gives an instant before any change.
        const MAX_STEPS: usize = 10_000;
        let mut t = second;
        for _ in 0..MAX_STEPS {
            let next = self.next_event(policy, t)?;
            let (action, reason, _) = self.verdict_at(policy, next);
            if (action, reason) != current {
                return Some(next);
            }
            t = next;
        }
        Some(t)
    }
}

/// Among `targets`, the one whose listed domain matched most specifically; ties go to the
/// target written first.
fn best_match<'p>(targets: &[TargetId], matches: &Matches<'p>) -> Option<Matched<'p>> {
    let mut best: Option<Matched<'p>> = None;
    for target in targets {
        if let Some((_, domain)) = matches.iter().find(|(t, _)| t == target)
            && best.is_none_or(|b| domain.len() > b.domain.len())
        {
            best = Some(Matched {
                target: *target,
                domain,
            });
        }
    }
    best
}

/// `now` to the whole second, rounding down (also before 1970).
fn whole_second(now: Timestamp) -> i64 {
    let s = now.as_second();
    if now.subsec_nanosecond() < 0 {
        s - 1
    } else {
        s
    }
}
