//! FRR inside a lab namespace: `zebra`, `bgpd` and `bfdd` run as child processes
//! of the test, each with its config, pid file, log and sockets in the lab's temp
//! dir (`--vty_socket`, `-z`, `--bfdctl`, `-i`, `-f`): no systemd, nothing read
//! from or written to /etc/frr or /var/run/frr, no TCP vty (`-P 0`). Daemons run as
//! root so they can write the temp dir, with group `frrvty` (`-u root -g frrvty`):
//! FRR exits unless its user is in the vty group, and the `-g` group counts.
//! `vtysh --vty_socket` queries them.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use serde_json::Value;

use crate::bird::tail;
use crate::lab::{self, run_cmd, signal_child, wait_until, wait_until_state, Lab, TIMEOUT};

/// Where Debian's `frr` package puts the daemons.
pub const FRR_LIBEXEC: &str = "/usr/lib/frr";
const INSTALL: &str = "apt-get install --no-install-recommends frr (behind a policy-rc.d that exits 101, so no FRR starts in the machine's own namespace)";

/// Whether FRR tests can run here; prints why not.
pub fn frr_available(test: &str) -> bool {
    if !lab::require_tools(test, &["vtysh"], INSTALL) {
        return false;
    }
    for bin in ["zebra", "bgpd", "bfdd"] {
        if !Path::new(FRR_LIBEXEC).join(bin).exists() {
            eprintln!("SKIPPED {test}: {FRR_LIBEXEC}/{bin} is not installed ({INSTALL})");
            return false;
        }
    }
    true
}

/// One BGP neighbour of the FRR router (AS 65000), a hostbgp host (AS 65010).
#[derive(Clone, Debug)]
pub struct FrrPeer {
    /// The neighbour's address, or the interface name of an unnumbered one (see
    /// `interface`): FRR names the neighbour by it either way (`neighbor X ...`, the
    /// key of `show bgp neighbors X json`).
    pub address: String,
    /// `neighbor IFNAME interface remote-as ...`: unnumbered, over the link-locals
    /// (bgpd has zebra send RAs on IFNAME and learns the peer from its RAs; IPv4
    /// with an IPv6 next hop, RFC 8950).
    pub interface: bool,
    pub remote_as: u32,
    /// `timers connect` (seconds): the connect-retry interval.
    pub connect_retry: u32,
    /// keepalive, hold (seconds).
    pub timers: (u32, u32),
    /// BFD at this interval (ms) x 3, in a profile of its own (`neighbor X bfd`,
    /// `neighbor X bfd profile pMS`). For an interface neighbour bgpd 8.4 starts
    /// its BFD session (link-local to link-local on that interface) only once the
    /// BGP session is Established.
    pub bfd_interval_ms: Option<u32>,
}

impl FrrPeer {
    pub fn host(address: &str) -> FrrPeer {
        FrrPeer {
            address: address.into(),
            interface: false,
            remote_as: 65010,
            timers: (30, 90),
            connect_retry: 1,
            bfd_interval_ms: None,
        }
    }

    /// An unnumbered neighbour on the router's interface `ifname`. bgpd connects out
    /// once zebra has heard the host's RA, then every connect-retry interval: 5 s.
    pub fn interface(ifname: &str) -> FrrPeer {
        FrrPeer {
            interface: true,
            connect_retry: 5,
            ..FrrPeer::host(ifname)
        }
    }

    setters! {
        /// Keepalive a third of `hold` (at least 1 s).
        hold_time(hold: u32) => timers = ((hold / 3).max(1), hold);
        bfd(interval_ms: u32) => bfd_interval_ms = Some(interval_ms);
    }
}

/// The configs of the three daemons.
#[derive(Clone, Debug)]
pub struct FrrConfig {
    pub router_id: String,
    pub asn: u32,
    pub peers: Vec<FrrPeer>,
}

impl FrrConfig {
    pub fn router(router_id: &str, peers: Vec<FrrPeer>) -> FrrConfig {
        FrrConfig {
            router_id: router_id.into(),
            asn: 65000,
            peers,
        }
    }

    pub fn zebra(&self, log: &Path) -> String {
        format!(
            "hostname r\nlog file {}\ndebug zebra kernel\n!\n",
            log.display()
        )
    }

    pub fn bfdd(&self, log: &Path) -> String {
        let mut s = format!("hostname r\nlog file {}\n!\nbfd\n", log.display());
        for p in &self.peers {
            if let Some(ms) = p.bfd_interval_ms {
                let _ = writeln!(
                    s,
                    " profile p{ms}\n  receive-interval {ms}\n  transmit-interval {ms}\n  detect-multiplier 3\n !"
                );
            }
        }
        s.push_str("!\n");
        s
    }

    pub fn bgpd(&self, log: &Path) -> String {
        let mut s = format!(
            "frr defaults traditional\nhostname r\nlog file {}\ndebug bgp neighbor-events\n!\nrouter bgp {}\n bgp router-id {}\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n",
            log.display(),
            self.asn,
            self.router_id
        );
        for p in &self.peers {
            let a = &p.address;
            if p.interface {
                let _ = writeln!(s, " neighbor {a} interface remote-as {}", p.remote_as);
            } else {
                let _ = writeln!(s, " neighbor {a} remote-as {}", p.remote_as);
            }
            let _ = writeln!(s, " neighbor {a} timers {} {}", p.timers.0, p.timers.1);
            let _ = writeln!(s, " neighbor {a} timers connect {}", p.connect_retry);
            if let Some(ms) = p.bfd_interval_ms {
                let _ = writeln!(s, " neighbor {a} bfd");
                let _ = writeln!(s, " neighbor {a} bfd profile p{ms}");
            }
        }
        for af in ["ipv4", "ipv6"] {
            let _ = writeln!(s, " address-family {af} unicast");
            for p in &self.peers {
                let _ = writeln!(s, "  neighbor {} activate", p.address);
            }
            s.push_str(" exit-address-family\n");
        }
        s.push_str("!\n");
        s
    }
}

/// A running FRR: zebra, bfdd and bgpd, stopped (SIGKILL) and reaped on Drop.
pub struct Frr {
    pub ns: String,
    /// The vty sockets' directory.
    pub vty: PathBuf,
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Frr {
    /// Writes the configs and starts the daemons in `ns`; waits until vtysh reaches
    /// each of them.
    pub fn start(lab: &Lab, ns: &str, cfg: &FrrConfig) -> Frr {
        let dir = lab.path("frr");
        fs::create_dir_all(&dir).expect("frr dir");
        let mut frr = Frr {
            ns: ns.into(),
            vty: dir.clone(),
            dir,
            children: Vec::new(),
        };
        let zserv = frr.dir.join("zserv.api");
        let zserv = zserv.to_string_lossy().into_owned();
        let bfdctl = frr.dir.join("bfdd.sock");
        let bfdctl = bfdctl.to_string_lossy().into_owned();
        for daemon in ["zebra", "bfdd", "bgpd"] {
            let log = frr.dir.join(format!("{daemon}.log"));
            let conf = frr.dir.join(format!("{daemon}.conf"));
            let text = match daemon {
                "zebra" => cfg.zebra(&log),
                "bfdd" => cfg.bfdd(&log),
                _ => cfg.bgpd(&log),
            };
            fs::write(&conf, text).expect("write frr config");
            let pid = frr.dir.join(format!("{daemon}.pid"));
            let bin = format!("{FRR_LIBEXEC}/{daemon}");
            let mut args: Vec<String> = vec![
                bin,
                "-f".into(),
                conf.to_string_lossy().into_owned(),
                "-i".into(),
                pid.to_string_lossy().into_owned(),
                "--vty_socket".into(),
                frr.dir.to_string_lossy().into_owned(),
                "-z".into(),
                zserv.clone(),
                "-u".into(),
                "root".into(),
                "-g".into(),
                "frrvty".into(),
                "-P".into(),
                "0".into(),
            ];
            if daemon == "bfdd" {
                args.extend(["--bfdctl".into(), bfdctl.clone()]);
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = frr.dir.join(format!("{daemon}.out"));
            let child = lab.spawn(ns, &argv, Some(&out));
            frr.children.push((daemon.into(), child));
            // bgpd and bfdd connect to zebra's socket at start.
            if daemon == "zebra" {
                let z = PathBuf::from(&zserv);
                wait_until("zebra's zserv socket", TIMEOUT, || {
                    frr.check_alive();
                    z.exists()
                });
            }
        }
        for daemon in ["zebra", "bfdd", "bgpd"] {
            wait_until(&format!("vtysh reaches {daemon}"), TIMEOUT, || {
                frr.check_alive();
                frr.try_vtysh_daemon(daemon, "show version").is_ok()
            });
        }
        frr
    }

    /// Panics with its output when a daemon has exited.
    fn check_alive(&mut self) {
        for (name, child) in &mut self.children {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "FRR {name} exited with {st}:\n{}\n{}",
                    tail(&self.dir.join(format!("{name}.out")), 30),
                    tail(&self.dir.join(format!("{name}.log")), 30)
                );
            }
        }
    }

    fn try_vtysh_daemon(&self, daemon: &str, command: &str) -> Result<String, String> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "vtysh", "--vty_socket"])
            .arg(&self.vty)
            .args(["-d", daemon, "-c", command]);
        run_cmd(&mut c)
    }

    /// `vtysh -c COMMAND` against every daemon.
    pub fn try_vtysh(&self, command: &str) -> Result<String, String> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "vtysh", "--vty_socket"])
            .arg(&self.vty)
            .args(["-c", command]);
        run_cmd(&mut c)
    }

    pub fn vtysh(&self, command: &str) -> String {
        self.try_vtysh(command).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A `... json` command's output, parsed.
    pub fn json(&self, command: &str) -> Value {
        let out = self.vtysh(command);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{command}: {e}: {out}"))
    }

    /// `show bgp neighbors ADDRESS json`: the neighbour's object.
    pub fn neighbor(&self, address: &str) -> Value {
        self.json(&format!("show bgp neighbors {address} json"))[address].clone()
    }

    /// The neighbour's `bgpState` (`Established`, `Active`, ...).
    pub fn bgp_state(&self, address: &str) -> String {
        self.neighbor(address)["bgpState"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn wait_established(&self, address: &str) -> Value {
        wait_until_state(
            &format!("FRR: neighbor {address} Established"),
            TIMEOUT * 2,
            || {
                let n = self.neighbor(address);
                (n["bgpState"] == "Established", n)
            },
        )
    }

    /// Whether FRR's BGP table holds `prefix` (`show bgp ipv4|ipv6 unicast PREFIX json`).
    pub fn has_route(&self, prefix: &str) -> bool {
        let af = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let out = self
            .try_vtysh(&format!("show bgp {af} unicast {prefix} json"))
            .unwrap_or_default();
        serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v["paths"].as_array().map(|p| !p.is_empty()))
            .unwrap_or(false)
    }

    /// The next hops (`ip`) of every path FRR has for `prefix`; empty when none.
    pub fn nexthops(&self, prefix: &str) -> Vec<String> {
        let af = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let v = self.json(&format!("show bgp {af} unicast {prefix} json"));
        v["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["nexthops"].as_array())
            .flatten()
            .filter_map(|h| h["ip"].as_str().map(String::from))
            .collect()
    }

    pub fn wait_route(&self, prefix: &str) {
        wait_until(&format!("FRR has {prefix}"), TIMEOUT, || {
            self.has_route(prefix)
        });
    }

    /// `show bfd peers json`.
    pub fn bfd_peers(&self) -> Value {
        self.json("show bfd peers json")
    }

    /// The last lines of each daemon's log.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (name, _) in &self.children {
            let _ = writeln!(
                s,
                "---- FRR {name} ----\n{}\n{}",
                tail(&self.dir.join(format!("{name}.out")), 20),
                tail(&self.dir.join(format!("{name}.log")), 40)
            );
        }
        s
    }

    fn stop(&mut self) {
        for (_, mut c) in self.children.drain(..).rev() {
            let _ = signal_child(&c, nix::sys::signal::Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.stop();
    }
}
