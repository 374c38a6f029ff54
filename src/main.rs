//! The `hostbgp` command: the agent (`run`) and its clients.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hostbgp::agent::{self, RunOptions};
use hostbgp::config;
use hostbgp::control::{self, Command};
use serde_json::Value;

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
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Cluster member whose overlay applies (default: the hostname).
        #[arg(long)]
        member: Option<String>,
    },
    /// Validate a configuration file.
    Check {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        member: Option<String>,
    },
    /// Show the server and each peer's session.
    Status {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Show every advertised prefix.
    Routes {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Re-read the configuration (as SIGHUP).
    Reload {
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Withdraw everything, close sessions, remove kernel routes and stop the agent.
    Shutdown {
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM").and_then(|_| tracing_journald::layer().ok());
    match journald {
        Some(layer) => tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .init(),
        None => tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
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
            init_logging();
            let opts = RunOptions {
                config_path: config,
                socket,
                member: member.unwrap_or_else(hostname),
            };
            // The agent runs as a task, not as `block_on`'s own future: that one is
            // polled only after the runtime has parked (an epoll round), which every
            // event paid before reaching the agent.
            let result = runtime().map_err(|e| e.to_string()).and_then(|rt| {
                rt.block_on(async {
                    tokio::spawn(agent::run(opts))
                        .await
                        .map_err(|e| format!("agent task failed: {e}"))?
                })
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hostbgp: {e}");
                    tracing::error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Check { config, member } => {
            let member = member.unwrap_or_else(hostname);
            if let Some((errors, expected)) = hostbgp::lxd::check(&config, &member) {
                return print_live_check(&config, &errors, &expected);
            }
            match config::load(&config, &member) {
                Ok(_) => {
                    println!("{}: valid", config.display());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in errors {
                        println!("{e}");
                    }
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Status { json, socket } => client(&socket, Command::Status, json, print_status),
        Cmd::Routes { json, socket } => client(&socket, Command::Routes, json, print_routes),
        Cmd::Reload { socket } => client(&socket, Command::Reload, false, print_message),
        Cmd::Shutdown { socket } => client(&socket, Command::Shutdown, false, print_message),
    }
}

/// `check` of a file that follows LXD: the file alone, and what LXD must supply.
fn print_live_check(
    path: &std::path::Path,
    errors: &[config::ConfigError],
    expected: &[config::ConfigError],
) -> ExitCode {
    for e in errors {
        println!("{e}");
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
    let reply = runtime()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(control::call(socket, command)));
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
    let s = &v["server"];
    println!(
        "server: member {} AS {} router-id {} listening on {}",
        text(&s["member"]),
        text(&s["asn"]),
        text(&s["router_id"]),
        text(&s["listen"])
    );
    print_source(&v["source"]);
    let Some(peers) = v["peers"].as_array() else {
        return;
    };
    for p in peers {
        println!(
            "peer {} ({}) {} AS {}: {}{}",
            text(&p["name"]),
            p["networks"]
                .as_array()
                .map(|n| n.iter().map(text).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
            text(&p["address"]),
            text(&p["asn"]),
            text(&p["state"]),
            p["uptime_secs"]
                .as_u64()
                .map(|u| format!(" for {u}s"))
                .unwrap_or_default(),
        );
        if let Some(families) = p["families"].as_array().filter(|f| !f.is_empty()) {
            let sent = &p["prefixes_sent"];
            let list: Vec<String> = families
                .iter()
                .map(|f| format!("{} ({} sent)", text(f), text(&sent[text(f)])))
                .collect();
            println!("  families: {}", list.join(", "));
        }
        if let Some(why) = p["not_sent"].as_object().filter(|m| !m.is_empty()) {
            for (family, reason) in why {
                println!("  not sending {family}: {}", text(reason));
            }
        }
        if !p["last_error"].is_null() {
            println!("  last error: {}", text(&p["last_error"]));
        }
    }
}

/// The live source's line (nothing for a plain file).
fn print_source(s: &Value) {
    let kind = text(&s["kind"]);
    if s.is_null() || kind == "file" {
        return;
    }
    let ago = |t: &Value| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        t.as_u64()
            .map(|t| format!("{}s ago", now.saturating_sub(t)))
            .unwrap_or_else(|| "never".into())
    };
    let state = if s["connected"].as_bool() == Some(true) {
        format!("connected since {}", ago(&s["connected_since_unix"]))
    } else {
        format!("not connected ({})", text(&s["last_error"]))
    };
    println!(
        "source: {kind} at {}: {state}; {} networks, {} instances; last resync {}; last event {}",
        text(&s["socket"]),
        text(&s["networks"]),
        text(&s["instances"]),
        ago(&s["last_resync_unix"]),
        if s["last_event"].is_null() {
            "none".to_string()
        } else {
            format!(
                "{} {} {}",
                text(&s["last_event"]["action"]),
                text(&s["last_event"]["source"]),
                ago(&s["last_event"]["unix"])
            )
        },
    );
    if !s["lxd_bgp_address"].is_null() {
        println!(
            "  LXD's own speaker is enabled (core.bgp_address={}): run `lxc config unset core.bgp_address`, then restart LXD",
            text(&s["lxd_bgp_address"])
        );
    }
}

fn print_routes(v: &Value) {
    let Some(routes) = v.as_array() else { return };
    println!(
        "{:<28} {:<28} {:<36} kernel",
        "prefix", "owner", "next hops"
    );
    for r in routes {
        let hops = r["next_hops"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(peer, nh)| format!("{peer}:{}", text(nh)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let kernel = if r["kernel"].is_null() {
            "-".to_string()
        } else {
            text(&r["kernel"]["state"])
        };
        println!(
            "{:<28} {:<28} {:<36} {}",
            text(&r["prefix"]),
            text(&r["owner"]),
            hops,
            kernel
        );
    }
}
