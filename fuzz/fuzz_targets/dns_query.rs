//! The resolver's fast query reader on arbitrary bytes, checked against hickory-proto.
//! Whatever `read_query` accepts is answered from the cache without hickory ever seeing
//! it, so it must be a name the cache can key on, its question must be the bytes
//! `question_len` measures, and hickory must read the same message the same way: same
//! name (up to letter case), type, class, id and EDNS, and the same cache key the full
//! path would build.
#![no_main]

use aiwarden::detect::dns::query::{question_len, read_query};
use hickory_proto::op::{Message, MessageType, OpCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; 256];
    let Some(w) = read_query(data, &mut buf) else {
        return;
    };
    let name = w.name;
    assert!(name.len() <= 253, "{name:?}");
    assert!(
        name.bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.')),
        "{name:?}"
    );
    if !name.is_empty() {
        assert!(
            name.split('.').all(|l| !l.is_empty() && l.len() <= 63),
            "{name:?}"
        );
    }
    let qlen = question_len(data).expect("question_len reads what read_query read");
    assert_eq!(w.question, &data[12..12 + qlen]);

    let msg = match Message::from_vec(data) {
        Ok(m) => m,
        Err(e) => panic!("hickory refuses a query the fast reader accepts: {e}"),
    };
    let m = &msg.metadata;
    assert_eq!(m.id, w.id);
    assert_eq!(m.message_type, MessageType::Query);
    assert_eq!(m.op_code, OpCode::Query);
    assert_eq!(m.recursion_desired, w.flags[0] & 0x01 != 0);
    assert_eq!(m.checking_disabled, w.flags[1] & 0x10 != 0);
    assert_eq!(msg.queries.len(), 1);
    assert!(msg.answers.is_empty() && msg.authorities.is_empty() && msg.additionals.is_empty());
    let q = &msg.queries[0];
    let labels: Vec<&[u8]> = q.name().iter().collect();
    let joined = labels.join(&b'.');
    assert!(
        joined.eq_ignore_ascii_case(name.as_bytes()),
        "hickory {joined:?}, fast {name:?}"
    );
    assert_eq!(u16::from(q.query_type()), w.qtype);
    assert_eq!(u16::from(q.query_class()), w.qclass);
    assert_eq!(msg.edns.is_some(), w.edns);
    assert_eq!(
        msg.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        w.dnssec_ok
    );
    if w.edns {
        assert_eq!(usize::from(msg.max_payload()), w.max_payload);
    }
    // The full path's cache key (dns_server's `Resolver::parse`): the hot path can only
    // serve what the full path stored under the same key.
    let key = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    assert_eq!(key, name);
});
