//! Prometheus metrics of the daemon, and the small HTTP listener that serves `/metrics`
//! and `/healthz`. Labels are bounded sets (service ids, verdicts, protocols, results);
//! client addresses never become labels.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::health::{Grade, Health};
use crate::limit::{Slots, Throttle, Ticket};

/// Every metric the daemon exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Frames seen by detection.
    pub packets: IntCounter,
    /// Bytes of those frames.
    pub bytes: IntCounter,
    /// Frames lost: `kernel` (the capture ring overflowed), `interface` (the driver),
    /// `queue` (detection fell behind and capture dropped rather than wait).
    pub capture_dropped: IntCounterVec,
    /// Detections by service, verdict and protocol.
    pub detections: IntCounterVec,
    /// DNS queries by result: `forwarded`, `cached`, `blocked`, `canary`, `servfail`,
    /// `refused`, `formerr`.
    pub dns_queries: IntCounterVec,
    /// DNS answers whose `ech` parameter was removed.
    pub dns_ech_stripped: IntCounter,
    /// Incidents recorded, by verdict.
    pub incidents: IntCounterVec,
    /// Store failures by kind: `corrupt`, `vanished`, `tampered`, `head` (head file missing
    /// or forged), `readonly`, `full`, `no_directory`, `denied`, `busy`, `io`, `version`,
    /// `head_write` (the head file could not be rewritten), `spool` (the spool file could
    /// not be written), `writer_gone`, `unblocks` (the unblocks in force could not be
    /// read; the previous ones stay), `other`.
    pub store_errors: IntCounterVec,
    /// 1 while the store is being written, 0 while it is down (incidents spool).
    pub store_up: IntGauge,
    /// Operations waiting in the store writer's spool.
    pub store_spooled: IntGauge,
    /// Operations the store lost, by reason: `spool_full`, `shutdown` (not written before
    /// exit and the spool file could not be written), `invalid`.
    pub store_dropped: IntCounterVec,
    /// Attempts to open the store again after it went down.
    pub store_reopen_attempts: IntCounter,
    /// Events dropped between the resolver and detection.
    pub events_dropped: IntCounter,
    /// The rule set version in force.
    pub rules_version: IntGauge,
    /// Reloads by result (`ok`, `error`).
    pub rules_reloads: IntCounterVec,
    /// 1 when the last reload succeeded, 0 when it failed (the old rules stay in force).
    pub rules_last_reload_ok: IntGauge,
    /// Loaded rule counts: `services`, `patterns`.
    pub rules_loaded: IntGaugeVec,
    /// The signed rule bundle in force (0: none, the configured catalog).
    pub bundle_version: IntGauge,
    /// Bundle polls by result (`applied`, `current`, `refused`, `unreachable`).
    pub bundle_polls: IntCounterVec,
    /// Incidents the SIEM sender delivered: in batches the receiver confirmed.
    pub syslog_sent: IntCounter,
    /// Failed attempts of the SIEM sender, by reason: `resolve`, `connect`, `tls` (the
    /// handshake, a certificate, a TLS alert), `write`, `confirm` (the receiver did not
    /// close cleanly), `store` (the store could not be read), `cursor` (the cursor file
    /// could not be read or written). Each is 0 from the start (see [`SYSLOG_FAILURES`]).
    pub syslog_failures: IntCounterVec,
    /// Incidents in the store after the SIEM sender's cursor: not delivered yet.
    pub syslog_lag: IntGauge,
    /// Chained rows the central PostgreSQL roll-up copied.
    pub rollup_rows: IntCounter,
    /// Roll-up pushes by result (`ok`, `failed`), both 0 from the start.
    pub rollup_pushes: IntCounterVec,
    /// Rows in the store after the newest row the central copy holds: not copied yet.
    pub rollup_lag: IntGauge,
    /// Frames detection skipped, by reason (`not_ip`, `fragment`, `truncated`, ...).
    pub skipped: IntCounterVec,
    /// What detection counted, by kind (`tls_client_hello`, `client_hello_without_sni`,
    /// `decrypt_failed`, `encap_vxlan`, `frag_reassembled`, ...).
    pub events: IntCounterVec,
    /// What the incident pipeline counted: `attempt`, `repeat`, `ech_grease`, `ech_hidden`,
    /// `spoofed` (a frame from another device's MAC used the address), `opens_limited`
    /// (an incident not opened: a budget was used up), `unblocked` (a block lifted by an
    /// `aiwarden unblock` in force).
    pub pipeline: IntCounterVec,
    /// Capture handles reopened after a failure.
    pub capture_restarts: IntCounter,
    /// Capture handles that failed (interface gone, driver reset).
    pub capture_failures: IntCounter,
    /// Queries and connections a limit turned away, by limit: `not_allowed` (not in
    /// `dns.allow_clients`: REFUSED), `client_rate` (over `dns.rate_limit`: dropped),
    /// `tcp_total`, `tcp_per_client`, `upstream_inflight` and `upstream_per_client`
    /// (SERVFAIL), `udp_queue_full` (dropped by the kernel: the socket's queue was
    /// full), `coalesced_waiters`,
    /// `metrics_connections`, `tcp_too_long`.
    pub dns_limited: IntCounterVec,
    /// DNS-over-TCP connections open now.
    pub dns_tcp_connections: IntGauge,
    /// Questions waiting for an upstream now.
    pub dns_upstream_inflight: IntGauge,
    /// Questions answered by joining an identical one already sent upstream.
    pub dns_coalesced: IntCounter,
    /// Bytes and entries the answer cache holds now.
    pub dns_cache: IntGaugeVec,
    /// Answer cache entries evicted to stay within `dns.cache_mib` or `dns.cache_size`.
    pub dns_cache_evictions: IntCounter,
    /// Upstream exchanges that failed, by reason (`timeout`, `error`, `mismatch`, `servfail`).
    pub dns_upstream_failures: IntCounterVec,
    /// Errors accepting connections (out of file handles, ...), by listener.
    pub accept_errors: IntCounterVec,
    /// Bytes the TCP first flights hold now (buffers and a fixed cost per flow), against
    /// the detector's first-flight budget.
    pub first_flight_bytes: IntGauge,
    /// Attempts enforcement acted on, by action: `nxdomain`, `reset`, `quic_drop`,
    /// `redirected`.
    pub enforced: IntCounterVec,
    /// What enforces, one series at 1: placement (`resolver`, `router`, `sensor`), tcp
    /// (`queue`, `queue-xt`, `reactive`, `reset`, `off`), quic (`reject`, `drop`, `off`),
    /// dns (`nxdomain`, `nxdomain+redirect`, `off`).
    pub enforcement_info: IntGaugeVec,
    /// NFQUEUE verdicts by result: `accept`, `deny`, `quic_deny`, `error`.
    pub queue_verdicts: IntCounterVec,
    /// The kernel's NFQUEUE counters for aiwarden's queue: `waiting` (packets held now),
    /// `dropped` (queue full), `user_dropped` (netlink buffer full), `passed_unjudged`
    /// (sent to the queue by its rules but never given a verdict: what fail-open let
    /// through while the queue was full, read from the rules' counters).
    pub queue_kernel: IntGaugeVec,
    /// Elements in the firewall's sets now, by set (`deny4`, `deny6`, `quic4`, `quic6`).
    pub firewall_set_elements: IntGaugeVec,
    /// Firewall changes by result (`ok`, `error`).
    pub firewall_changes: IntCounterVec,
    /// Resets a sensor injected, by result: `sent`, `error`, `no_sequence`.
    pub resets: IntCounterVec,
    /// Web console logins by result: `ok`, `failed` (wrong name or password), `limited`
    /// (refused unchecked: too many failures for the name or the address).
    pub console_logins: IntCounterVec,
}

/// Every `reason` of `aiwarden_syslog_failures_total`: each series exists from the start,
/// so a first failure shows in `rate()` and `increase()` (a series born at 1 does not).
pub const SYSLOG_FAILURES: [&str; 7] = [
    "resolve", "connect", "tls", "write", "confirm", "store", "cursor",
];

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(c.clone()));
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(g.clone()));
    g
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(c.clone()));
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = r.register(Box::new(g.clone()));
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let rules_version = IntGauge::new(
            "aiwarden_rules_version",
            "rule set version in force (1 = first load)",
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        let _ = r.register(Box::new(rules_version.clone()));
        let rules_last_reload_ok = IntGauge::new(
            "aiwarden_rules_last_reload_success",
            "1 when the last rules reload succeeded, 0 when it failed and the old rules stayed",
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        rules_last_reload_ok.set(1);
        let _ = r.register(Box::new(rules_last_reload_ok.clone()));
        let rules_loaded = IntGaugeVec::new(
            Opts::new(
                "aiwarden_rules_loaded",
                "services and patterns in the rule set in force",
            ),
            &["kind"],
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        let _ = r.register(Box::new(rules_loaded.clone()));
        let first_flight_bytes = IntGauge::new(
            "aiwarden_first_flight_bytes",
            "bytes held by TCP first flights waiting to name their host",
        )
        .unwrap_or_else(|e| panic!("metric: {e}"));
        let _ = r.register(Box::new(first_flight_bytes.clone()));
        Metrics {
            packets: counter(&r, "aiwarden_packets_total", "frames seen by detection"),
            bytes: counter(
                &r,
                "aiwarden_bytes_total",
                "bytes of frames seen by detection",
            ),
            capture_dropped: counter_vec(
                &r,
                "aiwarden_capture_dropped_total",
                "frames lost before detection, by where",
                &["where"],
            ),
            detections: counter_vec(
                &r,
                "aiwarden_detections_total",
                "AI service detections by service, verdict and protocol",
                &["service", "verdict", "proto"],
            ),
            dns_queries: counter_vec(
                &r,
                "aiwarden_dns_queries_total",
                "DNS queries answered, by result",
                &["result"],
            ),
            dns_ech_stripped: counter(
                &r,
                "aiwarden_dns_ech_stripped_total",
                "HTTPS/SVCB answers whose ech parameter was removed",
            ),
            incidents: counter_vec(
                &r,
                "aiwarden_incidents_total",
                "incidents recorded, by verdict",
                &["verdict"],
            ),
            store_errors: counter_vec(
                &r,
                "aiwarden_store_errors_total",
                "incident store failures, by kind",
                &["kind"],
            ),
            store_up: gauge(
                &r,
                "aiwarden_store_up",
                "1 while the incident store is written, 0 while incidents spool",
            ),
            store_spooled: gauge(
                &r,
                "aiwarden_store_spooled_ops",
                "operations waiting in the store writer's spool",
            ),
            store_dropped: counter_vec(
                &r,
                "aiwarden_store_dropped_ops_total",
                "store operations lost, by reason",
                &["reason"],
            ),
            store_reopen_attempts: counter(
                &r,
                "aiwarden_store_reopen_attempts_total",
                "attempts to open the incident store again after it went down",
            ),
            events_dropped: counter(
                &r,
                "aiwarden_events_dropped_total",
                "resolver events dropped because detection fell behind",
            ),
            rules_version,
            rules_reloads: counter_vec(
                &r,
                "aiwarden_rules_reloads_total",
                "rule reloads by result",
                &["result"],
            ),
            rules_last_reload_ok,
            rules_loaded,
            bundle_version: gauge(
                &r,
                "aiwarden_bundle_version",
                "version of the signed rule bundle in force (0: none)",
            ),
            bundle_polls: counter_vec(
                &r,
                "aiwarden_bundle_polls_total",
                "signed rule bundle polls by result",
                &["result"],
            ),
            syslog_sent: counter(
                &r,
                "aiwarden_syslog_sent_total",
                "incidents the siem syslog sender delivered (in batches the receiver confirmed)",
            ),
            syslog_failures: {
                let c = counter_vec(
                    &r,
                    "aiwarden_syslog_failures_total",
                    "failed attempts of the siem syslog sender, by reason",
                    &["reason"],
                );
                for reason in SYSLOG_FAILURES {
                    let _ = c.with_label_values(&[reason]);
                }
                c
            },
            syslog_lag: gauge(
                &r,
                "aiwarden_syslog_lag_rows",
                "incidents in the store after the siem syslog sender's cursor (not delivered yet)",
            ),
            rollup_rows: counter(
                &r,
                "aiwarden_rollup_rows_total",
                "chained rows copied to the central postgresql",
            ),
            rollup_pushes: {
                let c = counter_vec(
                    &r,
                    "aiwarden_rollup_pushes_total",
                    "pushes to the central postgresql by result",
                    &["result"],
                );
                for result in ["ok", "failed"] {
                    let _ = c.with_label_values(&[result]);
                }
                c
            },
            rollup_lag: gauge(
                &r,
                "aiwarden_rollup_lag_rows",
                "rows in the store after the newest row the central postgresql holds",
            ),
            skipped: counter_vec(
                &r,
                "aiwarden_skipped_total",
                "frames detection skipped, by reason",
                &["reason"],
            ),
            events: counter_vec(
                &r,
                "aiwarden_events_total",
                "what detection counted, by kind",
                &["kind"],
            ),
            pipeline: counter_vec(
                &r,
                "aiwarden_pipeline_total",
                "observations of matched services by kind: attempt, repeat (a retry within the attempt window), ech_grease, ech_hidden, spoofed, opens_limited, unblocked",
                &["kind"],
            ),
            capture_restarts: counter(
                &r,
                "aiwarden_capture_restarts_total",
                "capture handles reopened after a failure",
            ),
            capture_failures: counter(
                &r,
                "aiwarden_capture_failures_total",
                "capture handles that failed (interface gone, driver reset)",
            ),
            dns_limited: counter_vec(
                &r,
                "aiwarden_dns_limited_total",
                "queries and connections turned away by a limit, by limit",
                &["limit"],
            ),
            dns_tcp_connections: gauge(
                &r,
                "aiwarden_dns_tcp_connections",
                "DNS-over-TCP connections open now",
            ),
            dns_upstream_inflight: gauge(
                &r,
                "aiwarden_dns_upstream_inflight",
                "questions waiting for an upstream now",
            ),
            dns_coalesced: counter(
                &r,
                "aiwarden_dns_coalesced_total",
                "questions answered by joining an identical one already sent upstream",
            ),
            dns_cache: gauge_vec(
                &r,
                "aiwarden_dns_cache",
                "what the answer cache holds now: bytes, entries",
                &["what"],
            ),
            dns_cache_evictions: counter(
                &r,
                "aiwarden_dns_cache_evictions_total",
                "answer cache entries evicted to stay within its bounds",
            ),
            dns_upstream_failures: counter_vec(
                &r,
                "aiwarden_dns_upstream_failures_total",
                "upstream exchanges that failed, by reason",
                &["reason"],
            ),
            accept_errors: counter_vec(
                &r,
                "aiwarden_accept_errors_total",
                "errors accepting connections, by listener",
                &["listener"],
            ),
            first_flight_bytes,
            enforced: counter_vec(
                &r,
                "aiwarden_enforced_total",
                "attempts enforcement acted on, by action (nxdomain, reset, quic_drop, redirected)",
                &["action"],
            ),
            enforcement_info: gauge_vec(
                &r,
                "aiwarden_enforcement_info",
                "what enforces: placement, and how tcp, quic and dns are blocked (1 for the series in force)",
                &["placement", "tcp", "quic", "dns"],
            ),
            queue_verdicts: counter_vec(
                &r,
                "aiwarden_queue_verdicts_total",
                "NFQUEUE verdicts by result",
                &["result"],
            ),
            queue_kernel: gauge_vec(
                &r,
                "aiwarden_queue_kernel",
                "the kernel's counters for aiwarden's NFQUEUE: waiting, dropped, user_dropped, passed_unjudged",
                &["what"],
            ),
            firewall_set_elements: gauge_vec(
                &r,
                "aiwarden_firewall_set_elements",
                "elements in the firewall's sets now, by set",
                &["set"],
            ),
            firewall_changes: counter_vec(
                &r,
                "aiwarden_firewall_changes_total",
                "firewall changes (nft batches) by result",
                &["result"],
            ),
            resets: counter_vec(
                &r,
                "aiwarden_resets_total",
                "TCP resets a sensor injected, by result",
                &["result"],
            ),
            console_logins: counter_vec(
                &r,
                "aiwarden_console_logins_total",
                "web console logins by result (ok, failed, limited)",
                &["result"],
            ),
            registry: r,
        }
    }

    /// Adds what detection counted since `last` (the totals at the previous call), and sets
    /// the first-flight memory gauge to `now`'s.
    pub fn add_detector_stats(&self, now: &crate::detect::Stats, last: &crate::detect::Stats) {
        for (reason, n) in &now.skipped {
            let before = last.skipped.get(reason).copied().unwrap_or(0);
            if *n > before {
                self.skipped.with_label_values(&[reason]).inc_by(n - before);
            }
        }
        for (kind, n) in &now.events {
            let before = last.events.get(kind).copied().unwrap_or(0);
            if *n > before {
                self.events.with_label_values(&[kind]).inc_by(n - before);
            }
        }
        self.first_flight_bytes
            .set(i64::try_from(now.first_flight_bytes).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` is set. `/healthz`
/// answers the [`Health`] report: 200 when `ok` or `degraded`, 503 when `down`.
///
/// At most `max_connections` at once (the longest idle is closed for a newcomer: a
/// connection that never finishes its request head cannot hold a slot against a health
/// check); a request head must arrive whole within [`HEAD_TIMEOUT`] and the answer be
/// taken within [`WRITE_TIMEOUT`]. Accept errors back off and are logged once per interval.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    max_connections: usize,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Slots::new(max_connections, max_connections);
    let log = Throttle::new(Duration::from_secs(10));
    let mut backoff = Duration::ZERO;
    loop {
        if !backoff.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
        }
        let (conn, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => {
                    backoff = Duration::ZERO;
                    c
                }
                Err(e) => {
                    metrics.accept_errors.with_label_values(&["metrics"]).inc();
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    if let Some(quiet) = log.ready(Instant::now()) {
                        tracing::warn!(error = %e, not_logged = quiet, "metrics accept failed; backing off");
                    }
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        // One slot pool for everyone: the listener is on the management address, and the
        // eviction of the longest idle keeps room for a real request.
        let ticket = match slots.enter(peer.ip(), Instant::now()) {
            Ok((t, evicted)) => {
                if evicted {
                    metrics
                        .dns_limited
                        .with_label_values(&["metrics_evicted_idle"])
                        .inc();
                }
                t
            }
            Err(_) => {
                metrics
                    .dns_limited
                    .with_label_values(&["metrics_connections"])
                    .inc();
                continue;
            }
        };
        let (metrics, health, id) = (metrics.clone(), health.clone(), ticket.id());
        let task = tokio::spawn(async move {
            answer(conn, &metrics, &health, &ticket).await;
        });
        slots.set_abort(id, task.abort_handle());
    }
}

/// How long a client has to send its whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a client has to take the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

async fn answer(mut conn: TcpStream, metrics: &Metrics, health: &Health, ticket: &Ticket) {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    // Read until the end of the request head (or the buffer is full), within the deadline.
    let head = async {
        while n < buf.len() {
            match conn.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => return false,
                Ok(k) => {
                    n += k;
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        return true;
                    }
                }
            }
        }
        true
    };
    if !matches!(tokio::time::timeout(HEAD_TIMEOUT, head).await, Ok(true)) {
        return;
    }
    ticket.busy();
    let head = String::from_utf8_lossy(&buf[..n]);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, ctype, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        "/healthz" => {
            let report = health.report();
            let status = match report.grade {
                Grade::Ok | Grade::Degraded => "200 OK",
                Grade::Down => "503 Service Unavailable",
            };
            (status, "text/plain", report.to_string())
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        let _ = conn.write_all(resp.as_bytes()).await;
        let _ = conn.shutdown().await;
    })
    .await;
}

/// Binds the metrics address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    crate::limit::listen(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_metrics_and_health() {
        let m = Arc::new(Metrics::new());
        m.dns_queries.with_label_values(&["blocked"]).inc();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let health = Arc::new(Health::new());
        health.set("resolver", crate::health::State::Ok);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve(listener, m.clone(), health.clone(), 8, rx));
        let get = |path: &'static str| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
            c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut s = String::new();
            c.read_to_string(&mut s).await.expect("read");
            s
        };
        let body = get("/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(
            body.contains("aiwarden_dns_queries_total{result=\"blocked\"} 1"),
            "{body}"
        );
        assert!(get("/healthz")
            .await
            .ends_with("\r\n\r\nok\nresolver: ok\n"));
        health.set("store", crate::health::State::Down("disk full".into()));
        let degraded = get("/healthz").await;
        assert!(degraded.starts_with("HTTP/1.1 200"), "{degraded}");
        assert!(degraded.contains("degraded\n"), "{degraded}");
        health.set("resolver", crate::health::State::Down("gone".into()));
        assert!(get("/healthz").await.starts_with("HTTP/1.1 503"));
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        let _ = tx.send(true);
        task.await.expect("stops");
    }

    #[tokio::test]
    async fn idle_connections_cannot_lock_out_a_health_check() {
        let m = Arc::new(Metrics::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let health = Arc::new(Health::new());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve(listener, m.clone(), health, 8, rx));
        // 50 connections that send half a request head and stall.
        let mut idle = Vec::new();
        for _ in 0..50 {
            let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
            c.write_all(b"GET /metrics HTTP/1.1\r\n")
                .await
                .expect("write");
            idle.push(c);
        }
        for _ in 0..5 {
            let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
            c.write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
                .await
                .expect("write");
            let mut s = String::new();
            tokio::time::timeout(Duration::from_secs(2), c.read_to_string(&mut s))
                .await
                .expect("answered while 50 idle connections wait")
                .expect("read");
            assert!(s.starts_with("HTTP/1.1 200 OK"), "{s}");
        }
        let evicted = m
            .dns_limited
            .with_label_values(&["metrics_evicted_idle"])
            .get();
        assert!(evicted >= 42, "evicted {evicted}");
        let _ = tx.send(true);
        task.await.expect("stops");
    }
}
