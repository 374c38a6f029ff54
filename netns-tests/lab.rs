//! Network-namespace lab: namespaces, veth pairs, bridges, addresses, routes.
//!
//! Safety: nothing is ever created in the machine's own (root) namespace. Every
//! interface is created directly inside a namespace of this lab (`ip -n NS link add ...
//! peer ... netns NS2`), every command runs through `ip -n` / `ip netns exec`.
//! Namespaces are named `hbt<pid>x<counter><role>` and deleted on Drop (also on
//! panic); stale ones of a crashed run (owner pid dead) are removed at start.

use std::cell::RefCell;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Prefix of every namespace created by these tests.
pub const NS_PREFIX: &str = "hbt";

static COUNTER: AtomicUsize = AtomicUsize::new(0);
static CLEAN_STALE: Once = Once::new();

/// True when running as root. Tests call [`require_root`] and return early otherwise.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// User plus system CPU time of process `pid`, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after the comm: state(0) ... utime(11) stime(12)
    let u: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0);
    let st: u64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    u + st
}

/// Prints a skip message and returns false when not root.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: netns tests need root (CAP_NET_ADMIN, ip netns); run with sudo");
    false
}

/// Whether `bin` is a command here (`command -v`).
pub fn installed(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// [`require_root`], then every one of `bins` installed; else prints a skip message
/// naming the first one missing and how to `install` it, and returns false.
pub fn require_tools(test: &str, bins: &[&str], install: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    match bins.iter().find(|b| !installed(b)) {
        Some(bin) => {
            eprintln!("SKIPPED {test}: `{bin}` is not installed ({install})");
            false
        }
        None => true,
    }
}

fn render(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command; Err includes the command line, exit status and stderr.
pub fn run_cmd(cmd: &mut Command) -> Result<String, String> {
    let line = render(cmd);
    let out: Output = cmd
        .output()
        .map_err(|e| format!("`{line}`: cannot start: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`{line}` failed ({}): stderr: {} stdout: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            stdout.trim()
        ))
    }
}

/// A finished command's stdout, then its stderr, as one text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `args` (program first) on the host, Err with details.
pub fn run(args: &[&str]) -> Result<String, String> {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]);
    run_cmd(&mut c)
}

/// Polls `cond` every 100 ms until true; panics after `timeout` with `desc` and the
/// last state reported by `state`. The timeout is a safety net, not an assertion.
pub fn wait_until_state<S: Debug>(
    desc: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> (bool, S),
) -> S {
    let start = Instant::now();
    loop {
        let (ok, state) = cond();
        if ok {
            return state;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?} waiting for: {desc}\nlast observed state: {state:#?}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `cond` until true; panics with `desc` after `timeout`.
pub fn wait_until(desc: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    wait_until_state(desc, timeout, || (cond(), ()));
}

/// Default safety-net timeout.
pub const TIMEOUT: Duration = Duration::from_secs(20);

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn ns_pids(ns: &str) -> Vec<i32> {
    run(&["ip", "netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn kill_ns_processes(ns: &str) {
    for pid in ns_pids(ns) {
        if let Err(e) = signal_pid(pid, nix::sys::signal::Signal::SIGKILL) {
            eprintln!("warning: namespace {ns}: {e}");
        }
    }
}

/// Sends `sig` to the one process `pid`. Every signal the tests send goes through here.
///
/// kill(2) reads a pid of 0 as "every process in my process group" (the test runner
/// and cargo included), -1 as "every process I may signal" and any other negative
/// value as a process group: those are refused, as is the test runner's own pid.
pub fn signal_pid(pid: i32, sig: nix::sys::signal::Signal) -> Result<(), String> {
    if pid <= 0 {
        return Err(format!(
            "refusing to send {sig:?} to pid {pid}: kill({pid}) signals a process group \
             (0: the test runner's own), not one process"
        ));
    }
    if u32::try_from(pid) == Ok(std::process::id()) {
        return Err(format!(
            "refusing to send {sig:?} to pid {pid}: that is the test runner itself"
        ));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
        .map_err(|e| format!("kill({pid}, {sig:?}): {e}"))
}

/// [`signal_pid`] for a child process of the test (not yet reaped).
pub fn signal_child(
    child: &std::process::Child,
    sig: nix::sys::signal::Signal,
) -> Result<(), String> {
    let pid = i32::try_from(child.id())
        .map_err(|_| format!("child pid {} does not fit a pid_t", child.id()))?;
    signal_pid(pid, sig)
}

fn delete_ns(ns: &str) {
    kill_ns_processes(ns);
    if let Err(e) = run(&["ip", "netns", "del", ns]) {
        eprintln!("warning: {e}");
    }
}

/// Lists existing namespace names.
pub fn list_namespaces() -> Vec<String> {
    run(&["ip", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Removes namespaces of a previous crashed run: `hbt<pid>x...` whose pid is dead.
fn clean_stale() {
    for ns in list_namespaces() {
        let Some(rest) = ns.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        if !rest[digits.len()..].starts_with('x') || pid_alive(pid) {
            continue;
        }
        eprintln!("removing stale namespace {ns} (owner pid {pid} is gone)");
        delete_ns(&ns);
    }
}

/// A lab: a set of namespaces and a temp dir, all removed on Drop.
pub struct Lab {
    prefix: String,
    namespaces: RefCell<Vec<String>>,
    dir: tempfile::TempDir,
}

impl Lab {
    /// New empty lab with a unique prefix.
    pub fn new() -> Lab {
        CLEAN_STALE.call_once(clean_stale);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{NS_PREFIX}{}x{n}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .expect("tempdir");
        Lab {
            prefix,
            namespaces: RefCell::new(Vec::new()),
            dir,
        }
    }

    /// The lab's temp dir (configs, sockets, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Creates namespace `<prefix><role>` with `lo` up; returns its name.
    pub fn ns(&self, role: &str) -> String {
        let name = format!("{}{role}", self.prefix);
        run(&["ip", "netns", "add", &name]).unwrap_or_else(|e| panic!("{e}"));
        self.namespaces.borrow_mut().push(name.clone());
        self.ip(&name, &["link", "set", "lo", "up"]);
        // Quiet, deterministic IPv6: no DAD delays, no router solicitations.
        for key in [
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_ra=0",
            "net.ipv6.conf.default.accept_ra=0",
        ] {
            self.exec(&name, &["sysctl", "-qw", key]);
        }
        name
    }

    /// `ip -n NS ARGS...`, panicking with the command and stderr on failure.
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        self.try_ip(ns, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip -n NS ARGS...`, returning the error.
    pub fn try_ip(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        self.check_ns(ns);
        let mut c = Command::new("ip");
        c.arg("-n").arg(ns).args(args);
        run_cmd(&mut c)
    }

    /// `ip netns exec NS CMD...`, panicking with details on failure.
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> String {
        self.try_exec(ns, cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip netns exec NS CMD...`.
    pub fn try_exec(&self, ns: &str, cmd: &[&str]) -> Result<String, String> {
        let mut c = self.command(ns, cmd);
        run_cmd(&mut c)
    }

    /// One ping from `ns` to `addr` gets an answer within a second.
    pub fn ping(&self, ns: &str, addr: &str) -> bool {
        self.try_exec(ns, &["ping", "-c1", "-W1", addr]).is_ok()
    }

    /// Pings from `ns` until `addr` answers (TIMEOUT).
    pub fn wait_ping(&self, ns: &str, addr: &str) {
        wait_until(&format!("ping {addr} from {ns}"), TIMEOUT, || {
            self.ping(ns, addr)
        });
    }

    /// `ip netns exec NS sh -c SCRIPT`.
    pub fn sh(&self, ns: &str, script: &str) -> String {
        self.exec(ns, &["sh", "-c", script])
    }

    /// A Command running `cmd` inside `ns` (for spawning long-running processes).
    pub fn command(&self, ns: &str, cmd: &[&str]) -> Command {
        self.check_ns(ns);
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(cmd);
        c
    }

    /// Spawns `cmd` inside `ns` as a child of the test, stdin from /dev/null, stdout
    /// and stderr both into the file `out` (created anew), or discarded when None.
    pub fn spawn(&self, ns: &str, cmd: &[&str], out: Option<&Path>) -> Child {
        let (stdout, stderr) = match out {
            Some(path) => {
                let f = std::fs::File::create(path)
                    .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
                let dup = f
                    .try_clone()
                    .unwrap_or_else(|e| panic!("dup {}: {e}", path.display()));
                (Stdio::from(dup), Stdio::from(f))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        self.command(ns, cmd)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{}` in {ns}: {e}", cmd.join(" ")))
    }

    /// `ip -batch FILE` in `ns` as a child, its stderr piped for the failure message.
    pub fn batch(&self, ns: &str, file: &Path) -> Child {
        self.command(ns, &["ip", "-batch", &file.to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip -batch")
    }

    fn check_ns(&self, ns: &str) {
        assert!(
            self.namespaces.borrow().iter().any(|n| n == ns),
            "refusing to act outside this lab's namespaces: {ns:?}"
        );
    }

    /// Veth pair `a.1` in `a.0` <-> `b.1` in `b.0`, both up.
    pub fn veth(&self, a: (&str, &str), b: (&str, &str)) {
        self.ip(
            a.0,
            &[
                "link", "add", a.1, "type", "veth", "peer", "name", b.1, "netns", b.0,
            ],
        );
        self.ip(a.0, &["link", "set", a.1, "up"]);
        self.ip(b.0, &["link", "set", b.1, "up"]);
    }

    /// Adds an address (`nodad` for IPv6).
    pub fn addr(&self, ns: &str, dev: &str, cidr: &str) {
        if cidr.contains(':') {
            self.ip(ns, &["addr", "add", cidr, "dev", dev, "nodad"]);
        } else {
            self.ip(ns, &["addr", "add", cidr, "dev", dev]);
        }
    }

    /// Deletes an address.
    pub fn del_addr(&self, ns: &str, dev: &str, cidr: &str) {
        self.ip(ns, &["addr", "del", cidr, "dev", dev]);
    }

    /// `ip [-6] route add SPEC...`.
    pub fn route(&self, ns: &str, spec: &[&str]) {
        let mut args = Vec::new();
        if spec.iter().any(|s| s.contains(':')) {
            args.push("-6");
        }
        args.extend(["route", "add"]);
        args.extend(spec);
        self.ip(ns, &args);
    }

    /// A bridge `name`, up, with a carrier port (a veth pair inside `ns`, like LXD's
    /// `NAME-mtu` dummy) so the bridge is operationally up without instances.
    pub fn bridge(&self, ns: &str, name: &str) {
        self.ip(ns, &["link", "add", name, "type", "bridge"]);
        self.ip(ns, &["link", "set", name, "up"]);
        let port = format!("{}-p", trunc(name, 12));
        let peer = format!("{}-q", trunc(name, 12));
        self.ip(
            ns,
            &["link", "add", &port, "type", "veth", "peer", "name", &peer],
        );
        self.ip(ns, &["link", "set", &port, "master", name]);
        self.ip(ns, &["link", "set", &port, "up"]);
        self.ip(ns, &["link", "set", &peer, "up"]);
    }

    /// An instance: veth `host_name` (in `host`, up, not enslaved) <-> `eth0` in `inst`.
    pub fn instance_nic(&self, host: &str, host_name: &str, inst: &str) {
        self.veth((host, host_name), (inst, "eth0"));
    }

    /// Enslaves `dev` to `bridge` (instance start).
    pub fn enslave(&self, ns: &str, dev: &str, bridge: &str) {
        self.ip(ns, &["link", "set", dev, "master", bridge]);
    }

    /// Releases `dev` from its bridge.
    pub fn release(&self, ns: &str, dev: &str) {
        self.ip(ns, &["link", "set", dev, "nomaster"]);
    }

    /// Deletes a link (instance stop).
    pub fn delete_link(&self, ns: &str, dev: &str) {
        self.ip(ns, &["link", "del", dev]);
    }

    /// Enables IPv4 and IPv6 forwarding in `ns`.
    pub fn forwarding(&self, ns: &str) {
        self.exec(ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        self.exec(ns, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    }

    /// Kernel routes (`ip [-6] route show ARGS`) as text.
    pub fn routes(&self, ns: &str, v6: bool, args: &[&str]) -> String {
        let mut a = vec![if v6 { "-6" } else { "-4" }, "route", "show"];
        a.extend(args);
        self.ip(ns, &a)
    }

    /// Namespaces of this lab.
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.borrow().clone()
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.borrow().iter().rev() {
            delete_ns(ns);
        }
        if std::thread::panicking() && std::env::var_os("HOSTBGP_TEST_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            eprintln!(
                "HOSTBGP_TEST_KEEP: logs and configs kept in {}",
                dir.keep().display()
            );
        }
    }
}

fn trunc(s: &str, n: usize) -> &str {
    &s[..s.len().min(n)]
}

/// The standard topology: router `r` and host `h` joined by `eth0`
/// (router 198.51.100.2/24 + 2001:db8:ff::1/64, host 198.51.100.1/24 +
/// 2001:db8:ff::2/64), bridge `br0` in the host holding 203.0.113.1/24 and
/// 2001:db8:100::1/64.
pub struct Topo {
    pub lab: Lab,
    pub r: String,
    pub h: String,
}

pub const ROUTER_V4: &str = "198.51.100.2";
pub const ROUTER_V6: &str = "2001:db8:ff::1";
pub const HOST_V4: &str = "198.51.100.1";
pub const HOST_V6: &str = "2001:db8:ff::2";
pub const BR_V4: &str = "203.0.113.1/24";
pub const BR_V6: &str = "2001:db8:100::1/64";

impl Topo {
    /// Router + host + link; the bridge gets `bridge_addrs`.
    pub fn new(bridge_addrs: &[&str]) -> Topo {
        let lab = Lab::new();
        let r = lab.ns("r");
        let h = lab.ns("h");
        lab.veth((&r, "eth0"), (&h, "eth0"));
        lab.addr(&r, "eth0", &format!("{ROUTER_V4}/24"));
        lab.addr(&r, "eth0", &format!("{ROUTER_V6}/64"));
        lab.addr(&h, "eth0", &format!("{HOST_V4}/24"));
        lab.addr(&h, "eth0", &format!("{HOST_V6}/64"));
        lab.bridge(&h, "br0");
        for a in bridge_addrs {
            lab.addr(&h, "br0", a);
        }
        Topo { lab, r, h }
    }

    /// (lab, router namespace, host namespace)
    pub fn parts(&self) -> (&Lab, &str, &str) {
        (&self.lab, &self.r, &self.h)
    }
}
