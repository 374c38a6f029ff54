//! What each peer is told: replanning after events and bringing every peer's
//! Adj-RIB-Out in line with the intent.
use std::time::Duration;

use ipnet::IpNet;

use crate::config::Remote;
use crate::plan::Touched;

use super::peer_sync::SyncInput;
use super::{Agent, Resync};

/// How long a withdrawal caused by an address going away waits for it to come back.
/// LXD re-applies a bridge's addresses (flush, then add) on every `lxc network set`
/// and at every daemon start, 6-20 ms apart: peers should not see that as a flap.
const ADDRESS_HOLD_DOWN: Duration = Duration::from_millis(100);

/// Prefixes whose withdrawal waits, and until when.
#[derive(Default)]
pub(super) struct HeldWithdrawals {
    prefixes: Vec<IpNet>,
    pub(super) until: Option<tokio::time::Instant>,
}

impl HeldWithdrawals {
    pub(super) fn hold(&mut self, prefixes: Vec<IpNet>) {
        if prefixes.is_empty() {
            return;
        }
        self.prefixes.extend(prefixes);
        self.until
            .get_or_insert_with(|| tokio::time::Instant::now() + ADDRESS_HOLD_DOWN);
    }

    pub(super) fn take(&mut self) -> Vec<IpNet> {
        self.until = None;
        let mut p = std::mem::take(&mut self.prefixes);
        p.sort_unstable();
        p.dedup();
        p
    }
}

impl Agent {
    /// Plans again what `events` touched (everything when `None`), tells the peers
    /// what changed, then fixes the kernel. What the kernel acknowledged changes what
    /// may be advertised (a NIC's prefix only once its route is in), so a kernel
    /// change is followed by one more pass over the prefixes it moved.
    pub(super) async fn replan(&mut self, events: Option<Touched>) {
        let kernel_scope = match events {
            None => {
                self.planner.rebuild(&self.kernel.view);
                self.sync_peers(Resync::Everything, &[]).await;
                None
            }
            Some(touched) => {
                let delta = self.planner.update(&self.kernel.view, &touched);
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
                    scope.extend(self.kernel.errors.keys());
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
            let delta = self.planner.update(&self.kernel.view, &touched);
            self.sync_peers(Resync::Changed, &delta.adverts).await;
        }
    }

    /// Brings every established peer in line with the intent; `changed` lists the
    /// prefixes whose advert changed since the last sync.
    pub(super) async fn sync_peers(&mut self, resync: Resync, changed: &[IpNet]) {
        let addresses: Vec<Remote> = self.sessions.keys().cloned().collect();
        for address in addresses {
            let everything = match resync {
                Resync::Everything => true,
                Resync::Addresses => self
                    .sessions
                    .get(&address)
                    .is_some_and(|s| s.next_hops_moved(&self.kernel.view)),
                Resync::Changed => false,
            };
            if everything {
                self.sync_peer(address, None).await;
            } else if !changed.is_empty() {
                self.sync_peer(address, Some(changed)).await;
            }
        }
    }

    /// Brings one peer's Adj-RIB-Out in line with the intent (all prefixes, or `only`).
    pub(super) async fn sync_peer(&mut self, address: Remote, only: Option<&[IpNet]>) {
        let Some(session) = self.sessions.get_mut(&address) else {
            return;
        };
        let input = SyncInput {
            config: &self.config,
            view: &self.kernel.view,
            adverts: &self.planner.intent().adverts,
            drained: self.drain.is_some(),
        };
        self.changes_sent += session.sync(&input, only).await;
        self.reset_if_overflowed(&address);
    }
}
