//! Fuzzing entry points, shared by `fuzz/` and the tests that replay its seeds.

use std::path::Path;
use std::sync::OnceLock;

use jiff::Timestamp;
use schoolgate_engine::{Client, Policy};

use schoolgate_gateway::dns::plan::{Plan, Request, Settings, answer, plan};

/// A small policy with every kind of rule the planner reads, built once.
#[allow(
    clippy::panic,
    reason = "a fixed policy that the seed tests load: failing loudly is the point"
)]
fn policy() -> &'static Policy {
    const YAML: &str = r#"version: 1
school: { name: Fuzz, timezone: Europe/London }
calendar: { terms: [{ name: T, from: 2026-09-03, to: 2026-12-18 }] }
schedules: { day: { days: [mon, tue, wed, thu, fri], times: ["08:30-15:30"], term_time: true } }
categories: { social: { domains: [facebook.com, instagram.com] }, vle: { domains: [dbprimary.com] } }
groups:
  pupils: { networks: [10.10.0.0/16, "fd00:10::/64"], safe_search: true }
  staff: { networks: [10.20.0.0/16] }
rules:
  - { name: VLE, groups: [all], allow: [vle] }
  - { name: Social, groups: [pupils], block: [social], when: day }
bypass: { quarantine_allow: [vle] }
"#;
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let no_lists = |_: &Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        Policy::from_yaml(YAML, Path::new("fuzz.yaml"), &no_lists).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Plans a response to arbitrary bytes as a DNS request from several clients, and builds the
/// forwarded answer where there is one. Must never panic.
pub fn dns_request(data: &[u8]) {
    let policy = policy();
    let defences = schoolgate_engine::policy::gateway::Defences::default();
    let settings = Settings {
        block_response: schoolgate_engine::policy::gateway::BlockResponse::Sinkhole,
        defences,
        sinkhole_v4: "10.0.0.1".parse().ok(),
        sinkhole_v6: "fd00::1".parse().ok(),
    };
    let now = Timestamp::from_second(1_795_600_800).unwrap_or_default();
    question_agrees(data);
    for ip in ["10.10.3.7", "10.20.0.5", "192.0.2.1", "fd00:10::7"] {
        let Ok(ip) = ip.parse() else { continue };
        let client = Client::new(ip, None);
        for quarantined in [false, true] {
            match plan(
                data,
                &client,
                policy.identify(&client),
                quarantined,
                policy,
                &settings,
                now,
            ) {
                Plan::Forward { request, strip_ech } => build(&request, strip_ech),
                Plan::Rewrite { request, .. } => build(&request, false),
                Plan::Reply { .. } | Plan::Drop => {}
            }
        }
    }
}

/// What the cached path's question reader accepts, the full decoder reads the same way
/// (`dns::question::disagreement`): a disagreement would let the cached path answer a different
/// question.
#[allow(
    clippy::panic,
    reason = "a disagreement is the bug this fuzz target looks for"
)]
pub fn question_agrees(data: &[u8]) {
    if let Some(d) = schoolgate_gateway::dns::question::disagreement(data) {
        panic!("{d:?}");
    }
}

fn build(request: &Request, strip_ech: bool) {
    let m = answer(
        request,
        hickory_proto::op::ResponseCode::NoError,
        Vec::new(),
        strip_ech,
    );
    let _ = m.to_vec();
}

/// A cached answer re-sent for arbitrary request bytes (the wire cache's path), and arbitrary
/// bytes read as a response template. Must never panic.
pub fn wire_answer(data: &[u8]) {
    use schoolgate_gateway::dns::wire::Template;
    static T: OnceLock<Option<Template>> = OnceLock::new();
    let template = T.get_or_init(|| {
        let name = hickory_proto::rr::Name::from_ascii("www.example.com.").ok()?;
        let mut m = hickory_proto::op::Message::response(1, hickory_proto::op::OpCode::Query);
        m.add_query(hickory_proto::op::Query::query(
            name.clone(),
            hickory_proto::rr::RecordType::A,
        ));
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            name,
            300,
            hickory_proto::rr::RData::A(std::net::Ipv4Addr::new(192, 0, 2, 1).into()),
        ));
        Template::new(m.to_vec().ok()?)
    });
    if let Some(t) = template {
        let _ = t.render(data, 7);
    }
    if let Some(t) = Template::new(data.to_vec()) {
        let _ = t.render(data, 1);
    }
}

/// Datagrams from an upstream resolver, judged against a query as the forwarder does and
/// read as answers; and the same bytes as a DNS over HTTPS `dns` parameter (base64url).
/// Most random bytes are not the query's answer, so each is also tried with the query's ID,
/// response bit and question put in front of its tail, to reach the answer reader.
pub fn upstream_answer(data: &[u8]) {
    use schoolgate_gateway::dns::forward::{Query, Reply, resolved};
    let Ok(name) = hickory_proto::rr::Name::from_ascii("www.Example.com.") else {
        return;
    };
    let query = Query::new(&name, hickory_proto::rr::RecordType::A, 0x5a5a, 0xa5a5);
    let _ = query.judge(data);
    let _ = resolved(data);
    // The query's header and question with the response bit, then the data as the rest.
    let question_end = query.wire.len().saturating_sub(11);
    let mut answer = query.wire.get(..question_end).unwrap_or_default().to_vec();
    if let Some(flags) = answer.get_mut(2) {
        *flags |= 0x80;
    }
    if let (Some(counts), Some(tail)) = (answer.get_mut(6..12), data.get(..6)) {
        counts.copy_from_slice(tail);
    }
    answer.extend_from_slice(data.get(6..).unwrap_or_default());
    if query.judge(&answer) == Reply::Answer {
        let _ = resolved(&answer);
    }
    let text = String::from_utf8_lossy(data);
    if let Some(bytes) = crate::dns::off_site::base64url(&text) {
        assert!(bytes.len() <= text.len(), "base64url never grows");
    }
}

/// Netlink datagrams as the NFLOG socket receives them, and the packets in them: reading
/// them never panics.
pub fn nflog_datagram(data: &[u8]) {
    use schoolgate_gateway::firewall::logged::{dns_attempt, packets};
    for p in packets(data) {
        let _ = dns_attempt(&p.packet);
    }
    let _ = dns_attempt(data);
}

/// Bytes as DHCP lease files of each format (host names pupils' devices chose), and as a
/// kernel neighbour-table reply. Must never panic.
pub fn leases_and_neighbours(data: &[u8]) {
    use schoolgate_engine::policy::gateway::LeaseFormat;
    let text = String::from_utf8_lossy(data);
    for format in [LeaseFormat::Dnsmasq, LeaseFormat::Kea] {
        for lease in crate::clients::leases::parse(format, &text) {
            let _ = lease.is_current(Timestamp::UNIX_EPOCH);
        }
    }
    let _ = crate::clients::neighbours::parse(data);
}

/// Bytes as a journal segment from a rotted or torn disk: every record found must lie inside
/// the bytes, and re-encoding what was found must scan back the same. Must never panic.
#[allow(
    clippy::panic,
    reason = "an assertion a fuzzer reports as a crash: what scan found does not hold"
)]
pub fn journal_segment(data: &[u8]) {
    use schoolgate_gateway::journal::record::{encode, scan};
    let (found, _damage) = scan(data);
    let mut again = Vec::new();
    for f in &found {
        let Some(payload) = data.get(f.payload.0..f.payload.1) else {
            panic!("record {} lies outside the bytes", f.seq);
        };
        encode(f.seq, payload, &mut again);
    }
    let (refound, damage) = scan(&again);
    if refound.len() != found.len() || !damage.is_empty() {
        panic!("records re-encoded do not scan back whole");
    }
}

/// Arbitrary bytes as a client's DNS-over-TCP stream, delivered in pieces whose sizes the
/// first byte picks: every whole message comes out exactly as it went in (framed again, the
/// messages rebuild the stream the server took), and each goes through the planner as a
/// request. Must never panic.
#[allow(
    clippy::panic,
    reason = "a message that does not come out as framed is the bug this target looks for"
)]
pub fn dns_tcp_stream(data: &[u8]) {
    use schoolgate_gateway::dns::tcp::{Next, Reassembly, frame};
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let mut reassembly = Reassembly::default();
    let mut rebuilt = Vec::new();
    let mut ended = false;
    'stream: for chunk in stream.chunks(piece) {
        reassembly.push(chunk);
        loop {
            match reassembly.take() {
                Next::Message(m) => {
                    let m = m.to_vec();
                    rebuilt.extend(frame(&m).unwrap_or_else(|| panic!("{} bytes", m.len())));
                    dns_request(&m);
                }
                Next::Need(n) => {
                    assert!(n > 0 && n <= 65_535, "needs {n}");
                    break;
                }
                Next::Empty => {
                    ended = true;
                    break 'stream;
                }
            }
        }
    }
    assert!(
        stream.starts_with(&rebuilt),
        "the messages taken are not the stream's prefix"
    );
    if !ended {
        assert_eq!(rebuilt.len() + reassembly.pending(), stream.len());
    }
}

/// Arbitrary bytes as a list feed, in the format the first byte picks (the rest is the
/// feed): reading must never panic, and every entry it gives must read back as a list
/// file's line, so a feed can never make the policy that reads its copy fail.
#[allow(
    clippy::panic,
    reason = "a fuzz body: an entry that does not read back is the failure it looks for"
)]
pub fn list_feed(data: &[u8]) {
    use schoolgate_engine::policy::feed::FeedFormat;
    let Some((pick, feed)) = data.split_first() else {
        return;
    };
    let format = match pick % 5 {
        0 => FeedFormat::Domains,
        1 => FeedFormat::Hosts,
        2 => FeedFormat::Adblock,
        3 => FeedFormat::Ut1,
        _ => FeedFormat::Onionoo,
    };
    let section = (format == FeedFormat::Ut1).then_some("adult");
    if let Ok(entries) = schoolgate_gateway::feed::parse(format, section, feed, 1 << 20) {
        for line in &entries.lines {
            if schoolgate_engine::domain::parse_entry(line).is_err() {
                panic!("{format:?} gave {line:?}, which a list file cannot hold");
            }
        }
        let _ = entries.to_list_file("https://fuzz.example/feed");
    }
}

#[cfg(test)]
mod tests {
    //! The checked-in fuzz seeds replayed through the fuzz bodies, so every crash once found
    //! stays fixed.

    /// Runs every checked-in seed of fuzz target `target` through `body`; at least 7 must be
    /// there.
    fn replay_seeds(target: &str, body: fn(&[u8])) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds")
            .join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            body(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 7, "expected the checked-in seeds in {}", dir.display());
    }

    #[test]
    fn dns_request_fuzz_seeds_do_not_panic() {
        replay_seeds("dns_request", super::dns_request);
    }

    #[test]
    fn upstream_answer_fuzz_seeds_do_not_panic() {
        replay_seeds("upstream_answer", super::upstream_answer);
    }

    #[test]
    fn wire_answer_fuzz_seeds_do_not_panic() {
        replay_seeds("wire_answer", super::wire_answer);
    }

    #[test]
    fn nflog_datagram_fuzz_seeds_do_not_panic() {
        replay_seeds("nflog_datagram", super::nflog_datagram);
    }

    #[test]
    fn journal_segment_fuzz_seeds_do_not_panic() {
        replay_seeds("journal_segment", super::journal_segment);
    }

    #[test]
    fn leases_and_neighbours_fuzz_seeds_do_not_panic() {
        replay_seeds("leases_and_neighbours", super::leases_and_neighbours);
    }

    #[test]
    fn list_feed_fuzz_seeds_do_not_panic() {
        replay_seeds("list_feed", super::list_feed);
    }

    #[test]
    fn dns_tcp_stream_fuzz_seeds_do_not_panic() {
        replay_seeds("dns_tcp_stream", super::dns_tcp_stream);
    }
}
