//! systemd integration: readiness, watchdog and stopping notifications over
//! `NOTIFY_SOCKET` (sd_notify's datagram protocol), and the watchdog period systemd set.

use std::path::Path;
use std::time::Duration;

/// Sends `state` to systemd when started as a notify service (no-op otherwise).
pub(super) fn notify(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), Path::new(&path))
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "sd_notify");
    }
}

/// A third of the systemd watchdog period, when one is set for this process: the main
/// loop ticks every second, so a 3 s watchdog is pinged every tick and a late tick still
/// leaves a second of slack.
pub(super) fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 3))
}
