//! The resolver's fast path before any decision: the question of a request of the common
//! shape read in place (`Question::parse`), and a kept answer rendered for it
//! (`Template::render`). Both run for every cached answer; neither may allocate more than
//! the answer itself.
//!
//! `cargo bench -p schoolgate-gateway --bench question`. Figures in docs/PERFORMANCE.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use schoolgate_gateway::dns::question::Question;
use schoolgate_gateway::dns::wire::Template;

fn request(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if edns {
        m.set_edns(Edns::new());
    }
    m.to_vec().unwrap()
}

fn bench(c: &mut Criterion) {
    let requests = [
        ("short", request("bbc.co.uk.", RecordType::A, true)),
        (
            "long",
            request("scontent-lhr8-1.cdninstagram.com.", RecordType::AAAA, true),
        ),
        (
            "no_edns",
            request("www.dbprimary.com.", RecordType::HTTPS, false),
        ),
    ];
    for (what, bytes) in &requests {
        assert!(Question::parse(bytes).is_some(), "{what}");
        c.bench_function(&format!("question_parse_{what}"), |b| {
            b.iter(|| Question::parse(black_box(bytes)))
        });
    }
    let (_, req) = &requests[0];
    let mut answer = Message::from_vec(req).unwrap();
    answer.metadata.message_type = hickory_proto::op::MessageType::Response;
    for i in 0..4u8 {
        answer.add_answer(Record::from_rdata(
            Name::from_ascii("bbc.co.uk.").unwrap(),
            300,
            RData::A(A::new(151, 101, 0, i)),
        ));
    }
    let template = Template::new(answer.to_vec().unwrap()).expect("a template");
    c.bench_function("template_render_4_answers", |b| {
        b.iter(|| template.render(black_box(req), black_box(7)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
