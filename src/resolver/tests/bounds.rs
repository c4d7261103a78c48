//! The resolver's bounds, each pushed past its limit on loopback: a client's rate,
//! questions in flight upstream (and identical ones joined), the cache's bytes, answers
//! larger than any UDP buffer, TCP connections in all and per client, and a TCP question
//! that announces more than it sends.

use std::time::{Duration, Instant};

use hickory_proto::rr::rdata::TXT;

use super::*;

/// An upstream that answers every TXT question with `size` bytes of text after `delay`,
/// over UDP only (whatever the asker's EDNS size: a misbehaving server), and counts
/// questions. `size` 0: never answers.
async fn odd_upstream(size: usize, delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
    let addr = udp.local_addr().expect("addr");
    let asked = Arc::new(AtomicUsize::new(0));
    let n = asked.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((len, peer)) = udp.recv_from(&mut buf).await {
            n.fetch_add(1, Ordering::SeqCst);
            if size == 0 {
                continue;
            }
            let q = Message::from_vec(&buf[..len]).expect("query");
            let udp = udp.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut r = Message::response(q.metadata.id, OpCode::Query);
                r.queries = q.queries.clone();
                let name = q.queries[0].name().clone();
                // Strings of 250 bytes up to `size`.
                let chunk = "x".repeat(250);
                let strings: Vec<String> = (0..size / 250).map(|_| chunk.clone()).collect();
                r.answers
                    .push(Record::from_rdata(name, 300, RData::TXT(TXT::new(strings))));
                let _ = udp.send_to(&r.to_vec().expect("encode"), peer).await;
            });
        }
    });
    (addr, asked)
}

/// Serves `r` on a fresh loopback UDP socket from a thread; stop with the flag.
fn serve_udp(
    r: &Arc<Resolver>,
    udp: std::net::UdpSocket,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (me, rt, flag) = (r.clone(), tokio::runtime::Handle::current(), stop.clone());
    let t = std::thread::spawn(move || me.serve_udp(udp, rt, flag));
    (stop, t)
}

async fn stop_udp(stop: Arc<std::sync::atomic::AtomicBool>, t: std::thread::JoinHandle<()>) {
    stop.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || t.join().expect("udp thread"))
        .await
        .expect("joined");
}

fn limited(r: &Resolver, limit: &str) -> u64 {
    r.metrics.dns_limited.with_label_values(&[limit]).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_is_dropped_and_counted() {
    let up = upstream().await;
    let mut cfg = config(up.addr);
    cfg.rate_limit = 10;
    cfg.rate_burst = 20;
    let (r, _) = resolver(cfg, Mode::Enforce);
    let sockets = bind(&["127.0.0.1:0".parse().expect("addr")])
        .await
        .expect("bind");
    let (udp, _tcp) = sockets.into_iter().next().expect("one");
    let addr = udp.local_addr().expect("addr");
    let (stop, t) = serve_udp(&r, udp);
    let c = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for id in 0..100u16 {
        c.send_to(&query("allowed.example.", RecordType::A, id, false), addr)
            .await
            .expect("send");
    }
    let mut answered = 0;
    let mut buf = [0u8; 1500];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(500), c.recv_from(&mut buf)).await
    {
        answered += 1;
    }
    // The burst of 20 (a token or two more may have come back while they were sent).
    assert!((20..=25).contains(&answered), "answered {answered}");
    assert_eq!(limited(&r, "client_rate"), 100 - answered);
    stop_udp(stop, t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_upstream_slot() {
    // An upstream that never answers, 8 slots in all, 3 for each client: a client asking
    // 6 slow names gets 3 refused at once, and another client's question still goes up.
    let (silent, _) = odd_upstream(0, Duration::ZERO).await;
    let mut cfg = config(silent);
    cfg.max_upstream_inflight = 8;
    cfg.max_upstream_per_client = 3;
    cfg.timeout_ms = 400;
    let (r, _) = resolver(cfg, Mode::Enforce);
    let from = |client: &'static str, name: String| {
        let r = r.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let m = ask_from(&r, client, &name, RecordType::A).await;
            (m.metadata.response_code, t.elapsed())
        })
    };
    let greedy: Vec<_> = (0..6)
        .map(|i| from("10.0.0.66:5353", format!("g{i}.example.")))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let other = from("10.0.0.67:5353", "other.example.".into());
    let mut at_once = 0;
    for g in greedy {
        let (code, took) = g.await.expect("task");
        assert_eq!(code, ResponseCode::ServFail);
        if took < Duration::from_millis(200) {
            at_once += 1;
        }
    }
    assert_eq!(at_once, 3, "3 of the greedy client's 6 refused at once");
    assert_eq!(limited(&r, "upstream_per_client"), 3);
    let (_, took) = other.await.expect("task");
    assert!(
        took >= Duration::from_millis(300),
        "the other client's question went upstream and waited: {took:?}"
    );
    assert_eq!(limited(&r, "upstream_inflight"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_in_flight_are_bounded_and_identical_ones_asked_once() {
    // An upstream that never answers: at most 4 questions wait for it, the rest SERVFAIL
    // at once.
    let (silent, _) = odd_upstream(0, Duration::ZERO).await;
    let mut cfg = config(silent);
    cfg.max_upstream_inflight = 4;
    cfg.timeout_ms = 400;
    let (r, _) = resolver(cfg, Mode::Enforce);
    let started = Instant::now();
    let mut asks = Vec::new();
    for i in 0..10 {
        let r = r.clone();
        asks.push(tokio::spawn(async move {
            let t = Instant::now();
            let m = ask(&r, &format!("n{i}.example."), RecordType::A).await;
            (m.metadata.response_code, t.elapsed())
        }));
    }
    let mut fast = 0;
    for a in asks {
        let (code, took) = a.await.expect("task");
        assert_eq!(code, ResponseCode::ServFail);
        if took < Duration::from_millis(200) {
            fast += 1;
        }
    }
    assert_eq!(fast, 6, "6 of 10 refused at once");
    assert_eq!(limited(&r, "upstream_inflight"), 6);
    // The 4 that went up timed out: counted by reason (and logged at warn, throttled).
    assert_eq!(
        r.metrics
            .dns_upstream_failures
            .with_label_values(&["timeout"])
            .get(),
        4
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        r.metrics.dns_upstream_inflight.get(),
        0,
        "every permit returned"
    );

    // A slow upstream asked the same question by 20 clients at once: asked once.
    let (slow, asked) = odd_upstream(500, Duration::from_millis(200)).await;
    let (r, _) = resolver(config(slow), Mode::Enforce);
    let mut asks = Vec::new();
    for _ in 0..20 {
        let r = r.clone();
        asks.push(tokio::spawn(async move {
            ask(&r, "same.example.", RecordType::TXT)
                .await
                .metadata
                .response_code
        }));
    }
    for a in asks {
        assert_eq!(a.await.expect("task"), ResponseCode::NoError);
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert_eq!(r.metrics.dns_coalesced.get(), 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_answers_are_read_whole_and_the_cache_keeps_to_its_bytes() {
    // 60 KB answers over UDP, far beyond the 1,232 bytes asked for: read whole, answered
    // (over TCP to our client, as they exceed its UDP size), cached within 1 MiB.
    let (big, asked) = odd_upstream(60_000, Duration::ZERO).await;
    let mut cfg = config(big);
    cfg.cache_mib = 1;
    let (r, _) = resolver(cfg, Mode::Enforce);
    for i in 0..40 {
        let bytes = r
            .handle(
                &query(&format!("big{i}.example."), RecordType::TXT, 7, true),
                CLIENT.parse().expect("addr"),
                SERVER.parse().expect("addr"),
                false,
            )
            .await
            .expect("reply");
        let m = Message::from_vec(&bytes).expect("parses");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "big{i}");
        assert!(bytes.len() > 60_000);
    }
    assert_eq!(asked.load(Ordering::SeqCst), 40);
    let (bytes, entries) = r.cache.lock().expect("cache").size();
    assert!(bytes <= 1 << 20, "{bytes} bytes");
    assert!(entries >= 4, "{entries} entries");
    assert!(r.metrics.dns_cache_evictions.get() >= 30);
    assert_eq!(
        r.metrics.dns_cache.with_label_values(&["bytes"]).get(),
        bytes as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_connections_make_room_and_a_trickled_question_is_dropped() {
    let up = upstream().await;
    let mut cfg = config(up.addr);
    cfg.max_tcp_clients = 8;
    cfg.max_tcp_per_client = 4;
    cfg.tcp_idle_secs = 1;
    let (r, _) = resolver(cfg, Mode::Enforce);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(r.clone().serve_tcp(listener, rx));
    // 50 connections that say nothing, then a real question: answered.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let raw = tokio::time::timeout(
        Duration::from_secs(2),
        stream_round_trip(&mut s, &query("allowed.example.", RecordType::A, 3, false)),
    )
    .await
    .expect("in time")
    .expect("answered");
    assert_eq!(Message::from_vec(&raw).expect("parses").metadata.id, 3);
    assert!(limited(&r, "tcp_evicted_idle") >= 46);
    assert!(r.metrics.dns_tcp_connections.get() <= 4);
    // A question announced as 65,535 bytes and trickled: closed at the idle limit.
    let mut t = TcpStream::connect(addr).await.expect("connect");
    t.write_all(&[0xff, 0xff, 0, 1, 2]).await.expect("write");
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), t.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(3));
    let _ = stop.send(true);
    task.await.expect("stops");
}

#[test]
fn refused_answers_echo_the_question_only() {
    let q = query("chatgpt.com.", RecordType::AAAA, 0x1234, true);
    let r = Message::from_vec(&refused(&q)).expect("parses");
    assert_eq!(r.metadata.id, 0x1234);
    assert_eq!(r.metadata.message_type, MessageType::Response);
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(r.metadata.recursion_desired);
    assert_eq!(r.queries, Message::from_vec(&q).expect("q").queries);
    assert!(r.answers.is_empty() && r.additionals.is_empty() && r.edns.is_none());
    // Not a query (a response, or too short): nothing.
    let mut resp = q.clone();
    resp[2] |= 0x80;
    assert!(refused(&resp).is_empty());
    assert!(refused(&q[..5]).is_empty());
}
