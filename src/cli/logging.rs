//! Logging: plain lines on stderr (colour only on a terminal, so journald gets no escape
//! codes), filtered by `AIWARDEN_LOG` when set, else by the daemon's `log` setting, else by
//! the command's default (`info` for the daemon, `warn` for the other commands).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the filter after start-up (once the daemon's configuration is read).
pub(super) struct Logging {
    handle: reload::Handle<EnvFilter, Registry>,
    from_env: bool,
}

impl Logging {
    /// Installs the subscriber with `default` as the filter unless `AIWARDEN_LOG` is set.
    pub(super) fn init(default: &str) -> Logging {
        let env = EnvFilter::try_from_env("AIWARDEN_LOG").ok();
        let from_env = env.is_some();
        let filter = env.unwrap_or_else(|| EnvFilter::new(default));
        let (layer, handle) = reload::Layer::new(filter);
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal());
        let _ = tracing_subscriber::registry()
            .with(layer)
            .with(fmt)
            .try_init();
        Logging { handle, from_env }
    }

    /// Applies the configuration's `log` filter (validated when the file was read) unless
    /// `AIWARDEN_LOG` overrides it.
    pub(super) fn configure(&self, filter: &str) {
        if self.from_env {
            return;
        }
        if let Ok(f) = filter.parse::<EnvFilter>() {
            let _ = self.handle.reload(f);
        }
    }
}
