//! The agent: one event loop owning the config, the kernel view, the intent and the
//! per-peer Adj-RIB-Out. Kernel events, session events, control requests and signals
//! all arrive here and are handled one at a time, so every change is a diff against
//! one consistent state.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use foldhash::HashMap as FastHashMap;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod admin;
mod bfd;
mod drain;
mod error;
mod kernel_routes;
mod kernel_sync;
mod lifecycle;
mod peer_sync;
mod reload;
mod report;
mod rib_out;
mod sessions;
mod unnumbered;

use error::format_errors;
pub use error::AgentError;
use kernel_sync::RouteCheckTimer;
use rib_out::HeldWithdrawals;
use sessions::peer_name;

use crate::bgp::adj_out::AdjRibOut;
use crate::bgp::fsm::LocalParams;
use crate::bgp::session::{QueueError, SessionCmd, SessionEvent, SessionSender, StatusView};
use crate::bgp::speaker::{Listener, PeerDirectory};
use crate::bgp::wire::Family;
use crate::config::{Config, Peer, Remote};
use crate::control::{self, Command, Pending, Reply};
use crate::kernel::Kernel;
use crate::metrics::{Metrics, Scrape};
use crate::plan::{self, Planner, SessionView};
use crate::time::sleep_until_some;

/// Kernel events handled in one batch before the intent is recomputed.
const EVENT_BATCH: usize = 1 << 16;

pub struct RunOptions {
    pub config_path: PathBuf,
    pub socket: PathBuf,
    pub member: String,
    /// Changes the log filter at run time (`hostbgp log-level`); None leaves it fixed.
    pub log: Option<crate::logging::LogControl>,
}

struct Established {
    epoch: u64,
    view: SessionView,
    families: Vec<Family>,
}

struct PeerSession {
    id: u64,
    peer: Peer,
    cmd: SessionSender,
    /// Its queue filled up (`session::queue`): the session is to be reset.
    overflowed: bool,
    status: StatusView,
    established: Option<Established>,
    adj_out: AdjRibOut,
    /// Why prefixes of a family are held back from this peer.
    unsent: BTreeMap<Family, String>,
    /// The next hop each (family, rule) got in the syncs since Established.
    next_hops: NextHopTable,
}

impl PeerSession {
    /// A session not yet Established: nothing told, nothing held back.
    fn new(id: u64, peer: Peer, cmd: SessionSender, status: StatusView) -> PeerSession {
        PeerSession {
            id,
            peer,
            cmd,
            overflowed: false,
            status,
            established: None,
            adj_out: AdjRibOut::default(),
            unsent: BTreeMap::new(),
            next_hops: NextHopTable::default(),
        }
    }

    /// Queues route changes for the session; a full queue marks it for a reset.
    /// Whether they were queued.
    fn tell(&mut self, cmd: SessionCmd) -> bool {
        match self.cmd.send(cmd) {
            Ok(()) => true,
            Err(QueueError::Closed) => false,
            Err(QueueError::Full) => {
                self.overflowed = true;
                false
            }
        }
    }

    /// Queues any other command: it has room of its own in the queue, which only a
    /// session already being reset can have filled.
    fn signal(&self, cmd: SessionCmd) {
        if let Err(QueueError::Full) = self.cmd.send(cmd) {
            tracing::warn!(peer = %self.peer.remote, "session queue full: a command was dropped");
        }
    }
}

type NextHopTable = FastHashMap<(Family, plan::NextHopRule), Result<IpAddr, String>>;

/// How much of each peer's Adj-RIB-Out a replan must revisit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resync {
    /// Only prefixes whose advert changed.
    Changed,
    /// Addresses changed: every prefix of a peer whose next hops moved (the next hop
    /// can come from an interface's addresses), else only the changed ones.
    Addresses,
    /// Every prefix of every peer (start, reload, re-dump after lost events).
    Everything,
}

struct Agent {
    opts: RunOptions,
    config: Config,
    /// The kernel as we know it, and what our requests did there.
    kernel: kernel_routes::KernelRoutes<Kernel>,
    /// Holds the intent: what the kernel should hold and what peers should hear.
    planner: Planner,
    local: Option<LocalParams>,
    listen: Option<SocketAddr>,
    listener: Option<Listener>,
    directory: PeerDirectory,
    sessions: BTreeMap<Remote, PeerSession>,
    session_events: mpsc::UnboundedSender<SessionEvent>,
    next_session_id: u64,
    /// Peers an operator disabled (`hostbgp disable`), with the shutdown message: kept
    /// across reloads until enabled.
    admin_down: BTreeMap<Remote, String>,
    /// Set while drained (`hostbgp drain`, or a full shutdown's drain): every path
    /// carries GRACEFUL_SHUTDOWN. Kept across reloads until `undrain`.
    drain: Option<drain::Drain>,
    /// The last STATUS= line sent to systemd.
    last_status_line: Option<String>,
    started: SystemTime,
    metrics: Metrics,
    /// The metrics listener's address and what stops it, while
    /// `hostbgp.metrics_address` is set.
    metrics_server: Option<(SocketAddr, CancellationToken)>,
    /// Cancelled once, when the agent ends: every long-lived task it started ends with it.
    shutdown: CancellationToken,
    scrapes: mpsc::Sender<Scrape>,
    /// Change sets handed to sessions so far (tells which event batches caused UPDATEs).
    changes_sent: u64,
    /// Withdrawals held back while an address may come back (`ADDRESS_HOLD_DOWN`).
    held: HeldWithdrawals,
    /// The file, or the file over a live LXD.
    source: crate::lxd::ConfigSource,
    /// The BFD task: its commands and each session's status.
    bfd: crate::bfd::task::Handle,
    /// Peers whose BFD session is Up (a respawned BGP session learns it at once).
    bfd_up: BTreeSet<crate::bfd::BfdPeer>,
    /// Unnumbered peers' interfaces, by name.
    links: BTreeMap<String, unnumbered::Link>,
    /// Where the interfaces' router discovery tasks report the routers they hear.
    routers_heard: mpsc::UnboundedSender<crate::nd::Heard>,
}

/// Marks a stop for restart, so the next start announces Restart State and Forwarding State.
pub(super) fn restart_marker(socket: &std::path::Path) -> PathBuf {
    socket.with_extension("restarting")
}

pub async fn run(opts: RunOptions) -> Result<(), AgentError> {
    let mut source = crate::lxd::ConfigSource::start(&opts.config_path, &opts.member)
        .map_err(AgentError::Config)?;
    source.first_snapshot(crate::lxd::FIRST_SNAPSHOT_WAIT).await;
    let config = source.load().map_err(AgentError::Config)?;
    let (kernel, mut kernel_events) = Kernel::connect().await.map_err(AgentError::Netlink)?;
    let view = kernel.dump().await.map_err(AgentError::Dump)?;
    let control_listener =
        control::bind(&opts.socket).map_err(|source| AgentError::ControlSocket {
            path: opts.socket.clone(),
            source,
        })?;
    let shutdown = CancellationToken::new();
    let (control_tx, mut control_rx) = mpsc::channel::<Pending>(16);
    let control_task = tokio::spawn(control::serve(
        control_listener,
        control_tx,
        shutdown.clone(),
    ));

    let marker = restart_marker(&opts.socket);
    let restarting = match std::fs::metadata(&marker).and_then(|m| m.modified()) {
        Ok(when) => {
            let _ = std::fs::remove_file(&marker);
            let age = SystemTime::now().duration_since(when).unwrap_or_default();
            config.server.graceful_restart
                && age < Duration::from_secs(u64::from(config.max_graceful_restart_time()))
        }
        Err(_) => false,
    };

    let (session_tx, mut session_rx) = mpsc::unbounded_channel();
    let (scrape_tx, mut scrape_rx) = mpsc::channel::<Scrape>(16);
    let (bfd_tx, mut bfd_rx) = mpsc::unbounded_channel();
    let (routers_tx, mut routers_rx) = mpsc::unbounded_channel();
    let mut agent = Agent {
        opts,
        planner: Planner::new(&config),
        config,
        kernel: kernel_routes::KernelRoutes::new(kernel, view),
        local: None,
        listen: None,
        listener: None,
        directory: PeerDirectory::default(),
        sessions: BTreeMap::new(),
        session_events: session_tx,
        next_session_id: 1,
        admin_down: BTreeMap::new(),
        drain: None,
        last_status_line: None,
        started: SystemTime::now(),
        metrics: Metrics::default(),
        metrics_server: None,
        shutdown: shutdown.clone(),
        scrapes: scrape_tx,
        changes_sent: 0,
        held: HeldWithdrawals::default(),
        source,
        bfd: crate::bfd::task::spawn(bfd_tx),
        bfd_up: BTreeSet::new(),
        links: BTreeMap::new(),
        routers_heard: routers_tx,
    };
    agent.replan(None).await;
    agent.start_bgp(restarting)?;
    agent.serve_metrics().await;
    if restarting {
        tracing::info!(
            "restarted within the graceful restart time: peers keep our routes until End-of-RIB"
        );
    }
    match crate::privileges::drop_all_but_network() {
        Ok(kept) => tracing::debug!(?kept, "dropped all other capabilities"),
        Err(e) => tracing::warn!("dropping capabilities: {e}"),
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    agent.notify_status();
    tracing::info!(member = %agent.config.member, "hostbgp running");

    let handler = |name: &'static str, kind: SignalKind| {
        signal(kind).map_err(|source| AgentError::Signal { name, source })
    };
    let mut sighup = handler("SIGHUP", SignalKind::hangup())?;
    let mut sigterm = handler("SIGTERM", SignalKind::terminate())?;
    let mut sigint = handler("SIGINT", SignalKind::interrupt())?;
    let mut sigpwr = handler("SIGPWR", SignalKind::from_raw(libc::SIGPWR))?;
    let mut watchdog = {
        let period = sd_notify::watchdog_enabled()
            .map(|d| d / 2)
            .unwrap_or(Duration::from_secs(3600));
        tokio::time::interval(period)
    };

    let mut route_check = RouteCheckTimer::new(agent.config.agent.route_check_interval);
    let ending = loop {
        let held_until = agent.held.until;
        tokio::select! {
            _ = sleep_until_some(held_until) => {
                let held = agent.held.take();
                agent.sync_peers(Resync::Changed, &held).await;
            }
            _ = route_check.tick() => agent.check_kernel_routes("periodic check").await,
            Some(event) = kernel_events.recv() => {
                let mut batch = vec![event];
                while batch.len() < EVENT_BATCH {
                    match kernel_events.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let n = batch.len();
                let (started, sent) = (std::time::Instant::now(), agent.changes_sent);
                agent.on_kernel_events(batch).await;
                kernel_events.acted_on(n);
                if agent.changes_sent > sent {
                    agent.metrics.observe_event_to_update(started.elapsed());
                }
            }
            Some(event) = session_rx.recv() => {
                agent.on_session_event(event).await;
                agent.notify_status();
            }
            Some(report) = bfd_rx.recv() => agent.on_bfd_report(report),
            Some(heard) = routers_rx.recv() => agent.on_router_heard(heard),
            Some(scrape) = scrape_rx.recv() => { let _ = scrape.send(agent.metrics_text()); }
            Some(pending) = control_rx.recv() => {
                let Pending { request, reply } = pending;
                match request.command {
                    Command::Status => { let _ = reply.send(Reply::ok(agent.status_json())); }
                    Command::Routes => { let _ = reply.send(Reply::ok(json!(agent.routes(request.all)))); }
                    Command::Reload => { let _ = reply.send(operator_reload(&mut agent, &mut route_check).await); }
                    Command::LogLevel => { let _ = reply.send(agent.set_log_level(request.level.as_deref())); }
                    Command::Disable => { let _ = reply.send(agent.disable(&request).await); }
                    Command::Enable => { let _ = reply.send(agent.enable(&request)); }
                    Command::Drain => { let _ = reply.send(agent.drain().await); }
                    Command::Undrain => { let _ = reply.send(agent.undrain().await); }
                    Command::Shutdown => break Ending::Full { reply: Some(reply) },
                }
            }
            _ = sighup.recv() => { operator_reload(&mut agent, &mut route_check).await; }
            _ = sigpwr.recv() => break Ending::Full { reply: None },
            _ = sigterm.recv() => break Ending::Restart,
            _ = sigint.recv() => break Ending::Restart,
            () = agent.source.changed() => agent.on_source_changed().await,
            _ = watchdog.tick() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                agent.notify_status();
            }
        }
    };
    // The one place where a restart and a full shutdown differ.
    let result = match ending {
        Ending::Restart => {
            agent.stop_for_restart().await;
            Ok(())
        }
        Ending::Full { reply } => {
            let drained = agent.shutdown().await;
            let how = if drained {
                "drained, then every prefix withdrawn"
            } else {
                "every prefix withdrawn"
            };
            if let Some(reply) = reply {
                let text = format!("shut down: {how}, kernel routes removed");
                let _ = reply.send(Reply::ok(json!(text)));
            }
            Ok(())
        }
    };
    // Then everything ends the same way: requests still queued are refused, and the
    // control task writes the replies in flight before the process goes.
    drop(control_rx);
    shutdown.cancel();
    if tokio::time::timeout(CONTROL_FLUSH, control_task)
        .await
        .is_err()
    {
        tracing::warn!("control socket clients still open after {CONTROL_FLUSH:?}: closing them");
    }
    result
}

/// An operator's reload (`hostbgp reload` or SIGHUP): the new config, then what the
/// loop holds of it (the metrics listener, the route check's period).
async fn operator_reload(agent: &mut Agent, route_check: &mut RouteCheckTimer) -> Reply {
    let result = agent.reload().await;
    agent.serve_metrics().await;
    if let Some(e) = &result.error {
        tracing::error!("reload refused:\n{e}");
    }
    route_check.set(agent.config.agent.route_check_interval);
    result
}

/// Why the agent's loop ended.
enum Ending {
    /// SIGTERM or SIGINT (`systemctl stop`, `restart`, an upgrade): kernel routes
    /// stay, peers keep ours under graceful restart, the next start adopts them.
    Restart,
    /// `hostbgp shutdown` (with its reply) or SIGPWR: drain, withdraw everything,
    /// remove our kernel routes.
    Full {
        reply: Option<oneshot::Sender<Reply>>,
    },
}

/// How long the control task may take to write its last replies.
const CONTROL_FLUSH: Duration = Duration::from_secs(2);
