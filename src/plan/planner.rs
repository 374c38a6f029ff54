//! The intent, kept up to date event by event. A kernel event touches a few links,
//! addresses or routes, and only the prefixes that depend on them are planned again:
//! an instance starting beside 100k instance routes costs what it costs beside none.
//! [`Planner::rebuild`] plans everything from the kernel state alone; the property
//! tests check that any sequence of updates ends where a rebuild does.
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use foldhash::HashMap as FastHashMap;
use ipnet::IpNet;

use super::own_addrs::{OwnAddrs, OwnClaims};
use super::{
    host_rule, host_v4, host_v6, instance_owner, joined_owners, nic_attrs, nics_on,
    normalize_multipath, owners_of, plan_static, Advert, AdvertSet, Attrs, Intent, NextHopRule,
    Owner, Owners, WantedRoute,
};
use crate::bgp::wire::Family;
use crate::config::{Config, Network, NetworkKind};
use crate::kernel::{KernelEvent, KernelView, Mac, Route, RouteNextHop};

/// What a batch of kernel events may have changed, gathered before each is applied.
#[derive(Clone, Debug, Default)]
pub struct Touched {
    /// Names of links that appeared, changed, were renamed, left a bridge or went away.
    pub links: Vec<String>,
    /// Prefixes whose kernel route appeared, changed or went away.
    pub routes: Vec<IpNet>,
    /// Addresses came or went: bridges' subnets, and next hops taken from addresses,
    /// may have moved.
    pub addresses: bool,
    /// (interface, MAC) pairs whose neighbour addresses changed: instances' own
    /// addresses (`bgp.ipvN.instances`).
    pub neighbours: Vec<(u32, Mac)>,
}

impl Touched {
    /// Records what `event` touches, given the view it is about to be applied to.
    /// Returns whether it changes the view at all: most route events only confirm
    /// what the agent's own requests already put there.
    pub fn note(&mut self, view: &KernelView, event: &KernelEvent) -> bool {
        match event {
            KernelEvent::RouteChanged(r) => {
                let changes = view.routes.get(&r.prefix) != Some(r);
                if changes {
                    self.routes.push(r.prefix);
                }
                changes
            }
            KernelEvent::RouteRemoved(p) => {
                let changes = view.routes.contains_key(p);
                if changes {
                    self.routes.push(*p);
                }
                changes
            }
            KernelEvent::LinkChanged(link) => {
                let before = view.links.get(&link.index);
                if before == Some(link) {
                    return false;
                }
                self.links.push(link.name.clone());
                if let Some(old) = before.filter(|b| b.name != link.name) {
                    self.links.push(old.name.clone());
                }
                true
            }
            KernelEvent::LinkRemoved(index) => match view.links.get(index) {
                Some(link) => {
                    self.links.push(link.name.clone());
                    true
                }
                None => false,
            },
            KernelEvent::PortReleased(index) => match view.links.get(index) {
                Some(link) if link.master.is_some() => {
                    self.links.push(link.name.clone());
                    true
                }
                _ => false,
            },
            KernelEvent::AddressAdded(_) | KernelEvent::AddressRemoved(_) => {
                self.addresses = true;
                true
            }
            KernelEvent::NeighbourSeen(n) => {
                let before = view.neighbours.mac_of(n.ifindex, &n.ip);
                if before == Some(n.mac) {
                    // Reachability churn (REACHABLE, STALE, DELAY, PROBE) moves nothing.
                    return false;
                }
                self.neighbours.push((n.ifindex, n.mac));
                self.neighbours.extend(before.map(|m| (n.ifindex, m)));
                true
            }
            KernelEvent::NeighbourGone { ifindex, ip } => {
                match view.neighbours.mac_of(*ifindex, ip) {
                    Some(mac) => {
                        self.neighbours.push((*ifindex, mac));
                        true
                    }
                    None => false,
                }
            }
            // Someone else's route: the agent repairs, planning has nothing to redo.
            KernelEvent::Foreign(_) => false,
            KernelEvent::Overrun => true,
        }
    }
}

/// What an update changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// Prefixes whose advert changed, sorted.
    pub adverts: Vec<IpNet>,
    /// Prefixes whose wanted kernel route changed, sorted.
    pub routes: Vec<IpNet>,
}

/// A NIC on a bridge network, as the config describes it.
struct BridgedNic {
    owners: Owners,
    attrs: Attrs,
    bridge: String,
    host_name: Option<String>,
    /// Per family (IPv4, IPv6): the rule of its adverts' next hop, and its kernel
    /// routes' gateway (the instance's address, else a device route).
    rules: [NextHopRule; 2],
    gateways: [Option<IpAddr>; 2],
    prefixes: Vec<IpNet>,
    /// Its own addresses, when its network advertises them.
    own: Option<OwnAddrs>,
}

impl BridgedNic {
    /// The bridge it runs on: its host side is a port of the bridge, and that is up.
    fn running_on(&self, view: &KernelView) -> Option<u32> {
        let bridge = view.link_by_name(&self.bridge)?;
        let port = view.link_by_name(self.host_name.as_deref()?)?;
        (bridge.admin_up && port.master == Some(bridge.index)).then_some(bridge.index)
    }
}

fn family_index(prefix: &IpNet) -> usize {
    usize::from(matches!(prefix, IpNet::V6(_)))
}

/// What the config says, arranged for lookups from a kernel event.
struct Index {
    nics: Vec<BridgedNic>,
    by_owner: FastHashMap<Owner, u32>,
    /// Prefixes several bridged NICs claim (anycast), claimants in config order.
    shared: FastHashMap<IpNet, Vec<u32>>,
    /// Link name -> the NICs whose running state it decides: every NIC of the bridge
    /// of that name, or the NIC whose host side it is.
    by_link: HashMap<String, Vec<u32>>,
    /// Bridge name -> MAC -> the NICs with that `hwaddr` advertising their own
    /// addresses there.
    by_mac: HashMap<String, FastHashMap<Mac, Vec<u32>>>,
    /// The NICs advertising their own addresses.
    with_own: Vec<u32>,
    bridges: Vec<(Network, Owners, Attrs)>,
}

impl Index {
    fn new(config: &Config) -> Index {
        let mut nics = Vec::new();
        let mut by_owner = FastHashMap::default();
        let mut by_link: HashMap<String, Vec<u32>> = HashMap::new();
        let mut by_mac: HashMap<String, FastHashMap<Mac, Vec<u32>>> = HashMap::new();
        let mut with_own = Vec::new();
        for (instance, nic, network) in nics_on(config, NetworkKind::Bridge) {
            let id = nics.len() as u32;
            let own = OwnAddrs::new(network, nic);
            if let Some(own) = &own {
                with_own.push(id);
                if let Some(mac) = own.hwaddr {
                    let macs = by_mac.entry(network.name.clone()).or_default();
                    macs.entry(mac).or_default().push(id);
                }
            }
            let owner = instance_owner(instance, nic);
            by_link.entry(network.name.clone()).or_default().push(id);
            if let Some(host) = &nic.host_name {
                by_link.entry(host.clone()).or_default().push(id);
            }
            let prefixes = nic
                .ipv4_routes_external
                .iter()
                .map(|p| IpNet::V4(*p))
                .chain(nic.ipv6_routes_external.iter().map(|p| IpNet::V6(*p)))
                .collect();
            nics.push(BridgedNic {
                owners: owners_of(owner.clone()),
                attrs: nic_attrs(network, nic),
                bridge: network.name.clone(),
                host_name: nic.host_name.clone(),
                rules: [
                    host_rule(network, Family::Ipv4Unicast),
                    host_rule(network, Family::Ipv6Unicast),
                ],
                gateways: [
                    nic.ipv4_address.map(IpAddr::V4),
                    nic.ipv6_address.map(IpAddr::V6),
                ],
                prefixes,
                own,
            });
            by_owner.insert(owner, id);
        }
        let bridges = config
            .networks
            .values()
            .filter(|n| n.kind == NetworkKind::Bridge)
            .map(|n| {
                let owners = owners_of(Owner::Network(n.name.clone()));
                (n.clone(), owners, Arc::new(n.attrs.clone()))
            })
            .collect();
        Index {
            shared: shared_prefixes(&nics),
            nics,
            by_owner,
            by_link,
            by_mac,
            with_own,
            bridges,
        }
    }

    /// The route `prefix` wants, now that claimant `id` (or another) moved.
    fn wanted_route(&self, prefix: IpNet, id: u32, running: &[Option<u32>]) -> Option<WantedRoute> {
        let claimants = self
            .shared
            .get(&prefix)
            .map_or(std::slice::from_ref(&id), Vec::as_slice);
        let family = family_index(&prefix);
        let mut on = claimants
            .iter()
            .filter_map(|&c| Some((c, running[c as usize]?)));
        let (first, bridge) = on.next()?;
        let hop = |c: u32, bridge: u32| RouteNextHop {
            ifindex: bridge,
            gateway: self.nics[c as usize].gateways[family],
        };
        // vec![] sizes it for the usual single hop (a push would reserve 4).
        let mut next_hops = vec![hop(first, bridge)];
        let mut owners = self.nics[first as usize].owners.clone();
        for (c, bridge) in on {
            next_hops.push(hop(c, bridge));
            if let Some(joined) = joined_owners(&owners, &self.nics[c as usize].owners) {
                owners = joined;
            }
        }
        next_hops.sort();
        next_hops.dedup();
        let mut route = Route { prefix, next_hops };
        normalize_multipath(&mut route);
        Some(WantedRoute { route, owners })
    }

    /// The next-hop rule and attributes of the first running NIC behind `wanted`.
    fn nic_rule(
        &self,
        wanted: &WantedRoute,
        running: &[Option<u32>],
    ) -> Option<(NextHopRule, Attrs)> {
        let prefix = &wanted.route.prefix;
        let first = match self.shared.get(prefix) {
            Some(claimants) => claimants
                .iter()
                .copied()
                .find(|&c| running[c as usize].is_some())?,
            None => *self.by_owner.get(wanted.owners.first()?)?,
        };
        let nic = &self.nics[first as usize];
        Some((nic.rules[family_index(prefix)].clone(), nic.attrs.clone()))
    }

    /// What the bridge networks claim from the kernel's addresses: prefix -> claims
    /// in network order.
    fn claim_bridges(&self, view: &KernelView) -> BTreeMap<IpNet, Vec<Advert>> {
        let mut claims: BTreeMap<IpNet, Vec<Advert>> = BTreeMap::new();
        // A claimant: the network's owners and attributes.
        let mut claim = |prefix: IpNet, (owners, attrs): (&Owners, &Attrs), network: &Network| {
            let advert = Advert {
                owners: owners.clone(),
                next_hop: host_rule(network, Family::of(&prefix)),
                attrs: attrs.clone(),
            };
            let list = claims.entry(prefix).or_default();
            if !list.contains(&advert) {
                list.push(advert);
            }
        };
        for (network, owners, attrs) in &self.bridges {
            let claimant = (owners, attrs);
            let Some(link) = view.link_by_name(&network.name) else {
                continue;
            };
            for address in view.addresses_of(link.index) {
                if address.tentative || address.link_scope {
                    continue;
                }
                let nat = match Family::of(&address.net) {
                    Family::Ipv4Unicast => network.ipv4.nat,
                    Family::Ipv6Unicast => network.ipv6.nat,
                };
                if !nat {
                    claim(address.net.trunc(), claimant, network);
                }
            }
            if let (true, Some(a)) = (network.ipv4.nat, network.ipv4.nat_address) {
                claim(host_v4(a), claimant, network);
            }
            if let (true, Some(a)) = (network.ipv6.nat, network.ipv6.nat_address) {
                claim(host_v6(a), claimant, network);
            }
        }
        claims
    }
}

/// Prefixes claimed by more than one NIC, each with its claimants in config order.
fn shared_prefixes(nics: &[BridgedNic]) -> FastHashMap<IpNet, Vec<u32>> {
    let mut claims: Vec<(IpNet, u32)> = nics
        .iter()
        .enumerate()
        .flat_map(|(id, nic)| nic.prefixes.iter().map(move |p| (*p, id as u32)))
        .collect();
    claims.sort_unstable();
    claims.dedup();
    let mut shared = FastHashMap::default();
    for run in claims.chunk_by(|a, b| a.0 == b.0) {
        if run.len() > 1 {
            shared.insert(run[0].0, run.iter().map(|(_, id)| *id).collect());
        }
    }
    shared
}

/// The claims on one prefix merged, in order: all their owners, the first one's rule.
fn merge_claims<'a>(mut claims: impl Iterator<Item = &'a Advert>) -> Option<Advert> {
    let mut merged = claims.next()?.clone();
    for claim in claims {
        if let Some(owners) = joined_owners(&merged.owners, &claim.owners) {
            merged.owners = owners;
        }
    }
    Some(merged)
}

pub struct Planner {
    index: Index,
    /// The bridge each NIC runs on, if it runs.
    running: Vec<Option<u32>>,
    /// The bridge networks' claims the adverts were last planned from.
    bridge_claims: BTreeMap<IpNet, Vec<Advert>>,
    /// The instances' own addresses advertised.
    own: OwnClaims,
    intent: Intent,
}

impl Planner {
    /// A planner for `config`, holding only what the config alone advertises until
    /// [`Planner::rebuild`] adds what the kernel holds.
    pub fn new(config: &Config) -> Planner {
        let index = Index::new(config);
        Planner {
            running: vec![None; index.nics.len()],
            index,
            bridge_claims: BTreeMap::new(),
            own: OwnClaims::default(),
            intent: Intent {
                adverts: AdvertSet::new(Arc::new(plan_static(config))),
                routes: BTreeMap::new(),
            },
        }
    }

    pub fn intent(&self) -> &Intent {
        &self.intent
    }

    pub fn into_intent(self) -> Intent {
        self.intent
    }

    /// Plans everything again from `view` (start, reload, after lost events).
    pub fn rebuild(&mut self, view: &KernelView) {
        self.running.fill(None);
        self.bridge_claims.clear();
        self.own.clear();
        self.intent.routes.clear();
        self.intent.adverts.clear_dynamic();
        let everything = Touched {
            links: self.index.by_link.keys().cloned().collect(),
            routes: view.routes.keys().copied().collect(),
            addresses: true,
            neighbours: Vec::new(),
        };
        self.update(view, &everything);
    }

    /// Plans again what `touched` may have changed; `view` already holds the change.
    pub fn update(&mut self, view: &KernelView, touched: &Touched) -> Delta {
        let mut delta = Delta::default();
        let mut dirty = touched.routes.clone();
        let moved = self.moved_nics(view, touched);
        self.plan_own_addresses(view, touched, &moved, &mut dirty);
        for id in moved {
            for &prefix in &self.index.nics[id as usize].prefixes {
                let wanted = self.index.wanted_route(prefix, id, &self.running);
                let changed = match (wanted, self.intent.routes.entry(prefix)) {
                    (Some(w), Entry::Occupied(o)) if o.get() == &w => false,
                    (Some(w), Entry::Occupied(mut o)) => {
                        o.insert(w);
                        true
                    }
                    (Some(w), Entry::Vacant(v)) => {
                        v.insert(w);
                        true
                    }
                    (None, Entry::Occupied(o)) => {
                        o.remove();
                        true
                    }
                    (None, Entry::Vacant(_)) => false,
                };
                if changed {
                    delta.routes.push(prefix);
                    dirty.push(prefix);
                }
            }
        }
        // A bridge's claims come from its link and its addresses alone.
        let claims = (touched.addresses || !touched.links.is_empty())
            .then(|| self.index.claim_bridges(view))
            .filter(|claims| *claims != self.bridge_claims);
        if let Some(claims) = claims {
            let old = std::mem::replace(&mut self.bridge_claims, claims);
            let new = &self.bridge_claims;
            dirty.extend(
                new.iter()
                    .filter(|(p, c)| old.get(p) != Some(c))
                    .map(|(p, _)| *p),
            );
            dirty.extend(old.keys().filter(|p| !new.contains_key(p)));
        }
        dirty.sort_unstable();
        dirty.dedup();
        for prefix in dirty {
            let advert = self.advert(prefix, view);
            if self.intent.adverts.set_dynamic(prefix, advert) {
                delta.adverts.push(prefix);
            }
        }
        delta.routes.sort_unstable();
        delta.routes.dedup();
        delta
    }

    /// Plans again the own addresses of the NICs that moved, whose neighbours
    /// changed, or all of them when addresses did (the bridges' subnets).
    fn plan_own_addresses(
        &mut self,
        view: &KernelView,
        touched: &Touched,
        moved: &[u32],
        dirty: &mut Vec<IpNet>,
    ) {
        if self.index.with_own.is_empty() {
            return;
        }
        let mut ids: Vec<u32> = if touched.addresses {
            self.index.with_own.clone()
        } else {
            let nics = &self.index.nics;
            moved
                .iter()
                .copied()
                .filter(|&id| nics[id as usize].own.is_some())
                .collect()
        };
        for (ifindex, mac) in &touched.neighbours {
            let found = view
                .links
                .get(ifindex)
                .and_then(|link| self.index.by_mac.get(&link.name))
                .and_then(|macs| macs.get(mac));
            ids.extend(found.into_iter().flatten());
        }
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let nic = &self.index.nics[id as usize];
            let now = match (&nic.own, self.running[id as usize]) {
                (Some(own), Some(bridge)) => own.plan(bridge, view),
                _ => Vec::new(),
            };
            self.own.set(id, now, dirty);
        }
    }

    /// The NICs whose running state changed, with `running` brought up to date.
    fn moved_nics(&mut self, view: &KernelView, touched: &Touched) -> Vec<u32> {
        let mut ids: Vec<u32> = touched
            .links
            .iter()
            .filter_map(|name| self.index.by_link.get(name))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|&id| {
            let now = self.index.nics[id as usize].running_on(view);
            std::mem::replace(&mut self.running[id as usize], now) != now
        });
        ids
    }

    /// The kernel-dependent advert of `prefix`: the static claim, the bridges' and
    /// the running NICs' merged in that order, or `None` where only the static layer
    /// speaks. A NIC's prefix is advertised only while the kernel holds its route.
    fn advert(&self, prefix: IpNet, view: &KernelView) -> Option<Advert> {
        let bridges = self.bridge_claims.get(&prefix);
        let nic = self.intent.routes.get(&prefix).and_then(|wanted| {
            let (next_hop, attrs) = self.index.nic_rule(wanted, &self.running)?;
            Some(Advert {
                owners: wanted.owners.clone(),
                next_hop,
                attrs,
            })
        });
        let own: Vec<Advert> = self
            .own
            .claimants(&prefix)
            .iter()
            .map(|&id| {
                let nic = &self.index.nics[id as usize];
                Advert {
                    owners: nic.owners.clone(),
                    next_hop: nic.rules[family_index(&prefix)].clone(),
                    attrs: nic.attrs.clone(),
                }
            })
            .collect();
        if bridges.is_none() && nic.is_none() && own.is_empty() {
            return None;
        }
        let statics = self.intent.adverts.static_advert(&prefix);
        let merged = merge_claims(
            statics
                .into_iter()
                .chain(bridges.into_iter().flatten())
                .chain(nic.as_ref())
                .chain(&own),
        )?;
        // An instance's own address is on-link: no route of ours is needed for it.
        let kernel_backed =
            nic.is_some() && own.is_empty() && matches!(merged.next_hop, NextHopRule::Host(_));
        if kernel_backed && !view.routes.contains_key(&prefix) {
            return None;
        }
        Some(merged)
    }
}
