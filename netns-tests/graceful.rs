//! Issue 18: graceful restart operators can tune, against bird2. bird's
//! `show protocols all` prints the graceful restart capability it received from us
//! (restart time, or none at all), which is what we sent in our OPEN.
//!
//! bird 2.0.12 knows neither the N bit nor Hard Reset (RFC 8538): with it the N bit
//! we send is ignored and our NOTIFICATIONs go unwrapped; the FRR suite covers both.

use serde_json::Value;

use crate::bird::{Bird, BirdPeer};
use crate::hostbgp::Hostbgp;
use crate::lab::{self, wait_until, wait_until_state, Topo, TIMEOUT};
use crate::speaker::{config_yaml, Env};

const PREFIX: &str = "203.0.113.0/24";

/// hostbgp's config: `server` lines go under `config:`, `peer_keys` on `br0`.
fn yaml(server: &[(&str, &str)], peer_keys: &[(&str, &str)]) -> String {
    let mut y = config_yaml(lab::ROUTER_V4, peer_keys, "");
    for (k, v) in server {
        y = y.replacen("config:\n", &format!("config:\n  {k}: \"{v}\"\n"), 1);
    }
    y
}

/// bird with `graceful restart on` (restart time 120) over IPv4.
fn start(y: &str) -> Env {
    let topo = Topo::new(&[lab::BR_V4, lab::BR_V6]);
    let bp = BirdPeer::router("h1", lab::HOST_V4).graceful_restart(true);
    let router = Bird::router(&topo, vec![bp]);
    let hb = Hostbgp::ready(&topo.lab, &topo.h, y);
    Env { hb, router, topo }
}

/// The lines of bird's `Neighbor capabilities` block (what we sent).
fn neighbor_capabilities(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut indent = None;
    for line in raw.lines() {
        let depth = line.len() - line.trim_start().len();
        match indent {
            None if line.trim() == "Neighbor capabilities" => indent = Some(depth),
            Some(d) if depth > d && !line.trim().is_empty() => out.push(line.trim().to_string()),
            Some(_) => break,
            None => {}
        }
    }
    out
}

/// The restart time bird received from us; None when we sent no GR capability.
fn gr_time_at_bird(raw: &str) -> Option<u32> {
    let caps = neighbor_capabilities(raw);
    assert!(!caps.is_empty(), "no Neighbor capabilities block:\n{raw}");
    let at = caps.iter().position(|l| l == "Graceful restart")?;
    caps[at + 1..]
        .iter()
        .find_map(|l| l.strip_prefix("Restart time:"))
        .and_then(|t| t.trim().parse().ok())
}

fn negotiated(env: &Env) -> Value {
    env.hb
        .peer("r1")
        .map(|p| p["capabilities"].clone())
        .unwrap_or_default()
}

#[test]
fn graceful_restart_time_per_peer_reaches_the_router() {
    if !lab::require_root("graceful::graceful_restart_time_per_peer_reaches_the_router") {
        return;
    }
    let env = start(&yaml(
        &[],
        &[("bgp.peers.r1.graceful_restart.time", "3600")],
    ));
    env.wait_established();
    let raw = env.router.birdc(&["show", "protocols", "all", "h1"]);
    assert_eq!(gr_time_at_bird(&raw), Some(3600), "{raw}");
    let caps = negotiated(&env);
    assert_eq!(caps["graceful_restart_time_sent"], 3600, "{caps}");
    assert_eq!(caps["graceful_restart_time_received"], 120, "{caps}");
    assert_eq!(caps["notification_bit_sent"], true, "{caps}");
    // bird 2.0 does not send the N bit: no Hard Reset on this session.
    assert_eq!(caps["notification_bit_received"], false, "{caps}");
    assert_eq!(caps["hard_reset"], false, "{caps}");
    let offered = env.hb.peer("r1").expect("peer r1")["capabilities_offered"].to_string();
    assert!(
        offered.contains("graceful restart (3600 s, N bit)"),
        "{offered}"
    );

    // Unset: the server-wide value, here LXD's newer default.
    env.hb
        .write_config(&yaml(&[("core.bgp_graceful_restart_time", "3000")], &[]));
    env.hb.reload().expect("reload");
    env.hb.wait_peer_state("r1", "Established");
    let raw = wait_until_state("bird sees restart time 3000", TIMEOUT, || {
        let raw = env.router.birdc(&["show", "protocols", "all", "h1"]);
        (
            raw.contains("Established") && gr_time_at_bird(&raw) == Some(3000),
            raw,
        )
    });
    assert_eq!(gr_time_at_bird(&raw), Some(3000), "{raw}");
    assert_eq!(negotiated(&env)["graceful_restart_time_sent"], 3000);
}

/// `hostbgp.graceful_restart: "false"`: no capability in our OPEN, and a restart
/// (SIGTERM) is a plain one: the router drops our routes instead of keeping them
/// stale, and takes them back from the new agent.
#[test]
fn graceful_restart_off_sends_no_capability() {
    if !lab::require_root("graceful::graceful_restart_off_sends_no_capability") {
        return;
    }
    let mut env = start(&yaml(&[("hostbgp.graceful_restart", "false")], &[]));
    env.wait_established();
    env.router.wait_route(PREFIX);
    let raw = env.router.birdc(&["show", "protocols", "all", "h1"]);
    assert_eq!(gr_time_at_bird(&raw), None, "{raw}");
    assert!(
        !neighbor_capabilities(&raw)
            .iter()
            .any(|l| l == "Graceful restart"),
        "{raw}"
    );
    let caps = negotiated(&env);
    assert_eq!(caps["graceful_restart_time_sent"], Value::Null, "{caps}");
    assert_eq!(caps["notification_bit_sent"], false, "{caps}");
    assert_eq!(caps["graceful_restart_time_received"], 120, "{caps}");

    env.hb.term();
    assert!(env.hb.wait_exit(TIMEOUT).is_some(), "hostbgp did not exit");
    // bird has nothing to keep them stale for.
    env.router.wait_no_route(PREFIX);
    assert!(
        !env.router.protocol("h1").graceful_restart_active(),
        "{}",
        env.router.protocol("h1").raw
    );
    env.hb.respawn(&env.topo.lab);
    env.wait_established();
    let raw = env.router.birdc(&["show", "protocols", "all", "h1"]);
    assert_eq!(
        gr_time_at_bird(&raw),
        None,
        "no Restart State either: {raw}"
    );
    env.router.wait_route(PREFIX);

    // Turned back on by a reload: the session is reset and offers it again.
    env.hb.write_config(&yaml(&[], &[]));
    env.hb.reload().expect("reload");
    wait_until("bird sees our graceful restart capability", TIMEOUT, || {
        let raw = env.router.birdc(&["show", "protocols", "all", "h1"]);
        raw.contains("Established") && gr_time_at_bird(&raw) == Some(120)
    });
}

#[test]
fn bird_capabilities_block_parses() {
    let raw = "h1         BGP        ---        up     10:00:00.000  Established
  BGP state:          Established
    Neighbor address: 198.51.100.1
    Local capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Graceful restart
        Restart time: 120
    Neighbor capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Route refresh
      Graceful restart
        Restart time: 3600
        AF supported: ipv4 ipv6
        AF preserved:
      4-octet AS numbers
    Session:          external AS4
";
    assert_eq!(gr_time_at_bird(raw), Some(3600));
    let without = raw.replace(
        "      Graceful restart\n        Restart time: 3600\n        AF supported: ipv4 ipv6\n        AF preserved:\n",
        "",
    );
    assert_eq!(gr_time_at_bird(&without), None);
}
