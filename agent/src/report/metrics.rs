//! Prometheus metrics: what the resolver, the block page, inspection and reloads have done.
//!
//! Counters are cheap to bump from any task (atomics behind `prometheus-client`'s types);
//! [`Metrics::render`] writes the text exposition format for `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What happened to a query.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `blocked`, `forwarded`, `safe_search`, `local` (refused, malformed, built-in defence),
    /// `dropped` or `rate_limited`.
    pub result: &'static str,
}

/// Rules whose counters [`Metrics::blocked_by`] keeps at hand.
const MAX_RULE_COUNTERS: usize = 1024;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The rule's name from the policy (or `quarantine`).
    pub rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `applied`, `unchanged` or `rejected`.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RadiusLabels {
    /// What became of a RADIUS packet: `signed_in`, `unknown_user`, `signed_out`,
    /// `restarted`, `repeat`; or why it was refused: `unknown_client`, `bad_authenticator`,
    /// `malformed`, `not_accounting`, `bad_user`, `no_user`, `no_address`, `full`.
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionEndLabels {
    /// `signed_out`, `idle`, `address_taken`, `lease_moved`, `reporter_restarted`.
    pub why: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InspectedLabels {
    /// What inspection did: `allow`, `block`, `quarantine`, `alert` or `log`.
    pub action: &'static str,
}

/// Every metric the agent exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub queries: Family<QueryLabels, Counter>,
    // The `queries` counters for each result, looked up once: a family lookup takes a lock.
    pub queries_blocked: Counter,
    pub queries_forwarded: Counter,
    pub queries_safe_search: Counter,
    pub queries_local: Counter,
    pub queries_dropped: Counter,
    pub queries_rate_limited: Counter,
    pub blocked: Family<RuleLabels, Counter>,
    /// `blocked`'s counters by rule name, read without a lock or a copy of the name (every
    /// blocked query adds to one); filled from the family the first time a rule blocks.
    blocked_by_rule: arc_swap::ArcSwap<foldhash::HashMap<Box<str>, Counter>>,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub upstream_errors: Counter,
    /// Allowed queries answered SERVFAIL at once because too many questions were out.
    pub upstream_shed: Counter,
    /// Answers kept past their TTL and served when no upstream answered (RFC 8767).
    pub stale_answers: Counter,
    /// Popular names asked again before their answers expired.
    pub prefetches: Counter,
    /// Queries from school devices away from school (DNS over HTTPS or TLS), by a known id.
    pub off_site_queries: Counter,
    /// Requests or handshakes from away naming a device id no device has.
    pub off_site_refused: Counter,
    pub upstream_latency: Histogram,
    pub reloads: Family<ReloadLabels, Counter>,
    pub block_page_requests: Counter,
    pub tls_resets: Counter,
    pub events_dropped: Counter,
    /// Blocked answers sent before their sighting was in the journal (the writer took longer
    /// than [`crate::report::events::JOURNAL_WAIT`]).
    pub answers_before_journal: Counter,
    /// Frames the capture sockets handed up (after the kernel filter).
    pub captured: Counter,
    pub inspected: Family<InspectedLabels, Counter>,
    pub radius: Family<RadiusLabels, Counter>,
    pub sign_ins: Family<RadiusLabels, Counter>,
    pub sessions_ended: Family<SessionEndLabels, Counter>,
    /// People signed in now.
    pub sessions: prometheus_client::metrics::gauge::Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("schoolgate");
        let queries = Family::<QueryLabels, Counter>::default();
        registry.register(
            "dns_queries",
            "DNS queries by what was done",
            queries.clone(),
        );
        let blocked = Family::<RuleLabels, Counter>::default();
        registry.register(
            "dns_blocked",
            "Blocked DNS queries by the rule that blocked them",
            blocked.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "dns_cache_hits",
            "Allowed queries answered from the cache",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "dns_cache_misses",
            "Allowed queries sent upstream",
            cache_misses.clone(),
        );
        let upstream_errors = Counter::default();
        registry.register(
            "dns_upstream_errors",
            "Upstream lookups that failed (answered SERVFAIL)",
            upstream_errors.clone(),
        );
        let upstream_shed = Counter::default();
        registry.register(
            "dns_upstream_shed",
            "Allowed queries answered SERVFAIL at once, too many questions being out upstream",
            upstream_shed.clone(),
        );
        let off_site_queries = Counter::default();
        registry.register(
            "dns_off_site_queries",
            "Queries from school devices away from school, over HTTPS or TLS",
            off_site_queries.clone(),
        );
        let off_site_refused = Counter::default();
        registry.register(
            "dns_off_site_refused",
            "Requests and handshakes from away naming no known device",
            off_site_refused.clone(),
        );
        let stale_answers = Counter::default();
        registry.register(
            "dns_stale_answers",
            "Expired answers served because no upstream answered (RFC 8767)",
            stale_answers.clone(),
        );
        let prefetches = Counter::default();
        registry.register(
            "dns_prefetches",
            "Popular names asked upstream again in the last tenth of their TTL",
            prefetches.clone(),
        );
        // 100 µs to about 3.3 s.
        let upstream_latency = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16),
        );
        registry.register(
            "dns_upstream_latency_seconds",
            "Time to an upstream answer",
            upstream_latency.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy reloads by outcome",
            reloads.clone(),
        );
        let block_page_requests = Counter::default();
        registry.register(
            "block_page_requests",
            "Block page HTTP requests",
            block_page_requests.clone(),
        );
        let tls_resets = Counter::default();
        registry.register(
            "block_page_tls_resets",
            "TLS connections to the block page reset",
            tls_resets.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Events lost: the writer fell behind or the journal could not be written",
            events_dropped.clone(),
        );
        let answers_before_journal = Counter::default();
        registry.register(
            "dns_answers_before_journal",
            "Blocked answers sent before their sighting reached the journal (the writer was slow)",
            answers_before_journal.clone(),
        );
        let captured = Counter::default();
        registry.register(
            "capture_frames",
            "Frames the LAN capture read (those the kernel filter let through)",
            captured.clone(),
        );
        let inspected = Family::<InspectedLabels, Counter>::default();
        registry.register(
            "inspected_flows",
            "Flows and DNS questions inspection judged, by what it did",
            inspected.clone(),
        );
        let radius = Family::<RadiusLabels, Counter>::default();
        registry.register(
            "radius_packets",
            "RADIUS accounting packets by what became of them",
            radius.clone(),
        );
        let sign_ins = Family::<RadiusLabels, Counter>::default();
        registry.register(
            "sign_in_requests",
            "Sign-in endpoint requests by what became of them (signed_in, unknown_user, \
             signed_out; bad_token, malformed, not_own_address, bad_user, too_large, full)",
            sign_ins.clone(),
        );
        let sessions_ended = Family::<SessionEndLabels, Counter>::default();
        registry.register(
            "sessions_ended",
            "Sign-in sessions ended, by why",
            sessions_ended.clone(),
        );
        let sessions = prometheus_client::metrics::gauge::Gauge::default();
        registry.register("sessions", "People signed in now", sessions.clone());
        let result = |result| queries.get_or_create(&QueryLabels { result }).clone();
        Self {
            queries_blocked: result("blocked"),
            queries_forwarded: result("forwarded"),
            queries_safe_search: result("safe_search"),
            queries_local: result("local"),
            queries_dropped: result("dropped"),
            queries_rate_limited: result("rate_limited"),
            registry,
            queries,
            blocked,
            blocked_by_rule: arc_swap::ArcSwap::default(),
            cache_hits,
            cache_misses,
            upstream_errors,
            upstream_shed,
            off_site_queries,
            off_site_refused,
            stale_answers,
            prefetches,
            upstream_latency,
            reloads,
            block_page_requests,
            tls_resets,
            events_dropped,
            answers_before_journal,
            captured,
            inspected,
            radius,
            sign_ins,
            sessions_ended,
            sessions,
        }
    }

    /// Counts a query blocked by the rule named `rule` (or `quarantine`).
    pub fn blocked_by(&self, rule: &str) {
        if let Some(c) = self.blocked_by_rule.load().get(rule) {
            c.inc();
            return;
        }
        let counter = self
            .blocked
            .get_or_create(&RuleLabels {
                rule: rule.to_owned(),
            })
            .clone();
        counter.inc();
        // Bounded: past it (a policy renamed many times over) the family is asked each time.
        if self.blocked_by_rule.load().len() < MAX_RULE_COUNTERS {
            self.blocked_by_rule.rcu(|known| {
                let mut more = (**known).clone();
                more.insert(rule.into(), counter.clone());
                more
            });
        }
    }

    pub fn sign_in(&self, result: &'static str) {
        self.sign_ins.get_or_create(&RadiusLabels { result }).inc();
    }

    pub fn radius(&self, result: &'static str) {
        self.radius.get_or_create(&RadiusLabels { result }).inc();
    }

    /// Counts the sessions `changes` ended.
    pub fn sessions_ended(&self, changes: &[schoolgate_people::sessions::Change]) {
        for c in changes {
            if let schoolgate_people::sessions::Change::Ended(_, why) = c {
                self.sessions_ended
                    .get_or_create(&SessionEndLabels { why: why.as_str() })
                    .inc();
            }
        }
    }

    pub fn inspected(&self, action: &'static str) {
        self.inspected
            .get_or_create(&InspectedLabels { action })
            .inc();
    }

    pub fn reload(&self, outcome: &'static str) {
        self.reloads.get_or_create(&ReloadLabels { outcome }).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.queries_blocked.inc();
        m.queries_blocked.inc();
        // The first through the family, the second through the counters kept at hand.
        m.blocked_by("No \"social\" media");
        m.blocked_by("No \"social\" media");
        m.upstream_latency.observe(0.002);
        m.reload("rejected");
        let text = m.render();
        assert!(
            text.contains("schoolgate_dns_queries_total{result=\"blocked\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("schoolgate_dns_blocked_total{rule=\"No \\\"social\\\" media\"} 2"),
            "{text}"
        );
        assert!(text.contains("schoolgate_policy_reloads_total{outcome=\"rejected\"} 1"));
        assert!(text.contains("schoolgate_dns_upstream_latency_seconds_count 1"));
    }
}
