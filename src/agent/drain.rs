//! RFC 8326 graceful shutdown: `hostbgp drain` re-advertises every path with the
//! GRACEFUL_SHUTDOWN community so routers prefer other paths before ours go away, and
//! keeps it (across reloads, and for sessions that come up meanwhile) until
//! `hostbgp undrain`. A full shutdown drains for `hostbgp.drain_time` first.
//!
//! Like `disable`, a drain is an operator's state held in memory: a restart (SIGTERM)
//! ends it, and the restarted agent's paths go out without the community.
use std::time::{Duration, SystemTime};

use foldhash::HashMap as FastHashMap;
use serde_json::json;

use super::{Agent, Resync};
use crate::control::Reply;
use crate::plan::Attrs;

/// Since when the agent has been drained.
#[derive(Clone, Copy, Debug)]
pub(super) struct Drain {
    pub(super) since: tokio::time::Instant,
    pub(super) since_wall: SystemTime,
}

impl Drain {
    fn now() -> Drain {
        Drain {
            since: tokio::time::Instant::now(),
            since_wall: SystemTime::now(),
        }
    }
}

/// Each attribute set's drained copy, made once per sync: every prefix of a network
/// or NIC shares one set, so they keep sharing one drained set (and UPDATEs).
#[derive(Default)]
pub(super) struct DrainedAttrs {
    /// Runs of prefixes share a set: the last one is checked by pointer first.
    last: Option<(Attrs, Attrs)>,
    by_set: FastHashMap<Attrs, Attrs>,
}

impl DrainedAttrs {
    pub(super) fn of(&mut self, attrs: &Attrs) -> Attrs {
        if let Some((plain, drained)) = &self.last {
            if Attrs::ptr_eq(plain, attrs) {
                return drained.clone();
            }
        }
        let drained = self
            .by_set
            .entry(attrs.clone())
            .or_insert_with(|| Attrs::new(attrs.drained()))
            .clone();
        self.last = Some((attrs.clone(), drained.clone()));
        drained
    }
}

impl Agent {
    /// `hostbgp drain`.
    pub(super) async fn drain(&mut self) -> Reply {
        if let Some(d) = self.drain {
            return Reply::ok(json!(format!(
                "already drained (for {}s); `hostbgp undrain` ends it",
                d.since.elapsed().as_secs()
            )));
        }
        self.drain = Some(Drain::now());
        tracing::warn!(
            "drained by the operator: every path now carries GRACEFUL_SHUTDOWN (65535:0)"
        );
        self.sync_peers(Resync::Everything, &[]).await;
        self.notify_status();
        Reply::ok(json!(format!(
            "drained: every prefix re-advertised to {} established peer(s) with GRACEFUL_SHUTDOWN (65535:0); `hostbgp undrain` ends it",
            self.established_count()
        )))
    }

    /// `hostbgp undrain`.
    pub(super) async fn undrain(&mut self) -> Reply {
        if self.drain.take().is_none() {
            return Reply::ok(json!("not drained"));
        }
        tracing::info!("undrained by the operator: paths re-advertised without GRACEFUL_SHUTDOWN");
        self.sync_peers(Resync::Everything, &[]).await;
        self.notify_status();
        Reply::ok(json!(format!(
            "undrained: every prefix re-advertised to {} established peer(s) without GRACEFUL_SHUTDOWN",
            self.established_count()
        )))
    }

    /// Before a full shutdown's withdraw: drain (unless an operator already did) and
    /// wait out what is left of `hostbgp.drain_time` since the drain began, so the
    /// routers have moved traffic away when the withdraw comes.
    pub(super) async fn drain_before_shutdown(&mut self) {
        let drain_time = self.config.agent.drain_time;
        // With no session up there is no one to drain: waiting would only delay.
        if drain_time.is_zero() || self.established_count() == 0 {
            return;
        }
        let drain = match self.drain {
            Some(d) => d,
            None => {
                let d = Drain::now();
                self.drain = Some(d);
                self.sync_peers(Resync::Everything, &[]).await;
                d
            }
        };
        let left = remaining(drain_time, drain.since.elapsed());
        tracing::info!(
            "draining for {:.1}s before the withdraw (hostbgp.drain_time {}s)",
            left.as_secs_f64(),
            drain_time.as_secs()
        );
        let line = format!("shutting down: drained, withdrawing in {}s", left.as_secs());
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
        sleep_feeding_watchdog(left).await;
    }

    fn established_count(&self) -> usize {
        self.sessions
            .values()
            .filter(|s| s.established.is_some())
            .count()
    }
}

/// Sleeps `d`, telling systemd's watchdog all is well meanwhile: the drain blocks the
/// loop that otherwise does, and a drain longer than `WatchdogSec` (30 s in our unit)
/// would get the agent killed halfway, its routes never withdrawn.
async fn sleep_feeding_watchdog(d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    let step = sd_notify::watchdog_enabled().map_or(d, |w| (w / 2).max(Duration::from_millis(100)));
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return;
        }
        tokio::time::sleep(step.min(deadline - now)).await;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
    }
}

/// What is left of `drain_time` after `elapsed` of drain.
fn remaining(drain_time: Duration, elapsed: Duration) -> Duration {
    drain_time.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::wire::community::GRACEFUL_SHUTDOWN;
    use crate::config::ExtraAttrs;

    fn set(communities: &[u32], med: Option<u32>) -> Attrs {
        Attrs::new(ExtraAttrs {
            med,
            communities: communities.to_vec(),
            ..ExtraAttrs::default()
        })
    }

    #[test]
    fn drained_sets_are_shared_like_the_plain_ones() {
        let mut drained = DrainedAttrs::default();
        let (a, b) = (set(&[1], Some(5)), set(&[2], None));
        let da = drained.of(&a);
        assert_eq!(da.communities, vec![1, GRACEFUL_SHUTDOWN]);
        assert_eq!(da.med, Some(5));
        // A run of one set: one drained set.
        assert!(Attrs::ptr_eq(&da, &drained.of(&a)));
        let db = drained.of(&b);
        assert_eq!(db.communities, vec![2, GRACEFUL_SHUTDOWN]);
        // Back to a (not the last one): still the same drained set.
        assert!(Attrs::ptr_eq(&da, &drained.of(&a)));
        // An equal set in another Arc (another NIC with the same keys) shares it too.
        let a2 = set(&[1], Some(5));
        assert!(Attrs::ptr_eq(&da, &drained.of(&a2)));
        // The plain sets are untouched: undrain re-advertises them as they were.
        assert_eq!(a.communities, vec![1]);
        // No attributes at all: just the community.
        assert_eq!(
            drained.of(&Attrs::default()).communities,
            vec![GRACEFUL_SHUTDOWN]
        );
    }

    #[test]
    fn shutdown_waits_only_what_is_left_of_the_drain() {
        let five = Duration::from_secs(5);
        assert_eq!(remaining(five, Duration::ZERO), five);
        assert_eq!(
            remaining(five, Duration::from_secs(2)),
            Duration::from_secs(3)
        );
        assert_eq!(remaining(five, Duration::from_secs(60)), Duration::ZERO);
    }
}
