//! The agent's side of BFD: it tells the BFD task which peers want it, and turns the
//! task's reports into `SessionCmd::BfdUp`/`BfdDown` for the BGP sessions.
//!
//! An unnumbered peer's BFD session is with the router heard on its interface: its
//! link-local, scoped to the interface. It starts once the router is heard, moves
//! when another router is heard, and ends when the interface goes.
use std::collections::BTreeMap;

use super::Agent;
use crate::bfd::task::{Command, Report};
use crate::bfd::BfdPeer;
use crate::bgp::session::SessionCmd;
use crate::config::BfdSettings;
use crate::config::Remote;

impl Agent {
    /// Who `remote`'s BFD session is with: its own address, or the router heard on
    /// an unnumbered peer's interface, on that interface (None until heard).
    pub(super) fn bfd_peer(&self, remote: &Remote) -> Option<BfdPeer> {
        match remote {
            Remote::Address(a) => Some(BfdPeer::address(*a)),
            Remote::Interface(_) => self
                .router_of(remote)
                .map(|r| BfdPeer::scoped(*r.ip(), r.scope_id())),
        }
    }

    /// The BFD peers wanted now (none while BGP is off): address peers as they are,
    /// unnumbered peers by their heard router, scoped to its interface.
    fn bfd_peers(&self) -> BTreeMap<BfdPeer, BfdSettings> {
        let mut peers = BTreeMap::new();
        if self.local.is_none() || self.listen.is_none() {
            return peers;
        }
        for p in self.config.peers() {
            let Some(settings) = p.bfd else { continue };
            let Some(bfd_peer) = self.bfd_peer(&p.remote) else {
                continue;
            };
            if let Some(other) = peers.insert(bfd_peer, settings) {
                // Two configured peers that are one BFD peer (one address, or one
                // router on one interface): one BFD session serves both.
                tracing::warn!(peer = %p.remote, %bfd_peer, ?other, "BFD: another peer is the same BFD peer; one BFD session serves both");
            }
        }
        peers
    }

    /// Hands the BFD task the peers that want BFD now, and forgets that BFD was up
    /// with any other address.
    pub(super) fn sync_bfd(&mut self) {
        let peers = self.bfd_peers();
        self.bfd_up.retain(|a| peers.contains_key(a));
        let _ = self.bfd.commands.send(Command::Peers(peers));
    }

    /// Going away on purpose (shutdown or restart): AdminDown to every BFD peer, which
    /// a router must not take for a path failure (RFC 5882 section 3.2), so graceful
    /// restart keeps our routes there. Waits a moment for the task to send it.
    pub(super) async fn bfd_admin_down(&self) {
        if self.config.peers().iter().all(|p| p.bfd.is_none()) {
            return;
        }
        let _ = self.bfd.commands.send(Command::Peers(BTreeMap::new()));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    pub(super) fn on_bfd_report(&mut self, report: Report) {
        let (bfd_peer, up) = match report {
            Report::Up(bfd_peer) => {
                self.bfd_up.insert(bfd_peer);
                (bfd_peer, true)
            }
            Report::Down(bfd_peer, cause) => {
                self.bfd_up.remove(&bfd_peer);
                if !cause.is_path_failure() {
                    // RFC 5882 section 3.2: an AdminDown says BFD was turned off, not
                    // that the path failed; BGP goes on without it.
                    tracing::info!(peer = %bfd_peer, ?cause, "BFD administratively down: BGP no longer waits for it");
                }
                (bfd_peer, !cause.is_path_failure())
            }
        };
        // The address peer, or the unnumbered peer whose router this is.
        for (remote, s) in &self.sessions {
            if s.peer.bfd.is_some() && self.bfd_peer(remote) == Some(bfd_peer) {
                let cmd = if up {
                    SessionCmd::BfdUp
                } else {
                    SessionCmd::BfdDown
                };
                s.signal(cmd);
            }
        }
    }
}
