//! The live source task: follows LXD and publishes a snapshot after every change.
//!
//! Order that loses nothing: subscribe to events first, then fetch everything, then
//! publish; events that arrive meanwhile are queued on the websocket and lead to a
//! refetch. On any failure (LXD stopped, restarting, not yet started) the last
//! snapshot stays published, so the agent keeps every session and advertisement,
//! and the task reconnects with backoff and resyncs.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::time::sleep_until_some;
use tokio_tungstenite::tungstenite::Message;

use super::client::Client;
use super::convert::{instance_key, Snapshot};
use super::error::LxdError;
use super::events::{self, Change};
use super::fetch;
use super::ports::{PortChase, PortEvent, Ports};
use super::socket::Flavor;

/// A burst of events (a profile change names every instance) becomes one refetch.
const DEBOUNCE: Duration = Duration::from_millis(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What `hostbgp status` shows about the source.
#[derive(Clone, Debug, Default)]
pub struct SourceStatus {
    pub flavor: Option<Flavor>,
    pub socket: PathBuf,
    pub connected_since: Option<SystemTime>,
    pub last_event: Option<(SystemTime, String, String)>,
    pub last_resync: Option<SystemTime>,
    pub networks: usize,
    pub instances: usize,
    pub last_error: Option<String>,
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    /// LXD's own `core.bgp_address`, when set (its speaker competes with hostbgp).
    pub lxd_speaker: Option<String>,
}

/// The task's status, published to `hostbgp status` (the task is its only writer).
pub type StatusSender = watch::Sender<SourceStatus>;

pub type Publisher = watch::Sender<Option<Arc<Snapshot>>>;

fn update(status: &StatusSender, f: impl FnOnce(&mut SourceStatus)) {
    status.send_modify(f);
}

/// Runs until the receiving side is gone.
pub async fn run(socket: PathBuf, publish: Publisher, status: StatusSender) {
    let mut backoff = BACKOFF_MIN;
    let mut last_logged: Option<String> = None;
    let mut ports = match Ports::open() {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(
                "watching bridge ports: {e}; instance starts are seen from LXD's events only"
            );
            None
        }
    };
    loop {
        let result = follow(&socket, &publish, &status, &mut backoff, &mut ports).await;
        if publish.is_closed() {
            return;
        }
        let message = match result {
            Ok(()) => "the event stream ended".to_string(),
            Err(e) => e.to_string(),
        };
        update(&status, |s| {
            s.connected_since = None;
            s.last_error = Some(message.clone());
        });
        // The same failure every 2 s (LXD not installed, stopped) is said once.
        if last_logged.as_deref() != Some(message.as_str()) {
            tracing::warn!(
                "LXD source: {message}; keeping the last known state, retrying (every {} s at most)",
                BACKOFF_MAX.as_secs()
            );
            last_logged = Some(message);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection: subscribe, resync, then refetch on events until something fails.
async fn follow(
    socket: &std::path::Path,
    publish: &Publisher,
    status: &StatusSender,
    backoff: &mut Duration,
    ports: &mut Option<Ports>,
) -> Result<(), LxdError> {
    let mut events = events::subscribe(socket).await?;
    let mut client = Client::connect(socket).await?;
    let previous = publish.borrow().clone();
    let snapshot = fetch::fetch(&mut client, previous.as_deref()).await?;
    let now = SystemTime::now();
    update(status, |s| {
        s.connected_since = Some(now);
        s.last_error = None;
    });
    tracing::info!(socket = %socket.display(), "LXD source connected; state read");
    *backoff = BACKOFF_MIN;
    let mut current = snapshot;
    publish_snapshot(publish, status, &current);

    let mut pending: Vec<Change> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut chase = PortChase::default();
    // Ports matched to a NIC by their peer's MAC, until LXD names them itself.
    let mut assumed: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let wait = sleep_until_some(deadline);
        let port_events = async {
            match ports.as_mut() {
                Some(p) => p.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            found = port_events => {
                let found = match found {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!("watching bridge ports failed: {e}; LXD's events only from now on");
                        *ports = None;
                        continue;
                    }
                };
                for event in found {
                    match event {
                        PortEvent::Enslaved { name, peer_mac, .. } => {
                            let mut known = super::convert::knows_port(&current, &name);
                            let matched = peer_mac.as_deref().filter(|_| !known).and_then(|mac| {
                                Some((mac.to_string(), super::convert::assume_port(&current, &name, mac)?))
                            });
                            if let Some((mac, next)) = matched {
                                tracing::debug!(port = %name, %mac, "a NIC's veth joined its bridge (matched by its peer's MAC)");
                                current = next;
                                publish_snapshot(publish, status, &current);
                                assumed.insert(name.clone(), mac);
                                known = true;
                            }
                            if chase.enslaved(&name, known) {
                                if !pending.contains(&Change::Instances) {
                                    pending.push(Change::Instances);
                                }
                                deadline = Some(Instant::now());
                            }
                        }
                        PortEvent::Gone { name } => {
                            chase.gone(&name);
                            assumed.remove(&name);
                        }
                    }
                }
            }
            frame = events.next() => {
                let Some(change) = on_frame(frame, status)? else { continue };
                if !pending.contains(&change) {
                    pending.push(change);
                }
                let soon = Instant::now() + DEBOUNCE;
                deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
            }
            () = wait => {
                deadline = None;
                let changes = std::mem::take(&mut pending);
                // A fresh connection per round: LXD closes idle keep-alive ones.
                let mut client = Client::connect(socket).await?;
                current = refetch(&mut client, current, &changes).await?;
                // A read that raced LXD's own write of the veth's name keeps the match.
                assumed.retain(|port, _| !super::convert::knows_port(&current, port));
                for (port, mac) in &assumed {
                    if let Some(next) = super::convert::assume_port(&current, port, mac) {
                        current = next;
                    }
                }
                publish_snapshot(publish, status, &current);
                // Ports still unknown get another read, a little later.
                if let Some(delay) = chase.after_read(|n| super::convert::knows_port(&current, n)) {
                    pending.push(Change::Instances);
                    deadline = Some(Instant::now() + delay);
                }
            }
        }
    }
}

/// One websocket frame: the change it announces, if any; an error when the stream ended.
fn on_frame(
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    status: &StatusSender,
) -> Result<Option<Change>, LxdError> {
    let text = match frame {
        None => return Err(LxdError::Events("LXD closed the event stream".into())),
        Some(Err(e)) => return Err(LxdError::Events(e.to_string())),
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(Message::Close(_))) => {
            return Err(LxdError::Events("LXD closed the event stream".into()))
        }
        // Pings are answered by tungstenite itself as long as the stream is read.
        Some(Ok(_)) => return Ok(None),
    };
    let Some(event) = events::parse(text.as_str()) else {
        return Ok(None);
    };
    let change = events::classify(&event);
    if change.is_some() {
        tracing::debug!(action = %event.metadata.action, source = %event.metadata.source, "LXD event");
        update(status, |s| {
            s.last_event = Some((
                SystemTime::now(),
                event.metadata.action.clone(),
                event.metadata.source.clone(),
            ))
        });
    }
    Ok(change)
}

/// The snapshot after `changes`: instances one by one when only instances moved,
/// the instance list for a new port, else everything.
async fn refetch(
    client: &mut Client,
    mut current: Snapshot,
    changes: &[Change],
) -> Result<Snapshot, LxdError> {
    let only_instances = changes
        .iter()
        .all(|c| matches!(c, Change::Instance { .. } | Change::Instances));
    if !only_instances {
        return fetch::fetch(client, Some(&current)).await;
    }
    if changes.contains(&Change::Instances) {
        current.instances = fetch::fetch_instances(client, Some(&current)).await?;
        return Ok(current);
    }
    for change in changes {
        let Change::Instance { project, name } = change else {
            continue;
        };
        let fetched = match fetch::fetch_instance(client, project, name).await {
            Ok(i) => i,
            Err(e @ (LxdError::Parse { .. } | LxdError::Request { .. })) => {
                tracing::warn!("{e}; kept as last read");
                continue;
            }
            Err(e) => return Err(e),
        };
        let key = instance_key(&super::api::Instance {
            name: name.clone(),
            project: project.clone(),
            ..Default::default()
        });
        current.instances.retain(|i| instance_key(i) != key);
        if let Some(i) = fetched {
            current.instances.push(i);
        }
    }
    current.instances.sort_by_key(instance_key);
    Ok(current)
}

fn publish_snapshot(publish: &Publisher, status: &StatusSender, snapshot: &Snapshot) {
    let addr = snapshot
        .server
        .config
        .get("core.bgp_address")
        .filter(|a| !a.is_empty());
    let said = status.borrow().lxd_speaker.as_ref() == addr;
    if let (Some(addr), false) = (addr, said) {
        tracing::error!(
            "LXD's own BGP speaker is enabled (core.bgp_address={addr}): it competes with hostbgp for the peers. Fix: `lxc config unset core.bgp_address`, then restart LXD (LXD 5.0.x keeps a broken speaker until it restarts)"
        );
    }
    let server = &snapshot.server;
    update(status, |s| {
        s.last_resync = Some(SystemTime::now());
        s.networks = snapshot.networks.len();
        s.instances = snapshot
            .instances
            .iter()
            .filter(|i| super::convert::is_local(server, i))
            .count();
        s.server_name = Some(server.environment.server_name.clone());
        s.server_version = Some(server.environment.server_version.clone());
        s.lxd_speaker = addr.cloned();
    });
    publish.send_if_modified(|old| {
        if old.as_deref() == Some(snapshot) {
            return false;
        }
        *old = Some(Arc::new(snapshot.clone()));
        true
    });
}
