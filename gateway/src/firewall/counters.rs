//! The table's rule counters, read from `nft -j list table` (pure: JSON in, counters out) and
//! written in the OpenMetrics text form for `/metrics`.
//!
//! Every rule the agent writes carries a counter and a comment naming it; counters are summed
//! per chain and comment (the two `quarantine_allow` rules, v4 and v6, are one line).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Packets and bytes one rule (or rules of one name in one chain) has counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

/// The objects of one kind (`"set"`, `"rule"`, …) in a listing from `nft -j`.
pub fn listed<'a>(
    doc: &'a serde_json::Value,
    kind: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
    doc.get("nftables")
        .and_then(|v| v.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(move |o| o.get(kind))
}

/// Counters by (chain, rule comment). Rules without a comment or a counter are left out.
pub fn read(json: &str) -> BTreeMap<(String, String), Count> {
    let mut out: BTreeMap<(String, String), Count> = BTreeMap::new();
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(json) else {
        return out;
    };
    for rule in listed(&doc, "rule") {
        let text = |k: &str| rule.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(chain), Some(comment)) = (text("chain"), text("comment")) else {
            continue;
        };
        let counter = rule
            .get("expr")
            .and_then(|e| e.as_array())
            .and_then(|e| e.iter().find_map(|x| x.get("counter")));
        let Some(counter) = counter else {
            continue;
        };
        let n = |k: &str| counter.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let c = out.entry((chain, comment)).or_default();
        c.packets += n("packets");
        c.bytes += n("bytes");
    }
    out
}

/// `counts` as OpenMetrics counter families, for appending to the agent's metrics.
pub fn render(counts: &BTreeMap<(String, String), Count>, out: &mut String) {
    for (family, help, pick) in [
        (
            "schoolgate_firewall_rule_packets",
            "Packets each firewall rule matched.",
            (|c: &Count| c.packets) as fn(&Count) -> u64,
        ),
        (
            "schoolgate_firewall_rule_bytes",
            "Bytes each firewall rule matched.",
            |c: &Count| c.bytes,
        ),
    ] {
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} counter");
        for ((chain, rule), c) in counts {
            let _ = writeln!(
                out,
                "{family}_total{{chain=\"{}\",rule=\"{}\"}} {}",
                label(chain),
                label(rule),
                pick(c)
            );
        }
    }
}

/// A label value with the characters OpenMetrics escapes, escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_by_chain_and_rule() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"rule": {"family": "inet", "table": "schoolgate", "chain": "quarantined", "handle": 5, "comment": "quarantine_allow",
              "expr": [{"match": {}}, {"counter": {"packets": 3, "bytes": 180}}, {"accept": null}]}},
            {"rule": {"family": "inet", "table": "schoolgate", "chain": "quarantined", "handle": 6, "comment": "quarantine_allow",
              "expr": [{"counter": {"packets": 2, "bytes": 120}}, {"accept": null}]}},
            {"rule": {"family": "inet", "table": "schoolgate", "chain": "forward", "handle": 7, "expr": [{"counter": {"packets": 9, "bytes": 9}}]}},
            {"rule": {"family": "inet", "table": "schoolgate", "chain": "forward", "handle": 8, "comment": "no_counter", "expr": [{"accept": null}]}}]}"#;
        let c = read(json);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[&("quarantined".to_owned(), "quarantine_allow".to_owned())],
            Count {
                packets: 5,
                bytes: 300
            }
        );
        let mut text = String::new();
        render(&c, &mut text);
        assert!(text.contains(
            "schoolgate_firewall_rule_packets_total{chain=\"quarantined\",rule=\"quarantine_allow\"} 5\n"
        ));
        assert!(text.contains("# TYPE schoolgate_firewall_rule_bytes counter\n"));
        assert!(read("not json").is_empty());
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
