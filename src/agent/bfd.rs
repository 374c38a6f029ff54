//! The agent's side of BFD: it tells the BFD task which peers want it, and turns the
//! task's reports into `SessionCmd::BfdUp`/`BfdDown` for the BGP sessions.
use std::collections::BTreeMap;

use super::Agent;
use crate::bfd::task::{Command, Report};
use crate::bgp::session::SessionCmd;
use crate::config::Remote;

impl Agent {
    /// Hands the BFD task the peers that want BFD now (none while BGP is off).
    pub(super) fn sync_bfd(&self) {
        let peers: BTreeMap<_, _> = if self.local.is_some() && self.listen.is_some() {
            self.config
                .peers()
                .into_iter()
                .filter_map(|p| Some((p.remote.address()?, p.bfd?)))
                .collect()
        } else {
            BTreeMap::new()
        };
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
        let (address, cmd) = match report {
            Report::Up(address) => {
                self.bfd_up.insert(address);
                (address, SessionCmd::BfdUp)
            }
            Report::Down(address, cause) => {
                self.bfd_up.remove(&address);
                if cause.is_path_failure() {
                    (address, SessionCmd::BfdDown)
                } else {
                    // RFC 5882 section 3.2: an AdminDown says BFD was turned off, not
                    // that the path failed; BGP goes on without it.
                    tracing::info!(peer = %address, ?cause, "BFD administratively down: BGP no longer waits for it");
                    (address, SessionCmd::BfdUp)
                }
            }
        };
        if let Some(s) = self.sessions.get(&Remote::Address(address)) {
            let _ = s.cmd.send(cmd);
        }
    }
}
