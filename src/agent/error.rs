//! Why the agent could not start, or could not take a new config's BGP settings:
//! typed, so each names what failed; `Display` is what the log and `reload` show.
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::kernel::KernelError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The file (or LXD's state) does not make a valid config; one error per line.
    #[error("{}", format_errors(.0))]
    Config(Vec<ConfigError>),
    #[error("netlink: {0}")]
    Netlink(io::Error),
    #[error("netlink dump: {0}")]
    Dump(KernelError),
    #[error("control socket {}: {source}", path.display())]
    ControlSocket { path: PathBuf, source: io::Error },
    #[error(
        "config.core.bgp_routerid is not set and the host has no IPv4 address to choose one from"
    )]
    NoRouterId,
    /// The BGP listener (`core.bgp_address`, or an unnumbered peer's link-local).
    #[error("listening on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: io::Error,
    },
    /// Router discovery on an unnumbered peer's interface.
    #[error("router advertisements on {ifname}: {source}")]
    RouterDiscovery { ifname: String, source: io::Error },
    #[error("signal {name}: {source}")]
    Signal {
        name: &'static str,
        source: io::Error,
    },
}

/// Config errors one per line, as `hostbgp check` prints them.
pub(super) fn format_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_names_what_failed() {
        let config = AgentError::Config(vec![
            ConfigError {
                key: "config.core.bgp_asn".into(),
                message: "not a number".into(),
            },
            ConfigError {
                key: "networks.br0".into(),
                message: "unknown network type".into(),
            },
        ]);
        assert_eq!(
            config.to_string(),
            "config.core.bgp_asn: not a number\nnetworks.br0: unknown network type"
        );
        let listen = AgentError::Listen {
            address: "[2001:db8::1]:179".parse().unwrap(),
            source: io::Error::from_raw_os_error(libc::EADDRINUSE),
        };
        assert!(listen
            .to_string()
            .starts_with("listening on [2001:db8::1]:179: Address already in use"));
        let socket = AgentError::ControlSocket {
            path: "/run/hostbgp/hostbgp.sock".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(socket
            .to_string()
            .starts_with("control socket /run/hostbgp/hostbgp.sock: Permission denied"));
    }
}
