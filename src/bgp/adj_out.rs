//! Per-peer Adj-RIB-Out: what has been announced to one peer, and the diff to send.
use std::collections::HashMap;
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
#[derive(Clone, Debug, Default)]
pub struct AdjRibOut {
    routes: HashMap<IpNet, IpAddr>,
}

impl AdjRibOut {
    /// Records the wanted state of `prefix` (None: not advertised) and notes the change.
    pub fn set(&mut self, prefix: IpNet, next_hop: Option<IpAddr>, changes: &mut Changes) {
        match next_hop {
            Some(nh) => {
                if self.routes.insert(prefix, nh) != Some(nh) {
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
        let mut announce: Vec<_> = self.routes.iter().map(|(p, nh)| (*p, *nh)).collect();
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
        self.routes.get(prefix).copied()
    }

    pub fn count(&self, family: Family) -> usize {
        self.routes
            .keys()
            .filter(|p| Family::of(p) == family)
            .count()
    }

    pub fn clear(&mut self) {
        self.routes.clear();
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
