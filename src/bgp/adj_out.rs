//! Per-peer Adj-RIB-Out: what has been announced to one peer, and the diff to send.
use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::wire::{pack_announce, pack_withdraw, Codec, Family, RouteAttrs};

/// Announcements and withdrawals for one peer, in the order they must be applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub announce: Vec<(IpNet, IpAddr)>,
    pub withdraw: Vec<IpNet>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }

    /// Encodes withdrawals first, then announcements grouped by next hop so that each
    /// UPDATE carries as many prefixes as fit.
    pub fn encode(&self, codec: &Codec, template: &RouteAttrs, out: &mut Vec<u8>) -> usize {
        let mut messages = 0;
        if !self.withdraw.is_empty() {
            messages += pack_withdraw(codec, &self.withdraw, out);
        }
        let mut groups: HashMap<(IpAddr, Family), Vec<IpNet>> = HashMap::new();
        for (prefix, next_hop) in &self.announce {
            groups
                .entry((*next_hop, Family::of(prefix)))
                .or_default()
                .push(*prefix);
        }
        let mut keys: Vec<_> = groups.keys().copied().collect();
        keys.sort();
        let mut attrs = template.clone();
        for key in keys {
            attrs.next_hop = key.0;
            if let Some(prefixes) = groups.get(&key) {
                messages += pack_announce(codec, &attrs, prefixes, out);
            }
        }
        messages
    }
}

/// What one peer has been told: prefix -> next hop.
///
/// A peer sees only a handful of distinct next hops, so each prefix stores a small
/// index into `hops` instead of a whole address: 20-byte entries instead of 36.
#[derive(Clone, Debug, Default)]
pub struct AdjRibOut {
    // Fx: a million inserts at session start must not pay for SipHash; the keys are
    // our own prefixes, not attacker-chosen.
    routes: FxHashMap<IpNet, u16>,
    hops: Vec<IpAddr>,
    hop_ids: FxHashMap<IpAddr, u16>,
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

    /// Forgets next hops no prefix uses any more (reached only after 65536 distinct ones).
    fn compact_hops(&mut self) {
        let mut used: Vec<u16> = self.routes.values().copied().collect();
        used.sort_unstable();
        used.dedup();
        let hops: Vec<IpAddr> = used.iter().map(|i| self.hops[usize::from(*i)]).collect();
        for index in self.routes.values_mut() {
            *index = used.binary_search(index).unwrap_or(0) as u16;
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
        match next_hop {
            Some(nh) => {
                let index = self.hop_index(nh);
                if self.routes.insert(prefix, index) != Some(index) {
                    changes.announce.push((prefix, nh));
                }
            }
            None => {
                if self.routes.remove(&prefix).is_some() {
                    changes.withdraw.push(prefix);
                }
            }
        }
    }

    /// Every prefix announced, for re-sending the whole table (route refresh).
    pub fn all(&self) -> Changes {
        let mut announce: Vec<_> = self
            .routes
            .iter()
            .map(|(p, i)| (*p, self.hops[usize::from(*i)]))
            .collect();
        announce.sort();
        Changes {
            announce,
            withdraw: Vec::new(),
        }
    }

    pub fn prefixes(&self) -> impl Iterator<Item = &IpNet> {
        self.routes.keys()
    }

    pub fn get(&self, prefix: &IpNet) -> Option<IpAddr> {
        self.routes.get(prefix).map(|i| self.hops[usize::from(*i)])
    }

    pub fn count(&self, family: Family) -> usize {
        self.routes
            .keys()
            .filter(|p| Family::of(p) == family)
            .count()
    }

    pub fn clear(&mut self) {
        self.routes = FxHashMap::default();
        self.hops.clear();
        self.hop_ids.clear();
    }

    /// Makes room for `total` routes in all, so a full table is one allocation.
    pub fn reserve(&mut self, total: usize) {
        self.routes.reserve(total.saturating_sub(self.routes.len()));
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
        assert_eq!(c.announce.len(), 1);
        rib.set(net("203.0.113.0/24"), Some(ip("198.51.100.2")), &mut c);
        assert_eq!(c.announce.len(), 2);
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
        let all = rib.all();
        assert_eq!(all.announce.len(), 2);
        assert_eq!(rib.count(Family::Ipv6Unicast), 1);
        assert_eq!(rib.get(&net("203.0.113.0/24")), Some(ip("198.51.100.1")));
    }
}
