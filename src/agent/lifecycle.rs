//! The two ways out: a stop for restart (routes kept) and a full shutdown.
use std::time::Duration;

use ipnet::IpNet;

use crate::bgp::adj_out::Changes;
use crate::bgp::session::SessionCmd;
use crate::bgp::wire::Notification;
use crate::config::Remote;

use super::{restart_marker, Agent};

impl Agent {
    /// SIGTERM: leave kernel routes and let peers keep ours as stale (graceful restart).
    pub(super) async fn stop_for_restart(&mut self) {
        self.bfd_admin_down().await;
        let marker = restart_marker(&self.opts.socket);
        if let Err(e) = std::fs::write(&marker, b"") {
            tracing::warn!("writing {}: {e}", marker.display());
        }
        // Closed without a NOTIFICATION: under graceful restart the peers keep our
        // routes as stale until we are back.
        let waits: Vec<_> = self
            .sessions
            .values()
            .map(|s| {
                let (done, wait) = tokio::sync::oneshot::channel();
                s.signal(SessionCmd::Stop {
                    notification: None,
                    done,
                });
                wait
            })
            .collect();
        for wait in waits {
            let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        }
        let _ = std::fs::remove_file(&self.opts.socket);
        tracing::info!("stopping for a restart: kernel routes kept, peers hold our routes");
    }

    /// Full shutdown: drain (RFC 8326) for `hostbgp.drain_time`, withdraw everything,
    /// say goodbye, remove our kernel routes. Whether the peers were drained first.
    pub(super) async fn shutdown(&mut self) -> bool {
        tracing::info!("full shutdown");
        // BFD stays up while draining: a BFD Down would drop the sessions (and the
        // drained paths with them) before the routers have moved traffic away.
        self.drain_before_shutdown().await;
        tracing::info!("full shutdown: withdrawing every prefix");
        self.bfd_admin_down().await;
        let addresses: Vec<Remote> = self.sessions.keys().cloned().collect();
        let mut waits = Vec::new();
        for address in addresses {
            if let Some(s) = self.sessions.get_mut(&address) {
                if let Some(est) = &s.established {
                    let mut changes = Changes::default();
                    let prefixes: Vec<IpNet> = s.adj_out.prefixes().collect();
                    for p in prefixes {
                        s.adj_out.set(p, None, &mut changes);
                    }
                    s.tell(SessionCmd::Changes {
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
        if let Err(e) = self.kernel.remove_all().await {
            tracing::warn!("removing kernel routes: {e}");
        }
        let _ = std::fs::remove_file(&self.opts.socket);
        self.drain.is_some()
    }
}
