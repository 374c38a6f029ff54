//! The agent under test, run inside the host namespace.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::bird::{show_log_if_panicking, tail};
use crate::lab::{run_cmd, signal_child, wait_until_state, Lab, TIMEOUT};

/// Path of the binary built by cargo for this test target.
pub const BIN: &str = env!("CARGO_BIN_EXE_hostbgp");

/// A running `hostbgp run`.
pub struct Hostbgp {
    /// Names its files and its log in failure output.
    pub name: String,
    /// The `--member` it runs as.
    pub member: String,
    pub ns: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    exit: Option<ExitStatus>,
}

/// `hostbgp run` in `ns` at debug level, its output to `log`.
pub fn run_command(
    lab: &Lab,
    ns: &str,
    config: &Path,
    socket: &Path,
    member: &str,
    log: fs::File,
) -> Command {
    let mut c = lab.command(
        ns,
        &[
            BIN,
            "run",
            "--config",
            &config.to_string_lossy(),
            "--socket",
            &socket.to_string_lossy(),
            "--member",
            member,
        ],
    );
    c.env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log);
    c
}

impl Hostbgp {
    /// Writes `yaml` to the lab dir and starts the agent in `ns` (member `host`).
    pub fn start(lab: &Lab, ns: &str, yaml: &str) -> Hostbgp {
        Hostbgp::start_named(lab, ns, "hostbgp", yaml)
    }

    /// [`Hostbgp::start`], then [`Hostbgp::wait_ready`].
    pub fn ready(lab: &Lab, ns: &str, yaml: &str) -> Hostbgp {
        let mut hb = Hostbgp::start(lab, ns, yaml);
        hb.wait_ready();
        hb
    }

    /// As [`Hostbgp::start`], with files `NAME.yaml`, `NAME.sock`, `NAME.log` (for
    /// several agents in one lab).
    pub fn start_named(lab: &Lab, ns: &str, name: &str, yaml: &str) -> Hostbgp {
        let config = lab.path(&format!("{name}.yaml"));
        fs::write(&config, yaml).expect("write hostbgp config");
        Hostbgp::start_member(lab, ns, name, "host", &config)
    }

    /// One cluster member's agent: `--member MEMBER` on a config file shared by all
    /// members; files `NAME.sock`, `NAME.log`.
    pub fn start_member(lab: &Lab, ns: &str, name: &str, member: &str, config: &Path) -> Hostbgp {
        let mut h = Hostbgp {
            name: name.into(),
            member: member.into(),
            ns: ns.into(),
            config: config.to_path_buf(),
            socket: lab.path(&format!("{name}.sock")),
            log: lab.path(&format!("{name}.log")),
            child: None,
            exit: None,
        };
        h.spawn(lab);
        h
    }

    /// (Re)starts the process with the current config file; the log is appended to.
    pub fn spawn(&mut self, lab: &Lab) {
        assert!(self.child.is_none(), "hostbgp already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open hostbgp log");
        let child = run_command(lab, &self.ns, &self.config, &self.socket, &self.member, log)
            .env("RUST_BACKTRACE", "1")
            .spawn()
            .expect("spawn hostbgp");
        self.child = Some(child);
        self.exit = None;
    }

    /// Rewrites the config file (follow with `reload()` or SIGHUP).
    pub fn write_config(&self, yaml: &str) {
        fs::write(&self.config, yaml).expect("write hostbgp config");
    }

    /// `hostbgp ARGS... --socket SOCKET`.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.ns, BIN])
            .args(args)
            .arg("--socket")
            .arg(&self.socket);
        run_cmd(&mut c)
    }

    /// `hostbgp status --json`.
    pub fn status_json(&self) -> Result<Value, String> {
        let out = self.cli(&["status", "--json"])?;
        serde_json::from_str(&out).map_err(|e| format!("status --json: {e}: {out}"))
    }

    /// `hostbgp routes --json`.
    pub fn routes_json(&self) -> Result<Value, String> {
        let out = self.cli(&["routes", "--json"])?;
        serde_json::from_str(&out).map_err(|e| format!("routes --json: {e}: {out}"))
    }

    /// `hostbgp reload`.
    pub fn reload(&self) -> Result<String, String> {
        self.cli(&["reload"])
    }

    /// `hostbgp shutdown`.
    pub fn shutdown(&self) -> Result<String, String> {
        self.cli(&["shutdown"])
    }

    /// Advertised prefixes of `routes --json`.
    pub fn advertised(&self) -> Vec<String> {
        self.routes_json()
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|r| r["advertised"] != Value::Bool(false))
            .filter_map(|r| r["prefix"].as_str().map(String::from))
            .collect()
    }

    /// The peer object named `name` from `status --json`, if any.
    pub fn peer(&self, name: &str) -> Option<Value> {
        let st = self.status_json().ok()?;
        st["peers"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }

    /// [`Hostbgp::spawn`], then [`Hostbgp::wait_ready`].
    pub fn respawn(&mut self, lab: &Lab) {
        self.spawn(lab);
        self.wait_ready();
    }

    /// Waits until the control socket answers.
    pub fn wait_ready(&mut self) {
        wait_until_state("hostbgp status answers", TIMEOUT, || {
            if let Some(st) = self.try_exit() {
                panic!("hostbgp exited early with {st}:\n{}", tail(&self.log, 50));
            }
            match self.status_json() {
                Ok(v) => (true, v.to_string()),
                Err(e) => (false, e),
            }
        });
    }

    /// Waits until peer `name` is Established according to status.
    pub fn wait_peer_state(&self, name: &str, state: &str) -> Value {
        wait_until_state(
            &format!("hostbgp peer {name} in state {state}"),
            TIMEOUT * 2,
            || match self.peer(name) {
                Some(p) if p["state"] == state => (true, p),
                Some(p) => (false, p),
                None => (false, Value::Null),
            },
        )
    }

    /// Pid of the agent; None when it is not running.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    /// Sends a signal (TERM, HUP, KILL, PWR...); nothing when the agent is not running.
    pub fn signal(&self, sig: Signal) {
        if let Some(c) = self.child.as_ref() {
            if let Err(e) = signal_child(c, sig) {
                panic!("hostbgp {}: {e}", self.name);
            }
        }
    }

    /// SIGTERM: stop for a restart (sessions dropped, routes kept).
    pub fn term(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// SIGHUP: reload the config.
    pub fn hup(&self) {
        self.signal(Signal::SIGHUP);
    }

    /// SIGKILL: crash.
    pub fn kill(&self) {
        self.signal(Signal::SIGKILL);
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                self.exit = Some(st);
                self.child = None;
            }
        }
        self.exit
    }

    /// Waits for the process to exit (None on timeout).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The NOTIFICATION that `peer` (a peer object of `status --json`) records in `field`
/// (`last_notification_sent` or `last_notification_received`), asserted to be
/// `code`/`subcode`.
pub fn notification<'a>(peer: &'a Value, field: &str, (code, subcode): (u64, u64)) -> &'a Value {
    let n = &peer[field];
    assert_eq!(
        (n["code"].as_u64(), n["subcode"].as_u64()),
        (Some(code), Some(subcode)),
        "{field}: {peer}"
    );
    n
}

impl Drop for Hostbgp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        show_log_if_panicking(&format!("hostbgp {}", self.name), &self.log);
    }
}
