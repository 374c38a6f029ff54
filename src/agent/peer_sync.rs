//! One peer's Adj-RIB-Out brought in line with the intent: which prefixes it hears,
//! under which next hop and attributes, handed to its session as change sets. No I/O
//! but the session's queue, which the unit tests read (`peer_sync_tests.rs`).
use std::net::IpAddr;

use ipnet::IpNet;

use crate::bgp::adj_out::{Changes, PathKey};
use crate::bgp::session::SessionCmd;
use crate::bgp::wire::Family;
use crate::config::Config;
use crate::kernel::KernelView;
use crate::plan::export::ExportFilter;
use crate::plan::{self, AdvertSet, SessionView};

use super::drain::DrainedAttrs;
use super::{NextHopTable, PeerSession};

/// What a peer's sync reads.
pub(super) struct SyncInput<'a> {
    pub(super) config: &'a Config,
    /// Where next hops come from (an interface's addresses).
    pub(super) view: &'a KernelView,
    pub(super) adverts: &'a AdvertSet,
    /// Every path carries GRACEFUL_SHUTDOWN (RFC 8326).
    pub(super) drained: bool,
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
    /// Brings one peer's Adj-RIB-Out in line with the intent (all prefixes, or `only`).
    /// A full table goes out in chunks, yielding between them, so the session task
    /// writes (and the peer parses) the first UPDATEs while the rest is worked out.
    /// Returns how many change sets went to the session.
    pub(super) async fn sync(&mut self, input: &SyncInput<'_>, only: Option<&[IpNet]>) -> u64 {
        let Some(est) = &self.established else {
            return 0;
        };
        let epoch = est.epoch;
        let mut next_hops = PeerNextHops {
            view: input.view,
            session: est.view,
            families: est.families.clone(),
            resolved: NextHopTable::default(),
            last: None,
            export: ExportFilter::new(input.config, &self.peer),
            drained: input.drained.then(DrainedAttrs::default),
        };
        let mut changes = Changes::default();
        let mut handed = 0;
        let adverts = input.adverts;
        match only {
            Some(prefixes) => {
                for p in prefixes {
                    next_hops.consider(*p, adverts.get(p), self, &mut changes);
                }
            }
            None => {
                self.unsent.clear();
                let gone: Vec<IpNet> = self
                    .adj_out
                    .prefixes()
                    .filter(|p| !adverts.contains_key(p))
                    .collect();
                self.adj_out.reserve(adverts.count_v4(), adverts.count_v6());
                let (mut chunk, mut chunk_end) = (FIRST_SYNC_CHUNK, FIRST_SYNC_CHUNK);
                for (i, (p, advert)) in adverts.iter().enumerate() {
                    next_hops.consider(p, Some(advert), self, &mut changes);
                    if i + 1 == chunk_end {
                        let mut part = std::mem::take(&mut changes);
                        part.more = true;
                        handed += u64::from(self.send_changes(epoch, part));
                        tokio::task::yield_now().await;
                        chunk = (chunk * 2).min(SYNC_CHUNK);
                        chunk_end += chunk;
                    }
                }
                for p in gone {
                    next_hops.consider(p, None, self, &mut changes);
                }
            }
        }
        if handed > 0 && changes.is_empty() {
            // The session holds the chunks' last partial UPDATEs until the final one.
            self.tell(SessionCmd::Changes { epoch, changes });
        } else {
            handed += u64::from(self.send_changes(epoch, changes));
        }
        if only.is_none() {
            self.next_hops.clear();
        }
        self.next_hops.extend(next_hops.resolved);
        handed
    }

    /// Whether any next hop this peer was given would now be another (or none).
    pub(super) fn next_hops_moved(&self, view: &KernelView) -> bool {
        let Some(est) = &self.established else {
            return false;
        };
        self.next_hops.iter().any(|((family, rule), was)| {
            &plan::resolve_next_hop(*family, rule, &est.view, view) != was
        })
    }

    /// Hands `changes` to the session; whether there were any and it took them.
    fn send_changes(&mut self, epoch: u64, changes: Changes) -> bool {
        if changes.is_empty() {
            return false;
        }
        tracing::debug!(peer = %self.peer.remote, announce = changes.announced(), withdraw = changes.withdraw.len(), "sending changes");
        self.tell(SessionCmd::Changes { epoch, changes })
    }
}

#[cfg(test)]
#[path = "peer_sync_tests.rs"]
mod tests;
