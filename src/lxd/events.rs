//! The event stream (`/1.0/events`, a websocket over the unix socket) and which
//! events call for a refetch (pure).
use std::path::Path;

use tokio::net::UnixStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

use super::api::Event;
use super::error::LxdError;

pub const EVENTS_PATH: &str = "/1.0/events?type=lifecycle&all-projects=true";

pub type Events = WebSocketStream<UnixStream>;

/// Subscribes to every project's lifecycle events.
pub async fn subscribe(socket: &Path) -> Result<Events, LxdError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| LxdError::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
    let request = format!("ws://lxd{EVENTS_PATH}")
        .into_client_request()
        .map_err(|e| LxdError::Events(e.to_string()))?;
    let (ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| LxdError::Events(format!("{EVENTS_PATH}: {e}")))?;
    Ok(ws)
}

/// What an event asks to be fetched again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `/1.0/instances/NAME` in `project`.
    Instance { project: String, name: String },
    /// A network, its forwards or load balancers (they belong to it).
    Network { name: String },
    /// The instance list: a port joined a bridge and no known NIC has its name.
    Instances,
    /// Server config (`/1.0`).
    Server,
    /// Something that can move many objects at once (profiles, cluster members).
    Everything,
}

/// Parses one text frame; None (and a log line naming the stream) when unreadable.
pub fn parse(text: &str) -> Option<Event> {
    match serde_json::from_str::<Event>(text) {
        Ok(e) => Some(e),
        Err(e) => {
            let head: String = text.chars().take(200).collect();
            tracing::warn!("{EVENTS_PATH}: unreadable event skipped ({e}): {head}");
            None
        }
    }
}

/// Whether `event` can change what hostbgp routes or advertises, and what to refetch.
pub fn classify(event: &Event) -> Option<Change> {
    if event.kind != "lifecycle" {
        return None;
    }
    let action = event.metadata.action.as_str();
    let source = event.metadata.source.as_str();
    let (path, query) = source.split_once('?').unwrap_or((source, ""));
    let project = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("project="))
        .map(str::to_string)
        .or_else(|| event.metadata.project.clone())
        .or_else(|| (!event.project.is_empty()).then(|| event.project.clone()))
        .unwrap_or_else(|| "default".to_string());
    let segment = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.split('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    };
    match action {
        "instance-started" | "instance-stopped" | "instance-shutdown" | "instance-restarted"
        | "instance-updated" | "instance-created" | "instance-deleted" | "instance-paused"
        | "instance-resumed" => {
            let name = event
                .metadata
                .name
                .clone()
                .or_else(|| segment("/1.0/instances/"))?;
            Some(Change::Instance { project, name })
        }
        // A rename changes the instance's key: fetch everything.
        "instance-renamed" => Some(Change::Everything),
        "network-created" | "network-updated" | "network-deleted" => {
            let name = segment("/1.0/networks/")?;
            Some(Change::Network { name })
        }
        "network-renamed" => Some(Change::Everything),
        "config-updated" => Some(Change::Server),
        a if a.starts_with("network-forward-") || a.starts_with("network-load-balancer-") => {
            let name = segment("/1.0/networks/")?;
            Some(Change::Network { name })
        }
        a if a.starts_with("profile-") || a.starts_with("cluster-") => Some(Change::Everything),
        _ => None,
    }
}
