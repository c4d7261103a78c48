//! The resolver against a fake upstream on loopback: blocks, canaries, forwarding, the
//! cache, ECH stripping, truncation, TCP, SERVFAIL, DNS over TLS and unblocks. Long: every
//! case shares the one fake upstream and resolver set-up at the top; the bounds have a file
//! of their own (`bounds.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::rr::rdata::svcb::{EchConfigList, SvcParamValue, SVCB};
use hickory_proto::rr::rdata::HTTPS;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::upstream::stream_round_trip;
use super::*;
use crate::policy::{RuleDirs, RuleSet};

mod bounds;

/// A fake upstream answering from a fixed table over UDP and TCP; counts questions.
struct Upstream {
    addr: SocketAddr,
    asked: Arc<AtomicUsize>,
}

fn answer_for(q: &Message) -> Message {
    let mut r = Message::response(q.metadata.id, OpCode::Query);
    r.queries = q.queries.clone();
    r.metadata.recursion_available = true;
    let query = &q.queries[0];
    let name = query.name().clone();
    match (
        name.to_ascii().to_ascii_lowercase().as_str(),
        query.query_type(),
    ) {
        ("allowed.example.", RecordType::A) => {
            r.answers.push(Record::from_rdata(
                name,
                300,
                RData::A(A::new(198, 51, 100, 7)),
            ));
        }
        ("big.example.", RecordType::A) => {
            for i in 0..60u8 {
                r.answers.push(Record::from_rdata(
                    name.clone(),
                    300,
                    RData::A(A::new(10, 1, 0, i)),
                ));
            }
        }
        (n @ ("claude.ai." | "plain.example."), RecordType::HTTPS) => {
            let _ = n;
            let svcb = SVCB::new(
                1,
                Name::root(),
                vec![
                    (
                        SvcParamKey::Alpn,
                        SvcParamValue::Alpn(hickory_proto::rr::rdata::svcb::Alpn(
                            vec!["h2".into()],
                        )),
                    ),
                    (
                        SvcParamKey::EchConfigList,
                        SvcParamValue::EchConfigList(EchConfigList(vec![0, 4, 1, 2, 3, 4])),
                    ),
                ],
            );
            r.answers
                .push(Record::from_rdata(name, 300, RData::HTTPS(HTTPS(svcb))));
        }
        ("claude.ai.", RecordType::A) => {
            r.answers.push(Record::from_rdata(
                name,
                300,
                RData::A(A::new(160, 79, 104, 10)),
            ));
        }
        ("broken.example.", _) => r.metadata.response_code = ResponseCode::ServFail,
        _ => r.metadata.response_code = ResponseCode::NXDomain,
    }
    r
}

async fn upstream() -> Upstream {
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = udp.local_addr().expect("addr");
    let tcp = TcpListener::bind(addr).await.expect("bind tcp");
    let asked = Arc::new(AtomicUsize::new(0));
    let n = asked.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((len, peer)) = udp.recv_from(&mut buf).await {
            n.fetch_add(1, Ordering::SeqCst);
            let q = Message::from_vec(&buf[..len]).expect("query");
            let mut r = answer_for(&q);
            let bytes = r.to_vec().expect("encode");
            if bytes.len() > 512 {
                r.answers.clear();
                r.metadata.truncation = true;
            }
            let _ = udp.send_to(&r.to_vec().expect("encode"), peer).await;
        }
    });
    let n = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = tcp.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            let mut len = [0u8; 2];
            c.read_exact(&mut len).await.expect("len");
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            c.read_exact(&mut q).await.expect("q");
            let r = answer_for(&Message::from_vec(&q).expect("q"))
                .to_vec()
                .expect("r");
            c.write_all(&(r.len() as u16).to_be_bytes())
                .await
                .expect("w");
            c.write_all(&r).await.expect("w");
        }
    });
    Upstream { addr, asked }
}

fn rules() -> Arc<Live> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rs = RuleSet::load_dir(&root).expect("shipped rules");
    Arc::new(Live::new(&RuleDirs::under(&root), rs))
}

fn config(up: SocketAddr) -> Dns {
    Dns {
        listen: vec![],
        upstreams: vec![crate::config::Upstream::Plain(up)],
        block_answer: BlockAnswer::Nxdomain,
        block_ttl: 60,
        strip_ech: StripEch::Ai,
        cache_size: 100,
        timeout_ms: 1_000,
        ca_file: None,
        allow_clients: Some(vec![
            "0.0.0.0/0".parse().expect("net"),
            "::/0".parse().expect("net"),
        ]),
        rate_limit: 0,
        rate_burst: 0,
        cache_mib: 32,
        max_tcp_clients: 64,
        max_tcp_per_client: 8,
        tcp_idle_secs: 10,
        max_upstream_inflight: 512,
        max_upstream_per_client: 512,
    }
}

/// One question to a plain UDP server and its answer.
async fn udp_ask(server: SocketAddr, q: &[u8]) -> Message {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    s.send_to(q, server).await.expect("send");
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(std::time::Duration::from_secs(5), s.recv_from(&mut buf))
        .await
        .expect("answered")
        .expect("recv");
    Message::from_vec(&buf[..n]).expect("parses")
}

fn resolver(cfg: Dns, mode: Mode) -> (Arc<Resolver>, std::sync::mpsc::Receiver<DnsEvent>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(100);
    let events: Events = Box::new(move |ev| {
        let _ = tx.try_send(ev);
    });
    let r = Resolver::new(
        cfg,
        mode,
        rules(),
        Arc::new(ArcSwap::from_pointee(DeviceMap::default())),
        Some(events),
        true,
        Arc::new(Metrics::new()),
    )
    .expect("resolver");
    (Arc::new(r), rx)
}

fn query(name: &str, qtype: RecordType, id: u16, edns: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if edns {
        m.edns = Some(reply_edns(false));
    }
    m.to_vec().expect("encode")
}

const CLIENT: &str = "10.0.0.22:40000";
const SERVER: &str = "10.0.0.1:53";

async fn ask(r: &Resolver, name: &str, qtype: RecordType) -> Message {
    ask_from(r, CLIENT, name, qtype).await
}

/// [`ask`] from client address `client`.
async fn ask_from(r: &Resolver, client: &str, name: &str, qtype: RecordType) -> Message {
    let bytes = r
        .handle(
            &query(name, qtype, 0x4242, true),
            client.parse().expect("addr"),
            SERVER.parse().expect("addr"),
            true,
        )
        .await
        .expect("a reply");
    let m = Message::from_vec(&bytes).expect("reply parses");
    assert_eq!(m.metadata.id, 0x4242);
    m
}

#[tokio::test]
async fn blocks_with_nxdomain_and_reports_the_client() {
    let up = upstream().await;
    let (r, events) = resolver(config(up.addr), Mode::Enforce);
    let m = ask(&r, "chatgpt.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(m.authorities[0].data, RData::SOA(_)));
    assert_eq!(
        up.asked.load(Ordering::SeqCst),
        0,
        "blocked names never go upstream"
    );
    match events.try_recv().expect("an event") {
        DnsEvent::Query { obs: o, decision } => {
            assert_eq!(o.host.as_ref().map(|h| h.as_str()), Some("chatgpt.com"));
            assert_eq!(o.client, CLIENT.parse::<SocketAddr>().expect("addr"));
            assert_eq!(o.qtype.as_deref(), Some("A"));
            assert_eq!(
                decision.verdict,
                Verdict::Block,
                "the decision acted on travels"
            );
        }
        e => panic!("unexpected {e:?}"),
    }
}

#[tokio::test]
async fn an_unblocked_name_is_forwarded_for_that_device_only() {
    use crate::policy::pattern::Pattern;
    use crate::policy::unblock::{Device, Unblock, Unblocks};
    let up = upstream().await;
    let (r, events) = resolver(config(up.addr), Mode::Enforce);
    let table = Arc::new(ArcSwap::from_pointee(Unblocks::new(vec![Unblock {
        id: 9,
        ts: 0,
        device: Device::parse("10.0.0.22").expect("device"),
        host: Some(Pattern::parse("claude.ai").expect("pattern")),
        by: "IT".into(),
        note: "pilot".into(),
        until: i64::MAX,
    }])));
    let r = Arc::try_unwrap(r)
        .expect("one owner")
        .with_unblocks(table.clone());
    let m = ask(&r, "claude.ai.", RecordType::A).await;
    assert_eq!(m.answers[0].data, RData::A(A::new(160, 79, 104, 10)));
    assert_eq!(up.asked.load(Ordering::SeqCst), 1, "forwarded");
    match events.try_recv().expect("an event") {
        DnsEvent::Query { decision, .. } => {
            assert_eq!(decision.verdict, Verdict::Flag, "recorded, flagged");
            assert_eq!(
                decision.rule.map(|r| r.to_string()).as_deref(),
                Some("unblock:9")
            );
        }
        e => panic!("unexpected {e:?}"),
    }
    // Another device, another host: blocked as before.
    let m = ask_from(&r, "10.0.0.23:40000", "claude.ai.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(&r, "chatgpt.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(up.asked.load(Ordering::SeqCst), 1);
    // Ended: blocked again.
    table.store(Arc::new(Unblocks::default()));
    let m = ask(&r, "claude.ai.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(up.asked.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn block_address_and_monitor_mode() {
    let up = upstream().await;
    let mut cfg = config(up.addr);
    cfg.block_answer = BlockAnswer::Address("192.0.2.1".parse().expect("ip"));
    let (r, _) = resolver(cfg.clone(), Mode::Enforce);
    let m = ask(&r, "www.perplexity.ai.", RecordType::A).await;
    assert_eq!(m.answers[0].data, RData::A(A::new(192, 0, 2, 1)));
    let m = ask(&r, "www.perplexity.ai.", RecordType::AAAA).await;
    assert_eq!(m.answers[0].data, RData::AAAA(AAAA(Ipv6Addr::UNSPECIFIED)));
    // Monitor mode forwards (the upstream says NXDOMAIN for this name) and reports.
    let (r, events) = resolver(cfg, Mode::Monitor);
    let m = ask(&r, "claude.ai.", RecordType::A).await;
    assert_eq!(m.answers[0].data, RData::A(A::new(160, 79, 104, 10)));
    assert!(matches!(events.try_recv(), Ok(DnsEvent::Query { .. })));
}

#[tokio::test]
async fn canaries_get_nxdomain_in_every_mode() {
    let up = upstream().await;
    for mode in [Mode::Monitor, Mode::Enforce] {
        let (r, events) = resolver(config(up.addr), mode);
        for name in [
            "use-application-dns.net.",
            "mask.icloud.com.",
            "mask-h2.icloud.com.",
            "_dns.resolver.arpa.",
        ] {
            let m = ask(&r, name, RecordType::A).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        }
        assert!(events.try_recv().is_err(), "canaries are not incidents");
    }
    assert_eq!(up.asked.load(Ordering::SeqCst), 0);
    assert!(is_canary("use-application-dns.net"));
    assert!(!is_canary("notuse-application-dns.net"));
}

#[tokio::test]
async fn forwards_caches_and_teaches_the_detector() {
    let up = upstream().await;
    let (r, events) = resolver(config(up.addr), Mode::Enforce);
    let m = ask(&r, "allowed.example.", RecordType::A).await;
    assert_eq!(m.answers[0].data, RData::A(A::new(198, 51, 100, 7)));
    assert!(m.metadata.recursion_available);
    // The same name in other letter case, another id: from the cache, with its own question.
    let bytes = r
        .handle(
            &query("ALLOWED.example.", RecordType::A, 7, true),
            CLIENT.parse().expect("addr"),
            SERVER.parse().expect("addr"),
            true,
        )
        .await
        .expect("reply");
    let m = Message::from_vec(&bytes).expect("parses");
    assert_eq!(m.metadata.id, 7);
    assert_eq!(m.queries[0].name().to_ascii(), "ALLOWED.example.");
    assert_eq!(m.answers[0].data, RData::A(A::new(198, 51, 100, 7)));
    assert_eq!(
        up.asked.load(Ordering::SeqCst),
        1,
        "second answer came from the cache"
    );
    // The hot path answers it too; names a rule matches and unknown names never take it.
    let client: SocketAddr = CLIENT.parse().expect("addr");
    let server: SocketAddr = SERVER.parse().expect("addr");
    let mut out = Vec::new();
    assert!(r.answer_cached(
        &query("allowed.EXAMPLE.", RecordType::A, 8, true),
        client,
        &mut out
    ));
    let m = Message::from_vec(&out).expect("parses");
    assert_eq!((m.metadata.id, m.answers.len()), (8, 1));
    assert_eq!(m.queries[0].name().to_ascii(), "allowed.EXAMPLE.");
    let plain = query("allowed.example.", RecordType::A, 9, false);
    assert!(
        !r.answer_cached(&plain, client, &mut out),
        "no EDNS: another cache entry"
    );
    assert!(!r.answer_cached(
        &query("chatgpt.com.", RecordType::A, 8, true),
        client,
        &mut out
    ));
    assert!(!r.answer_cached(
        &query("other.example.", RecordType::A, 8, true),
        client,
        &mut out
    ));
    // Without EDNS (as dnsperf asks): the first ask fills the cache, the next is hot.
    r.handle(&plain, client, server, true).await.expect("reply");
    assert!(
        r.answer_cached(&plain, client, &mut out),
        "hot path without EDNS"
    );
    // Every answer served, from upstream or cache, hot path or not, teaches the detector.
    let learned: Vec<_> = events.try_iter().collect();
    assert_eq!(learned.len(), 5);
    assert!(matches!(&learned[0], DnsEvent::Answer { host, addrs, .. }
        if host.as_str() == "allowed.example" && addrs == &vec!["198.51.100.7".parse::<IpAddr>().expect("ip")]));
    // A name the upstream says does not exist: NXDOMAIN passed through.
    let m = ask(&r, "nothing.example.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn strips_ech_from_ai_hosts_only() {
    let up = upstream().await;
    let (r, _) = resolver(config(up.addr), Mode::Monitor);
    let ech = |m: &Message| {
        m.answers.iter().any(|rec| match &rec.data {
            RData::HTTPS(h) => {
                h.0.svc_params
                    .iter()
                    .any(|(k, _)| *k == SvcParamKey::EchConfigList)
            }
            _ => false,
        })
    };
    let m = ask(&r, "claude.ai.", RecordType::HTTPS).await;
    assert!(!m.answers.is_empty());
    assert!(!ech(&m), "ech removed for an AI host");
    assert!(
        matches!(&m.answers[0].data, RData::HTTPS(h) if h.0.svc_params.iter().any(|(k, _)| *k == SvcParamKey::Alpn)),
        "other parameters kept"
    );
    let m = ask(&r, "plain.example.", RecordType::HTTPS).await;
    assert!(ech(&m), "kept for hosts no rule matches (strip_ech = ai)");
    let mut cfg = config(up.addr);
    cfg.strip_ech = StripEch::All;
    let (r, _) = resolver(cfg, Mode::Monitor);
    assert!(!ech(&ask(&r, "plain.example.", RecordType::HTTPS).await));
}

#[tokio::test]
async fn truncates_for_udp_and_answers_whole_over_tcp() {
    let up = upstream().await;
    let (r, _) = resolver(config(up.addr), Mode::Enforce);
    // The upstream truncates over UDP; the resolver retries over TCP and gets all 60.
    let client: SocketAddr = CLIENT.parse().expect("addr");
    let server: SocketAddr = SERVER.parse().expect("addr");
    let bytes = r
        .handle(
            &query("big.example.", RecordType::A, 1, false),
            client,
            server,
            true,
        )
        .await
        .expect("reply");
    let m = Message::from_vec(&bytes).expect("parses");
    assert!(m.metadata.truncation, "no EDNS: 512 bytes is the limit");
    let bytes = r
        .handle(
            &query("big.example.", RecordType::A, 2, false),
            client,
            server,
            false,
        )
        .await
        .expect("reply");
    let m = Message::from_vec(&bytes).expect("parses");
    assert_eq!(m.answers.len(), 60);
}

#[tokio::test]
async fn servfail_formerr_and_refused() {
    let (r, _) = resolver(config("127.0.0.1:9".parse().expect("addr")), Mode::Enforce);
    let mut cfg = config("127.0.0.1:9".parse().expect("addr"));
    cfg.timeout_ms = 200;
    let (r2, _) = resolver(cfg, Mode::Enforce);
    let m = ask(&r2, "allowed.example.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let client: SocketAddr = CLIENT.parse().expect("addr");
    let server: SocketAddr = SERVER.parse().expect("addr");
    let garbage = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
    let m = Message::from_vec(
        &r.handle(&garbage, client, server, true)
            .await
            .expect("reply"),
    )
    .expect("parses");
    assert_eq!(
        (m.metadata.id, m.metadata.response_code),
        (0x1234, ResponseCode::FormErr)
    );
    let m = Message::from_vec(
        &r.handle(
            &query("x.example.", RecordType::ANY, 5, false),
            client,
            server,
            true,
        )
        .await
        .expect("reply"),
    )
    .expect("parses");
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(r.handle(&[1, 2, 3], client, server, true).await.is_none());
}

#[tokio::test]
async fn udp_and_tcp_sockets_serve() {
    let up = upstream().await;
    let (r, _) = resolver(config(up.addr), Mode::Enforce);
    let sockets = bind(&["127.0.0.1:0".parse().expect("addr")])
        .await
        .expect("bind");
    let (udp, tcp) = sockets.into_iter().next().expect("one");
    let addr = udp.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let stop_udp = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t1 = {
        let (me, rt, stop) = (
            r.clone(),
            tokio::runtime::Handle::current(),
            stop_udp.clone(),
        );
        std::thread::spawn(move || me.serve_udp(udp, rt, stop))
    };
    let t2 = tokio::spawn(r.clone().serve_tcp(tcp, rx));
    let c = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    c.send_to(&query("chatgpt.com.", RecordType::A, 9, false), addr)
        .await
        .expect("send");
    let mut buf = [0u8; 1500];
    let (n, _) = c.recv_from(&mut buf).await.expect("recv");
    assert_eq!(
        Message::from_vec(&buf[..n])
            .expect("parses")
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    // The hot path: the second and third UDP asks come from the cache without a parse, with
    // their own id and letter case.
    for (id, name) in [
        (11, "allowed.example."),
        (12, "Allowed.Example."),
        (13, "ALLOWED.EXAMPLE."),
    ] {
        c.send_to(&query(name, RecordType::A, id, true), addr)
            .await
            .expect("send");
        let (n, _) = c.recv_from(&mut buf).await.expect("recv");
        let m = Message::from_vec(&buf[..n]).expect("parses");
        assert_eq!(m.metadata.id, id);
        assert_eq!(m.queries[0].name().to_ascii(), name);
        assert_eq!(m.answers[0].data, RData::A(A::new(198, 51, 100, 7)));
        assert!(m.edns.is_some());
    }
    assert_eq!(up.asked.load(Ordering::SeqCst), 1);
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let q = query("allowed.example.", RecordType::A, 10, false);
    let m = Message::from_vec(&stream_round_trip(&mut s, &q).await.expect("tcp answer"))
        .expect("parses");
    assert_eq!(m.answers[0].data, RData::A(A::new(198, 51, 100, 7)));
    let _ = stop.send(true);
    stop_udp.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || t1.join().expect("udp thread"))
        .await
        .expect("joined");
    t2.await.expect("tcp task");
}

/// Queries that arrive together are received and answered in batches: every answer
/// reaches the peer that asked, with its id, over IPv4 and IPv6, whichever path it took
/// (refused by a rule, forwarded, from the cache).
#[tokio::test]
async fn batched_udp_answers_reach_every_peer() {
    let up = upstream().await;
    let (r, _) = resolver(config(up.addr), Mode::Enforce);
    for listen in ["127.0.0.1:0", "[::1]:0"] {
        let Ok(sockets) = bind(&[listen.parse().expect("addr")]).await else {
            println!("skipped {listen}: no such loopback address here");
            continue;
        };
        let (udp, _tcp) = sockets.into_iter().next().expect("one");
        let addr = udp.local_addr().expect("addr");
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(
                UdpSocket::bind(SocketAddr::new(addr.ip(), 0))
                    .await
                    .expect("bind"),
            );
        }
        let name = |id: u16| {
            if id % 3 == 0 {
                "chatgpt.com."
            } else {
                "allowed.example."
            }
        };
        // 20 queries from each of 4 clients: 80, more than two batches.
        let burst = |first: u16| {
            let clients = &clients;
            async move {
                for i in 0..20u16 {
                    for (c, sock) in clients.iter().enumerate() {
                        let id = first + i * 4 + c as u16;
                        sock.send_to(&query(name(id), RecordType::A, id, false), addr)
                            .await
                            .expect("send");
                    }
                }
            }
        };
        let answers = |first: u16| {
            let clients = &clients;
            async move {
                for (c, sock) in clients.iter().enumerate() {
                    let mut ids = Vec::new();
                    let mut buf = [0u8; 1500];
                    for _ in 0..20 {
                        let (n, _) = tokio::time::timeout(
                            std::time::Duration::from_secs(5),
                            sock.recv_from(&mut buf),
                        )
                        .await
                        .expect("every query answered")
                        .expect("recv");
                        let m = Message::from_vec(&buf[..n]).expect("parses");
                        let id = m.metadata.id;
                        assert_eq!(usize::from(id - first) % 4, c, "{listen}: another's answer");
                        assert_eq!(m.queries[0].name().to_ascii(), name(id));
                        let want = if name(id) == "chatgpt.com." {
                            ResponseCode::NXDomain
                        } else {
                            ResponseCode::NoError
                        };
                        assert_eq!(m.metadata.response_code, want, "{listen} id {id}");
                        ids.push(id);
                    }
                    ids.sort_unstable();
                    ids.dedup();
                    assert_eq!(ids.len(), 20, "{listen}: client {c} got {ids:?}");
                }
            }
        };
        // The first burst waits in the socket before the thread starts: one batch takes
        // many. Then a second burst, answered from the cache.
        burst(1000).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let t = {
            let (me, rt, stop) = (r.clone(), tokio::runtime::Handle::current(), stop.clone());
            std::thread::spawn(move || me.serve_udp(udp, rt, stop))
        };
        answers(1000).await;
        burst(2000).await;
        answers(2000).await;
        stop.store(true, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || t.join().expect("udp thread"))
            .await
            .expect("joined");
    }
}

#[tokio::test]
async fn forwards_over_tls() {
    // A DNS-over-TLS upstream on loopback with a certificate for dns.test.
    let up = upstream().await;
    let cert = rcgen::generate_simple_self_signed(vec!["dns.test".to_string()]).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca: PathBuf = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).expect("write");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let server_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tls_addr = listener.local_addr().expect("addr");
    let plain = up.addr;
    let connections = Arc::new(AtomicUsize::new(0));
    let opened = connections.clone();
    tokio::spawn(async move {
        while let Ok((c, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            opened.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(c).await else {
                    return;
                };
                // Many questions per connection, answered in turn.
                loop {
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    s.read_exact(&mut q).await.expect("q");
                    // Relay to the plain fake, to answer from the same table.
                    let r = udp_ask(plain, &q).await.to_vec().expect("r");
                    s.write_all(&(r.len() as u16).to_be_bytes())
                        .await
                        .expect("w");
                    s.write_all(&r).await.expect("w");
                    s.flush().await.expect("flush");
                }
            });
        }
    });
    let mut cfg = config(up.addr);
    cfg.upstreams = vec![crate::config::Upstream::Tls {
        addr: tls_addr,
        name: "dns.test".into(),
    }];
    cfg.ca_file = Some(ca.clone());
    let (r, _) = resolver(cfg.clone(), Mode::Enforce);
    let m = ask(&r, "allowed.example.", RecordType::A).await;
    assert_eq!(m.answers[0].data, RData::A(A::new(198, 51, 100, 7)));
    // The connection stays open for the next questions.
    let m = ask(&r, "allowed.example.", RecordType::AAAA).await;
    assert_ne!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one kept-open connection"
    );
    // A certificate for another name is refused: SERVFAIL, never an unverified answer.
    cfg.upstreams = vec![crate::config::Upstream::Tls {
        addr: tls_addr,
        name: "other.test".into(),
    }];
    let (r, _) = resolver(cfg, Mode::Enforce);
    let m = ask(&r, "allowed.example.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn mutated_queries_never_panic_or_go_upstream_unchecked() {
    // Flip, cut and splice bytes of real queries (100,000 variants, a fixed PRNG): every
    // one gets an answer or is dropped, none panics. The upstream is a closed port, so a
    // query that survives parsing is answered SERVFAIL rather than waiting.
    let mut cfg = config("127.0.0.1:9".parse().expect("addr"));
    cfg.timeout_ms = 1;
    let (r, _) = resolver(cfg, Mode::Enforce);
    let client: SocketAddr = CLIENT.parse().expect("addr");
    let server: SocketAddr = SERVER.parse().expect("addr");
    let seeds = [
        query("chatgpt.com.", RecordType::A, 1, true),
        query("allowed.example.", RecordType::HTTPS, 2, false),
        query("use-application-dns.net.", RecordType::AAAA, 3, true),
    ];
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for i in 0..100_000 {
        let mut q = seeds[i % seeds.len()].clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % q.len();
            match next() % 3 {
                0 => q[at] = next() as u8,
                1 => q.truncate(at),
                _ => q.insert(at, next() as u8),
            }
            if q.is_empty() {
                break;
            }
        }
        if r.answer_cached(&q, client, &mut out) {
            continue;
        }
        if let Err(up) = r.answer_now(&q, client, server, true) {
            // Parsed, so a name and a question exist: answer it as the socket loop would.
            let (asked, strip) = *up;
            let reply = r.answer_upstream(asked, strip, client, true).await;
            assert!(Message::from_vec(&reply).is_ok());
        }
    }
}
