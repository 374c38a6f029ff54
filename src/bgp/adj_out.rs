//! Per-peer Adj-RIB-Out: what has been announced to one peer, and the diff to send.
use std::hash::Hash;
use std::net::IpAddr;

use foldhash::HashMap as FastHashMap;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::wire::{pack_announce, pack_withdraw, Codec, Family, RouteAttrs};

/// Announcements and withdrawals for one peer. Each prefix appears at most once (the
/// agent considers every prefix once per sync), so their order does not matter.
///
/// Announcements are grouped by next hop as they are noted: a full table is one
/// 18-byte entry per prefix, and encoding needs no second grouping copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub announce: FastHashMap<IpAddr, Vec<IpNet>>,
    pub withdraw: Vec<IpNet>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }

    pub fn announce(&mut self, prefix: IpNet, next_hop: IpAddr) {
        self.announce.entry(next_hop).or_default().push(prefix);
    }

    pub fn announced(&self) -> usize {
        self.announce.values().map(Vec::len).sum()
    }

    /// Encodes withdrawals first, then each next hop's announcements, packed so that
    /// each UPDATE carries as many prefixes as fit.
    pub fn encode(&self, codec: &Codec, template: &RouteAttrs, out: &mut Vec<u8>) -> usize {
        let mut messages = 0;
        if !self.withdraw.is_empty() {
            messages += pack_withdraw(codec, &self.withdraw, out);
        }
        let mut next_hops: Vec<&IpAddr> = self.announce.keys().collect();
        next_hops.sort();
        let mut attrs = template.clone();
        for next_hop in next_hops {
            attrs.next_hop = *next_hop;
            messages += pack_announce(codec, &attrs, &self.announce[next_hop], out);
        }
        messages
    }
}

/// What one peer has been told: prefix -> next hop.
///
/// A peer sees only a handful of distinct next hops, so each prefix stores a small
/// index into `hops` instead of a whole address, and the families have maps of their
/// own: 7-byte entries for IPv4 and 19 for IPv6 (a shared map of `IpNet` keys took 20).
#[derive(Clone, Debug, Default)]
pub struct AdjRibOut {
    // foldhash: a million inserts at session start must not pay for SipHash (the keys
    // are our own prefixes, not attacker-chosen). Not Fx: it mixes consecutive IPv6
    // /128s so poorly that 100k of them took 50 ms to insert, 10x foldhash.
    v4: FastHashMap<Ipv4Net, Hop>,
    v6: FastHashMap<Ipv6Net, Hop>,
    hops: Vec<IpAddr>,
    hop_ids: FastHashMap<IpAddr, u16>,
}

/// A next hop's index in `hops`. Packed (alignment 1): an IPv6 slot is 19 bytes, not 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed)]
struct Hop(u16);

impl Hop {
    fn get(self) -> usize {
        usize::from(self.0)
    }
}

const _: () = assert!(std::mem::size_of::<(Ipv4Net, Hop)>() == 7);
const _: () = assert!(std::mem::size_of::<(Ipv6Net, Hop)>() == 19);

/// Records `index` (None: not advertised) for `prefix`; true if that changed anything.
fn record<P: Hash + Eq>(map: &mut FastHashMap<P, Hop>, prefix: P, index: Option<Hop>) -> bool {
    match index {
        Some(i) => map.insert(prefix, i) != Some(i),
        None => map.remove(&prefix).is_some(),
    }
}

impl AdjRibOut {
    fn hop_index(&mut self, next_hop: IpAddr) -> u16 {
        if let Some(i) = self.hop_ids.get(&next_hop) {
            return *i;
        }
        if self.hops.len() > usize::from(u16::MAX) {
            self.compact_hops();
        }
        let index = self.hops.len() as u16;
        self.hops.push(next_hop);
        self.hop_ids.insert(next_hop, index);
        index
    }

    fn indexes_mut(&mut self) -> impl Iterator<Item = &mut Hop> {
        self.v4.values_mut().chain(self.v6.values_mut())
    }

    /// Forgets next hops no prefix uses any more (reached only after 65536 distinct ones).
    fn compact_hops(&mut self) {
        let mut used: Vec<u16> = self.indexes_mut().map(|i| i.0).collect();
        used.sort_unstable();
        used.dedup();
        let hops: Vec<IpAddr> = used.iter().map(|i| self.hops[usize::from(*i)]).collect();
        for index in self.indexes_mut() {
            let old = index.0;
            *index = Hop(used.binary_search(&old).unwrap_or(0) as u16);
        }
        self.hop_ids = hops
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i as u16))
            .collect();
        self.hops = hops;
    }

    /// Records the wanted state of `prefix` (None: not advertised) and notes the change.
    pub fn set(&mut self, prefix: IpNet, next_hop: Option<IpAddr>, changes: &mut Changes) {
        let index = next_hop.map(|nh| Hop(self.hop_index(nh)));
        let changed = match prefix {
            IpNet::V4(p) => record(&mut self.v4, p, index),
            IpNet::V6(p) => record(&mut self.v6, p, index),
        };
        match (changed, next_hop) {
            (false, _) => {}
            (true, Some(nh)) => changes.announce(prefix, nh),
            (true, None) => changes.withdraw.push(prefix),
        }
    }

    /// Every prefix announced, for re-sending the whole table (route refresh).
    pub fn all(&self) -> Changes {
        let mut changes = Changes::default();
        let mut routes: Vec<(IpNet, Hop)> = self.routes().collect();
        routes.sort_unstable_by_key(|(p, _)| *p);
        for (prefix, index) in routes {
            changes.announce(prefix, self.hops[index.get()]);
        }
        changes
    }

    fn routes(&self) -> impl Iterator<Item = (IpNet, Hop)> + '_ {
        let v4 = self.v4.iter().map(|(p, i)| (IpNet::V4(*p), *i));
        v4.chain(self.v6.iter().map(|(p, i)| (IpNet::V6(*p), *i)))
    }

    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.routes().map(|(p, _)| p)
    }

    pub fn get(&self, prefix: &IpNet) -> Option<IpAddr> {
        let index = match prefix {
            IpNet::V4(p) => self.v4.get(p),
            IpNet::V6(p) => self.v6.get(p),
        }?;
        Some(self.hops[index.get()])
    }

    pub fn count(&self, family: Family) -> usize {
        match family {
            Family::Ipv4Unicast => self.v4.len(),
            Family::Ipv6Unicast => self.v6.len(),
        }
    }

    pub fn clear(&mut self) {
        self.v4 = FastHashMap::default();
        self.v6 = FastHashMap::default();
        self.hops.clear();
        self.hop_ids.clear();
    }

    /// Makes room for a full table of `v4` and `v6` routes, so each is one allocation.
    pub fn reserve(&mut self, v4: usize, v6: usize) {
        self.v4.reserve(v4.saturating_sub(self.v4.len()));
        self.v6.reserve(v6.saturating_sub(self.v6.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn announces_only_what_changed() {
        let mut rib = AdjRibOut::default();
        let mut c = Changes::default();
        rib.set(net("203.0.113.0/24"), Some(ip("198.51.100.1")), &mut c);
        rib.set(net("203.0.113.0/24"), Some(ip("198.51.100.1")), &mut c);
        assert_eq!(c.announced(), 1);
        rib.set(net("203.0.113.0/24"), Some(ip("198.51.100.2")), &mut c);
        assert_eq!(c.announced(), 2);
        rib.set(net("192.0.2.0/24"), None, &mut c);
        assert!(c.withdraw.is_empty());
        rib.set(net("203.0.113.0/24"), None, &mut c);
        assert_eq!(c.withdraw, vec![net("203.0.113.0/24")]);
        assert_eq!(rib.count(Family::Ipv4Unicast), 0);
    }

    #[test]
    fn many_distinct_next_hops_stay_correct() {
        let mut rib = AdjRibOut::default();
        let mut c = Changes::default();
        rib.set(net("203.0.113.0/24"), Some(ip("198.51.100.1")), &mut c);
        // Far more distinct next hops than an index holds, each replacing the last.
        for i in 0..70_000u32 {
            let nh = IpAddr::V6(std::net::Ipv6Addr::from(
                0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
            ));
            rib.set(net("2001:db8::/64"), Some(nh), &mut c);
        }
        assert_eq!(rib.get(&net("203.0.113.0/24")), Some(ip("198.51.100.1")));
        assert_eq!(rib.get(&net("2001:db8::/64")), Some(ip("2001:db8::1:116f")));
    }

    #[test]
    fn all_lists_every_route_sorted() {
        let mut rib = AdjRibOut::default();
        let mut c = Changes::default();
        rib.set(net("2001:db8::/64"), Some(ip("2001:db8:ff::2")), &mut c);
        rib.set(net("203.0.113.0/24"), Some(ip("198.51.100.1")), &mut c);
        rib.set(net("192.0.2.0/24"), Some(ip("198.51.100.1")), &mut c);
        let all = rib.all();
        assert_eq!(all.announced(), 3);
        assert_eq!(
            all.announce[&ip("198.51.100.1")],
            [net("192.0.2.0/24"), net("203.0.113.0/24")]
        );
        assert_eq!(rib.count(Family::Ipv6Unicast), 1);
        assert_eq!(rib.get(&net("203.0.113.0/24")), Some(ip("198.51.100.1")));
    }
}
