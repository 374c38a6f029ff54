//! Operators' switches on peers: `hostbgp disable PEER [--message TEXT]` closes a
//! session with an RFC 8203 administrative shutdown and keeps it down (across
//! reloads) until `hostbgp enable PEER`.
use std::net::IpAddr;

use serde_json::json;

use super::{Agent, PeerSession};
use crate::bgp::session::{self, PeerStatus, SessionSender};
use crate::bgp::wire::Notification;
use crate::config::Peer;
use crate::control::{Reply, Request};

/// What a disable says when the operator gives no message.
const DEFAULT_MESSAGE: &str = "hostbgp: administratively disabled";

impl Agent {
    /// The configured peer `name` designates: a peer name (`bgp.peers.NAME`) or an
    /// address.
    fn find_peer(&self, name: Option<&str>) -> Result<Peer, String> {
        let name = name.ok_or("which peer? give its name or address")?;
        let peers = self.config.peers();
        let by_address = name.parse::<IpAddr>().ok();
        peers
            .iter()
            .find(|p| {
                p.remote.address().is_some_and(|a| Some(a) == by_address)
                    || p.remote.interface() == Some(name)
                    || p.declared_by.iter().any(|(_, n)| n == name)
            })
            .cloned()
            .ok_or_else(|| {
                let known: Vec<String> = peers
                    .iter()
                    .map(|p| format!("{} ({})", super::peer_name(p), p.remote))
                    .collect();
                format!("no peer {name:?}; configured: {}", known.join(", "))
            })
    }

    pub(super) async fn disable(&mut self, request: &Request) -> Reply {
        let peer = match self.find_peer(request.peer.as_deref()) {
            Ok(p) => p,
            Err(e) => return Reply::error(e),
        };
        let message = request
            .message
            .clone()
            .unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
        let was = self.admin_down.insert(peer.remote.clone(), message.clone());
        let name = super::peer_name(&peer).to_string();
        if was.is_some() {
            return Reply::ok(json!(format!(
                "peer {name} was already disabled; message now {message:?}"
            )));
        }
        tracing::warn!(peer = %peer.remote, %name, "disabled by the operator: {message}");
        let status = self
            .sessions
            .get(&peer.remote)
            .map(|s| s.status.borrow().clone());
        let stopping = std::time::SystemTime::now();
        let notification = Notification::cease_shutdown(&message);
        if let Some(wait) = self.stop_session(peer.remote.clone(), notification) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), wait).await;
        }
        // What the session wrote as it stopped (a Hard Reset around it under the RFC
        // 8538 N bit), if it had a connection to write on.
        let sent = status
            .as_ref()
            .and_then(|s| s.received.last_sent.lock().ok()?.clone())
            .filter(|r| r.at >= stopping)
            .map(|r| r.notification.name());
        let said = match sent {
            Some(name) => format!("{name}: {message:?}"),
            None => "no connection was open: nothing sent".to_string(),
        };
        self.spawn_session_with(peer, status);
        Reply::ok(json!(format!(
            "peer {name} disabled ({said}); `hostbgp enable {name}` brings it back"
        )))
    }

    pub(super) fn enable(&mut self, request: &Request) -> Reply {
        let peer = match self.find_peer(request.peer.as_deref()) {
            Ok(p) => p,
            Err(e) => return Reply::error(e),
        };
        let name = super::peer_name(&peer).to_string();
        if self.admin_down.remove(&peer.remote).is_none() {
            return Reply::ok(json!(format!("peer {name} is not disabled")));
        }
        tracing::info!(peer = %peer.remote, %name, "enabled by the operator");
        let status = self
            .sessions
            .remove(&peer.remote)
            .map(|s| s.status.borrow().clone());
        self.spawn_session_with(peer, status);
        Reply::ok(json!(format!("peer {name} enabled")))
    }

    /// A disabled peer's entry: no task (its channel leads nowhere), not in the
    /// listener's directory (so the peer's connections are refused), status Idle.
    pub(super) fn park_session(
        &mut self,
        id: u64,
        peer: Peer,
        cmd: SessionSender,
        mut status: PeerStatus,
    ) {
        status.ended();
        // No task writes it: the entry shows what the last session left, Idle.
        let (_, status) = session::status_channel(status);
        self.sessions
            .insert(peer.remote.clone(), PeerSession::new(id, peer, cmd, status));
    }
}
