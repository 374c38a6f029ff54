//! Moving to a new configuration (reload, LXD changes) touching only what changed.

use serde_json::json;

use crate::bgp::wire::{codes::CeaseSubcode, Notification};
use crate::config::Remote;
use crate::config::{self, Config};
use crate::control::Reply;
use crate::plan::{self, Planner};

use super::{format_errors, Agent, AgentError};

impl Agent {
    pub(super) async fn reload(&mut self) -> Reply {
        let new = match self.source.reload(crate::lxd::FIRST_SNAPSHOT_WAIT).await {
            Ok(c) => c,
            Err(errors) => return Reply::error(format_errors(&errors)),
        };
        let reply = self.apply_config(new).await;
        // An operator's reload also repairs what the kernel's events never told.
        self.check_kernel_routes("reload").await;
        reply
    }

    /// LXD's state moved: the same path as a reload, refused the same way.
    pub(super) async fn on_source_changed(&mut self) {
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
    pub(super) async fn apply_config(&mut self, new: Config) -> Reply {
        if new == self.config {
            return Reply::ok(json!("configuration reloaded: unchanged"));
        }
        let server_changed = new.server != self.config.server;
        let needs_chosen_id = new.server.asn.is_some() && new.server.router_id.is_none();
        if server_changed && needs_chosen_id && plan::default_router_id(&self.kernel.view).is_none()
        {
            return Reply::error(AgentError::NoRouterId.to_string());
        }
        let changes = config::diff::peers(&self.config, &new, server_changed);
        self.planner = Planner::new(&new);
        self.config = new;
        for address in &changes.removed {
            self.admin_down.remove(address);
            tracing::info!(peer = %address, "peer removed from the config");
            self.stop_session(
                address.clone(),
                Notification::cease(CeaseSubcode::PeerDeconfigured),
            );
        }
        for peer in &changes.reset {
            tracing::info!(peer = %peer.remote, "peer settings changed: resetting its session");
            self.stop_session(
                peer.remote.clone(),
                Notification::cease(CeaseSubcode::OtherConfigurationChange),
            );
        }
        for peer in &changes.updated {
            if let Some(s) = self.sessions.get_mut(&peer.remote) {
                s.peer = peer.clone();
            }
        }
        let (mut reset, mut added) = (changes.reset, changes.added);
        if server_changed {
            if let Some(listener) = self.listener.take() {
                listener.close().await;
            }
            self.stop_links().await;
            if let Err(e) = self.start_bgp(false) {
                return Reply::error(e.to_string());
            }
            let already: Vec<Remote> = self.sessions.keys().cloned().collect();
            reset.retain(|p| !already.contains(&p.remote));
            added.retain(|p| !already.contains(&p.remote));
        }
        for peer in reset.into_iter().chain(added) {
            self.spawn_session(peer);
        }
        self.sync_bfd();
        self.sync_links();
        // Passwords may have changed with the peers.
        self.set_listen_keys();
        self.replan(None).await;
        tracing::info!("configuration reloaded");
        Reply::ok(json!("configuration reloaded"))
    }
}
