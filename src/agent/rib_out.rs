//! What each peer is told: replanning after events and bringing every peer's
//! Adj-RIB-Out in line with the intent.
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::bgp::adj_out::{Changes, PathKey};
use crate::bgp::session::SessionCmd;
use crate::bgp::wire::Family;
use crate::config::Remote;
use crate::kernel::KernelView;
use crate::plan::export::ExportFilter;
use crate::plan::{self, SessionView, Touched};

use super::drain::DrainedAttrs;
use super::{Agent, NextHopTable, PeerSession, Resync};

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
                Resync::Addresses => self.next_hops_moved(address.clone()),
                Resync::Changed => false,
            };
            if everything {
                self.sync_peer(address, None).await;
            } else if !changed.is_empty() {
                self.sync_peer(address, Some(changed)).await;
            }
        }
    }

    /// Whether any next hop this peer was given would now be another (or none).
    pub(super) fn next_hops_moved(&self, address: Remote) -> bool {
        let Some(session) = self.sessions.get(&address) else {
            return false;
        };
        let Some(est) = &session.established else {
            return false;
        };
        session.next_hops.iter().any(|((family, rule), was)| {
            &plan::resolve_next_hop(*family, rule, &est.view, &self.kernel.view) != was
        })
    }

    /// Brings one peer's Adj-RIB-Out in line with the intent (all prefixes, or `only`).
    /// A full table goes out in chunks, yielding between them, so the session task
    /// writes (and the peer parses) the first UPDATEs while the rest is worked out.
    pub(super) async fn sync_peer(&mut self, address: Remote, only: Option<&[IpNet]>) {
        let Some(session) = self.sessions.get_mut(&address) else {
            return;
        };
        let Some(est) = &session.established else {
            return;
        };
        let epoch = est.epoch;
        let mut next_hops = PeerNextHops {
            view: &self.kernel.view,
            session: est.view,
            families: est.families.clone(),
            resolved: NextHopTable::default(),
            last: None,
            export: ExportFilter::new(&self.config, &session.peer),
            drained: self.drain.is_some().then(DrainedAttrs::default),
        };
        let mut changes = Changes::default();
        let mut handed = 0;
        let adverts = &self.planner.intent().adverts;
        match only {
            Some(prefixes) => {
                for p in prefixes {
                    next_hops.consider(*p, adverts.get(p), session, &mut changes);
                }
            }
            None => {
                session.unsent.clear();
                let gone: Vec<IpNet> = session
                    .adj_out
                    .prefixes()
                    .filter(|p| !adverts.contains_key(p))
                    .collect();
                session
                    .adj_out
                    .reserve(adverts.count_v4(), adverts.count_v6());
                let (mut chunk, mut chunk_end) = (FIRST_SYNC_CHUNK, FIRST_SYNC_CHUNK);
                for (i, (p, advert)) in adverts.iter().enumerate() {
                    next_hops.consider(p, Some(advert), session, &mut changes);
                    if i + 1 == chunk_end {
                        let mut part = std::mem::take(&mut changes);
                        part.more = true;
                        handed += u64::from(session.send_changes(epoch, part));
                        tokio::task::yield_now().await;
                        chunk = (chunk * 2).min(SYNC_CHUNK);
                        chunk_end += chunk;
                    }
                }
                for p in gone {
                    next_hops.consider(p, None, session, &mut changes);
                }
            }
        }
        if handed > 0 && changes.is_empty() {
            // The session holds the chunks' last partial UPDATEs until the final one.
            session.tell(SessionCmd::Changes { epoch, changes });
        } else {
            handed += u64::from(session.send_changes(epoch, changes));
        }
        if only.is_none() {
            session.next_hops.clear();
        }
        session.next_hops.extend(next_hops.resolved);
        self.changes_sent += handed;
        self.reset_if_overflowed(&address);
    }
}

/// Prefixes per chunk of a full-table sync: big enough to fill UPDATEs, small enough
/// that the session task writes one while the agent computes the next. The chunks
/// grow from `FIRST_SYNC_CHUNK`, so the router starts parsing within a millisecond of
/// Established instead of after the first 64k prefixes (13 ms at 100k IPv6).
pub(super) const SYNC_CHUNK: usize = 1 << 16;
pub(super) const FIRST_SYNC_CHUNK: usize = 1 << 10;

/// What one peer is to be told about each prefix: the next hop depends only on the
/// family and the advert's rule, so each pair is resolved once per sync.
pub(super) struct PeerNextHops<'a> {
    view: &'a KernelView,
    session: SessionView,
    families: Vec<Family>,
    resolved: NextHopTable,
    last: Option<(Family, plan::NextHopRule, Result<IpAddr, String>)>,
    /// Which prefixes this peer hears (`bgp.peers.NAME.export`).
    export: ExportFilter<'a>,
    /// While drained (RFC 8326): each attribute set with GRACEFUL_SHUTDOWN added.
    drained: Option<DrainedAttrs>,
}

impl PeerNextHops<'_> {
    /// The next hop for `rule` in `family`. Runs of prefixes share a rule, so the last
    /// answer is checked before the table: a full sync hashes once per run, not per prefix.
    fn resolve(&mut self, family: Family, rule: &plan::NextHopRule) -> Result<IpAddr, &String> {
        let Self {
            view,
            session,
            resolved,
            last,
            ..
        } = self;
        if last
            .as_ref()
            .is_some_and(|(f, r, _)| (*f, r) != (family, rule))
        {
            *last = None;
        }
        let (_, _, answer) = last.get_or_insert_with(|| {
            let answer = resolved
                .entry((family, rule.clone()))
                .or_insert_with(|| plan::resolve_next_hop(family, rule, session, view))
                .clone();
            (family, rule.clone(), answer)
        });
        answer.as_ref().copied()
    }

    fn consider(
        &mut self,
        prefix: IpNet,
        advert: Option<&plan::Advert>,
        peer: &mut PeerSession,
        changes: &mut Changes,
    ) {
        let family = Family::of(&prefix);
        let path = match advert {
            None => None,
            // Out of scope is the same as not advertised: a scope change withdraws it.
            Some(advert) if !self.export.allows(&advert.owners) => None,
            Some(_) if !self.families.contains(&family) => {
                peer.unsent
                    .insert(family, "family not negotiated with this peer".into());
                None
            }
            Some(advert) => match self.resolve(family, &advert.next_hop) {
                Ok(next_hop) => Some(PathKey {
                    next_hop,
                    extra: match &mut self.drained {
                        Some(drained) => drained.of(&advert.attrs),
                        None => advert.attrs.clone(),
                    },
                }),
                Err(reason) => {
                    peer.unsent.entry(family).or_insert_with(|| reason.clone());
                    None
                }
            },
        };
        peer.adj_out.set(prefix, path.as_ref(), changes);
    }
}

impl PeerSession {
    /// Hands `changes` to the session; whether there were any.
    fn send_changes(&mut self, epoch: u64, changes: Changes) -> bool {
        if changes.is_empty() {
            return false;
        }
        tracing::debug!(peer = %self.peer.remote, announce = changes.announced(), withdraw = changes.withdraw.len(), "sending changes");
        self.tell(SessionCmd::Changes { epoch, changes });
        true
    }
}
