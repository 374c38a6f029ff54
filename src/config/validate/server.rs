//! `config:`: the server's keys and hostbgp's own.
use std::net::IpAddr;

use super::Errors;
use crate::config::node::Node;
use crate::config::values::{self, Fam};
use crate::config::{AgentSettings, ServerConfig, DEFAULT_GRACEFUL_RESTART_TIME};

/// The server's BGP settings, and the agent's own (`hostbgp.*`), which change no session.
pub(super) fn parse_server(e: &mut Errors, node: &Node) -> (ServerConfig, AgentSettings) {
    let mut s = ServerConfig {
        listen: None,
        asn: None,
        router_id: None,
        graceful_restart_time: DEFAULT_GRACEFUL_RESTART_TIME,
        graceful_restart: true,
    };
    let mut agent = AgentSettings::default();
    let Some(m) = e.map("config", node) else {
        return (s, agent);
    };
    let mut asn_given = false;
    for (k, v) in m {
        let key = format!("config.{k}");
        match k.as_str() {
            "core.bgp_address" => {
                if let Some(val) = e.scalar(&key, v) {
                    s.listen = e.check(&key, values::parse_listen(val));
                }
            }
            "core.bgp_asn" => {
                if let Some(val) = e.scalar(&key, v) {
                    asn_given = true;
                    s.asn = e.check(&key, values::parse_asn(val));
                }
            }
            "core.bgp_routerid" => {
                if let Some(val) = e.scalar(&key, v) {
                    s.router_id = e
                        .check(&key, values::parse_addr(val, Fam::V4))
                        .and_then(|a| match a {
                            IpAddr::V4(a) => Some(a),
                            IpAddr::V6(_) => None,
                        });
                }
            }
            "core.bgp_graceful_restart_time" => {
                if let Some(val) = e.scalar(&key, v) {
                    if let Some(t) = e.check(&key, values::parse_u16(val, 1, 4095)) {
                        s.graceful_restart_time = t;
                    }
                }
            }
            "hostbgp.graceful_restart" => {
                if let Some(val) = e.scalar(&key, v) {
                    if let Some(on) = e.check(&key, values::parse_bool(val)) {
                        s.graceful_restart = on;
                    }
                }
            }
            "hostbgp.metrics_address" => {
                if let Some(val) = e.scalar(&key, v) {
                    agent.metrics_address = e.check(&key, values::parse_socket_addr(val));
                }
            }
            "hostbgp.drain_time" => {
                if let Some(val) = e.scalar(&key, v) {
                    let max = crate::config::MAX_DRAIN_TIME_SECS;
                    if let Some(t) = e.check(&key, values::parse_u32(val, 0, max)) {
                        agent.drain_time = std::time::Duration::from_secs(t.into());
                    }
                }
            }
            "hostbgp.route_check_interval" => {
                if let Some(val) = e.scalar(&key, v) {
                    if let Some(t) = e.check(&key, values::parse_u32(val, 0, 86_400)) {
                        agent.route_check_interval = std::time::Duration::from_secs(t.into());
                    }
                }
            }
            _ => e.push(key, "unknown key"),
        }
    }
    let address_given = matches!(m.get("core.bgp_address"), Some(Node::Scalar(a)) if !a.is_empty());
    if address_given && !asn_given {
        e.push(
            "config.core.bgp_asn",
            "required when core.bgp_address is set",
        );
    }
    (s, agent)
}
