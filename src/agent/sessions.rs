//! Starting, stopping and hearing from the BGP session tasks.
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::Instrument;

use crate::bgp::fsm::{GracefulRestartParams, LocalParams, Negotiated};
use crate::bgp::session::{self, PeerStatus, SessionCmd, SessionEvent, SessionParams};
use crate::bgp::speaker::Listener;
use crate::bgp::wire::{codes::CeaseSubcode, Notification};
use crate::config::Peer;
use crate::config::Remote;
use crate::plan::{self, SessionView};

use super::{Agent, AgentError, Established, PeerSession};

impl Agent {
    pub(super) fn local_params(&self, restarting: bool) -> Result<Option<LocalParams>, AgentError> {
        let Some(asn) = self.config.server.asn else {
            return Ok(None);
        };
        let router_id = match self.config.server.router_id {
            Some(id) => id,
            None => plan::default_router_id(&self.kernel.view).ok_or(AgentError::NoRouterId)?,
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

    pub(super) fn start_bgp(&mut self, restarting: bool) -> Result<(), AgentError> {
        self.local = self.local_params(restarting)?;
        self.listen = self.config.server.listen;
        let (Some(_), Some(listen)) = (&self.local, self.listen) else {
            tracing::info!("core.bgp_address not set: BGP disabled");
            return Ok(());
        };
        let peers = self.config.peers();
        let keys = self.listen_keys();
        // On reload the previous listener's socket may still be closing: retry briefly.
        let mut attempts = 0;
        let listener = loop {
            match Listener::bind(listen, &keys, self.directory.subscribe()) {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 40 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(AgentError::Listen {
                        address: listen,
                        source,
                    })
                }
            }
        };
        self.listener = Some(listener);
        for peer in peers {
            self.spawn_session(peer);
        }
        self.sync_bfd();
        self.sync_links();
        Ok(())
    }

    pub(super) fn spawn_session(&mut self, peer: Peer) {
        self.spawn_session_with(peer, None);
    }

    /// Starts `peer`'s session task, continuing `status` (its counters and last
    /// NOTIFICATIONs) when given. A peer an operator disabled gets an entry and no task.
    pub(super) fn spawn_session_with(&mut self, peer: Peer, status: Option<PeerStatus>) {
        let Some(local) = self.local.clone() else {
            return;
        };
        let id = self.next_session_id;
        self.next_session_id += 1;
        let (tx, rx) = session::queue();
        let status = status.unwrap_or_default();
        if self.admin_down.contains_key(&peer.remote) {
            self.park_session(id, peer, tx, status);
            return;
        }
        let params = SessionParams {
            id,
            peer: peer.clone(),
            local: local.for_peer(peer.hold_time, peer.graceful_restart_time),
            // An unnumbered session comes from the link-local the kernel picks on
            // its interface: the one our router advertisements come from.
            bind: self
                .listen
                .map(|l| l.ip())
                .filter(|_| peer.remote.interface().is_none()),
        };
        // Every line a session logs names its peer.
        let span = tracing::info_span!("peer", peer = %peer.remote, name = %peer_name(&peer));
        let (writer, status) = session::status_channel(status);
        // Ends on `Stop`, or when the agent drops its channel.
        tokio::spawn(
            session::run(params, rx, self.session_events.clone(), writer).instrument(span),
        );
        if let Some(caller) = self.caller_of(&peer.remote) {
            self.directory.send_modify(|d| {
                d.insert(caller, tx.clone());
            });
        }
        let bfd_up = self
            .bfd_peer(&peer.remote)
            .is_some_and(|a| self.bfd_up.contains(&a));
        if peer.bfd.is_some() && bfd_up {
            let _ = tx.send(SessionCmd::BfdUp);
        }
        if let Some(router) = self.router_of(&peer.remote) {
            let _ = tx.send(SessionCmd::Neighbour(router));
        }
        self.sessions
            .insert(peer.remote.clone(), PeerSession::new(id, peer, tx, status));
    }

    /// Stops one session (NOTIFICATION sent by its task) and forgets it.
    pub(super) fn stop_session(
        &mut self,
        address: Remote,
        notification: Notification,
    ) -> Option<oneshot::Receiver<()>> {
        let session = self.sessions.remove(&address)?;
        if let Some(caller) = self.caller_of(&address) {
            self.directory.send_modify(|d| {
                d.remove(&caller);
            });
        }
        let (done, wait) = oneshot::channel();
        let _ = session.cmd.send(SessionCmd::Stop {
            notification: Some(notification),
            done,
        });
        Some(wait)
    }

    pub(super) async fn on_session_event(&mut self, event: SessionEvent) {
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
                    self.sync_peer(address.clone(), None).await;
                    // Not if the sync reset it: the new session has an epoch of its own.
                    if let Some(s) = self.sessions.get_mut(&address).filter(|s| s.id == id) {
                        s.tell(SessionCmd::EndOfRib { epoch, families });
                    }
                    self.reset_if_overflowed(&address);
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
                if let Some(s) = self.sessions.get_mut(&address) {
                    if let Some(est) = s.established.as_ref().filter(|e| e.epoch == epoch) {
                        let families = est.families.clone();
                        let changes = s.adj_out.all();
                        s.tell(SessionCmd::Changes { epoch, changes });
                        s.tell(SessionCmd::EndOfRib { epoch, families });
                    }
                }
                self.reset_if_overflowed(&address);
            }
        }
    }

    /// Resets the session at `address` if its queue overflowed: the peer reads far
    /// slower than routes change (see `session::queue` for why a reset).
    pub(super) fn reset_if_overflowed(&mut self, address: &Remote) {
        let Some(s) = self.sessions.get(address).filter(|s| s.overflowed) else {
            return;
        };
        let (peer, mut status) = (s.peer.clone(), s.status.borrow().clone());
        let why = format!(
            "reset: its queue is full ({} route changes waiting), the peer reads far slower than routes change",
            session::ROUTE_CHANGES_QUEUED
        );
        status.ended();
        tracing::warn!(peer = %address, "{why}");
        // Shown by `status` until the new session has news of its own.
        status.last_error = Some(why);
        self.stop_session(
            address.clone(),
            Notification::cease(CeaseSubcode::OutOfResources),
        );
        self.spawn_session_with(peer, Some(status));
    }

    pub(super) fn session_address(&self, id: u64) -> Option<Remote> {
        self.sessions
            .iter()
            .find(|(_, s)| s.id == id)
            .map(|(a, _)| a.clone())
    }
}

/// The name a peer is configured under (its first declaration).
pub(super) fn peer_name(peer: &Peer) -> &str {
    peer.declared_by
        .first()
        .map(|(_, n)| n.as_str())
        .unwrap_or("")
}
