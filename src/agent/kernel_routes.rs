//! The agent's kernel core: what the kernel should hold, compared with what it does,
//! and the requests that close the gap. It decides against any [`RouteTable`], so
//! its unit tests run against a fake kernel (`kernel_routes_tests.rs`).
use std::collections::BTreeMap;
use std::time::SystemTime;

use foldhash::HashMap as FastHashMap;
use ipnet::IpNet;

use crate::kernel::{
    protocol_name, Address, ForeignChange, ForeignRoute, KernelError, KernelEvent, KernelView,
    Route, RouteTable,
};
use crate::plan::{Touched, WantedRoute};

/// Up to this many kernel route changes go one by one on the shared connection.
pub(super) const SMALL_KERNEL_BATCH: usize = 16;

/// Drifted routes named one by one in the log; the rest are counted.
pub(super) const DRIFT_LOGGED: usize = 10;

/// The routes the planner wants, by prefix.
pub(super) type Wanted = BTreeMap<IpNet, WantedRoute>;

/// The kernel as the agent knows it, and what its requests did.
pub(super) struct KernelRoutes<K> {
    table: K,
    /// Links, addresses, neighbours and our routes, as events and requests left them.
    pub(super) view: KernelView,
    /// The fingerprint of the route last installed per prefix, so a kernel that reports
    /// it in another form is not fought with endless re-installs (a full copy of 100k
    /// routes cost 15 MB).
    installed: FastHashMap<IpNet, u64>,
    /// Why a wanted route is not in the kernel, per prefix.
    pub(super) errors: BTreeMap<IpNet, String>,
    /// The last time another route displaced ours, per prefix (for `routes`).
    pub(super) displaced: BTreeMap<IpNet, String>,
}

/// What a batch of kernel events calls for.
#[derive(Debug, Default)]
pub(super) struct Absorbed {
    /// Events were lost or the kernel flushed routes silently: read it all again.
    pub(super) redump: bool,
    /// The view changed (most route events only confirm our own requests).
    pub(super) view_changed: bool,
    pub(super) touched: Touched,
    /// Prefixes whose route someone else replaced or changed: to be put back before
    /// the replan, so that their advert never flaps.
    pub(super) repair: Vec<IpNet>,
}

impl<K: RouteTable> KernelRoutes<K> {
    pub(super) fn new(table: K, view: KernelView) -> Self {
        KernelRoutes {
            table,
            view,
            installed: FastHashMap::default(),
            errors: BTreeMap::new(),
            displaced: BTreeMap::new(),
        }
    }

    /// Applies a batch of events to the view and says what they call for.
    pub(super) async fn absorb(&mut self, events: &[KernelEvent], wanted: &Wanted) -> Absorbed {
        let mut out = Absorbed::default();
        for event in events {
            out.view_changed |= out.touched.note(&self.view, event);
            match event {
                KernelEvent::Foreign(foreign) => {
                    let ours = wanted.contains_key(&foreign.prefix);
                    if let Some(prefix) = self.on_foreign_route(foreign, ours).await {
                        out.repair.push(prefix);
                    }
                }
                KernelEvent::Overrun => {
                    tracing::warn!(
                        "netlink overrun: events were lost, re-reading the kernel state"
                    );
                    out.redump = true;
                }
                KernelEvent::LinkChanged(link) => {
                    // IPv4 routes vanish without an event when their link is set down.
                    let before = self.view.links.get(&link.index);
                    if before.is_some_and(|b| b.admin_up && !link.admin_up)
                        && self.routes_use(link.index)
                    {
                        out.redump = true;
                    }
                }
                KernelEvent::LinkRemoved(index) => out.redump |= self.routes_use(*index),
                KernelEvent::AddressRemoved(a) => {
                    // With the last IPv4 address of a link the kernel disables IPv4 on it
                    // and flushes the IPv4 routes through it without an event. Any other
                    // address removal leaves them (even the one covering their gateway),
                    // and re-reading a big table for each would cost milliseconds.
                    out.redump |= a.net.addr().is_ipv4()
                        && self.last_ipv4_address(a)
                        && self.routes_use(a.ifindex);
                }
                _ => {}
            }
            self.view.apply(event);
        }
        out.repair.sort_unstable();
        out.repair.dedup();
        out
    }

    /// Acts on another route of a prefix we route (`wanted`: we want a route there):
    /// returns the prefix when our route must be put back (it was replaced, or someone
    /// else changed it). A route that the kernel would prefer to ours is removed. Each
    /// acts on one event, never on our own requests' echoes, so two agents can't loop.
    async fn on_foreign_route(&mut self, foreign: &ForeignRoute, wanted: bool) -> Option<IpNet> {
        let prefix = foreign.prefix;
        let who = protocol_name(foreign.protocol);
        match foreign.change {
            ForeignChange::Replaced | ForeignChange::Tampered if wanted => {
                let what = if foreign.change == ForeignChange::Replaced {
                    format!("a {who} route (metric {}) replaced ours", foreign.metric)
                } else {
                    format!("another program changed our route ({who})")
                };
                tracing::warn!("kernel route {prefix}: {what}; putting ours back");
                self.note_displaced(prefix, what);
                // Compare what the kernel holds with the intent, not with our last request.
                self.installed.remove(&prefix);
                Some(prefix)
            }
            ForeignChange::Added if wanted && foreign.shadows_ours() => {
                let what = format!(
                    "a {who} route (metric {}) took precedence over ours",
                    foreign.metric
                );
                match self.table.remove_foreign(foreign).await {
                    Ok(()) => tracing::warn!("kernel route {prefix}: {what}; removed it"),
                    Err(e) => tracing::error!("kernel route {prefix}: {what}; {e}"),
                }
                self.note_displaced(prefix, what);
                None
            }
            _ => {
                tracing::debug!(%prefix, ?foreign, "another route of a prefix we route");
                None
            }
        }
    }

    fn note_displaced(&mut self, prefix: IpNet, what: String) {
        let when = humantime::format_rfc3339_seconds(SystemTime::now());
        self.displaced.insert(prefix, format!("{what} at {when}"));
    }

    /// Reads the whole kernel state again; on failure the old view stays.
    pub(super) async fn redump(&mut self) {
        match self.table.dump().await {
            Ok(view) => self.view = view,
            Err(e) => tracing::error!("re-reading the kernel state failed: {e}"),
        }
    }

    /// Compares the kernel's copy of our routes with what events said and takes in
    /// what differs (events missed, or changes the kernel makes without one). Returns
    /// what that touched, for a replan to repair; None when nothing drifted.
    pub(super) async fn check(&mut self, why: &str) -> Option<Touched> {
        let started = std::time::Instant::now();
        let drift = match self.table.route_drift(&self.view.routes).await {
            Ok(drift) => drift,
            Err(e) => {
                tracing::error!("{why}: reading our kernel routes failed: {e}");
                return None;
            }
        };
        tracing::debug!(routes = self.view.routes.len(), elapsed = ?started.elapsed(), drifted = drift.len(), "{why} of kernel routes");
        if drift.is_empty() {
            return None;
        }
        for (prefix, holds) in drift.iter().take(DRIFT_LOGGED) {
            let said = self.view.routes.get(prefix).map(|r| format!("{r:?}"));
            let holds = holds.as_ref().map(|r| format!("{r:?}"));
            tracing::warn!(
                "{why}: kernel route {prefix} drifted (events said {}, the kernel holds {}); repairing",
                said.as_deref().unwrap_or("none"),
                holds.as_deref().unwrap_or("none"),
            );
        }
        if drift.len() > DRIFT_LOGGED {
            tracing::warn!(
                "{why}: {} more drifted routes repaired",
                drift.len() - DRIFT_LOGGED
            );
        }
        let mut touched = Touched::default();
        for (prefix, holds) in drift {
            let event = match holds {
                Some(route) => KernelEvent::RouteChanged(route),
                None => KernelEvent::RouteRemoved(prefix),
            };
            touched.note(&self.view, &event);
            self.view.apply(&event);
            self.installed.remove(&prefix);
        }
        Some(touched)
    }

    /// Whether `removed` is the only IPv4 address its link has.
    fn last_ipv4_address(&self, removed: &Address) -> bool {
        self.view
            .addresses_of(removed.ifindex)
            .iter()
            .all(|a| !a.net.addr().is_ipv4() || a.net == removed.net)
    }

    /// Whether the kernel flushes routes of ours, without an event, when `ifindex`
    /// goes down, goes away or loses its last IPv4 address (it does so for IPv4 only).
    fn routes_use(&self, ifindex: u32) -> bool {
        self.view.routes.ipv4_through(ifindex)
    }

    /// Makes the kernel hold the `wanted` routes of `scope` (every prefix when `None`).
    /// Each route our own request installed or removed is recorded in the view at once
    /// (its event confirms it later), so the next reconcile does not repeat work whose
    /// events are still queued. Returns the prefixes whose kernel route moved.
    pub(super) async fn reconcile(
        &mut self,
        wanted: &Wanted,
        scope: Option<&[IpNet]>,
    ) -> Vec<IpNet> {
        let everything: Vec<IpNet>;
        let scope = match scope {
            Some(prefixes) => prefixes,
            None => {
                self.installed.retain(|p, _| wanted.contains_key(p));
                self.displaced.retain(|p, _| wanted.contains_key(p));
                let mut all: Vec<IpNet> = self
                    .view
                    .routes
                    .keys()
                    .chain(wanted.keys())
                    .copied()
                    .collect();
                all.sort_unstable();
                all.dedup();
                everything = all;
                &everything
            }
        };
        let mut remove = Vec::new();
        let mut install = Vec::new();
        for prefix in scope {
            let in_kernel = self.view.routes.get(prefix);
            let Some(wanted) = wanted.get(prefix) else {
                self.installed.remove(prefix);
                self.displaced.remove(prefix);
                match in_kernel {
                    Some(_) => remove.push(*prefix),
                    None => drop(self.errors.remove(prefix)),
                }
                continue;
            };
            let needed = match (in_kernel, self.installed.get(prefix)) {
                (None, _) => true,
                (Some(_), Some(done)) => *done != fingerprint(&wanted.route),
                // Found at start-up (adoption): keep it if it already is what we want.
                (Some(k), None) => k != &wanted.route,
            };
            if needed {
                install.push(wanted.route.clone());
            } else if !self.installed.contains_key(prefix) {
                self.installed.insert(*prefix, fingerprint(&wanted.route));
            }
        }
        let mut moved = Vec::new();
        if !remove.is_empty() {
            for prefix in self.apply_batch(remove).await {
                if self.view.routes.remove(&prefix).is_some() {
                    moved.push(prefix);
                }
                self.errors.remove(&prefix);
            }
        }
        if !install.is_empty() {
            for route in self.apply_batch(install).await {
                let prefix = route.prefix;
                self.errors.remove(&prefix);
                self.installed.insert(prefix, fingerprint(&route));
                if self.view.routes.get(&prefix) != Some(&route) {
                    self.view.routes.insert(route);
                    moved.push(prefix);
                }
            }
        }
        moved
    }

    /// Removes every route of ours the kernel holds (a full shutdown).
    pub(super) async fn remove_all(&mut self) -> Result<(), KernelError> {
        let prefixes: Vec<IpNet> = self.view.routes.keys().copied().collect();
        self.table.remove_routes(&prefixes).await
    }

    /// Runs one batch; if any item failed, redoes them one by one to learn which (and
    /// why). Returns the items that succeeded, moved rather than copied (a copy of 100k
    /// routes cost 5 MB at the peak); failures go to `errors`.
    async fn apply_batch<T: RouteRequest>(&mut self, items: Vec<T>) -> Vec<T> {
        let succeeded = self.try_batch(&items).await;
        items
            .into_iter()
            .zip(succeeded)
            .filter_map(|(item, ok)| ok.then_some(item))
            .collect()
    }

    /// Whether each item of `items` went through.
    async fn try_batch<T: RouteRequest>(&mut self, items: &[T]) -> Vec<bool> {
        // A pipelined batch opens a socket of its own: worth it for many routes, not
        // for the one or two an instance start brings (the latency path).
        if items.len() <= SMALL_KERNEL_BATCH {
            return self.apply_singly(items).await;
        }
        let started = std::time::Instant::now();
        match T::send_all(&self.table, items).await {
            Ok(()) => {
                tracing::debug!(count = items.len(), elapsed = ?started.elapsed(), "kernel batch done");
                return vec![true; items.len()];
            }
            Err(e) => tracing::debug!(
                count = items.len(),
                "kernel batch failed ({e}); retrying one by one"
            ),
        }
        self.apply_singly(items).await
    }

    async fn apply_singly<T: RouteRequest>(&mut self, items: &[T]) -> Vec<bool> {
        let mut done = Vec::with_capacity(items.len());
        for item in items {
            let result = item.send(&self.table).await;
            // A single request completes inside its system call, never suspending:
            // let the sessions and the watch run between many of them.
            tokio::task::consume_budget().await;
            done.push(result.is_ok());
            if let Err(e) = result {
                let prefix = item.prefix();
                if self.errors.insert(prefix, e.to_string()).is_none() {
                    tracing::warn!("kernel route {prefix}: {e}");
                }
            }
        }
        done
    }
}

/// What a kernel batch works on: a route to install, or a prefix to remove.
trait RouteRequest: Sized {
    fn prefix(&self) -> IpNet;
    async fn send<K: RouteTable>(&self, table: &K) -> Result<(), KernelError>;
    async fn send_all<K: RouteTable>(table: &K, items: &[Self]) -> Result<(), KernelError>;
}

impl RouteRequest for Route {
    fn prefix(&self) -> IpNet {
        self.prefix
    }
    async fn send<K: RouteTable>(&self, table: &K) -> Result<(), KernelError> {
        table.install_route(self).await
    }
    async fn send_all<K: RouteTable>(table: &K, items: &[Self]) -> Result<(), KernelError> {
        table.install_routes(items).await
    }
}

impl RouteRequest for IpNet {
    fn prefix(&self) -> IpNet {
        *self
    }
    async fn send<K: RouteTable>(&self, table: &K) -> Result<(), KernelError> {
        table.remove_route(self).await
    }
    async fn send_all<K: RouteTable>(table: &K, items: &[Self]) -> Result<(), KernelError> {
        table.remove_routes(items).await
    }
}

/// Stands for a route in `installed`: equal routes give equal fingerprints, and
/// different ones collide with odds of 2^-64.
fn fingerprint(route: &Route) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x0068_6f73_7462_6770).hash_one(route)
}

#[cfg(test)]
#[path = "kernel_routes_tests.rs"]
mod tests;
