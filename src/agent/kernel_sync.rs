//! Keeping the kernel's routes equal to the intent: kernel events in, route
//! requests out, repairs of what other programs changed. The decisions are
//! [`KernelRoutes`](super::kernel_routes::KernelRoutes)'; this is where the agent
//! acts on them.
use std::time::Duration;

use ipnet::IpNet;

use crate::kernel::KernelEvent;

use super::Agent;

impl Agent {
    pub(super) async fn on_kernel_events(&mut self, events: Vec<KernelEvent>) {
        let absorbed = self
            .kernel
            .absorb(&events, &self.planner.intent().routes)
            .await;
        if !absorbed.repair.is_empty() && !absorbed.redump {
            self.reconcile_kernel(Some(&absorbed.repair)).await;
        }
        if absorbed.redump {
            self.kernel.redump().await;
            self.replan(None).await;
        } else if absorbed.view_changed {
            self.replan(Some(absorbed.touched)).await;
        }
        // An unnumbered peer's interface (or its link-local) may have come or gone.
        if (absorbed.redump || absorbed.view_changed)
            && self.sessions.keys().any(|r| r.interface().is_some())
        {
            self.sync_links();
        }
    }

    /// Compares the kernel's copy of our routes with what events said, and repairs
    /// what differs.
    pub(super) async fn check_kernel_routes(&mut self, why: &str) {
        if let Some(touched) = self.kernel.check(why).await {
            self.replan(Some(touched)).await;
        }
    }

    /// Makes the kernel hold the wanted routes of `scope` (every prefix when `None`).
    /// Returns the prefixes whose kernel route moved.
    pub(super) async fn reconcile_kernel(&mut self, scope: Option<&[IpNet]>) -> Vec<IpNet> {
        self.kernel
            .reconcile(&self.planner.intent().routes, scope)
            .await
    }
}

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
