//! The agent: one event loop owning the config, the kernel view, the intent and the
//! per-peer Adj-RIB-Out. Kernel events, session events, control requests and signals
//! all arrive here and are handled one at a time, so every change is a diff against
//! one consistent state.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use foldhash::HashMap as FastHashMap;
use ipnet::IpNet;
use serde_json::{json, Value};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

mod admin;
mod bfd;

use crate::bgp::adj_out::{AdjRibOut, Changes, PathKey};
use crate::bgp::fsm::{GracefulRestartParams, LocalParams, Negotiated};
use crate::bgp::session::{
    self, PeerStatus, SessionCmd, SessionEvent, SessionParams, SharedStatus,
};
use crate::bgp::speaker::{Listener, PeerDirectory};
use crate::bgp::wire::{codes, Family, Notification};
use crate::config::{self, Config, Peer};
use crate::control::{self, Command, Pending, Reply};
use crate::kernel::{
    protocol_name, Address, ForeignChange, ForeignRoute, Kernel, KernelEvent, KernelView, Route,
};
use crate::metrics::{self, KernelRouteCounts, Metrics, Scrape};
use crate::plan::{self, explain, Planner, SessionView, Touched};
use crate::status::{self, ServerStatus, Status};
use crate::time::sleep_until_some;

type KernelFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send + 'a>>;

/// What a kernel batch works on: a route to install, or a prefix to remove.
trait RouteItem {
    fn prefix(&self) -> IpNet;
}

impl RouteItem for Route {
    fn prefix(&self) -> IpNet {
        self.prefix
    }
}

impl RouteItem for IpNet {
    fn prefix(&self) -> IpNet {
        *self
    }
}

/// How long a withdrawal caused by an address going away waits for it to come back.
/// LXD re-applies a bridge's addresses (flush, then add) on every `lxc network set`
/// and at every daemon start, 6-20 ms apart: peers should not see that as a flap.
const ADDRESS_HOLD_DOWN: Duration = Duration::from_millis(100);

/// Kernel events handled in one batch before the intent is recomputed.
const EVENT_BATCH: usize = 1 << 16;
/// Up to this many kernel route changes go one by one on the shared connection.
const SMALL_KERNEL_BATCH: usize = 16;

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
    cmd: mpsc::UnboundedSender<SessionCmd>,
    status: SharedStatus,
    task: tokio::task::JoinHandle<()>,
    established: Option<Established>,
    adj_out: AdjRibOut,
    /// Why prefixes of a family are held back from this peer.
    unsent: BTreeMap<Family, String>,
    /// The next hop each (family, rule) got in the syncs since Established.
    next_hops: NextHopTable,
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
    kernel: Kernel,
    view: KernelView,
    /// Holds the intent: what the kernel should hold and what peers should hear.
    planner: Planner,
    local: Option<LocalParams>,
    listen: Option<SocketAddr>,
    listener: Option<Listener>,
    directory: PeerDirectory,
    sessions: BTreeMap<IpAddr, PeerSession>,
    session_events: mpsc::UnboundedSender<SessionEvent>,
    next_session_id: u64,
    /// The fingerprint of the route last installed per prefix, so a kernel that reports
    /// it in another form is not fought with endless re-installs (a full copy of 100k
    /// routes cost 15 MB).
    installed: FastHashMap<IpNet, u64>,
    route_errors: BTreeMap<IpNet, String>,
    /// Peers an operator disabled (`hostbgp disable`), with the shutdown message: kept
    /// across reloads until enabled.
    admin_down: BTreeMap<IpAddr, String>,
    /// The last STATUS= line sent to systemd.
    last_status_line: Option<String>,
    /// The last time another route displaced ours, per prefix (for `routes`).
    displaced: BTreeMap<IpNet, String>,
    started: SystemTime,
    metrics: Metrics,
    /// The metrics listener's task and address, while `hostbgp.metrics_address` is set.
    metrics_server: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
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
    bfd_up: BTreeSet<IpAddr>,
}

/// Prefixes whose withdrawal waits, and until when.
#[derive(Default)]
struct HeldWithdrawals {
    prefixes: Vec<IpNet>,
    until: Option<tokio::time::Instant>,
}

impl HeldWithdrawals {
    fn hold(&mut self, prefixes: Vec<IpNet>) {
        if prefixes.is_empty() {
            return;
        }
        self.prefixes.extend(prefixes);
        self.until
            .get_or_insert_with(|| tokio::time::Instant::now() + ADDRESS_HOLD_DOWN);
    }

    fn take(&mut self) -> Vec<IpNet> {
        self.until = None;
        let mut p = std::mem::take(&mut self.prefixes);
        p.sort_unstable();
        p.dedup();
        p
    }
}

fn format_errors(errors: &[config::ConfigError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Marks a stop for restart, so the next start announces Restart State and Forwarding State.
fn restart_marker(socket: &std::path::Path) -> PathBuf {
    socket.with_extension("restarting")
}

pub async fn run(opts: RunOptions) -> Result<(), String> {
    let mut source = crate::lxd::ConfigSource::start(&opts.config_path, &opts.member)
        .map_err(|e| format_errors(&e))?;
    source.first_snapshot(Duration::from_secs(3)).await;
    let config = source.load().map_err(|e| format_errors(&e))?;
    let (kernel, mut kernel_events) = Kernel::connect()
        .await
        .map_err(|e| format!("netlink: {e}"))?;
    let view = kernel
        .dump()
        .await
        .map_err(|e| format!("netlink dump: {e}"))?;
    let control_listener = control::bind(&opts.socket)
        .map_err(|e| format!("control socket {}: {e}", opts.socket.display()))?;
    let (control_tx, mut control_rx) = mpsc::channel::<Pending>(16);
    tokio::spawn(control::serve(control_listener, control_tx));

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
    let mut agent = Agent {
        opts,
        planner: Planner::new(&config),
        config,
        kernel,
        view,
        local: None,
        listen: None,
        listener: None,
        directory: PeerDirectory::default(),
        sessions: BTreeMap::new(),
        session_events: session_tx,
        next_session_id: 1,
        installed: FastHashMap::default(),
        route_errors: BTreeMap::new(),
        displaced: BTreeMap::new(),
        admin_down: BTreeMap::new(),
        last_status_line: None,
        started: SystemTime::now(),
        metrics: Metrics::default(),
        metrics_server: None,
        scrapes: scrape_tx,
        changes_sent: 0,
        held: HeldWithdrawals::default(),
        source,
        bfd: crate::bfd::task::spawn(bfd_tx),
        bfd_up: BTreeSet::new(),
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

    let mut sighup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut sigpwr = signal(SignalKind::from_raw(libc::SIGPWR)).map_err(|e| e.to_string())?;
    let mut watchdog = {
        let period = sd_notify::watchdog_enabled()
            .map(|d| d / 2)
            .unwrap_or(Duration::from_secs(3600));
        tokio::time::interval(period)
    };

    let mut route_check = RouteCheckTimer::new(agent.config.agent.route_check_interval);
    loop {
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
            Some(scrape) = scrape_rx.recv() => { let _ = scrape.send(agent.metrics_text()); }
            Some(pending) = control_rx.recv() => {
                let Pending { request, reply } = pending;
                match request.command {
                    Command::Status => { let _ = reply.send(Reply::ok(agent.status_json())); }
                    Command::Routes => { let _ = reply.send(Reply::ok(agent.routes_json(request.all))); }
                    Command::Reload => {
                        let result = agent.reload().await;
                        agent.serve_metrics().await;
                        if let Some(e) = &result.error { tracing::error!("reload refused:\n{e}"); }
                        let _ = reply.send(result);
                        route_check.set(agent.config.agent.route_check_interval);
                    }
                    Command::LogLevel => { let _ = reply.send(agent.set_log_level(request.level.as_deref())); }
                    Command::Disable => { let _ = reply.send(agent.disable(&request).await); }
                    Command::Enable => { let _ = reply.send(agent.enable(&request)); }
                    Command::Shutdown => {
                        agent.shutdown().await;
                        let _ = reply.send(Reply::ok(json!("shut down: every prefix withdrawn, kernel routes removed")));
                        // Let the control task write the reply before the runtime goes.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return Ok(());
                    }
                }
            }
            _ = sighup.recv() => {
                let reply = agent.reload().await;
                agent.serve_metrics().await;
                if let Some(e) = reply.error { tracing::error!("reload refused:\n{e}"); }
                route_check.set(agent.config.agent.route_check_interval);
            }
            _ = sigpwr.recv() => {
                agent.shutdown().await;
                return Ok(());
            }
            _ = sigterm.recv() => {
                agent.bfd_admin_down().await;
                return agent.stop_for_restart();
            }
            _ = sigint.recv() => {
                agent.bfd_admin_down().await;
                return agent.stop_for_restart();
            }
            () = agent.source.changed() => agent.on_source_changed().await,
            _ = watchdog.tick() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                agent.notify_status();
            }
        }
    }
}

impl Agent {
    fn local_params(&self, restarting: bool) -> Result<Option<LocalParams>, String> {
        let Some(asn) = self.config.server.asn else {
            return Ok(None);
        };
        let router_id = match self.config.server.router_id {
            Some(id) => id,
            None => plan::default_router_id(&self.view).ok_or(
                "config.core.bgp_routerid is not set and the host has no IPv4 address to choose one from",
            )?,
        };
        Ok(Some(LocalParams {
            asn,
            router_id,
            hold_time: crate::config::DEFAULT_HOLD_TIME,
            graceful_restart: self.config.server.graceful_restart.then_some(
                GracefulRestartParams {
                    restart_time: self.config.server.graceful_restart_time,
                    restarting,
                    forwarding: restarting,
                },
            ),
        }))
    }

    fn start_bgp(&mut self, restarting: bool) -> Result<(), String> {
        self.local = self.local_params(restarting)?;
        self.listen = self.config.server.listen;
        let (Some(_), Some(listen)) = (&self.local, self.listen) else {
            tracing::info!("core.bgp_address not set: BGP disabled");
            return Ok(());
        };
        let peers = self.config.peers();
        // On reload the previous listener's socket may still be closing: retry briefly.
        let mut attempts = 0;
        let listener = loop {
            match Listener::bind(listen, &peers, self.directory.clone()) {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 40 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        self.listener = Some(listener);
        for peer in peers {
            self.spawn_session(peer);
        }
        self.sync_bfd();
        Ok(())
    }

    fn spawn_session(&mut self, peer: Peer) {
        self.spawn_session_with(peer, None);
    }

    /// Starts `peer`'s session task, continuing `status` (its counters and last
    /// NOTIFICATIONs) when given. A peer an operator disabled gets an entry and no task.
    fn spawn_session_with(&mut self, peer: Peer, status: Option<SharedStatus>) {
        let Some(local) = self.local.clone() else {
            return;
        };
        let id = self.next_session_id;
        self.next_session_id += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let status: SharedStatus =
            status.unwrap_or_else(|| Arc::new(std::sync::Mutex::new(PeerStatus::default())));
        if self.admin_down.contains_key(&peer.address) {
            self.park_session(id, peer, tx, status);
            return;
        }
        let params = SessionParams {
            id,
            peer: peer.clone(),
            local: local.for_peer(peer.hold_time, peer.graceful_restart_time),
            bind: self.listen.map(|l| l.ip()),
        };
        // Every line a session logs names its peer.
        let span = tracing::info_span!("peer", peer = %peer.address, name = %peer_name(&peer));
        let task = tokio::spawn(
            session::run(params, rx, self.session_events.clone(), status.clone()).instrument(span),
        );
        if let Ok(mut d) = self.directory.write() {
            d.insert(peer.address, tx.clone());
        }
        if peer.bfd.is_some() && self.bfd_up.contains(&peer.address) {
            let _ = tx.send(SessionCmd::BfdUp);
        }
        self.sessions.insert(
            peer.address,
            PeerSession {
                id,
                peer,
                cmd: tx,
                status,
                task,
                established: None,
                adj_out: AdjRibOut::default(),
                next_hops: NextHopTable::default(),
                unsent: BTreeMap::new(),
            },
        );
    }

    /// Stops one session (NOTIFICATION sent by its task) and forgets it.
    fn stop_session(
        &mut self,
        address: IpAddr,
        notification: Notification,
    ) -> Option<oneshot::Receiver<()>> {
        let session = self.sessions.remove(&address)?;
        if let Ok(mut d) = self.directory.write() {
            d.remove(&address);
        }
        let (done, wait) = oneshot::channel();
        let _ = session.cmd.send(SessionCmd::Stop {
            notification: Some(notification),
            done,
        });
        Some(wait)
    }

    async fn on_kernel_events(&mut self, events: Vec<KernelEvent>) {
        let mut redump = false;
        let mut touched = Touched::default();
        // Most route events confirm what our own requests already put in the view;
        // a batch that changes nothing needs no replanning.
        let mut view_changed = false;
        // Prefixes whose route someone else replaced or changed: put back before the
        // replan, so that their advert never flaps.
        let mut repair = Vec::new();
        for event in &events {
            view_changed |= touched.note(&self.view, event);
            match event {
                KernelEvent::Foreign(foreign) => {
                    if let Some(prefix) = self.on_foreign_route(foreign).await {
                        repair.push(prefix);
                    }
                }
                KernelEvent::Overrun => {
                    tracing::warn!(
                        "netlink overrun: events were lost, re-reading the kernel state"
                    );
                    redump = true;
                }
                KernelEvent::LinkChanged(link) => {
                    // IPv4 routes vanish without an event when their link is set down.
                    let before = self.view.links.get(&link.index);
                    if before.is_some_and(|b| b.admin_up && !link.admin_up)
                        && self.routes_use(link.index)
                    {
                        redump = true;
                    }
                }
                KernelEvent::LinkRemoved(index) => redump |= self.routes_use(*index),
                KernelEvent::AddressRemoved(a) => {
                    // With the last IPv4 address of a link the kernel disables IPv4 on it
                    // and flushes the IPv4 routes through it without an event. Any other
                    // address removal leaves them (even the one covering their gateway),
                    // and re-reading a big table for each would cost milliseconds.
                    redump |= a.net.addr().is_ipv4()
                        && self.last_ipv4_address(a)
                        && self.routes_use(a.ifindex);
                }
                _ => {}
            }
            self.view.apply(event);
        }
        if !repair.is_empty() && !redump {
            repair.sort_unstable();
            repair.dedup();
            self.reconcile_kernel(Some(&repair)).await;
        }
        if redump {
            match self.kernel.dump().await {
                Ok(view) => self.view = view,
                Err(e) => tracing::error!("re-reading the kernel state failed: {e}"),
            }
            self.replan(None).await;
        } else if view_changed {
            self.replan(Some(touched)).await;
        }
    }

    /// Starts, moves or stops the metrics listener to match the config. A listener that
    /// cannot bind is logged; the agent runs on without it.
    async fn serve_metrics(&mut self) {
        let wanted = self.config.agent.metrics_address;
        if self.metrics_server.as_ref().map(|(a, _)| *a) == wanted {
            return;
        }
        if let Some((address, task)) = self.metrics_server.take() {
            task.abort();
            tracing::info!(%address, "metrics listener closed");
        }
        let Some(address) = wanted else {
            return;
        };
        match metrics::bind(address).await {
            Ok(listener) => {
                let task = tokio::spawn(metrics::serve(listener, self.scrapes.clone()));
                tracing::info!(%address, "serving metrics on http://{address}/metrics");
                self.metrics_server = Some((address, task));
            }
            Err(e) => tracing::error!("{e}: metrics not served"),
        }
    }

    fn metrics_text(&self) -> String {
        let mut kernel = KernelRouteCounts::default();
        for (prefix, wanted) in &self.planner.intent().routes {
            let slot = match self.kernel_state(prefix, &wanted.route) {
                KernelState::Error(_) => &mut kernel.error,
                KernelState::Installed => &mut kernel.installed,
                KernelState::Differs => &mut kernel.differs,
                KernelState::Missing => &mut kernel.missing,
            };
            *slot += 1;
        }
        self.metrics.render(&self.status(), kernel)
    }

    /// What the kernel holds of the route `prefix` wants (for `routes` and metrics).
    fn kernel_state(&self, prefix: &IpNet, wanted: &Route) -> KernelState<'_> {
        match (self.view.routes.get(prefix), self.route_errors.get(prefix)) {
            (_, Some(e)) => KernelState::Error(e),
            (Some(k), None) if k == wanted => KernelState::Installed,
            (Some(_), None) => KernelState::Differs,
            (None, None) => KernelState::Missing,
        }
    }

    /// The one-line state systemd shows (`systemctl status hostbgp`), sent when it
    /// changes: sessions up, prefixes advertised.
    fn notify_status(&mut self) {
        let up = self
            .sessions
            .values()
            .filter(|s| s.established.is_some())
            .count();
        let line = format!(
            "{up}/{} peers established, {} prefixes",
            self.sessions.len(),
            self.planner.intent().adverts.count_v4() + self.planner.intent().adverts.count_v6()
        );
        if self.last_status_line.as_deref() != Some(line.as_str()) {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
            self.last_status_line = Some(line);
        }
    }

    /// `hostbgp log-level`: shows the filter, or sets it.
    fn set_log_level(&self, level: Option<&str>) -> Reply {
        let Some(log) = &self.opts.log else {
            return Reply::error("this agent's log level is fixed");
        };
        match level {
            None => Reply::ok(json!(format!("log level: {}", log.current()))),
            Some(level) => match log.set(level) {
                Ok(now) => {
                    tracing::info!("log level set to {now}");
                    Reply::ok(json!(format!("log level: {now}")))
                }
                Err(e) => Reply::error(e),
            },
        }
    }

    /// Acts on another route of a prefix we route: returns the prefix when our route
    /// must be put back (it was replaced, or someone else changed it). A route that
    /// the kernel would prefer to ours is removed. Each acts on one event, never on
    /// our own requests' echoes, so two agents can't loop.
    async fn on_foreign_route(&mut self, foreign: &ForeignRoute) -> Option<IpNet> {
        let prefix = foreign.prefix;
        let wanted = self.planner.intent().routes.contains_key(&prefix);
        let who = protocol_name(foreign.protocol);
        match foreign.change {
            ForeignChange::Replaced | ForeignChange::Tampered if wanted => {
                let what = if foreign.change == ForeignChange::Replaced {
                    format!("a {who} route (metric {}) replaced ours", foreign.metric)
                } else {
                    format!("another program changed our route ({who})")
                };
                tracing::warn!("kernel route {prefix}: {what}; putting ours back");
                self.note_displaced(prefix, what);
                // Compare what the kernel holds with the intent, not with our last request.
                self.installed.remove(&prefix);
                Some(prefix)
            }
            ForeignChange::Added if wanted && foreign.shadows_ours() => {
                let what = format!(
                    "a {who} route (metric {}) took precedence over ours",
                    foreign.metric
                );
                match self
                    .kernel
                    .remove_foreign_route(&prefix, foreign.protocol, foreign.metric)
                    .await
                {
                    Ok(()) => tracing::warn!("kernel route {prefix}: {what}; removed it"),
                    Err(e) => tracing::error!("kernel route {prefix}: {what}; {e}"),
                }
                self.note_displaced(prefix, what);
                None
            }
            _ => {
                tracing::debug!(%prefix, ?foreign, "another route of a prefix we route");
                None
            }
        }
    }

    fn note_displaced(&mut self, prefix: IpNet, what: String) {
        let when = humantime::format_rfc3339_seconds(SystemTime::now());
        self.displaced.insert(prefix, format!("{what} at {when}"));
    }

    /// Compares the kernel's copy of our routes with what events said, and repairs
    /// what differs (events missed, or changes the kernel makes without one).
    async fn check_kernel_routes(&mut self, why: &str) {
        let started = std::time::Instant::now();
        let drift = match self.kernel.route_drift(&self.view.routes).await {
            Ok(drift) => drift,
            Err(e) => {
                tracing::error!("{why}: reading our kernel routes failed: {e}");
                return;
            }
        };
        tracing::debug!(routes = self.view.routes.len(), elapsed = ?started.elapsed(), drifted = drift.len(), "{why} of kernel routes");
        if drift.is_empty() {
            return;
        }
        for (prefix, holds) in drift.iter().take(DRIFT_LOGGED) {
            let said = self.view.routes.get(prefix).map(|r| format!("{r:?}"));
            let holds = holds.as_ref().map(|r| format!("{r:?}"));
            tracing::warn!(
                "{why}: kernel route {prefix} drifted (events said {}, the kernel holds {}); repairing",
                said.as_deref().unwrap_or("none"),
                holds.as_deref().unwrap_or("none"),
            );
        }
        if drift.len() > DRIFT_LOGGED {
            tracing::warn!(
                "{why}: {} more drifted routes repaired",
                drift.len() - DRIFT_LOGGED
            );
        }
        let mut touched = Touched::default();
        for (prefix, holds) in drift {
            let event = match holds {
                Some(route) => KernelEvent::RouteChanged(route),
                None => KernelEvent::RouteRemoved(prefix),
            };
            touched.note(&self.view, &event);
            self.view.apply(&event);
            self.installed.remove(&prefix);
        }
        self.replan(Some(touched)).await;
    }

    /// Whether `removed` is the only IPv4 address its link has.
    fn last_ipv4_address(&self, removed: &Address) -> bool {
        self.view
            .addresses_of(removed.ifindex)
            .iter()
            .all(|a| !a.net.addr().is_ipv4() || a.net == removed.net)
    }

    /// Whether the kernel flushes routes of ours, without an event, when `ifindex`
    /// goes down, goes away or loses its last IPv4 address (it does so for IPv4 only).
    fn routes_use(&self, ifindex: u32) -> bool {
        self.view.routes.ipv4_through(ifindex)
    }

    /// Plans again what `events` touched (everything when `None`), tells the peers
    /// what changed, then fixes the kernel. What the kernel acknowledged changes what
    /// may be advertised (a NIC's prefix only once its route is in), so a kernel
    /// change is followed by one more pass over the prefixes it moved.
    async fn replan(&mut self, events: Option<Touched>) {
        let kernel_scope = match events {
            None => {
                self.planner.rebuild(&self.view);
                self.sync_peers(Resync::Everything, &[]).await;
                None
            }
            Some(touched) => {
                let delta = self.planner.update(&self.view, &touched);
                let resync = if touched.addresses {
                    Resync::Addresses
                } else {
                    Resync::Changed
                };
                let mut changed = delta.adverts;
                if touched.addresses && touched.links.is_empty() && touched.routes.is_empty() {
                    // Only addresses moved: a withdrawal waits for them to come back.
                    let adverts = &self.planner.intent().adverts;
                    let (gone, rest) = changed.into_iter().partition(|p| !adverts.contains_key(p));
                    self.held.hold(gone);
                    changed = rest;
                }
                self.sync_peers(resync, &changed).await;
                let mut scope = delta.routes;
                scope.extend(&touched.routes);
                // A failed install may succeed once a link or an address appears.
                if touched.addresses || !touched.links.is_empty() {
                    scope.extend(self.route_errors.keys());
                }
                scope.sort_unstable();
                scope.dedup();
                if !changed.is_empty() && !scope.is_empty() {
                    // Let the session tasks write those UPDATEs first: a route request
                    // waits for the RTNL lock (a link being deleted holds it for
                    // milliseconds), and that wait blocks this whole thread.
                    tokio::task::yield_now().await;
                }
                Some(scope)
            }
        };
        let moved = self.reconcile_kernel(kernel_scope.as_deref()).await;
        if !moved.is_empty() {
            let touched = Touched {
                routes: moved,
                ..Touched::default()
            };
            let delta = self.planner.update(&self.view, &touched);
            self.sync_peers(Resync::Changed, &delta.adverts).await;
        }
    }

    /// Brings every established peer in line with the intent; `changed` lists the
    /// prefixes whose advert changed since the last sync.
    async fn sync_peers(&mut self, resync: Resync, changed: &[IpNet]) {
        let addresses: Vec<IpAddr> = self.sessions.keys().copied().collect();
        for address in addresses {
            let everything = match resync {
                Resync::Everything => true,
                Resync::Addresses => self.next_hops_moved(address),
                Resync::Changed => false,
            };
            if everything {
                self.sync_peer(address, None).await;
            } else if !changed.is_empty() {
                self.sync_peer(address, Some(changed)).await;
            }
        }
    }

    /// Whether any next hop this peer was given would now be another (or none).
    fn next_hops_moved(&self, address: IpAddr) -> bool {
        let Some(session) = self.sessions.get(&address) else {
            return false;
        };
        let Some(est) = &session.established else {
            return false;
        };
        session.next_hops.iter().any(|((family, rule), was)| {
            &plan::resolve_next_hop(*family, rule, &est.view, &self.view) != was
        })
    }

    /// Brings one peer's Adj-RIB-Out in line with the intent (all prefixes, or `only`).
    /// A full table goes out in chunks, yielding between them, so the session task
    /// writes (and the peer parses) the first UPDATEs while the rest is worked out.
    async fn sync_peer(&mut self, address: IpAddr, only: Option<&[IpNet]>) {
        let Some(session) = self.sessions.get_mut(&address) else {
            return;
        };
        let Some(est) = &session.established else {
            return;
        };
        let epoch = est.epoch;
        let mut next_hops = PeerNextHops {
            view: &self.view,
            session: est.view,
            families: est.families.clone(),
            resolved: NextHopTable::default(),
            last: None,
        };
        let mut changes = Changes::default();
        let mut handed = 0;
        let adverts = &self.planner.intent().adverts;
        match only {
            Some(prefixes) => {
                for p in prefixes {
                    next_hops.consider(*p, adverts.get(p), session, &mut changes);
                }
            }
            None => {
                session.unsent.clear();
                let gone: Vec<IpNet> = session
                    .adj_out
                    .prefixes()
                    .filter(|p| !adverts.contains_key(p))
                    .collect();
                session
                    .adj_out
                    .reserve(adverts.count_v4(), adverts.count_v6());
                let (mut chunk, mut chunk_end) = (FIRST_SYNC_CHUNK, FIRST_SYNC_CHUNK);
                for (i, (p, advert)) in adverts.iter().enumerate() {
                    next_hops.consider(p, Some(advert), session, &mut changes);
                    if i + 1 == chunk_end {
                        handed +=
                            u64::from(session.send_changes(epoch, std::mem::take(&mut changes)));
                        tokio::task::yield_now().await;
                        chunk = (chunk * 2).min(SYNC_CHUNK);
                        chunk_end += chunk;
                    }
                }
                for p in gone {
                    next_hops.consider(p, None, session, &mut changes);
                }
            }
        }
        handed += u64::from(session.send_changes(epoch, changes));
        if only.is_none() {
            session.next_hops.clear();
        }
        session.next_hops.extend(next_hops.resolved);
        self.changes_sent += handed;
    }

    /// Makes the kernel hold the wanted routes of `scope` (every prefix when `None`).
    /// Each route our own request installed or removed is recorded in the view at once
    /// (its event confirms it later), so the next reconcile does not repeat work whose
    /// events are still queued. Returns the prefixes whose kernel route moved.
    async fn reconcile_kernel(&mut self, scope: Option<&[IpNet]>) -> Vec<IpNet> {
        let wanted = &self.planner.intent().routes;
        let everything: Vec<IpNet>;
        let scope = match scope {
            Some(prefixes) => prefixes,
            None => {
                self.installed.retain(|p, _| wanted.contains_key(p));
                self.displaced.retain(|p, _| wanted.contains_key(p));
                let mut all: Vec<IpNet> = self
                    .view
                    .routes
                    .keys()
                    .chain(wanted.keys())
                    .copied()
                    .collect();
                all.sort_unstable();
                all.dedup();
                everything = all;
                &everything
            }
        };
        let mut remove = Vec::new();
        let mut install = Vec::new();
        for prefix in scope {
            let in_kernel = self.view.routes.get(prefix);
            let Some(wanted) = wanted.get(prefix) else {
                self.installed.remove(prefix);
                self.displaced.remove(prefix);
                match in_kernel {
                    Some(_) => remove.push(*prefix),
                    None => drop(self.route_errors.remove(prefix)),
                }
                continue;
            };
            let needed = match (in_kernel, self.installed.get(prefix)) {
                (None, _) => true,
                (Some(_), Some(done)) => *done != fingerprint(&wanted.route),
                // Found at start-up (adoption): keep it if it already is what we want.
                (Some(k), None) => k != &wanted.route,
            };
            if needed {
                install.push(wanted.route.clone());
            } else if !self.installed.contains_key(prefix) {
                self.installed.insert(*prefix, fingerprint(&wanted.route));
            }
        }
        let mut moved = Vec::new();
        if !remove.is_empty() {
            let removed = self
                .apply_batch(
                    remove,
                    |k, batch| Box::pin(k.remove_routes(batch)),
                    |k, p| Box::pin(k.remove_route(p)),
                )
                .await;
            for prefix in removed {
                if self.view.routes.remove(&prefix).is_some() {
                    moved.push(prefix);
                }
                self.route_errors.remove(&prefix);
            }
        }
        if !install.is_empty() {
            let installed = self
                .apply_batch(
                    install,
                    |k, batch| Box::pin(k.install_routes(batch)),
                    |k, r| Box::pin(k.install_route(r)),
                )
                .await;
            for route in installed {
                let prefix = route.prefix;
                self.route_errors.remove(&prefix);
                self.installed.insert(prefix, fingerprint(&route));
                if self.view.routes.get(&prefix) != Some(&route) {
                    self.view.routes.insert(route);
                    moved.push(prefix);
                }
            }
        }
        moved
    }

    /// Runs one pipelined batch; if any item failed, redoes them one by one to learn
    /// which (and why). Returns the items that succeeded, moved rather than copied (a
    /// copy of 100k routes cost 5 MB at the peak); failures go to `route_errors`.
    async fn apply_batch<T: RouteItem>(
        &mut self,
        items: Vec<T>,
        batch: impl for<'a> Fn(&'a Kernel, &'a [T]) -> KernelFuture<'a>,
        single: impl for<'a> Fn(&'a Kernel, &'a T) -> KernelFuture<'a>,
    ) -> Vec<T> {
        let succeeded = self.try_batch(&items, batch, single).await;
        items
            .into_iter()
            .zip(succeeded)
            .filter_map(|(item, ok)| ok.then_some(item))
            .collect()
    }

    /// Whether each item of `items` went through.
    async fn try_batch<T: RouteItem>(
        &mut self,
        items: &[T],
        batch: impl for<'a> Fn(&'a Kernel, &'a [T]) -> KernelFuture<'a>,
        single: impl for<'a> Fn(&'a Kernel, &'a T) -> KernelFuture<'a>,
    ) -> Vec<bool> {
        // A pipelined batch opens a socket of its own: worth it for many routes, not
        // for the one or two an instance start brings (the latency path).
        if items.len() <= SMALL_KERNEL_BATCH {
            return self.apply_singly(items, single).await;
        }
        let started = std::time::Instant::now();
        match batch(&self.kernel, items).await {
            Ok(()) => {
                tracing::debug!(count = items.len(), elapsed = ?started.elapsed(), "kernel batch done");
                return vec![true; items.len()];
            }
            Err(e) => tracing::debug!(
                count = items.len(),
                "kernel batch failed ({e}); retrying one by one"
            ),
        }
        self.apply_singly(items, single).await
    }

    async fn apply_singly<T: RouteItem>(
        &mut self,
        items: &[T],
        single: impl for<'a> Fn(&'a Kernel, &'a T) -> KernelFuture<'a>,
    ) -> Vec<bool> {
        let mut done = Vec::with_capacity(items.len());
        for item in items {
            let result = single(&self.kernel, item).await;
            // A single request completes inside its system call, never suspending:
            // let the sessions and the watch run between many of them.
            tokio::task::consume_budget().await;
            done.push(result.is_ok());
            match result {
                Ok(()) => {}
                Err(e) => {
                    let prefix = item.prefix();
                    if self.route_errors.insert(prefix, e.to_string()).is_none() {
                        tracing::warn!("kernel route {prefix}: {e}");
                    }
                }
            }
        }
        done
    }

    async fn on_session_event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Established {
                id,
                epoch,
                local,
                negotiated,
            } => {
                let Some(address) = self.session_address(id) else {
                    return;
                };
                if let Some(s) = self.sessions.get_mut(&address) {
                    let Negotiated {
                        families,
                        extended_next_hop_ipv4,
                        ..
                    } = negotiated;
                    s.adj_out.clear();
                    s.next_hops.clear();
                    s.established = Some(Established {
                        epoch,
                        view: SessionView {
                            local,
                            extended_next_hop_ipv4,
                        },
                        families: families.clone(),
                    });
                    self.sync_peer(address, None).await;
                    if let Some(s) = self.sessions.get(&address) {
                        let _ = s.cmd.send(SessionCmd::EndOfRib { epoch, families });
                    }
                }
            }
            SessionEvent::Down { id, epoch } => {
                let Some(address) = self.session_address(id) else {
                    return;
                };
                if let Some(s) = self.sessions.get_mut(&address) {
                    if s.established.as_ref().is_some_and(|e| e.epoch == epoch) {
                        s.established = None;
                        s.adj_out.clear();
                        s.unsent.clear();
                        s.next_hops.clear();
                    }
                }
            }
            SessionEvent::RouteRefresh { id, epoch } => {
                let Some(address) = self.session_address(id) else {
                    return;
                };
                if let Some(s) = self.sessions.get(&address) {
                    if let Some(est) = s.established.as_ref().filter(|e| e.epoch == epoch) {
                        let _ = s.cmd.send(SessionCmd::Changes {
                            epoch,
                            changes: s.adj_out.all(),
                        });
                        let _ = s.cmd.send(SessionCmd::EndOfRib {
                            epoch,
                            families: est.families.clone(),
                        });
                    }
                }
            }
        }
    }

    fn session_address(&self, id: u64) -> Option<IpAddr> {
        self.sessions
            .iter()
            .find(|(_, s)| s.id == id)
            .map(|(a, _)| *a)
    }

    async fn reload(&mut self) -> Reply {
        let new = match self.source.load() {
            Ok(c) => c,
            Err(errors) => return Reply::error(format_errors(&errors)),
        };
        let reply = self.apply_config(new).await;
        // An operator's reload also repairs what the kernel's events never told.
        self.check_kernel_routes("reload").await;
        reply
    }

    /// LXD's state moved: the same path as a reload, refused the same way.
    async fn on_source_changed(&mut self) {
        match self.source.load() {
            Ok(new) => {
                let reply = self.apply_config(new).await;
                if let Some(e) = reply.error {
                    tracing::error!("LXD's new state not applied: {e}");
                }
            }
            Err(errors) => tracing::error!(
                "LXD's new state not applied, keeping the last one:\n{}",
                format_errors(&errors)
            ),
        }
    }

    /// Moves to `new`: resets only the sessions whose peer settings changed, then
    /// replans; an unchanged config touches nothing.
    async fn apply_config(&mut self, new: Config) -> Reply {
        if new == self.config {
            return Reply::ok(json!("configuration reloaded: unchanged"));
        }
        let server_changed = new.server != self.config.server;
        let needs_chosen_id = new.server.asn.is_some() && new.server.router_id.is_none();
        if server_changed && needs_chosen_id && plan::default_router_id(&self.view).is_none() {
            return Reply::error(
                "config.core.bgp_routerid is not set and the host has no IPv4 address to choose one from",
            );
        }
        let old_peers: BTreeMap<IpAddr, Peer> = self
            .config
            .peers()
            .into_iter()
            .map(|p| (p.address, p))
            .collect();
        let new_peers: BTreeMap<IpAddr, Peer> =
            new.peers().into_iter().map(|p| (p.address, p)).collect();
        self.planner = Planner::new(&new);
        self.config = new;
        let mut reset = Vec::new();
        let mut added = Vec::new();
        for (address, old) in &old_peers {
            match new_peers.get(address) {
                None => {
                    self.admin_down.remove(address);
                    tracing::info!(peer = %address, "peer removed from the config");
                    self.stop_session(*address, cease(codes::cease::PEER_DECONFIGURED));
                }
                Some(new) if server_changed || !same_session(old, new) => {
                    tracing::info!(peer = %address, "peer settings changed: resetting its session");
                    self.stop_session(*address, cease(codes::cease::OTHER_CONFIGURATION_CHANGE));
                    reset.push(new.clone());
                }
                Some(new) => {
                    if let Some(s) = self.sessions.get_mut(address) {
                        s.peer = new.clone();
                    }
                }
            }
        }
        for (address, new) in &new_peers {
            if !old_peers.contains_key(address) {
                added.push(new.clone());
            }
        }
        if server_changed {
            if let Some(listener) = self.listener.take() {
                listener.close().await;
            }
            if let Err(e) = self.start_bgp(false) {
                return Reply::error(e);
            }
            let already: Vec<IpAddr> = self.sessions.keys().copied().collect();
            reset.retain(|p| !already.contains(&p.address));
            added.retain(|p| !already.contains(&p.address));
        } else if let Some(listener) = self.listener.as_mut() {
            let peers: Vec<Peer> = new_peers.values().cloned().collect();
            if let Err(e) = listener.set_keys(&peers) {
                tracing::warn!("updating the listener's MD5 keys: {e}");
            }
        }
        for peer in reset.into_iter().chain(added) {
            self.spawn_session(peer);
        }
        self.sync_bfd();
        self.replan(None).await;
        tracing::info!("configuration reloaded");
        Reply::ok(json!("configuration reloaded"))
    }

    /// SIGTERM: leave kernel routes and let peers keep ours as stale (graceful restart).
    fn stop_for_restart(&mut self) -> Result<(), String> {
        let marker = restart_marker(&self.opts.socket);
        if let Err(e) = std::fs::write(&marker, b"") {
            tracing::warn!("writing {}: {e}", marker.display());
        }
        for session in self.sessions.values() {
            session.task.abort();
        }
        let _ = std::fs::remove_file(&self.opts.socket);
        tracing::info!("stopping for a restart: kernel routes kept, peers hold our routes");
        Ok(())
    }

    /// Full shutdown: withdraw everything, say goodbye, remove our kernel routes.
    async fn shutdown(&mut self) {
        tracing::info!("full shutdown: withdrawing every prefix");
        self.bfd_admin_down().await;
        let addresses: Vec<IpAddr> = self.sessions.keys().copied().collect();
        let mut waits = Vec::new();
        for address in addresses {
            if let Some(s) = self.sessions.get_mut(&address) {
                if let Some(est) = &s.established {
                    let mut changes = Changes::default();
                    let prefixes: Vec<IpNet> = s.adj_out.prefixes().collect();
                    for p in prefixes {
                        s.adj_out.set(p, None, &mut changes);
                    }
                    let _ = s.cmd.send(SessionCmd::Changes {
                        epoch: est.epoch,
                        changes,
                    });
                }
            }
            if let Some(wait) = self.stop_session(
                address,
                Notification::cease_shutdown("hostbgp: administrative shutdown"),
            ) {
                waits.push(wait);
            }
        }
        for wait in waits {
            let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
        }
        let prefixes: Vec<IpNet> = self.view.routes.keys().copied().collect();
        if let Err(e) = self.kernel.remove_routes(&prefixes).await {
            tracing::warn!("removing kernel routes: {e}");
        }
        let _ = std::fs::remove_file(&self.opts.socket);
    }

    fn status(&self) -> Status {
        // Per peer: the restart time offered can be the peer's own.
        let offered = |p: &Peer| -> Vec<String> {
            self.local
                .as_ref()
                .map(|l| {
                    crate::bgp::fsm::build_open(&l.for_peer(p.hold_time, p.graceful_restart_time))
                        .capabilities
                        .iter()
                        .map(session::capability_name)
                        .collect()
                })
                .unwrap_or_default()
        };
        let peers = self
            .sessions
            .values()
            .filter_map(|s| {
                let st = s.status.lock().ok()?;
                let mut view = status::peer_view(&s.peer, &st, offered(&s.peer));
                for f in Family::ALL {
                    view.prefixes_sent
                        .insert(f.name().into(), s.adj_out.count(f));
                }
                for (f, why) in &s.unsent {
                    view.not_sent.insert(f.name().into(), why.clone());
                }
                view.admin_down = self.admin_down.get(&s.peer.address).cloned();
                if s.peer.bfd.is_some() {
                    view.bfd = self
                        .bfd
                        .status
                        .lock()
                        .ok()
                        .and_then(|b| b.get(&s.peer.address).cloned());
                }
                Some(view)
            })
            .collect();
        Status {
            server: ServerStatus {
                asn: self.config.server.asn,
                router_id: self.local.as_ref().map(|l| l.router_id.to_string()),
                listen: self.listen.map(|l| l.to_string()),
                member: self.config.member.clone(),
                overlay_keys: self.config.overlay_keys.clone(),
                started_unix: status::unix(self.started),
            },
            peers,
            source: Some(self.source.status_json()),
        }
    }

    fn status_json(&self) -> Value {
        serde_json::to_value(self.status()).unwrap_or(Value::Null)
    }

    /// Every prefix advertised or routed: what hostbgp wants in the kernel, what the
    /// kernel holds (as the agent's view has it) and what each peer was told; with
    /// `all`, also what is configured but not advertised, with the reason.
    fn routes_json(&self, all: bool) -> Value {
        let mut routes = self.advertised_json();
        if all {
            let trouble = RouteTroubles {
                errors: &self.route_errors,
                displaced: &self.displaced,
            };
            let intent = self.planner.intent();
            for item in explain::not_advertised(&self.config, &self.view, intent, &trouble) {
                let known = routes.iter_mut().find(|r| {
                    item.prefix.is_some() && r["prefix"].as_str() == item.prefix.as_deref()
                });
                match known {
                    Some(r) => r["reason"] = json!(item.reason),
                    None => routes.push(json!({
                        "prefix": item.prefix,
                        "owner": item.owner,
                        "owners": [item.owner],
                        "advertised": false,
                        "reason": item.reason,
                        "next_hops": {},
                        "kernel": null,
                    })),
                }
            }
        }
        json!(routes)
    }

    fn advertised_json(&self) -> Vec<Value> {
        let intent = self.planner.intent();
        let mut prefixes: Vec<IpNet> = intent.adverts.iter().map(|(p, _)| p).collect();
        prefixes.extend(
            intent
                .routes
                .keys()
                .filter(|p| !intent.adverts.contains_key(p)),
        );
        prefixes.sort_unstable();
        let hops_json = |hops: &[crate::kernel::RouteNextHop]| {
            hops.iter()
                .map(|h| {
                    json!({
                        "dev": self.view.links.get(&h.ifindex).map(|l| l.name.clone()),
                        "via": h.gateway.map(|g| g.to_string()),
                    })
                })
                .collect::<Vec<_>>()
        };
        let routes: Vec<Value> = prefixes
            .into_iter()
            .map(|prefix| {
                let advert = intent.adverts.get(&prefix);
                let next_hops: serde_json::Map<String, Value> = self
                    .sessions
                    .values()
                    .filter_map(|s| {
                        let nh = s.adj_out.get(&prefix)?;
                        let name = s
                            .peer
                            .declared_by
                            .first()
                            .map(|(_, n)| n.clone())
                            .unwrap_or_default();
                        Some((name, json!(nh.to_string())))
                    })
                    .collect();
                let wanted = intent.routes.get(&prefix);
                let kernel = wanted.map(|wanted| {
                    let held = self.view.routes.get(&prefix);
                    let state = match self.kernel_state(&prefix, &wanted.route) {
                        KernelState::Error(e) => format!("error: {e}"),
                        KernelState::Installed => "installed".to_string(),
                        KernelState::Differs => "installed (differs)".to_string(),
                        KernelState::Missing => "missing".to_string(),
                    };
                    json!({
                        "state": state,
                        "next_hops": hops_json(&wanted.route.next_hops),
                        "held": held.map(|r| hops_json(&r.next_hops)),
                        "displaced": self.displaced.get(&prefix),
                    })
                });
                let owners: Vec<String> = match (advert, wanted) {
                    (Some(a), _) => a.owners.iter().map(|o| o.to_string()).collect(),
                    (None, Some(w)) => w.owners.iter().map(|o| o.to_string()).collect(),
                    (None, None) => Vec::new(),
                };
                json!({
                    "prefix": prefix.to_string(),
                    "owner": owners.first(),
                    "owners": owners,
                    "advertised": advert.is_some(),
                    "next_hops": next_hops,
                    "kernel": kernel,
                })
            })
            .collect();
        routes
    }
}

/// A wanted route as the kernel holds it.
enum KernelState<'a> {
    Installed,
    /// Ours is there, in another form than wanted.
    Differs,
    Missing,
    /// The last request for it failed.
    Error(&'a str),
}

/// The agent's knowledge of why a wanted route is not in the kernel.
struct RouteTroubles<'a> {
    errors: &'a BTreeMap<IpNet, String>,
    displaced: &'a BTreeMap<IpNet, String>,
}

impl explain::RouteTrouble for RouteTroubles<'_> {
    fn trouble(&self, prefix: &IpNet) -> Option<String> {
        if let Some(e) = self.errors.get(prefix) {
            return Some(format!("its kernel route failed: {e}"));
        }
        self.displaced
            .get(prefix)
            .map(|d| format!("its kernel route was displaced: {d}"))
    }
}

/// Drifted routes named one by one in the log; the rest are counted.
const DRIFT_LOGGED: usize = 10;

/// The periodic route check's timer; a zero period never fires.
struct RouteCheckTimer {
    interval: Option<tokio::time::Interval>,
}

impl RouteCheckTimer {
    fn new(period: Duration) -> Self {
        let mut timer = RouteCheckTimer { interval: None };
        timer.set(period);
        timer
    }

    fn set(&mut self, period: Duration) {
        if self.interval.as_ref().map(|i| i.period()) == Some(period) {
            return;
        }
        self.interval = (!period.is_zero()).then(|| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
    }

    async fn tick(&mut self) {
        match self.interval.as_mut() {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Stands for a route in `Agent::installed`: equal routes give equal fingerprints, and
/// different ones collide with odds of 2^-64.
fn fingerprint(route: &Route) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x0068_6f73_7462_6770).hash_one(route)
}

/// Prefixes per chunk of a full-table sync: big enough to fill UPDATEs, small enough
/// that the session task writes one while the agent computes the next. The chunks
/// grow from `FIRST_SYNC_CHUNK`, so the router starts parsing within a millisecond of
/// Established instead of after the first 64k prefixes (13 ms at 100k IPv6).
const SYNC_CHUNK: usize = 1 << 16;
const FIRST_SYNC_CHUNK: usize = 1 << 10;

/// What one peer is to be told about each prefix: the next hop depends only on the
/// family and the advert's rule, so each pair is resolved once per sync.
struct PeerNextHops<'a> {
    view: &'a KernelView,
    session: SessionView,
    families: Vec<Family>,
    resolved: NextHopTable,
    last: Option<(Family, plan::NextHopRule, Result<IpAddr, String>)>,
}

impl PeerNextHops<'_> {
    /// The next hop for `rule` in `family`. Runs of prefixes share a rule, so the last
    /// answer is checked before the table: a full sync hashes once per run, not per prefix.
    fn resolve(&mut self, family: Family, rule: &plan::NextHopRule) -> Result<IpAddr, &String> {
        let Self {
            view,
            session,
            resolved,
            last,
            ..
        } = self;
        if last
            .as_ref()
            .is_some_and(|(f, r, _)| (*f, r) != (family, rule))
        {
            *last = None;
        }
        let (_, _, answer) = last.get_or_insert_with(|| {
            let answer = resolved
                .entry((family, rule.clone()))
                .or_insert_with(|| plan::resolve_next_hop(family, rule, session, view))
                .clone();
            (family, rule.clone(), answer)
        });
        answer.as_ref().copied()
    }

    fn consider(
        &mut self,
        prefix: IpNet,
        advert: Option<&plan::Advert>,
        peer: &mut PeerSession,
        changes: &mut Changes,
    ) {
        let family = Family::of(&prefix);
        let path = match advert {
            None => None,
            Some(_) if !self.families.contains(&family) => {
                peer.unsent
                    .insert(family, "family not negotiated with this peer".into());
                None
            }
            Some(advert) => match self.resolve(family, &advert.next_hop) {
                Ok(next_hop) => Some(PathKey {
                    next_hop,
                    extra: advert.attrs.clone(),
                }),
                Err(reason) => {
                    peer.unsent.entry(family).or_insert_with(|| reason.clone());
                    None
                }
            },
        };
        peer.adj_out.set(prefix, path.as_ref(), changes);
    }
}

impl PeerSession {
    /// Hands `changes` to the session; whether there were any.
    fn send_changes(&self, epoch: u64, changes: Changes) -> bool {
        if changes.is_empty() {
            return false;
        }
        tracing::debug!(peer = %self.peer.address, announce = changes.announced(), withdraw = changes.withdraw.len(), "sending changes");
        let _ = self.cmd.send(SessionCmd::Changes { epoch, changes });
        true
    }
}

/// The name a peer is configured under (its first declaration).
fn peer_name(peer: &Peer) -> &str {
    peer.declared_by
        .first()
        .map(|(_, n)| n.as_str())
        .unwrap_or("")
}

/// Whether a reload may keep the peer's session. BFD settings count: the session is
/// gated on BFD, so turning it on or off must start over.
fn same_session(a: &Peer, b: &Peer) -> bool {
    a.port == b.port
        && a.asn == b.asn
        && a.password == b.password
        && a.hold_time == b.hold_time
        && a.bfd == b.bfd
        && a.graceful_restart_time == b.graceful_restart_time
}

fn cease(subcode: u8) -> Notification {
    Notification::new(codes::CEASE, subcode, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_check_timer() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut off = RouteCheckTimer::new(Duration::ZERO);
            let never = tokio::time::timeout(Duration::from_secs(3600), off.tick()).await;
            assert!(never.is_err(), "a zero period never fires");
            let mut timer = RouteCheckTimer::new(Duration::from_secs(60));
            let start = tokio::time::Instant::now();
            timer.tick().await;
            assert_eq!(start.elapsed(), Duration::from_secs(60), "not at once");
            // Setting the same period keeps the schedule; another one restarts it.
            timer.set(Duration::from_secs(60));
            timer.tick().await;
            assert_eq!(start.elapsed(), Duration::from_secs(120));
            timer.set(Duration::from_secs(5));
            timer.tick().await;
            assert_eq!(start.elapsed(), Duration::from_secs(125));
        });
    }

    #[test]
    fn a_bfd_change_resets_the_session() {
        let peer = Peer {
            address: "192.0.2.1".parse().expect("address"),
            port: 179,
            asn: 65000,
            password: None,
            hold_time: 90,
            bfd: None,
            graceful_restart_time: None,
            declared_by: vec![("br0".into(), "r1".into())],
        };
        let on = Peer {
            bfd: Some(config::BfdSettings::default()),
            ..peer.clone()
        };
        let faster = Peer {
            bfd: Some(config::BfdSettings {
                min_interval_ms: 100,
                ..config::BfdSettings::default()
            }),
            ..peer.clone()
        };
        assert!(same_session(&peer, &peer.clone()));
        assert!(!same_session(&peer, &on));
        let lxd_time = Peer {
            graceful_restart_time: Some(3600),
            ..peer.clone()
        };
        assert!(!same_session(&peer, &lxd_time), "the OPEN changes");
        assert!(!same_session(&on, &faster));
        let renamed = Peer {
            declared_by: vec![("br1".into(), "r1".into())],
            ..on.clone()
        };
        assert!(
            same_session(&on, &renamed),
            "where it is declared is not a setting"
        );
    }
}
