//! What a name or address is, whatever the decision for it: the category it is listed in,
//! the app or tool its list section names, and the way round the filter it stands for. The
//! decision says whether a device may reach it now; this says what it is, for reports
//! (`instagram`, `social_networking`) and for inspection (a connection to a listed DoH
//! resolver is a `dns_over_https` attempt whoever makes it).

use crate::address::address_literal;
use crate::domain::{Matches, QueryName};
use crate::policy::{Policy, Target};
use crate::technique::Technique;

/// What the policy's lists say a name or address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Classified<'p> {
    /// The first category (in `policy.yaml`'s order) that lists it.
    pub category: Option<&'p str>,
    /// The `[section]` of the list entry that matched, most specific entry first.
    pub app: Option<&'p str>,
    /// The technique of the first matching category that has one.
    pub technique: Option<Technique>,
    /// The listed domain or address that matched, for evidence.
    pub listed: Option<&'p str>,
}

/// Classifies `name` (a host name as a device sent it, or an address literal).
pub fn classify<'p>(policy: &'p Policy, name: &str) -> Classified<'p> {
    let mut matches = Matches::new();
    if let Some(ip) = address_literal(name) {
        policy.index.addresses.lookup(ip, &mut matches);
    } else if let Some(q) = QueryName::new(name) {
        policy.index.lookup(q.as_str(), &mut matches);
    }
    let mut out = Classified::default();
    let mut categories: Vec<_> = matches
        .iter()
        .filter_map(|(id, listed)| match policy.target(*id)? {
            Target::Category {
                name, technique, ..
            } => Some((*id, name.as_str(), *technique, *listed)),
            Target::Domains { .. } => None,
        })
        .collect();
    categories.sort_by_key(|(id, ..)| *id);
    if let Some((_, name, _, listed)) = categories.first() {
        out.category = Some(name);
        out.listed = Some(listed);
    }
    if let Some((_, _, technique, listed)) = categories.iter().find(|c| c.2.is_some()) {
        out.technique = *technique;
        out.listed = Some(listed);
    }
    // The longest matched entry is the most specific; its section names the app.
    out.app = matches
        .iter()
        .filter_map(|(_, listed)| Some((listed.len(), policy.index.app(listed)?)))
        .max_by_key(|(len, _)| *len)
        .map(|(_, app)| app);
    out
}
