//! Unnumbered peers (`bgp.peers.NAME.interface`): per interface, the router
//! discovery task (it announces our link-local so the router learns us, and hears
//! the router's), the listener's way to that peer's session (any link-local caller on
//! the interface), a listener of its own when `core.bgp_address` cannot take
//! link-local connections, and the router's address handed to the session.
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::{Agent, AgentError};
use crate::bgp::session::SessionCmd;
use crate::bgp::speaker::{Caller, ListenKey, Listener};
use crate::config::Remote;
use crate::kernel::KernelView;
use crate::nd;

/// What runs for one unnumbered peer's interface.
pub(super) struct Link {
    ifindex: u32,
    /// Our link-local address on it: what we announce and what sessions come from.
    source: Ipv6Addr,
    _nd: nd::Handle,
    /// Our own listener on `[source%ifindex]:port`, when the main one is not `[::]`.
    listener: Option<Listener>,
    /// The router, as its last advertisement (or connection) said.
    router: Option<Ipv6Addr>,
}

/// The interface's index and our usable link-local address on it (the lowest, so the
/// choice is stable), when the interface exists and has one.
fn link_local_of(view: &KernelView, ifname: &str) -> Option<(u32, Ipv6Addr)> {
    let ifindex = view.links.values().find(|l| l.name == ifname)?.index;
    let source = view
        .addresses
        .get(&ifindex)?
        .iter()
        .filter(|a| !a.tentative)
        .filter_map(|a| match a.net.addr() {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(v6),
            _ => None,
        })
        .min()?;
    Some((ifindex, source))
}

impl Agent {
    /// Starts, restarts or stops the per-interface work so it matches the unnumbered
    /// peers and the interfaces as the kernel has them now.
    pub(super) fn sync_links(&mut self) {
        let wanted: BTreeMap<String, Option<(u32, Ipv6Addr)>> = self
            .sessions
            .keys()
            .filter_map(|r| r.interface())
            .map(|i| (i.to_string(), link_local_of(&self.kernel.view, i)))
            .collect();
        let gone: Vec<String> = self
            .links
            .iter()
            .filter(|(name, link)| {
                wanted.get(*name).copied().flatten() != Some((link.ifindex, link.source))
            })
            .map(|(name, _)| name.clone())
            .collect();
        // Whether an interface's router may have come or gone (BFD follows it).
        let mut changed = !gone.is_empty();
        for name in gone {
            if let Some(link) = self.links.remove(&name) {
                tracing::info!(interface = %name, "unnumbered: the interface or its link-local changed");
                self.directory.send_modify(|d| {
                    d.remove(&Caller::Link(link.ifindex));
                });
            }
        }
        for (name, found) in wanted {
            if self.links.contains_key(&name) {
                continue;
            }
            let Some((ifindex, source)) = found else {
                // Logged once per change of what exists: link events call this often.
                tracing::debug!(interface = %name, "unnumbered: waiting for the interface and its IPv6 link-local address");
                continue;
            };
            match self.start_link(&name, ifindex, source) {
                Ok(link) => {
                    tracing::info!(interface = %name, %source, "unnumbered: announcing ourselves and listening for the router");
                    self.links.insert(name.clone(), link);
                    changed = true;
                    if let Some(s) = self.sessions.get(&Remote::Interface(name)) {
                        self.directory.send_modify(|d| {
                            d.insert(Caller::Link(ifindex), s.cmd.clone());
                        });
                    }
                }
                Err(e) => tracing::warn!(interface = %name, "unnumbered: {e}"),
            }
        }
        // Link events call this for every batch: the keys (a setsockopt per key and
        // listener) and BFD change only with the links.
        if changed {
            self.set_listen_keys();
            self.sync_bfd();
        }
    }

    /// Stops every interface's work, its listener closed before this returns (so
    /// the address can be bound again at once).
    pub(super) async fn stop_links(&mut self) {
        for (_, link) in std::mem::take(&mut self.links) {
            if let Some(listener) = link.listener {
                listener.close().await;
            }
        }
        self.directory
            .send_modify(|d| d.retain(|c, _| !matches!(c, Caller::Link(_))));
    }

    fn start_link(&self, name: &str, ifindex: u32, source: Ipv6Addr) -> Result<Link, AgentError> {
        let nd = nd::spawn(
            nd::Config {
                ifname: name.to_string(),
                ifindex,
                source: Some(source),
                mac: None,
                interval: nd::DEFAULT_INTERVAL,
            },
            self.routers_heard.clone(),
        )
        .map_err(|source| AgentError::RouterDiscovery {
            ifname: name.to_string(),
            source,
        })?;
        // A listener on `[::]` takes link-local callers too; any other needs one here.
        let main_takes_it = self
            .listen
            .is_some_and(|l| l.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let listener = match self.listen {
            Some(listen) if !main_takes_it => {
                let at = SocketAddr::V6(SocketAddrV6::new(source, listen.port(), 0, ifindex));
                let keys = self.listen_keys();
                Some(
                    Listener::bind(at, &keys, self.directory.subscribe()).map_err(|source| {
                        AgentError::Listen {
                            address: at,
                            source,
                        }
                    })?,
                )
            }
            _ => None,
        };
        Ok(Link {
            ifindex,
            source,
            _nd: nd,
            listener,
            router: None,
        })
    }

    /// A router advertisement heard on an unnumbered peer's interface.
    pub(super) fn on_router_heard(&mut self, heard: nd::Heard) {
        let Some((name, link)) = self
            .links
            .iter_mut()
            .find(|(_, l)| l.ifindex == heard.ifindex)
        else {
            return;
        };
        if link.router == Some(heard.router) {
            return;
        }
        tracing::info!(interface = %name, router = %heard.router, "unnumbered: heard the router");
        link.router = Some(heard.router);
        let at = SocketAddrV6::new(heard.router, 0, 0, heard.ifindex);
        if let Some(s) = self.sessions.get(&Remote::Interface(name.clone())) {
            s.signal(SessionCmd::Neighbour(at));
        }
        self.set_listen_keys();
        // BFD with this router, if the peer wants it (and no longer with the last).
        self.sync_bfd();
    }

    /// The router an unnumbered peer's session should call, when heard.
    pub(super) fn router_of(&self, remote: &Remote) -> Option<SocketAddrV6> {
        let link = self.links.get(remote.interface()?)?;
        Some(SocketAddrV6::new(link.router?, 0, 0, link.ifindex))
    }

    /// The listener's way to `remote`'s session.
    pub(super) fn caller_of(&self, remote: &Remote) -> Option<Caller> {
        match remote {
            Remote::Address(a) => Some(Caller::Address(*a)),
            Remote::Interface(i) => self.links.get(i).map(|l| Caller::Link(l.ifindex)),
        }
    }

    /// The TCP MD5 keys listeners hold: configured peers' addresses, and the routers
    /// heard on unnumbered peers' interfaces.
    pub(super) fn listen_keys(&self) -> Vec<ListenKey> {
        self.config
            .peers()
            .into_iter()
            .filter_map(|p| {
                let password = p.password.clone()?;
                let address = match &p.remote {
                    Remote::Address(a) => *a,
                    Remote::Interface(i) => IpAddr::V6(self.links.get(i)?.router?),
                };
                Some((address, password))
            })
            .collect()
    }

    pub(super) fn set_listen_keys(&mut self) {
        let keys = self.listen_keys();
        let listeners = self
            .listener
            .iter_mut()
            .chain(self.links.values_mut().filter_map(|l| l.listener.as_mut()));
        for listener in listeners {
            if let Err(e) = listener.set_keys(&keys) {
                tracing::warn!("updating a listener's MD5 keys: {e}");
            }
        }
    }
}
