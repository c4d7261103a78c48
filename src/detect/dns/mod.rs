//! DNS messages (parsed with hickory-proto) reduced to what detection needs: the question,
//! the addresses and aliases in the answer, and whether an HTTPS/SVCB answer offers ECH.

pub mod query;

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::{Name, RData};

use super::observation::Host;

/// One DNS message, reduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSummary {
    /// Transaction id.
    pub id: u16,
    /// QR bit: this is a response.
    pub response: bool,
    /// The first question's name (raw bytes; validated into a [`Host`] by the caller).
    pub qname: Vec<u8>,
    /// The first question's type, e.g. `A`, `HTTPS`.
    pub qtype: String,
    /// Addresses in the answer section (the end of any CNAME chain).
    pub addrs: Vec<IpAddr>,
    /// CNAME targets in the answer section, in order.
    pub cnames: Vec<Host>,
    /// An HTTPS or SVCB answer carries an `ech` SvcParam.
    pub ech: bool,
}

/// Parses a DNS message; `None` when hickory cannot decode it or it has no question.
pub fn parse(bytes: &[u8]) -> Option<DnsSummary> {
    let msg = Message::from_vec(bytes).ok()?;
    let q = msg.queries.first()?;
    let mut out = DnsSummary {
        id: msg.metadata.id,
        response: msg.metadata.message_type == MessageType::Response,
        qname: name_bytes(q.name()),
        qtype: q.query_type().to_string(),
        addrs: Vec::new(),
        cnames: Vec::new(),
        ech: false,
    };
    for rec in &msg.answers {
        match &rec.data {
            RData::A(a) => out.addrs.push(IpAddr::V4(a.0)),
            RData::AAAA(a) => out.addrs.push(IpAddr::V6(a.0)),
            RData::CNAME(c) => {
                if let Ok(h) = Host::parse(&name_bytes(&c.0)) {
                    out.cnames.push(h);
                }
            }
            RData::HTTPS(h) => out.ech |= has_ech(&h.0.svc_params),
            RData::SVCB(s) => out.ech |= has_ech(&s.svc_params),
            _ => {}
        }
    }
    Some(out)
}

fn has_ech(
    params: &[(
        hickory_proto::rr::rdata::svcb::SvcParamKey,
        hickory_proto::rr::rdata::svcb::SvcParamValue,
    )],
) -> bool {
    params
        .iter()
        .any(|(k, _)| *k == hickory_proto::rr::rdata::svcb::SvcParamKey::EchConfigList)
}

/// A name's labels joined by dots, raw (no escaping), without a trailing dot.
fn name_bytes(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(label);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::svcb::{SvcParamKey, SvcParamValue, SVCB};
    use hickory_proto::rr::rdata::{A, CNAME, HTTPS};
    use hickory_proto::rr::{Record, RecordType};

    pub(crate) fn query(name: &str, id: u16) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii(name).expect("name"),
            RecordType::A,
        ));
        m.to_vec().expect("encode")
    }

    #[test]
    fn reads_question_and_cname_chain() {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        let q = Name::from_ascii("chat.openai.com.").expect("name");
        let c = Name::from_ascii("chatgpt.com.").expect("name");
        m.add_query(Query::query(q.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(q, 60, RData::CNAME(CNAME(c.clone()))));
        m.add_answer(Record::from_rdata(c, 60, RData::A(A::new(104, 18, 32, 47))));
        let s = parse(&m.to_vec().expect("encode")).expect("parses");
        assert!(s.response);
        assert_eq!(s.qname, b"chat.openai.com");
        assert_eq!(s.qtype, "A");
        assert_eq!(s.cnames[0].as_str(), "chatgpt.com");
        assert_eq!(s.addrs, vec!["104.18.32.47".parse::<IpAddr>().expect("ip")]);
    }

    #[test]
    fn sees_ech_in_https_answers() {
        let mut m = Message::new(9, MessageType::Response, OpCode::Query);
        let q = Name::from_ascii("claude.ai.").expect("name");
        m.add_query(Query::query(q.clone(), RecordType::HTTPS));
        let svcb = SVCB::new(
            1,
            Name::root(),
            vec![(
                SvcParamKey::EchConfigList,
                SvcParamValue::EchConfigList(hickory_proto::rr::rdata::svcb::EchConfigList(vec![
                    0, 1, 2,
                ])),
            )],
        );
        m.add_answer(Record::from_rdata(q, 60, RData::HTTPS(HTTPS(svcb))));
        let s = parse(&m.to_vec().expect("encode")).expect("parses");
        assert!(s.ech);
        assert_eq!(s.qtype, "HTTPS");
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[0xff; 11]), None);
        let q = query("claude.ai", 1);
        for cut in 0..q.len() {
            let _ = parse(&q[..cut]);
        }
    }
}
