//! The `hostbgp` command: the agent (`run`) and its clients.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use hostbgp::agent::{self, RunOptions};
use hostbgp::config;
use hostbgp::control::{self, Command, Request};
use hostbgp::status::{self, Status};
use serde_json::Value;

mod generate;

const DEFAULT_CONFIG: &str = "/etc/hostbgp/hostbgp.yaml";

#[derive(Parser)]
#[command(
    name = "hostbgp",
    version,
    about = "Kernel routes for instances, advertised over BGP"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent in the foreground.
    Run {
        /// Configuration file; conf.d/*.yaml beside it is merged in name order.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The agent's control socket.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Cluster member whose overlay applies (default: the hostname).
        #[arg(long)]
        member: Option<String>,
    },
    /// Validate a configuration file.
    Check {
        /// Configuration file; conf.d/*.yaml beside it is merged in name order.
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Cluster member whose overlay applies (default: the hostname).
        #[arg(long)]
        member: Option<String>,
    },
    /// Show the server and each peer's session.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// The agent's control socket.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Show every advertised prefix.
    Routes {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also list what is configured but not advertised, and why.
        #[arg(long)]
        all: bool,
        /// The agent's control socket.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Re-read the configuration (as SIGHUP).
    Reload {
        /// The agent's control socket.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Drain for `hostbgp.drain_time`, withdraw everything, close sessions, remove
    /// kernel routes and stop the agent.
    Shutdown {
        /// The agent's control socket.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Close a peer's session with an administrative shutdown (RFC 8203) and keep it
    /// down, across reloads, until `enable`.
    Disable {
        /// The peer's name (`bgp.peers.NAME`) or address.
        peer: String,
        /// The shutdown message the peer is sent (and logs).
        #[arg(long)]
        message: Option<String>,
        /// The agent's control socket.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Re-advertise every prefix with the GRACEFUL_SHUTDOWN community (RFC 8326) so
    /// routers move traffic elsewhere; kept, across reloads, until `undrain`.
    Drain {
        /// The agent's control socket.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// End a drain: re-advertise every prefix without GRACEFUL_SHUTDOWN.
    Undrain {
        /// The agent's control socket.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Let a disabled peer's session come back.
    Enable {
        /// The peer's name (`bgp.peers.NAME`) or address.
        peer: String,
        /// The agent's control socket.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Show the running agent's log filter, or change it (no restart).
    LogLevel {
        /// error, warn, info, debug or trace, or filter directives such as
        /// `info,hostbgp::bgp=debug`; without it, the filter in force is shown.
        level: Option<String>,
        /// The agent's control socket.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Write the man pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    Generate { dir: PathBuf },
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// One thread: an event crosses three tasks (netlink watch, agent, session) on its way
/// to a peer, and a wake-up on the same thread costs nothing where waking another
/// thread costs a futex round trip. One thread is also what makes dropping
/// capabilities cover the whole process (capabilities are per thread).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run {
            config,
            socket,
            member,
        } => {
            let log = hostbgp::logging::init();
            let opts = RunOptions {
                config_path: config,
                socket,
                member: member.unwrap_or_else(hostname),
                log: Some(log),
            };
            // The agent runs as a task, not as `block_on`'s own future: that one is
            // polled only after the runtime has parked (an epoll round), which every
            // event paid before reaching the agent.
            let result = runtime().map_err(|e| e.to_string()).and_then(|rt| {
                rt.block_on(async {
                    match tokio::spawn(agent::run(opts)).await {
                        Ok(ran) => ran.map_err(|e| e.to_string()),
                        Err(e) => Err(format!("agent task failed: {e}")),
                    }
                })
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Once: the log is stderr, or the journal that also takes stderr.
                    tracing::error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Check { config, member } => {
            let member = member.unwrap_or_else(hostname);
            if let Some((errors, expected)) = hostbgp::lxd::check(&config, &member) {
                let errors = config::locate_errors(&config, errors);
                return print_live_check(&config, &errors, &expected);
            }
            let report = config::check(&config, &member);
            for d in report.errors.iter().chain(&report.warnings) {
                eprintln!("{d}");
            }
            if report.errors.is_empty() && report.config.is_some() {
                println!("{}: valid", config.display());
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Cmd::Status { json, socket } => client(&socket, Command::Status, json, print_status),
        Cmd::Routes { json, all, socket } => {
            let mut request = Request::new(Command::Routes);
            request.all = all;
            call(&socket, request, json, print_routes)
        }
        Cmd::Reload { socket } => client(&socket, Command::Reload, false, print_message),
        Cmd::Shutdown { socket } => client(&socket, Command::Shutdown, false, print_message),
        Cmd::Drain { socket } => client(&socket, Command::Drain, false, print_message),
        Cmd::Undrain { socket } => client(&socket, Command::Undrain, false, print_message),
        Cmd::Disable {
            peer,
            message,
            socket,
        } => {
            let mut request = Request::new(Command::Disable);
            request.peer = Some(peer);
            request.message = message;
            call(&socket, request, false, print_message)
        }
        Cmd::Enable { peer, socket } => {
            let mut request = Request::new(Command::Enable);
            request.peer = Some(peer);
            call(&socket, request, false, print_message)
        }
        Cmd::LogLevel { level, socket } => {
            let mut request = Request::new(Command::LogLevel);
            request.level = level;
            call(&socket, request, false, print_message)
        }
        Cmd::Generate { dir } => match generate::write_all(Cli::command(), &dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hostbgp: {}: {e}", dir.display());
                ExitCode::from(1)
            }
        },
    }
}

/// `check` of a file that follows LXD: the file alone, and what LXD must supply.
fn print_live_check(
    path: &std::path::Path,
    errors: &[config::Diagnostic],
    expected: &[config::ConfigError],
) -> ExitCode {
    for e in errors {
        eprintln!("{e}");
    }
    if !errors.is_empty() {
        return ExitCode::from(1);
    }
    println!(
        "{}: valid (the file alone; LXD supplies the rest when hostbgp runs)",
        path.display()
    );
    for e in expected {
        println!("expected from LXD: {}", e.key);
    }
    ExitCode::SUCCESS
}

fn client(socket: &std::path::Path, command: Command, json: bool, show: fn(&Value)) -> ExitCode {
    call(socket, Request::new(command), json, show)
}

fn call(socket: &std::path::Path, request: Request, json: bool, show: fn(&Value)) -> ExitCode {
    let reply = runtime()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(control::call(socket, request)));
    match reply {
        Err(e) => {
            eprintln!("hostbgp: {e}");
            ExitCode::from(1)
        }
        Ok(reply) if !reply.ok => {
            eprintln!("hostbgp: {}", reply.error.unwrap_or_default());
            ExitCode::from(1)
        }
        Ok(reply) => {
            let result = reply.result.unwrap_or(Value::Null);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&result).unwrap_or_default()
                );
            } else {
                show(&result);
            }
            ExitCode::SUCCESS
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_message(v: &Value) {
    println!("{}", text(v));
}

fn print_status(v: &Value) {
    let st: Status = match serde_json::from_value(v.clone()) {
        Ok(st) => st,
        Err(e) => {
            eprintln!("hostbgp: unexpected status reply ({e}):\n{v}");
            return;
        }
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let s = &st.server;
    println!(
        "server: member {} AS {} router-id {} listening on {}",
        s.member,
        s.asn.map_or("-".into(), |a| a.to_string()),
        opt(&s.router_id),
        opt(&s.listen)
    );
    if s.drained {
        let since = s.drained_since_unix.map_or(String::new(), |t| {
            format!(" for {}", status::ago(t, std::time::SystemTime::now()))
        });
        println!("drained{since}: every path carries GRACEFUL_SHUTDOWN (65535:0); `hostbgp undrain` ends it");
    }
    if let Some(source) = &st.source {
        print_source(source);
    }
    let now = std::time::SystemTime::now();
    for p in &st.peers {
        let since = match (p.up_since_unix, p.down_since_unix) {
            (Some(up), _) => format!(" for {}", status::ago(up, now)),
            (None, Some(down)) => format!(" (down for {})", status::ago(down, now)),
            _ => String::new(),
        };
        let disabled = p
            .admin_down
            .as_ref()
            .map_or(String::new(), |m| format!(" (disabled: {m:?})"));
        let export = if p.export == "network" {
            " export network"
        } else {
            ""
        };
        let at = match (&p.interface, &p.address) {
            (Some(i), Some(a)) => format!("interface {i} ({a})"),
            (Some(i), None) => format!("interface {i} (router not heard yet)"),
            (None, a) => a.clone().unwrap_or_default(),
        };
        println!(
            "peer {} ({}) {at} AS {}{export}: {}{disabled}{since}",
            p.name,
            p.networks.join(","),
            p.asn,
            p.state,
        );
        if let Some(id) = &p.peer_router_id {
            let hold = p.capabilities.as_ref().map_or(String::new(), |n| {
                let keepalive = n.keepalive_secs.map_or("-".into(), |k| format!("{k}s"));
                format!(
                    ", hold time {}s (configured {}s), keepalive {keepalive}",
                    n.hold_time, p.hold_time
                )
            });
            println!("  router id {id}{hold}");
        }
        if let Some(n) = &p.capabilities {
            println!("  {}", status::graceful_restart_line(n));
        }
        if let Some(b) = &p.bfd {
            println!(
                "  BFD {} (peer {}), tx every {} ms, detection {} ms, last diagnostic: {}",
                b.state, b.remote_state, b.transmit_interval_ms, b.detection_time_ms, b.diagnostic
            );
        }
        if !p.families.is_empty() {
            let list: Vec<String> = p
                .families
                .iter()
                .map(|f| {
                    format!(
                        "{f} ({} sent)",
                        p.prefixes_sent.get(f).copied().unwrap_or(0)
                    )
                })
                .collect();
            println!("  families: {}", list.join(", "));
        }
        for (family, reason) in &p.not_sent {
            println!("  not sending {family}: {reason}");
        }
        println!(
            "  established {} time(s); messages sent {} received {} (updates {}/{})",
            p.established_transitions,
            total(&p.messages_sent),
            total(&p.messages_received),
            p.messages_sent.update,
            p.messages_received.update,
        );
        if let Some(e) = &p.last_error {
            println!("  last error: {e}");
        }
        for (way, n) in [
            ("sent", &p.last_notification_sent),
            ("received", &p.last_notification_received),
        ] {
            if let Some(n) = n {
                let text = n
                    .message
                    .as_ref()
                    .map_or(String::new(), |m| format!(": {m:?}"));
                println!(
                    "  last NOTIFICATION {way}: {}{text}, {} ago",
                    n.name,
                    status::ago(n.unix, now)
                );
            }
        }
    }
}

fn total(m: &status::MessageCounts) -> u64 {
    m.by_name().iter().map(|(_, n)| n).sum()
}

/// The live source's line (nothing for a plain file).
fn print_source(source: &status::SourceView) {
    let Some(s) = &source.live else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let ago = |t: Option<u64>| {
        t.map(|t| format!("{} ago", status::human(now.saturating_sub(t))))
            .unwrap_or_else(|| "never".into())
    };
    let state = if s.connected {
        format!("connected since {}", ago(s.connected_since_unix))
    } else {
        format!("not connected ({})", s.last_error.as_deref().unwrap_or("-"))
    };
    let last_event = match &s.last_event {
        None => "none".to_string(),
        Some(e) => format!("{} {} {}", e.action, e.source, ago(e.unix)),
    };
    println!(
        "source: {} at {}: {state}; {} networks, {} instances; last resync {}; last event {last_event}",
        source.kind,
        s.socket,
        s.networks,
        s.instances,
        ago(s.last_resync_unix),
    );
    if let Some(address) = &s.lxd_bgp_address {
        println!(
            "  LXD's own speaker is enabled (core.bgp_address={address}): run `lxc config unset core.bgp_address`, then restart LXD"
        );
    }
}

fn print_routes(v: &Value) {
    let routes: Vec<status::RouteView> = match serde_json::from_value(v.clone()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hostbgp: unexpected routes reply ({e}):\n{v}");
            return;
        }
    };
    println!(
        "{:<28} {:<28} {:<36} kernel",
        "prefix", "owner", "next hops"
    );
    for r in routes {
        let hops = r
            .next_hops
            .iter()
            .map(|(peer, nh)| format!("{peer}:{nh}"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut kernel = r
            .kernel
            .as_ref()
            .map_or("-".to_string(), |k| k.state.clone());
        if !r.advertised {
            kernel.push_str(", not advertised");
        }
        if let Some(why) = &r.reason {
            kernel.push_str(&format!(" ({why})"));
        }
        if let Some(why) = r.kernel.as_ref().and_then(|k| k.displaced.as_ref()) {
            kernel.push_str(&format!(" (last displaced: {why})"));
        }
        let attributes = r.attributes.unwrap_or_default().to_string();
        if !attributes.is_empty() {
            kernel.push_str(&format!("  [{attributes}]"));
        }
        println!(
            "{:<28} {:<28} {:<36} {}",
            r.prefix.as_deref().unwrap_or("-"),
            r.owner.as_deref().unwrap_or("-"),
            hops,
            kernel
        );
    }
}
