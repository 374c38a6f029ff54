//! Keeping the kernel's routes equal to the intent: kernel events in, route
//! requests out, repairs of what other programs changed.
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use crate::kernel::KernelError;
use crate::kernel::{
    protocol_name, Address, ForeignChange, ForeignRoute, Kernel, KernelEvent, Route,
};
use crate::plan::Touched;

use super::Agent;

pub(super) type KernelFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), KernelError>> + Send + 'a>>;

/// What a kernel batch works on: a route to install, or a prefix to remove.
pub(super) trait RouteItem {
    fn prefix(&self) -> IpNet;
}

impl RouteItem for Route {
    fn prefix(&self) -> IpNet {
        self.prefix
    }
}

impl RouteItem for IpNet {
    fn prefix(&self) -> IpNet {
        *self
    }
}

/// Up to this many kernel route changes go one by one on the shared connection.
pub(super) const SMALL_KERNEL_BATCH: usize = 16;

impl Agent {
    pub(super) async fn on_kernel_events(&mut self, events: Vec<KernelEvent>) {
        let mut redump = false;
        let mut touched = Touched::default();
        // Most route events confirm what our own requests already put in the view;
        // a batch that changes nothing needs no replanning.
        let mut view_changed = false;
        // Prefixes whose route someone else replaced or changed: put back before the
        // replan, so that their advert never flaps.
        let mut repair = Vec::new();
        for event in &events {
            view_changed |= touched.note(&self.view, event);
            match event {
                KernelEvent::Foreign(foreign) => {
                    if let Some(prefix) = self.on_foreign_route(foreign).await {
                        repair.push(prefix);
                    }
                }
                KernelEvent::Overrun => {
                    tracing::warn!(
                        "netlink overrun: events were lost, re-reading the kernel state"
                    );
                    redump = true;
                }
                KernelEvent::LinkChanged(link) => {
                    // IPv4 routes vanish without an event when their link is set down.
                    let before = self.view.links.get(&link.index);
                    if before.is_some_and(|b| b.admin_up && !link.admin_up)
                        && self.routes_use(link.index)
                    {
                        redump = true;
                    }
                }
                KernelEvent::LinkRemoved(index) => redump |= self.routes_use(*index),
                KernelEvent::AddressRemoved(a) => {
                    // With the last IPv4 address of a link the kernel disables IPv4 on it
                    // and flushes the IPv4 routes through it without an event. Any other
                    // address removal leaves them (even the one covering their gateway),
                    // and re-reading a big table for each would cost milliseconds.
                    redump |= a.net.addr().is_ipv4()
                        && self.last_ipv4_address(a)
                        && self.routes_use(a.ifindex);
                }
                _ => {}
            }
            self.view.apply(event);
        }
        if !repair.is_empty() && !redump {
            repair.sort_unstable();
            repair.dedup();
            self.reconcile_kernel(Some(&repair)).await;
        }
        if redump {
            match self.kernel.dump().await {
                Ok(view) => self.view = view,
                Err(e) => tracing::error!("re-reading the kernel state failed: {e}"),
            }
            self.replan(None).await;
        } else if view_changed {
            self.replan(Some(touched)).await;
        }
        // An unnumbered peer's interface (or its link-local) may have come or gone.
        if (redump || view_changed) && self.sessions.keys().any(|r| r.interface().is_some()) {
            self.sync_links();
        }
    }

    /// Acts on another route of a prefix we route: returns the prefix when our route
    /// must be put back (it was replaced, or someone else changed it). A route that
    /// the kernel would prefer to ours is removed. Each acts on one event, never on
    /// our own requests' echoes, so two agents can't loop.
    pub(super) async fn on_foreign_route(&mut self, foreign: &ForeignRoute) -> Option<IpNet> {
        let prefix = foreign.prefix;
        let wanted = self.planner.intent().routes.contains_key(&prefix);
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
                match self
                    .kernel
                    .remove_foreign_route(&prefix, foreign.protocol, foreign.metric)
                    .await
                {
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

    pub(super) fn note_displaced(&mut self, prefix: IpNet, what: String) {
        let when = humantime::format_rfc3339_seconds(SystemTime::now());
        self.displaced.insert(prefix, format!("{what} at {when}"));
    }

    /// Compares the kernel's copy of our routes with what events said, and repairs
    /// what differs (events missed, or changes the kernel makes without one).
    pub(super) async fn check_kernel_routes(&mut self, why: &str) {
        let started = std::time::Instant::now();
        let drift = match self.kernel.route_drift(&self.view.routes).await {
            Ok(drift) => drift,
            Err(e) => {
                tracing::error!("{why}: reading our kernel routes failed: {e}");
                return;
            }
        };
        tracing::debug!(routes = self.view.routes.len(), elapsed = ?started.elapsed(), drifted = drift.len(), "{why} of kernel routes");
        if drift.is_empty() {
            return;
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
        self.replan(Some(touched)).await;
    }

    /// Whether `removed` is the only IPv4 address its link has.
    pub(super) fn last_ipv4_address(&self, removed: &Address) -> bool {
        self.view
            .addresses_of(removed.ifindex)
            .iter()
            .all(|a| !a.net.addr().is_ipv4() || a.net == removed.net)
    }

    /// Whether the kernel flushes routes of ours, without an event, when `ifindex`
    /// goes down, goes away or loses its last IPv4 address (it does so for IPv4 only).
    pub(super) fn routes_use(&self, ifindex: u32) -> bool {
        self.view.routes.ipv4_through(ifindex)
    }

    /// Makes the kernel hold the wanted routes of `scope` (every prefix when `None`).
    /// Each route our own request installed or removed is recorded in the view at once
    /// (its event confirms it later), so the next reconcile does not repeat work whose
    /// events are still queued. Returns the prefixes whose kernel route moved.
    pub(super) async fn reconcile_kernel(&mut self, scope: Option<&[IpNet]>) -> Vec<IpNet> {
        let wanted = &self.planner.intent().routes;
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
                    None => drop(self.route_errors.remove(prefix)),
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
            let removed = self
                .apply_batch(
                    remove,
                    |k, batch| Box::pin(k.remove_routes(batch)),
                    |k, p| Box::pin(k.remove_route(p)),
                )
                .await;
            for prefix in removed {
                if self.view.routes.remove(&prefix).is_some() {
                    moved.push(prefix);
                }
                self.route_errors.remove(&prefix);
            }
        }
        if !install.is_empty() {
            let installed = self
                .apply_batch(
                    install,
                    |k, batch| Box::pin(k.install_routes(batch)),
                    |k, r| Box::pin(k.install_route(r)),
                )
                .await;
            for route in installed {
                let prefix = route.prefix;
                self.route_errors.remove(&prefix);
                self.installed.insert(prefix, fingerprint(&route));
                if self.view.routes.get(&prefix) != Some(&route) {
                    self.view.routes.insert(route);
                    moved.push(prefix);
                }
            }
        }
        moved
    }

    /// Runs one pipelined batch; if any item failed, redoes them one by one to learn
    /// which (and why). Returns the items that succeeded, moved rather than copied (a
    /// copy of 100k routes cost 5 MB at the peak); failures go to `route_errors`.
    pub(super) async fn apply_batch<T: RouteItem>(
        &mut self,
        items: Vec<T>,
        batch: impl for<'a> Fn(&'a Kernel, &'a [T]) -> KernelFuture<'a>,
        single: impl for<'a> Fn(&'a Kernel, &'a T) -> KernelFuture<'a>,
    ) -> Vec<T> {
        let succeeded = self.try_batch(&items, batch, single).await;
        items
            .into_iter()
            .zip(succeeded)
            .filter_map(|(item, ok)| ok.then_some(item))
            .collect()
    }

    /// Whether each item of `items` went through.
    pub(super) async fn try_batch<T: RouteItem>(
        &mut self,
        items: &[T],
        batch: impl for<'a> Fn(&'a Kernel, &'a [T]) -> KernelFuture<'a>,
        single: impl for<'a> Fn(&'a Kernel, &'a T) -> KernelFuture<'a>,
    ) -> Vec<bool> {
        // A pipelined batch opens a socket of its own: worth it for many routes, not
        // for the one or two an instance start brings (the latency path).
        if items.len() <= SMALL_KERNEL_BATCH {
            return self.apply_singly(items, single).await;
        }
        let started = std::time::Instant::now();
        match batch(&self.kernel, items).await {
            Ok(()) => {
                tracing::debug!(count = items.len(), elapsed = ?started.elapsed(), "kernel batch done");
                return vec![true; items.len()];
            }
            Err(e) => tracing::debug!(
                count = items.len(),
                "kernel batch failed ({e}); retrying one by one"
            ),
        }
        self.apply_singly(items, single).await
    }

    pub(super) async fn apply_singly<T: RouteItem>(
        &mut self,
        items: &[T],
        single: impl for<'a> Fn(&'a Kernel, &'a T) -> KernelFuture<'a>,
    ) -> Vec<bool> {
        let mut done = Vec::with_capacity(items.len());
        for item in items {
            let result = single(&self.kernel, item).await;
            // A single request completes inside its system call, never suspending:
            // let the sessions and the watch run between many of them.
            tokio::task::consume_budget().await;
            done.push(result.is_ok());
            match result {
                Ok(()) => {}
                Err(e) => {
                    let prefix = item.prefix();
                    if self.route_errors.insert(prefix, e.to_string()).is_none() {
                        tracing::warn!("kernel route {prefix}: {e}");
                    }
                }
            }
        }
        done
    }
}

/// Drifted routes named one by one in the log; the rest are counted.
pub(super) const DRIFT_LOGGED: usize = 10;

/// The periodic route check's timer; a zero period never fires.
pub(super) struct RouteCheckTimer {
    interval: Option<tokio::time::Interval>,
}

impl RouteCheckTimer {
    pub(super) fn new(period: Duration) -> Self {
        let mut timer = RouteCheckTimer { interval: None };
        timer.set(period);
        timer
    }

    pub(super) fn set(&mut self, period: Duration) {
        if self.interval.as_ref().map(|i| i.period()) == Some(period) {
            return;
        }
        self.interval = (!period.is_zero()).then(|| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
    }

    pub(super) async fn tick(&mut self) {
        match self.interval.as_mut() {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Stands for a route in `Agent::installed`: equal routes give equal fingerprints, and
/// different ones collide with odds of 2^-64.
pub(super) fn fingerprint(route: &Route) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x0068_6f73_7462_6770).hash_one(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_check_timer() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut off = RouteCheckTimer::new(Duration::ZERO);
            let never = tokio::time::timeout(Duration::from_secs(3600), off.tick()).await;
            assert!(never.is_err(), "a zero period never fires");
            let mut timer = RouteCheckTimer::new(Duration::from_secs(60));
            let start = tokio::time::Instant::now();
            timer.tick().await;
            assert_eq!(start.elapsed(), Duration::from_secs(60), "not at once");
            // Setting the same period keeps the schedule; another one restarts it.
            timer.set(Duration::from_secs(60));
            timer.tick().await;
            assert_eq!(start.elapsed(), Duration::from_secs(120));
            timer.set(Duration::from_secs(5));
            timer.tick().await;
            assert_eq!(start.elapsed(), Duration::from_secs(125));
        });
    }
}
