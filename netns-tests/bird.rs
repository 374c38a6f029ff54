//! bird2 inside a lab namespace: config generation, process, `birdc` helpers.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::lab::{run_cmd, signal_child, wait_until, Lab, Topo, ROUTER_V4, TIMEOUT};

/// One `protocol bgp` block.
#[derive(Clone, Debug)]
pub struct BirdPeer {
    pub name: String,
    pub local_as: u32,
    pub neighbor: String,
    pub peer_as: u32,
    /// `extended next hop on` in the ipv4 channel.
    pub extended_next_hop: bool,
    pub password: Option<String>,
    pub hold_time: Option<u32>,
    pub graceful_restart: bool,
    pub passive: bool,
    /// Router role: `import all; export none`. Speaker role (self-test):
    /// `import none; export all; next hop self`.
    pub speaker: bool,
    /// Speaker only: `next hop address` for the ipv4 channel.
    pub ipv4_next_hop: Option<String>,
    /// Speaker only: `next hop address` for the ipv6 channel.
    pub ipv6_next_hop: Option<String>,
    /// `bfd on`, with a `protocol bfd` at this interval (ms) x 3.
    pub bfd_interval_ms: Option<u32>,
    /// `bfd graceful`: BFD down starts graceful restart instead of a hard reset.
    pub bfd_graceful: bool,
    /// Router only: also send the static routes, tagged with this community
    /// (`(65000,666)`), as a router announcing its own routes to the host.
    pub send_static_with_community: Option<String>,
}

impl BirdPeer {
    /// A router-side peer for a hostbgp host: local AS 65000, peer AS 65010.
    pub fn router(name: &str, neighbor: &str) -> BirdPeer {
        BirdPeer {
            name: name.into(),
            local_as: 65000,
            neighbor: neighbor.into(),
            peer_as: 65010,
            extended_next_hop: false,
            password: None,
            hold_time: None,
            graceful_restart: false,
            passive: false,
            speaker: false,
            ipv4_next_hop: None,
            ipv6_next_hop: None,
            bfd_interval_ms: None,
            bfd_graceful: false,
            send_static_with_community: None,
        }
    }

    setters! {
        send_static_with_community(community: &str) =>
            send_static_with_community = Some(community.into());
        bfd(interval_ms: u32) => bfd_interval_ms = Some(interval_ms);
        bfd_graceful(on: bool) => bfd_graceful = on;
        extended_next_hop(on: bool) => extended_next_hop = on;
        password(p: &str) => password = Some(p.into());
        hold_time(t: u32) => hold_time = Some(t);
        graceful_restart(on: bool) => graceful_restart = on;
        passive(on: bool) => passive = on;
    }
}

/// A whole bird config.
#[derive(Clone, Debug)]
pub struct BirdConfig {
    pub router_id: String,
    pub peers: Vec<BirdPeer>,
    /// `protocol kernel` for ipv4 and ipv6 exporting BGP routes (merge paths on).
    pub kernel: bool,
    /// Static routes exported by a speaker (e.g. `203.0.113.0/24 blackhole`).
    pub static_routes: Vec<String>,
}

impl BirdConfig {
    pub fn router(router_id: &str, peers: Vec<BirdPeer>) -> BirdConfig {
        BirdConfig {
            router_id: router_id.into(),
            peers,
            kernel: true,
            static_routes: Vec::new(),
        }
    }

    /// Renders the config text; `log` is the log file path.
    pub fn render(&self, log: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "log \"{log}\" all;");
        let _ = writeln!(s, "router id {};", self.router_id);
        let _ = writeln!(s, "timeformat protocol iso long;");
        let _ = writeln!(s, "timeformat route iso long;");
        let _ = writeln!(s, "debug protocols {{ states, events }};");
        s.push_str("protocol device { scan time 2; }\n");
        if self.kernel {
            for af in ["ipv4", "ipv6"] {
                let _ = writeln!(
                    s,
                    "protocol kernel kernel_{af} {{\n  {af} {{ import none; export where source = RTS_BGP; }};\n  merge paths on;\n  scan time 2;\n}}"
                );
            }
        }
        let v4: Vec<&String> = self
            .static_routes
            .iter()
            .filter(|r| !r.contains(':'))
            .collect();
        let v6: Vec<&String> = self
            .static_routes
            .iter()
            .filter(|r| r.contains(':'))
            .collect();
        for (af, routes) in [("ipv4", v4), ("ipv6", v6)] {
            if routes.is_empty() {
                continue;
            }
            let _ = writeln!(s, "protocol static static_{af} {{\n  {af};");
            for r in routes {
                let _ = writeln!(s, "  route {r};");
            }
            s.push_str("}\n");
        }
        // One `protocol bfd` serves every BGP peer with `bfd on` (the first's interval).
        if let Some(ms) = self.peers.iter().find_map(|p| p.bfd_interval_ms) {
            let _ = writeln!(
                s,
                "protocol bfd {{\n  interface \"*\" {{ min rx interval {ms} ms; min tx interval {ms} ms; multiplier 3; }};\n}}"
            );
        }
        for p in &self.peers {
            let _ = writeln!(s, "protocol bgp {} {{", p.name);
            let _ = writeln!(s, "  local as {};", p.local_as);
            let _ = writeln!(s, "  neighbor {} as {};", p.neighbor, p.peer_as);
            let _ = writeln!(s, "  connect delay time 1;");
            let _ = writeln!(s, "  connect retry time 2;");
            let _ = writeln!(s, "  error wait time 1, 4;");
            if let Some(pw) = &p.password {
                let _ = writeln!(s, "  password \"{pw}\";");
            }
            if let Some(h) = p.hold_time {
                let _ = writeln!(s, "  hold time {h};");
                let _ = writeln!(s, "  startup hold time {h};");
                let _ = writeln!(s, "  keepalive time {};", (h / 3).max(1));
            }
            if p.graceful_restart {
                let _ = writeln!(s, "  graceful restart on;");
            }
            if p.passive {
                let _ = writeln!(s, "  passive on;");
            }
            if p.bfd_interval_ms.is_some() {
                let mode = if p.bfd_graceful { "graceful" } else { "on" };
                let _ = writeln!(s, "  bfd {mode};");
            }
            for af in ["ipv4", "ipv6"] {
                let mut opts = String::new();
                if p.speaker {
                    opts.push_str("import none; export all; next hop self;");
                    let nh = if af == "ipv4" {
                        &p.ipv4_next_hop
                    } else {
                        &p.ipv6_next_hop
                    };
                    if let Some(nh) = nh {
                        let _ = write!(opts, " next hop address {nh};");
                    }
                } else if let Some(c) = &p.send_static_with_community {
                    let _ = write!(
                        opts,
                        "import all; export filter {{ if source = RTS_STATIC then {{ bgp_community.add({c}); accept; }} reject; }};"
                    );
                } else {
                    opts.push_str("import all; export none;");
                }
                if af == "ipv4" {
                    let on = if p.extended_next_hop { "on" } else { "off" };
                    let _ = write!(opts, " extended next hop {on};");
                }
                let _ = writeln!(s, "  {af} {{ {opts} }};");
            }
            s.push_str("}\n");
        }
        s
    }
}

/// A route from `birdc show route all`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BirdRoute {
    pub prefix: String,
    pub protocol: String,
    pub primary: bool,
    /// Graceful-restart stale flag (`(100s)`).
    pub stale: bool,
    /// Gateways from `via X on IF` lines (`dev IF` gives `dev IF`).
    pub next_hops: Vec<String>,
    /// `BGP.next_hop` and the other attribute lines, `(key, value)`.
    pub attrs: Vec<(String, String)>,
}

impl BirdRoute {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `show route all` output (the `BIRD ... ready.` banner and tables included).
pub fn parse_routes(text: &str) -> Vec<BirdRoute> {
    let mut out: Vec<BirdRoute> = Vec::new();
    let mut last_prefix = String::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("BIRD ") || line.starts_with("Table ") {
            continue;
        }
        let indented = line.starts_with(' ') || line.starts_with('\t');
        let t = line.trim();
        // A route header: "PREFIX  TYPE [PROTO TIME...] * (PREF) [INFO]", or the same
        // without PREFIX for further routes of the same network.
        if let Some(open) = t.find(" [").or_else(|| t.starts_with('[').then_some(0)) {
            let head: Vec<&str> = t[..open].split_whitespace().collect();
            let is_header = match head.len() {
                2 => !indented,
                1 => indented && !t[..open].contains(':'),
                _ => false,
            };
            if is_header {
                if head.len() == 2 {
                    last_prefix = head[0].to_string();
                }
                let rest = &t[open..];
                let inner = rest.trim_start_matches([' ', '[']);
                let protocol = inner.split_whitespace().next().unwrap_or("").to_string();
                let after = rest.find(']').map(|i| &rest[i + 1..]).unwrap_or("");
                let primary = after.trim_start().starts_with('*');
                let stale = after
                    .find('(')
                    .map(|i| {
                        let pref = &after[i + 1..];
                        let end = pref.find([')', '/']).unwrap_or(pref.len());
                        pref[..end]
                            .trim_start_matches(|c: char| c.is_ascii_digit())
                            .contains('s')
                    })
                    .unwrap_or(false);
                let mut r = BirdRoute {
                    prefix: last_prefix.clone(),
                    protocol,
                    primary,
                    stale,
                    ..Default::default()
                };
                if head.len() == 2 && head[1] != "unicast" {
                    r.next_hops.push(head[1].to_string());
                }
                out.push(r);
                continue;
            }
        }
        let Some(cur) = out.last_mut() else { continue };
        if let Some(rest) = t.strip_prefix("via ") {
            if let Some(gw) = rest.split_whitespace().next() {
                cur.next_hops.push(gw.to_string());
            }
        } else if t.starts_with("dev ") {
            cur.next_hops.push(t.to_string());
        } else if let Some((k, v)) = t.split_once(':') {
            cur.attrs.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// State of one protocol from `show protocols all NAME`.
#[derive(Clone, Debug, Default)]
pub struct ProtoState {
    /// `up`, `start`, `down`...
    pub state: String,
    /// Info column, e.g. `Established`, `Active`, `Connect`.
    pub info: String,
    /// `BGP state:` line.
    pub bgp_state: String,
    /// `Last error:` line.
    pub last_error: String,
    pub raw: String,
}

impl ProtoState {
    pub fn established(&self) -> bool {
        self.bgp_state == "Established"
    }

    /// The neighbor is restarting and bird keeps its routes (GR helper mode).
    pub fn graceful_restart_active(&self) -> bool {
        self.raw.contains("Neighbor graceful restart active")
    }
}

/// A running bird.
pub struct Bird {
    pub ns: String,
    pub name: String,
    pub conf: PathBuf,
    pub sock: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Bird {
    /// The router of `topo` (`r`, router id ROUTER_V4), peering with `peers`.
    pub fn router(topo: &Topo, peers: Vec<BirdPeer>) -> Bird {
        Bird::start(
            &topo.lab,
            &topo.r,
            "router",
            &BirdConfig::router(ROUTER_V4, peers),
        )
    }

    /// Writes the config and starts `bird -f` in `ns`; waits for the control socket.
    pub fn start(lab: &Lab, ns: &str, name: &str, cfg: &BirdConfig) -> Bird {
        let conf = lab.path(&format!("{name}.conf"));
        let sock = lab.path(&format!("{name}.ctl"));
        let log = lab.path(&format!("{name}.log"));
        let pid = lab.path(&format!("{name}.pid"));
        fs::write(&conf, cfg.render(&log.to_string_lossy())).expect("write bird config");
        fs::write(&log, "").expect("create bird log");
        let child = lab.spawn(
            ns,
            &[
                "bird",
                "-f",
                "-c",
                &conf.to_string_lossy(),
                "-s",
                &sock.to_string_lossy(),
                "-P",
                &pid.to_string_lossy(),
            ],
            Some(&lab.path(&format!("{name}.out"))),
        );
        let mut b = Bird {
            ns: ns.into(),
            name: name.into(),
            conf,
            sock,
            log,
            child: Some(child),
        };
        wait_until(&format!("bird {name} control socket"), TIMEOUT, || {
            if let Some(Ok(Some(st))) = b.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "bird {name} exited with {st}: {}",
                    fs::read_to_string(lab.path(&format!("{name}.out"))).unwrap_or_default()
                );
            }
            b.try_birdc(&["show", "status"]).is_ok()
        });
        b
    }

    /// Process id of bird; None once it was killed (there is no pid 0 to fall back
    /// on: kill(0, sig) would signal the test runner's whole process group).
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    /// Sends a signal to bird; an error when bird is not running.
    pub fn try_signal(&self, sig: nix::sys::signal::Signal) -> Result<(), String> {
        let child = self.child.as_ref().ok_or_else(|| {
            format!(
                "bird {}: not running, no process to send {sig:?} to",
                self.name
            )
        })?;
        signal_child(child, sig).map_err(|e| format!("bird {}: {e}", self.name))
    }

    /// Sends a signal to bird (e.g. SIGSTOP / SIGCONT to make it go silent). Panics
    /// when bird is not running.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        self.try_signal(sig).unwrap_or_else(|e| panic!("{e}"));
    }

    /// `birdc -s SOCK ARGS...`.
    pub fn try_birdc(&self, args: &[&str]) -> Result<String, String> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "birdc", "-s"])
            .arg(&self.sock)
            .args(args);
        run_cmd(&mut c)
    }

    /// `birdc`, panicking with details.
    pub fn birdc(&self, args: &[&str]) -> String {
        self.try_birdc(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `show protocols all NAME`.
    pub fn protocol(&self, name: &str) -> ProtoState {
        let raw = self.birdc(&["show", "protocols", "all", name]);
        let mut st = ProtoState {
            raw: raw.clone(),
            ..Default::default()
        };
        for line in raw.lines() {
            let t = line.trim();
            let cols: Vec<&str> = t.split_whitespace().collect();
            if cols.first() == Some(&name) && cols.len() >= 4 {
                st.state = cols[3].to_string();
                // Name Proto Table State Since(1-2 columns) Info...
                st.info = cols.last().unwrap_or(&"").to_string();
            } else if let Some(v) = t.strip_prefix("BGP state:") {
                st.bgp_state = v.trim().to_string();
            } else if let Some(v) = t.strip_prefix("Last error:") {
                st.last_error = v.trim().to_string();
            }
        }
        st
    }

    /// Waits until protocol `name` is Established.
    pub fn wait_established(&self, name: &str) {
        crate::lab::wait_until_state(
            &format!("bird {}: protocol {name} Established", self.name),
            TIMEOUT * 2,
            || {
                let p = self.protocol(name);
                (p.established(), p.raw)
            },
        );
    }

    /// All routes (`show route all`).
    pub fn routes(&self) -> Vec<BirdRoute> {
        parse_routes(&self.birdc(&["show", "route", "all"]))
    }

    /// Prefixes of the routes bird holds from protocol `protocol`.
    pub fn prefixes_from(&self, protocol: &str) -> Vec<String> {
        self.routes()
            .into_iter()
            .filter(|r| r.protocol == protocol)
            .map(|r| r.prefix)
            .collect()
    }

    /// Routes for exactly `prefix`.
    pub fn route(&self, prefix: &str) -> Vec<BirdRoute> {
        self.routes()
            .into_iter()
            .filter(|r| r.prefix == prefix)
            .collect()
    }

    /// Waits until `prefix` is present (Some) / absent (None check) in the table.
    pub fn wait_route(&self, prefix: &str) -> BirdRoute {
        crate::lab::wait_until_state(
            &format!("bird {}: route {prefix} present", self.name),
            TIMEOUT,
            || {
                let all = self.routes();
                let found = all.iter().find(|r| r.prefix == prefix).cloned();
                match found {
                    Some(r) => (true, vec![r]),
                    None => (false, all),
                }
            },
        )
        .remove(0)
    }

    /// Waits until `prefix` is gone from the table.
    pub fn wait_no_route(&self, prefix: &str) {
        crate::lab::wait_until_state(
            &format!("bird {}: route {prefix} withdrawn", self.name),
            TIMEOUT,
            || {
                let r = self.route(prefix);
                (r.is_empty(), r)
            },
        );
    }

    /// `configure` (re-read the config file, e.g. after [`Bird::rewrite`]).
    pub fn configure(&self) -> String {
        self.birdc(&["configure"])
    }

    /// Rewrites the config file (then call [`Bird::configure`]).
    pub fn rewrite(&self, cfg: &BirdConfig) {
        fs::write(&self.conf, cfg.render(&self.log.to_string_lossy())).expect("write config");
    }

    pub fn disable(&self, proto: &str) -> String {
        self.birdc(&["disable", proto])
    }

    pub fn enable(&self, proto: &str) -> String {
        self.birdc(&["enable", proto])
    }

    /// The log file's content.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts the log has no next-hop complaint.
    pub fn assert_no_nexthop_errors(&self) {
        let log = self.log_text();
        for bad in ["Invalid NEXT_HOP", "mismatched", "Mismatched"] {
            assert!(
                !log.contains(bad),
                "bird {} log contains {bad:?}:\n{log}",
                self.name
            );
        }
    }

    /// Asserts the session `protocol` is still up and no next hop was refused.
    pub fn assert_clean(&self, protocol: &str) {
        assert!(self.protocol(protocol).established(), "{protocol} is down");
        self.assert_no_nexthop_errors();
    }

    /// Kills bird (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A SIGSTOPped bird must run again to die cleanly.
            let _ = signal_child(&c, nix::sys::signal::Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A failing test's evidence: the last 50 lines of `what`'s log, on stderr.
pub fn show_log_if_panicking(what: &str, log: &Path) {
    if std::thread::panicking() {
        eprintln!(
            "---- last 50 lines of {what} log ({}) ----\n{}\n---- end ----",
            log.display(),
            tail(log, 50)
        );
    }
}

/// Last `n` lines of a file.
pub fn tail(path: &std::path::Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("<{}: {e}>", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.kill();
        show_log_if_panicking(&format!("bird {}", self.name), &self.log);
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn parses_show_route_all() {
        let text = "BIRD 2.0.12 ready.
Table master4:
203.0.113.0/24       unicast [h1 2024-01-01 10:00:00] * (100) [AS65010i]
\tvia 198.51.100.1 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65010
\tBGP.next_hop: 198.51.100.1
                     unicast [h2 2024-01-01 10:00:01] (100s) [AS65011i]
\tvia 198.51.100.3 on eth0
\tvia 198.51.100.4 on eth0 weight 1
\tBGP.next_hop: 198.51.100.3

Table master6:
2001:db8:100::/64    unicast [h1 10:00:00.000] * (100/?) [AS65010i]
\tvia 2001:db8:ff::2 on eth0
\tBGP.next_hop: 2001:db8:ff::2 fe80::1
";
        let r = parse_routes(text);
        assert_eq!(r.len(), 3, "{r:#?}");
        assert_eq!(r[0].prefix, "203.0.113.0/24");
        assert_eq!(r[0].protocol, "h1");
        assert!(r[0].primary && !r[0].stale);
        assert_eq!(r[0].next_hops, vec!["198.51.100.1"]);
        assert_eq!(r[0].attr("BGP.next_hop"), Some("198.51.100.1"));
        assert_eq!(r[1].prefix, "203.0.113.0/24");
        assert_eq!(r[1].protocol, "h2");
        assert!(!r[1].primary && r[1].stale);
        assert_eq!(r[1].next_hops, vec!["198.51.100.3", "198.51.100.4"]);
        assert_eq!(r[2].prefix, "2001:db8:100::/64");
        assert!(!r[2].stale);
        assert_eq!(r[2].next_hops, vec!["2001:db8:ff::2"]);
    }
}
