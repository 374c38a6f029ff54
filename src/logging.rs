//! Logging: journald under systemd, plain lines on stderr otherwise (colour only on a
//! terminal), with a filter that `hostbgp log-level` changes at run time.
use std::io::IsTerminal;

use tracing_subscriber::{prelude::*, reload, EnvFilter, Registry};

/// Changes the running filter.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
}

impl LogControl {
    /// Sets the filter: a level (`debug`) or `EnvFilter` directives
    /// (`info,hostbgp::bgp=debug`). Returns the filter now in force.
    pub fn set(&self, directives: &str) -> Result<String, String> {
        let filter = parse(directives)?;
        let shown = filter.to_string();
        self.handle
            .reload(filter)
            .map_err(|e| format!("setting the log level: {e}"))?;
        Ok(shown)
    }

    pub fn current(&self) -> String {
        self.handle
            .with_current(|f| f.to_string())
            .unwrap_or_default()
    }
}

fn parse(directives: &str) -> Result<EnvFilter, String> {
    let d = directives.trim();
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    if d.is_empty() {
        return Err("log level: empty (try error, warn, info, debug or trace)".into());
    }
    // A bare word is a target to the filter's syntax: a mistyped level would pass.
    if !d.contains(['=', ',']) && !LEVELS.contains(&d.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "log level {d:?}: not a level (try error, warn, info, debug or trace, or directives like info,hostbgp::bgp=debug)"
        ));
    }
    EnvFilter::builder()
        .parse(d)
        .map_err(|e| format!("log level {d:?}: {e} (try error, warn, info, debug or trace)"))
}

/// Installs the subscriber: `RUST_LOG` or `info` to start with.
pub fn init() -> LogControl {
    let start = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| parse(&v).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(start);
    let journald = std::env::var_os("JOURNAL_STREAM").and_then(|_| tracing_journald::layer().ok());
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(layer) => registry.with(layer).init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init(),
    }
    LogControl { handle }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives() {
        assert!(parse("debug").is_ok());
        assert!(parse("info,hostbgp::bgp=trace").is_ok());
        let e = parse("loud").unwrap_err();
        assert!(e.contains("loud") && e.contains("debug"), "{e}");
        assert!(parse(" ").unwrap_err().contains("empty"));
    }
}
