//! What the agent tells operators: status, routes, metrics, systemd's status line.
use std::collections::BTreeMap;

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::bgp::session::{self};
use crate::bgp::wire::Family;
use crate::config::Peer;
use crate::control::Reply;
use crate::kernel::Route;
use crate::metrics::{self, KernelRouteCounts};
use crate::plan::explain;
use crate::status::{self, HopView, KernelRouteView, RouteView, ServerStatus, Status};

use super::drain::DrainedAttrs;
use super::{peer_name, Agent};

impl Agent {
    /// Starts, moves or stops the metrics listener to match the config. A listener that
    /// cannot bind is logged; the agent runs on without it.
    pub(super) async fn serve_metrics(&mut self) {
        let wanted = self.config.agent.metrics_address;
        if self.metrics_server.as_ref().map(|(a, _)| *a) == wanted {
            return;
        }
        if let Some((address, stop)) = self.metrics_server.take() {
            stop.cancel();
            tracing::info!(%address, "metrics listener closed");
        }
        let Some(address) = wanted else {
            return;
        };
        match metrics::bind(address).await {
            Ok(listener) => {
                let stop = self.shutdown.child_token();
                tokio::spawn(metrics::serve(listener, self.scrapes.clone(), stop.clone()));
                tracing::info!(%address, "serving metrics on http://{address}/metrics");
                self.metrics_server = Some((address, stop));
            }
            Err(e) => tracing::error!("{e}: metrics not served"),
        }
    }

    pub(super) fn metrics_text(&self) -> String {
        let mut kernel = KernelRouteCounts::default();
        for (prefix, wanted) in &self.planner.intent().routes {
            let slot = match self.kernel_state(prefix, &wanted.route) {
                KernelState::Error(_) => &mut kernel.error,
                KernelState::Installed => &mut kernel.installed,
                KernelState::Differs => &mut kernel.differs,
                KernelState::Missing => &mut kernel.missing,
            };
            *slot += 1;
        }
        self.metrics.render(&self.status(), kernel)
    }

    /// What the kernel holds of the route `prefix` wants (for `routes` and metrics).
    pub(super) fn kernel_state(&self, prefix: &IpNet, wanted: &Route) -> KernelState<'_> {
        match (
            self.kernel.view.routes.get(prefix),
            self.kernel.errors.get(prefix),
        ) {
            (_, Some(e)) => KernelState::Error(e),
            (Some(k), None) if k == wanted => KernelState::Installed,
            (Some(_), None) => KernelState::Differs,
            (None, None) => KernelState::Missing,
        }
    }

    /// The one-line state systemd shows (`systemctl status hostbgp`), sent when it
    /// changes: sessions up, prefixes advertised.
    pub(super) fn notify_status(&mut self) {
        let up = self
            .sessions
            .values()
            .filter(|s| s.established.is_some())
            .count();
        let line = format!(
            "{up}/{} peers established, {} prefixes{}",
            self.sessions.len(),
            self.planner.intent().adverts.count_v4() + self.planner.intent().adverts.count_v6(),
            if self.drain.is_some() {
                ", drained"
            } else {
                ""
            }
        );
        if self.last_status_line.as_deref() != Some(line.as_str()) {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
            self.last_status_line = Some(line);
        }
    }

    /// `hostbgp log-level`: shows the filter, or sets it.
    pub(super) fn set_log_level(&self, level: Option<&str>) -> Reply {
        let Some(log) = &self.opts.log else {
            return Reply::error("this agent's log level is fixed");
        };
        match level {
            None => Reply::ok(json!(format!("log level: {}", log.current()))),
            Some(level) => match log.set(level) {
                Ok(now) => {
                    tracing::info!("log level set to {now}");
                    Reply::ok(json!(format!("log level: {now}")))
                }
                Err(e) => Reply::error(e),
            },
        }
    }

    pub(super) fn status(&self) -> Status {
        // Per peer: the restart time offered can be the peer's own.
        let offered = |p: &Peer| -> Vec<String> {
            self.local
                .as_ref()
                .map(|l| {
                    crate::bgp::fsm::build_open(&l.for_peer(p.hold_time, p.graceful_restart_time))
                        .capabilities
                        .iter()
                        .map(session::capability_name)
                        .collect()
                })
                .unwrap_or_default()
        };
        let peers = self
            .sessions
            .values()
            .map(|s| {
                let st = s.status.borrow().clone();
                let mut view = status::peer_view(&s.peer, &st, offered(&s.peer));
                for f in Family::ALL {
                    view.prefixes_sent
                        .insert(f.name().into(), s.adj_out.count(f));
                }
                for (f, why) in &s.unsent {
                    view.not_sent.insert(f.name().into(), why.clone());
                }
                view.admin_down = self.admin_down.get(&s.peer.remote).cloned();
                if s.peer.bfd.is_some() {
                    // An unnumbered peer's BFD session is with its heard router.
                    view.bfd = self
                        .bfd_peer(&s.peer.remote)
                        .and_then(|a| self.bfd.status.borrow().get(&a).cloned());
                }
                view
            })
            .collect();
        Status {
            server: ServerStatus {
                asn: self.config.server.asn,
                router_id: self.local.as_ref().map(|l| l.router_id.to_string()),
                listen: self.listen.map(|l| l.to_string()),
                member: self.config.member.clone(),
                overlay_keys: self.config.overlay_keys.clone(),
                started_unix: status::unix(self.started),
                drained: self.drain.is_some(),
                drained_since_unix: self.drain.map(|d| status::unix(d.since_wall)),
            },
            peers,
            source: Some(self.source.status()),
        }
    }

    pub(super) fn status_json(&self) -> Value {
        serde_json::to_value(self.status()).unwrap_or(Value::Null)
    }

    /// Every prefix advertised or routed: what hostbgp wants in the kernel, what the
    /// kernel holds (as the agent's view has it) and what each peer was told; with
    /// `all`, also what is configured but not advertised, with the reason.
    pub(super) fn routes(&self, all: bool) -> Vec<RouteView> {
        let mut routes = self.advertised();
        if all {
            let trouble = RouteTroubles {
                errors: &self.kernel.errors,
                displaced: &self.kernel.displaced,
            };
            let intent = self.planner.intent();
            for item in explain::not_advertised(&self.config, &self.kernel.view, intent, &trouble) {
                let known = routes
                    .iter_mut()
                    .find(|r| item.prefix.is_some() && r.prefix == item.prefix);
                match known {
                    Some(r) => r.reason = Some(item.reason),
                    None => routes.push(RouteView {
                        prefix: item.prefix,
                        owner: Some(item.owner.clone()),
                        owners: vec![item.owner],
                        advertised: false,
                        reason: Some(item.reason),
                        ..RouteView::default()
                    }),
                }
            }
        }
        routes
    }

    pub(super) fn advertised(&self) -> Vec<RouteView> {
        let intent = self.planner.intent();
        let mut prefixes: Vec<IpNet> = intent.adverts.iter().map(|(p, _)| p).collect();
        prefixes.extend(
            intent
                .routes
                .keys()
                .filter(|p| !intent.adverts.contains_key(p)),
        );
        prefixes.sort_unstable();
        let hops = |hops: &[crate::kernel::RouteNextHop]| {
            hops.iter()
                .map(|h| HopView {
                    dev: self
                        .kernel
                        .view
                        .links
                        .get(&h.ifindex)
                        .map(|l| l.name.clone()),
                    via: h.gateway.map(|g| g.to_string()),
                })
                .collect::<Vec<_>>()
        };
        let mut drained = self.drain.is_some().then(DrainedAttrs::default);
        prefixes
            .into_iter()
            .map(|prefix| {
                let advert = intent.adverts.get(&prefix);
                let next_hops = self
                    .sessions
                    .values()
                    .filter_map(|s| {
                        let nh = s.adj_out.get(&prefix)?;
                        Some((peer_name(&s.peer).to_string(), nh.to_string()))
                    })
                    .collect();
                let wanted = intent.routes.get(&prefix);
                let kernel = wanted.map(|wanted| {
                    let state = match self.kernel_state(&prefix, &wanted.route) {
                        KernelState::Error(e) => format!("error: {e}"),
                        KernelState::Installed => "installed".to_string(),
                        KernelState::Differs => "installed (differs)".to_string(),
                        KernelState::Missing => "missing".to_string(),
                    };
                    KernelRouteView {
                        state,
                        next_hops: hops(&wanted.route.next_hops),
                        held: self
                            .kernel
                            .view
                            .routes
                            .get(&prefix)
                            .map(|r| hops(&r.next_hops)),
                        displaced: self.kernel.displaced.get(&prefix).cloned(),
                    }
                });
                // What the peers are sent: the drain adds its community to every set.
                let attributes = advert.map(|a| {
                    let sent = match &mut drained {
                        Some(d) => d.of(&a.attrs),
                        None => a.attrs.clone(),
                    };
                    status::PathAttributesView::from(&*sent)
                });
                let owners: Vec<String> = match (advert, wanted) {
                    (Some(a), _) => a.owners.iter().map(|o| o.to_string()).collect(),
                    (None, Some(w)) => w.owners.iter().map(|o| o.to_string()).collect(),
                    (None, None) => Vec::new(),
                };
                RouteView {
                    prefix: Some(prefix.to_string()),
                    owner: owners.first().cloned(),
                    owners,
                    advertised: advert.is_some(),
                    reason: None,
                    next_hops,
                    attributes,
                    kernel,
                }
            })
            .collect()
    }
}

/// A wanted route as the kernel holds it.
pub(super) enum KernelState<'a> {
    Installed,
    /// Ours is there, in another form than wanted.
    Differs,
    Missing,
    /// The last request for it failed.
    Error(&'a str),
}

/// The agent's knowledge of why a wanted route is not in the kernel.
pub(super) struct RouteTroubles<'a> {
    errors: &'a BTreeMap<IpNet, String>,
    displaced: &'a BTreeMap<IpNet, String>,
}

impl explain::RouteTrouble for RouteTroubles<'_> {
    fn trouble(&self, prefix: &IpNet) -> Option<String> {
        if let Some(e) = self.errors.get(prefix) {
            return Some(format!("its kernel route failed: {e}"));
        }
        self.displaced
            .get(prefix)
            .map(|d| format!("its kernel route was displaced: {d}"))
    }
}
