//! The file-handle budget: every bounded pool of sockets is sized below the process's
//! open-file limit, so a flood that fills every pool still leaves handles for the store,
//! the capture rings, reloads and the listeners themselves. When the configured pools do
//! not fit the limit (a service started with the default 1,024), they are shrunk to fit
//! and the start-up log says so.
//!
//! The limit is read from `/proc/self/limits`, not raised here: the shipped unit sets
//! `LimitNOFILE=` and forbids the `@resources` system calls.

use crate::config::Config;

/// Handles kept for everything that is not a pool: the store and its journal, capture
/// rings, the UDP and TCP listeners, the runtime's epoll and event descriptors, signal and
/// notify sockets, reloads reading rule files, and the log.
pub(super) const RESERVED: usize = 64;

/// Handles each plain upstream keeps open (its UDP pool) and each TLS upstream (its
/// kept-open connection).
const PER_UPSTREAM: usize = 5;

/// The soft open-file limit of this process, if it can be read.
pub(super) fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(usize::MAX);
    }
    soft.parse().ok()
}

/// What the pools need: the reserve, TCP clients, questions in flight (a truncated
/// answer opens a TCP connection), metrics connections, and the upstreams' own sockets.
pub(super) fn needed(cfg: &Config) -> usize {
    RESERVED
        + 2 * cfg.capture.interfaces.len()
        + cfg.metrics.max_connections
        + cfg.dns.max_tcp_clients
        + cfg.dns.max_upstream_inflight
        + PER_UPSTREAM * cfg.dns.upstreams.len()
}

/// Shrinks the TCP and in-flight pools (in proportion, never below 8 each) until they fit
/// `limit`; returns a sentence for the log when it had to.
pub(super) fn fit(cfg: &mut Config, limit: usize) -> Option<String> {
    let need = needed(cfg);
    if need <= limit {
        return None;
    }
    let fixed = need - cfg.dns.max_tcp_clients - cfg.dns.max_upstream_inflight;
    let room = limit.saturating_sub(fixed);
    let pools = cfg.dns.max_tcp_clients + cfg.dns.max_upstream_inflight;
    let tcp = (cfg.dns.max_tcp_clients * room / pools).max(8);
    let inflight = room.saturating_sub(tcp).max(8);
    let said = format!(
        "the open-file limit is {limit} but the configured pools need {need}: \
         dns.max_tcp_clients {} -> {tcp}, dns.max_upstream_inflight {} -> {inflight} \
         (raise LimitNOFILE= in the unit to keep them)",
        cfg.dns.max_tcp_clients, cfg.dns.max_upstream_inflight
    );
    cfg.dns.max_tcp_clients = tcp;
    cfg.dns.max_tcp_per_client = cfg.dns.max_tcp_per_client.min(tcp);
    cfg.dns.max_upstream_inflight = inflight;
    Some(said)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> Config {
        Config::parse(
            Path::new("/etc/aiwarden/aiwarden.toml"),
            "[dns]\nlisten = [\"127.0.0.1:53\"]\nupstreams = [\"9.9.9.9\", \"1.1.1.1\"]\n",
        )
        .expect("config")
    }

    #[test]
    fn the_defaults_fit_the_default_limit() {
        let mut c = config();
        assert!(needed(&c) <= 1024, "{}", needed(&c));
        assert_eq!(fit(&mut c, 1024), None);
    }

    #[test]
    fn pools_shrink_to_a_small_limit() {
        let mut c = config();
        let said = fit(&mut c, 300).expect("shrunk");
        assert!(said.contains("open-file limit is 300"), "{said}");
        assert!(needed(&c) <= 300, "{}", needed(&c));
        assert!(c.dns.max_tcp_clients >= 8 && c.dns.max_upstream_inflight >= 8);
        assert!(c.dns.max_tcp_per_client <= c.dns.max_tcp_clients);
    }

    #[test]
    fn this_process_has_a_limit() {
        assert!(open_file_limit().is_some_and(|n| n >= 64));
    }
}
