//! Sensor placement: the reset injector the detection thread hands blocked connections
//! to, when aiwarden sits out of the path and enforces.

use std::sync::Arc;

use crate::config::{Config, Placement};
use crate::firewall::reset::Resetter;
use crate::firewall::Enforcer;
use crate::metrics::Metrics;
use crate::policy::Mode;

/// The sensor's enforcer: resets sent on `reset_interface` (else the first capture
/// interface), in enforce mode with `placement = "sensor"`; `None` otherwise. A socket
/// that cannot be opened costs the resets, not the daemon: detection, the resolver and
/// the records go on, and the error says why.
pub(super) fn sensor_enforcer(cfg: &Config, metrics: &Arc<Metrics>) -> Option<Box<dyn Enforcer>> {
    if cfg.enforcement.placement != Placement::Sensor || cfg.mode != Mode::Enforce {
        return None;
    }
    let Some(interface) = cfg
        .enforcement
        .reset_interface
        .as_ref()
        .or(cfg.capture.interfaces.first())
    else {
        tracing::error!("sensor placement without an interface to send resets on: set [enforcement] reset_interface or [capture] interfaces; connections are not reset");
        return None;
    };
    match Resetter::open(interface, metrics.clone()) {
        Ok(r) => {
            tracing::info!(interface = %interface, "sensor: blocked TCP connections are reset");
            Some(Box::new(r))
        }
        Err(e) => {
            tracing::error!(error = %e, "sensor: connections are not reset");
            None
        }
    }
}
