//! The agent's side of BFD: it tells the BFD task which peers want it, and turns the
//! task's reports into `SessionCmd::BfdUp`/`BfdDown` for the BGP sessions.
//!
//! An unnumbered peer's BFD session is with the router heard on its interface: its
//! link-local, scoped to the interface. It starts once the router is heard, moves
//! when another router is heard, and ends when the interface goes.
use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Agent;
use crate::bfd::task::{Command, PeerSpec, Report};
use crate::bgp::session::SessionCmd;
use crate::config::Remote;

impl Agent {
    /// The address `remote`'s BFD session is with: its own, or the router heard on
    /// an unnumbered peer's interface (None until heard).
    pub(super) fn bfd_address(&self, remote: &Remote) -> Option<IpAddr> {
        match remote {
            Remote::Address(a) => Some(*a),
            Remote::Interface(_) => self.router_of(remote).map(|r| IpAddr::V6(*r.ip())),
        }
    }

    /// The BFD peers wanted now (none while BGP is off): address peers as they are,
    /// unnumbered peers by their heard router, scoped to its interface.
    fn bfd_peers(&self) -> BTreeMap<IpAddr, PeerSpec> {
        let mut peers = BTreeMap::new();
        if self.local.is_none() || self.listen.is_none() {
            return peers;
        }
        for p in self.config.peers() {
            let Some(settings) = p.bfd else { continue };
            let (address, spec) = match &p.remote {
                Remote::Address(a) => (*a, PeerSpec::address(settings)),
                Remote::Interface(_) => {
                    let Some(router) = self.router_of(&p.remote) else {
                        continue;
                    };
                    let spec = PeerSpec::scoped(settings, router.scope_id());
                    (IpAddr::V6(*router.ip()), spec)
                }
            };
            if let Some(other) = peers.insert(address, spec) {
                // BFD names a peer by address: the same router link-local on two
                // interfaces (or a peer and a router) is one BFD session.
                tracing::warn!(peer = %p.remote, %address, ?other, "BFD: another peer has the same address; one BFD session serves the last");
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
        let (address, up) = match report {
            Report::Up(address) => {
                self.bfd_up.insert(address);
                (address, true)
            }
            Report::Down(address, cause) => {
                self.bfd_up.remove(&address);
                if !cause.is_path_failure() {
                    // RFC 5882 section 3.2: an AdminDown says BFD was turned off, not
                    // that the path failed; BGP goes on without it.
                    tracing::info!(peer = %address, ?cause, "BFD administratively down: BGP no longer waits for it");
                }
                (address, !cause.is_path_failure())
            }
        };
        // The address peer, or the unnumbered peer whose router this is.
        for (remote, s) in &self.sessions {
            if s.peer.bfd.is_some() && self.bfd_address(remote) == Some(address) {
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
