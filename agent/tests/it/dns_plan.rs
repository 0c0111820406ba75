//! The resolver's request planner against the shipped policy: blocks with EDE, sinkhole and
//! NXDOMAIN answers, the built-in defences, safe search, ECH stripping, outsiders, and
//! malformed requests.

use std::path::Path;

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::HTTPS;
use hickory_proto::rr::rdata::svcb::{Alpn, SVCB, SvcParamKey, SvcParamValue};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use jiff::Timestamp;
use schoolgate_engine::instant::parse_instant;
use schoolgate_engine::policy::gateway::{BlockResponse, Defences};
use schoolgate_engine::{Client, MacAddr, Policy};
use schoolgate_gateway::dns::plan::{
    EDE_BLOCKED, Plan, Settings, answer, ede_of, plan, remove_ech,
};

use super::repo;

fn policy() -> Policy {
    let path = repo().join("policy.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    Policy::from_yaml(&text, &path, &|p: &Path| std::fs::read_to_string(p)).unwrap()
}

fn settings(p: &Policy) -> Settings {
    let g = p.gateway().unwrap();
    let bp = g.block_page.as_ref().unwrap();
    Settings {
        block_response: g.dns.block_response,
        defences: g.dns.defences,
        sinkhole_v4: bp.ipv4(),
        sinkhole_v6: bp.ipv6(),
    }
}

fn query(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x5a5a;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.edns = None;
    if edns {
        m.set_edns(Edns::new());
    }
    m.to_vec().unwrap()
}

fn at(p: &Policy, t: &str) -> Timestamp {
    parse_instant(t, p.timezone()).unwrap()
}

const PUPIL: &str = "10.10.3.7";
const STAFF: &str = "10.20.4.4";
const SCHOOL_DAY: &str = "2026-11-24T10:00";

/// What `plan` does when `client` asks `name`/`qtype` with EDNS at local time `t`.
fn ask(p: &Policy, s: &Settings, client: &Client, name: &str, qtype: RecordType, t: &str) -> Plan {
    plan(
        &query(name, qtype, true),
        client,
        p.identify(client),
        false,
        p,
        s,
        at(p, t),
    )
}

/// Runs `plan` for `ip` asking `name`/`qtype` at `t` and returns the reply, parsed.
fn reply(
    p: &Policy,
    s: &Settings,
    ip: &str,
    mac: Option<&str>,
    name: &str,
    qtype: RecordType,
    t: &str,
) -> (Message, bool) {
    let client = Client::new(
        ip.parse().unwrap(),
        mac.map(|m| m.parse::<MacAddr>().unwrap()),
    );
    match ask(p, s, &client, name, qtype, t) {
        Plan::Reply { bytes, blocked } => (Message::from_vec(&bytes).unwrap(), blocked.is_some()),
        other => panic!("{name} from {ip}: expected a reply, got {other:?}"),
    }
}

fn forwards(p: &Policy, s: &Settings, ip: &str, name: &str, qtype: RecordType, t: &str) -> bool {
    let client = Client::new(ip.parse().unwrap(), None);
    matches!(ask(p, s, &client, name, qtype, t), Plan::Forward { .. })
}

#[test]
fn blocked_names_are_sinkholed_with_an_extended_error_naming_the_rule() {
    let p = policy();
    let s = settings(&p);
    let (m, blocked) = reply(
        &p,
        &s,
        PUPIL,
        None,
        "www.instagram.com",
        RecordType::A,
        SCHOOL_DAY,
    );
    assert!(blocked);
    assert_eq!(m.metadata.id, 0x5a5a);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data, RData::A("10.0.0.1".parse().unwrap()));
    assert!(m.answers[0].ttl <= 60);
    let (code, text) = ede_of(&m).unwrap();
    assert_eq!(code, EDE_BLOCKED);
    assert_eq!(
        text,
        "blocked by school rule: Pupils keep off social networking in the school day"
    );
    // The event names the rule and the category the name is in.
    let client = Client::new(PUPIL.parse().unwrap(), None);
    let Plan::Reply {
        blocked: Some(b), ..
    } = ask(
        &p,
        &s,
        &client,
        "www.instagram.com",
        RecordType::A,
        SCHOOL_DAY,
    )
    else {
        panic!("not blocked");
    };
    assert_eq!(
        (b.rule.as_deref(), b.category.as_deref()),
        (
            Some("Pupils keep off social networking in the school day"),
            Some("social_networking")
        )
    );

    let (m, _) = reply(
        &p,
        &s,
        PUPIL,
        None,
        "www.instagram.com",
        RecordType::AAAA,
        SCHOOL_DAY,
    );
    assert_eq!(m.answers[0].data, RData::AAAA("fd00::1".parse().unwrap()));
    let (m, _) = reply(
        &p,
        &s,
        PUPIL,
        None,
        "www.instagram.com",
        RecordType::MX,
        SCHOOL_DAY,
    );
    assert!(m.answers.is_empty(), "other types get an empty answer");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);

    // The TTL never outlasts the block: five seconds before 15:30 it is five seconds.
    let (m, _) = reply(
        &p,
        &s,
        PUPIL,
        None,
        "instagram.com",
        RecordType::A,
        "2026-11-24T15:29:55",
    );
    assert_eq!(m.answers[0].ttl, 5);

    // `nxdomain` instead of a sinkhole.
    let nx = Settings {
        block_response: BlockResponse::Nxdomain,
        ..s
    };
    let (m, _) = reply(
        &p,
        &nx,
        PUPIL,
        None,
        "www.instagram.com",
        RecordType::A,
        SCHOOL_DAY,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    assert_eq!(ede_of(&m).map(|e| e.0), Some(EDE_BLOCKED));

    // A client that did not send EDNS gets no OPT record back.
    let client = Client::new(PUPIL.parse().unwrap(), None);
    let Plan::Reply { bytes, .. } = plan(
        &query("instagram.com", RecordType::A, false),
        &client,
        p.identify(&client),
        false,
        &p,
        &s,
        at(&p, SCHOOL_DAY),
    ) else {
        panic!()
    };
    assert!(Message::from_vec(&bytes).unwrap().edns.is_none());

    // Quarantine says so.
    let Plan::Reply { bytes, blocked } = plan(
        &query("www.bbc.co.uk", RecordType::A, true),
        &client,
        p.identify(&client),
        true,
        &p,
        &s,
        at(&p, "2026-11-28T10:00"),
    ) else {
        panic!()
    };
    assert!(blocked.unwrap().quarantined);
    let (_, text) = ede_of(&Message::from_vec(&bytes).unwrap()).unwrap();
    assert!(text.contains("quarantined"), "{text}");
}

#[test]
fn the_decision_engine_decides() {
    let p = policy();
    let s = settings(&p);
    // Pupils: blocked in the school day, allowed after.
    assert!(!forwards(
        &p,
        &s,
        PUPIL,
        "www.instagram.com",
        RecordType::A,
        SCHOOL_DAY
    ));
    assert!(forwards(
        &p,
        &s,
        PUPIL,
        "www.instagram.com",
        RecordType::A,
        "2026-11-24T16:00"
    ));
    // A school computer known by its MAC: blocked on a Saturday night.
    let (_, blocked) = reply(
        &p,
        &s,
        "10.10.9.9",
        Some("52:54:00:12:34:56"),
        "www.tiktok.com",
        RecordType::A,
        "2026-11-28T22:00",
    );
    assert!(blocked);
    // Staff: blocked in a lesson, allowed at break.
    assert!(!forwards(
        &p,
        &s,
        STAFF,
        "www.instagram.com",
        RecordType::A,
        "2026-11-24T09:00"
    ));
    assert!(forwards(
        &p,
        &s,
        STAFF,
        "www.instagram.com",
        RecordType::A,
        "2026-11-24T10:30"
    ));
    // The exception (www.youtube.com itself is rewritten by safe search), and the VLE.
    assert!(forwards(
        &p,
        &s,
        PUPIL,
        "i.ytimg.com",
        RecordType::A,
        "2026-11-24T13:30"
    ));
    assert!(!forwards(
        &p,
        &s,
        PUPIL,
        "i.ytimg.com",
        RecordType::A,
        "2026-11-24T14:00"
    ));
    assert!(forwards(
        &p,
        &s,
        PUPIL,
        "www.dbprimary.com",
        RecordType::A,
        SCHOOL_DAY
    ));
}

#[test]
fn built_in_defences() {
    let p = policy();
    let s = settings(&p);
    for ip in [PUPIL, STAFF] {
        for (name, code) in [
            ("use-application-dns.net", ResponseCode::NXDomain),
            ("mask.icloud.com", ResponseCode::NXDomain),
            ("mask-h2.icloud.com", ResponseCode::NXDomain),
            ("_dns.resolver.arpa", ResponseCode::NoError),
        ] {
            let (m, blocked) = reply(&p, &s, ip, None, name, RecordType::A, "2026-11-28T10:00");
            assert_eq!(m.metadata.response_code, code, "{name} for {ip}");
            assert!(m.answers.is_empty() && !blocked, "{name}");
        }
    }
    let (m, _) = reply(
        &p,
        &s,
        PUPIL,
        None,
        "_dns.resolver.arpa",
        RecordType::SVCB,
        SCHOOL_DAY,
    );
    assert!(m.answers.is_empty());
    // Each can be switched off, and then the name is resolved as any other.
    let off = Settings {
        defences: Defences {
            firefox_canary: false,
            private_relay: false,
            ddr: false,
            strip_ech: false,
        },
        ..s
    };
    for name in [
        "use-application-dns.net",
        "mask.icloud.com",
        "mask-h2.icloud.com",
        "_dns.resolver.arpa",
    ] {
        assert!(
            forwards(&p, &off, PUPIL, name, RecordType::A, "2026-11-28T10:00"),
            "{name}"
        );
    }
    // Near misses are not the defences.
    assert!(forwards(
        &p,
        &s,
        PUPIL,
        "www.use-application-dns.net",
        RecordType::A,
        "2026-11-28T10:00"
    ));
}

#[test]
fn safe_search_for_groups_that_ask_for_it() {
    let p = policy();
    let s = settings(&p);
    let client = Client::new(PUPIL.parse().unwrap(), None);
    let cases = [
        ("www.google.com", "forcesafesearch.google.com."),
        ("google.co.uk", "forcesafesearch.google.com."),
        ("www.bing.com", "strict.bing.com."),
        ("duckduckgo.com", "safe.duckduckgo.com."),
        ("www.youtube.com", "restrict.youtube.com."),
    ];
    // In the YouTube lesson (so YouTube is not blocked), pupils get the restricted forms.
    for (name, target) in cases {
        match ask(&p, &s, &client, name, RecordType::A, "2026-11-24T13:30") {
            Plan::Rewrite { target: t, .. } => assert_eq!(t.to_ascii(), target, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // HTTPS records for a rewritten name are withheld; staff are not rewritten.
    let (m, _) = reply(
        &p,
        &s,
        PUPIL,
        None,
        "www.google.com",
        RecordType::HTTPS,
        SCHOOL_DAY,
    );
    assert!(m.answers.is_empty());
    assert!(forwards(
        &p,
        &s,
        STAFF,
        "www.google.com",
        RecordType::A,
        SCHOOL_DAY
    ));
    assert!(forwards(
        &p,
        &s,
        PUPIL,
        "mail.google.com",
        RecordType::A,
        SCHOOL_DAY
    ));
}

#[test]
fn ech_is_stripped_for_filtered_groups() {
    let p = policy();
    let s = settings(&p);
    let client = Client::new(PUPIL.parse().unwrap(), None);
    let strip = |s: &Settings, qtype| match ask(&p, s, &client, "www.bbc.co.uk", qtype, SCHOOL_DAY)
    {
        Plan::Forward { strip_ech, .. } => strip_ech,
        other => panic!("{other:?}"),
    };
    assert!(strip(&s, RecordType::HTTPS));
    assert!(strip(&s, RecordType::SVCB));
    assert!(!strip(&s, RecordType::A));
    let keep = Settings {
        defences: Defences {
            strip_ech: false,
            ..s.defences
        },
        ..s
    };
    assert!(!strip(&keep, RecordType::HTTPS));

    // And the answer comes back without `ech`, other parameters kept.
    let name = Name::from_ascii("www.bbc.co.uk.").unwrap();
    let params = vec![
        (
            SvcParamKey::Alpn,
            SvcParamValue::Alpn(Alpn(vec!["h2".into()])),
        ),
        (
            SvcParamKey::EchConfigList,
            SvcParamValue::EchConfigList(hickory_proto::rr::rdata::svcb::EchConfigList(vec![
                1, 2, 3,
            ])),
        ),
    ];
    let record = Record::from_rdata(
        name.clone(),
        300,
        RData::HTTPS(HTTPS(SVCB::new(1, Name::root(), params))),
    );
    let mut stripped = record.clone();
    remove_ech(&mut stripped);
    let RData::HTTPS(h) = &stripped.data else {
        panic!()
    };
    assert_eq!(h.0.svc_params.len(), 1);
    assert_eq!(h.0.svc_params[0].0, SvcParamKey::Alpn);
    let Plan::Forward { request, .. } = ask(
        &p,
        &s,
        &client,
        "www.bbc.co.uk",
        RecordType::HTTPS,
        SCHOOL_DAY,
    ) else {
        panic!()
    };
    let m = answer(&request, ResponseCode::NoError, vec![record], true);
    let RData::HTTPS(h) = &m.answers[0].data else {
        panic!()
    };
    assert!(
        h.0.svc_params
            .iter()
            .all(|(k, _)| *k != SvcParamKey::EchConfigList)
    );
}

#[test]
fn outsiders_are_refused() {
    let p = policy();
    let s = settings(&p);
    let (m, _) = reply(
        &p,
        &s,
        "192.0.2.1",
        None,
        "www.bbc.co.uk",
        RecordType::A,
        SCHOOL_DAY,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let (m, _) = reply(
        &p,
        &s,
        "2001:db8::1",
        None,
        "www.bbc.co.uk",
        RecordType::A,
        SCHOOL_DAY,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn malformed_requests_get_formerr_or_nothing() {
    let p = policy();
    let s = settings(&p);
    let client = Client::new(PUPIL.parse().unwrap(), None);
    let now = at(&p, SCHOOL_DAY);
    let run = |bytes: &[u8]| plan(bytes, &client, p.identify(&client), false, &p, &s, now);
    let code = |plan: Plan| match plan {
        Plan::Reply { bytes, .. } => {
            Some(Message::from_vec(&bytes).unwrap().metadata.response_code)
        }
        Plan::Drop => None,
        other => panic!("{other:?}"),
    };
    // Too short for a header: nothing.
    assert_eq!(code(run(&[])), None);
    assert_eq!(code(run(&[0x12, 0x34, 0x01])), None);
    // A header announcing a question that is not there.
    let header = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    assert_eq!(code(run(&header)), Some(ResponseCode::FormErr));
    // A label longer than the packet, and a label length over 63.
    let mut long_label = header.to_vec();
    long_label.extend_from_slice(&[40, b'a', b'b']);
    assert_eq!(code(run(&long_label)), Some(ResponseCode::FormErr));
    let mut bad_len = header.to_vec();
    bad_len.extend_from_slice(&[64]);
    bad_len.extend(std::iter::repeat_n(b'a', 64));
    bad_len.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(code(run(&bad_len)), Some(ResponseCode::FormErr));
    // A compression pointer to itself.
    let mut looped = header.to_vec();
    looped.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    assert_eq!(code(run(&looped)), Some(ResponseCode::FormErr));
    // Huge counts with no records behind them.
    let huge = [
        0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert_eq!(code(run(&huge)), Some(ResponseCode::FormErr));
    // A response is not answered.
    let mut response = query("www.bbc.co.uk", RecordType::A, false);
    response[2] |= 0x80;
    assert_eq!(code(run(&response)), None);
    // Two questions: FORMERR. An UPDATE: NOTIMP. CHAOS class: REFUSED.
    let mut two = Message::query();
    two.add_query(Query::query(
        Name::from_ascii("a.example.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("b.example.").unwrap(),
        RecordType::A,
    ));
    assert_eq!(
        code(run(&two.to_vec().unwrap())),
        Some(ResponseCode::FormErr)
    );
    let mut update = Message::new(7, hickory_proto::op::MessageType::Query, OpCode::Update);
    update.add_query(Query::query(
        Name::from_ascii("a.example.").unwrap(),
        RecordType::SOA,
    ));
    assert_eq!(
        code(run(&update.to_vec().unwrap())),
        Some(ResponseCode::NotImp)
    );
    let mut chaos = Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
    chaos.set_query_class(DNSClass::CH);
    let mut m = Message::query();
    m.add_query(chaos);
    assert_eq!(code(run(&m.to_vec().unwrap())), Some(ResponseCode::Refused));
    // Random bytes never panic.
    let mut x: u32 = 1;
    for len in 0..600usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let _ = run(&bytes);
    }
}
