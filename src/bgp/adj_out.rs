//! Per-peer Adj-RIB-Out: what has been announced to one peer, and the diff to send.
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use foldhash::HashMap as FastHashMap;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::wire::{
    pack_announce, pack_announce_whole, pack_withdraw, Codec, ExtraAttrs, Family, RouteAttrs,
};

/// What a prefix is announced with: prefixes sharing one go in the same UPDATEs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathKey {
    pub next_hop: IpAddr,
    /// Shared by every prefix of a network or NIC; `Arc`'s equality checks the
    /// pointer first, so comparing the usual identical sets is cheap.
    pub extra: Arc<ExtraAttrs>,
}

impl PathKey {
    /// `next_hop` with no added attributes.
    pub fn plain(next_hop: IpAddr) -> PathKey {
        PathKey {
            next_hop,
            extra: Arc::default(),
        }
    }
}

/// Announcements and withdrawals for one peer. Each prefix appears at most once (the
/// agent considers every prefix once per sync), so their order does not matter.
///
/// Announcements are grouped by (next hop, attribute set) as they are noted: a full
/// table is one 18-byte entry per prefix, and encoding needs no second grouping copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub announce: FastHashMap<PathKey, Vec<IpNet>>,
    pub withdraw: Vec<IpNet>,
    /// More changes of the same sync follow at once, none touching these prefixes: a
    /// last UPDATE that would not be full may wait for them (see [`Self::encode_holding`]).
    pub more: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }

    /// Notes `prefix` for `next_hop` with no added attributes.
    pub fn announce(&mut self, prefix: IpNet, next_hop: IpAddr) {
        self.announce_path(prefix, &PathKey::plain(next_hop));
    }

    pub fn announce_path(&mut self, prefix: IpNet, path: &PathKey) {
        match self.announce.get_mut(path) {
            Some(list) => list.push(prefix),
            None => {
                self.announce.insert(path.clone(), vec![prefix]);
            }
        }
    }

    pub fn announced(&self) -> usize {
        self.announce.values().map(Vec::len).sum()
    }

    /// Adds `earlier`'s prefixes to these changes (keeping this one's `more`). Only for
    /// changes that touch other prefixes: what [`Self::encode_holding`] held back.
    pub fn absorb(&mut self, earlier: Changes) {
        for (path, prefixes) in earlier.announce {
            self.announce.entry(path).or_default().extend(prefixes);
        }
        self.withdraw.extend(earlier.withdraw);
    }

    /// Encodes withdrawals first, then each (next hop, attribute set)'s announcements,
    /// packed so that each UPDATE carries as many prefixes as fit.
    pub fn encode(&self, codec: &Codec, template: &RouteAttrs, out: &mut Vec<u8>) -> usize {
        self.encode_with(codec, template, out, None)
    }

    /// As [`Self::encode`]; but when `more` changes follow, each path's last UPDATE that
    /// would not be full is left out and its prefixes put in `held`, to go out with the
    /// next changes: a table handed over in chunks then packs as densely as in one.
    pub fn encode_holding(
        &self,
        codec: &Codec,
        template: &RouteAttrs,
        out: &mut Vec<u8>,
        held: &mut Changes,
    ) -> usize {
        self.encode_with(codec, template, out, self.more.then_some(held))
    }

    fn encode_with(
        &self,
        codec: &Codec,
        template: &RouteAttrs,
        out: &mut Vec<u8>,
        mut held: Option<&mut Changes>,
    ) -> usize {
        let mut messages = 0;
        if !self.withdraw.is_empty() {
            messages += pack_withdraw(codec, &self.withdraw, out);
        }
        let mut paths: Vec<(&PathKey, &Vec<IpNet>)> = self.announce.iter().collect();
        paths.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut attrs = template.clone();
        let mut tail = Vec::new();
        for (path, prefixes) in paths {
            attrs.next_hop = path.next_hop;
            attrs.extra = ExtraAttrs::clone(&path.extra);
            match held.as_deref_mut() {
                None => messages += pack_announce(codec, &attrs, prefixes, out),
                Some(held) => {
                    messages += pack_announce_whole(codec, &attrs, prefixes, out, &mut tail);
                    if !tail.is_empty() {
                        let kept = held.announce.entry(path.clone()).or_default();
                        kept.append(&mut tail);
                    }
                }
            }
        }
        messages
    }
}

/// What one peer has been told: prefix -> (next hop, attribute set).
///
/// A peer sees only a handful of distinct (next hop, attribute set) pairs, so each
/// prefix stores a small index into `hops` instead of a whole address and set, and the
/// families have maps of their own: 7-byte entries for IPv4 and 19 for IPv6 (a shared
/// map of `IpNet` keys took 20).
#[derive(Clone, Debug, Default)]
pub struct AdjRibOut {
    // foldhash: a million inserts at session start must not pay for SipHash (the keys
    // are our own prefixes, not attacker-chosen). Not Fx: it mixes consecutive IPv6
    // /128s so poorly that 100k of them took 50 ms to insert, 10x foldhash.
    v4: FastHashMap<Ipv4Net, Hop>,
    v6: FastHashMap<Ipv6Net, Hop>,
    hops: Vec<PathKey>,
    hop_ids: FastHashMap<PathKey, u16>,
    /// The index handed out last: a sync goes network by network, NIC by NIC, so
    /// runs of prefixes share one path and skip hashing its attribute set.
    last: Option<u16>,
}

/// A (next hop, attribute set)'s index in `hops`. Packed (alignment 1): an IPv6 slot is 19 bytes, not 20.
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
    fn hop_index(&mut self, path: &PathKey) -> u16 {
        if let Some(i) = self.last.filter(|i| self.hops[usize::from(*i)] == *path) {
            return i;
        }
        if let Some(&i) = self.hop_ids.get(path) {
            self.last = Some(i);
            return i;
        }
        if self.hops.len() > usize::from(u16::MAX) {
            self.compact_hops();
        }
        let index = self.hops.len() as u16;
        self.hops.push(path.clone());
        self.hop_ids.insert(path.clone(), index);
        self.last = Some(index);
        index
    }

    fn indexes_mut(&mut self) -> impl Iterator<Item = &mut Hop> {
        self.v4.values_mut().chain(self.v6.values_mut())
    }

    /// Forgets paths no prefix uses any more (reached only after 65536 distinct ones).
    fn compact_hops(&mut self) {
        let mut used: Vec<u16> = self.indexes_mut().map(|i| i.0).collect();
        used.sort_unstable();
        used.dedup();
        let hops: Vec<PathKey> = used
            .iter()
            .map(|i| self.hops[usize::from(*i)].clone())
            .collect();
        for index in self.indexes_mut() {
            let old = index.0;
            *index = Hop(used.binary_search(&old).unwrap_or(0) as u16);
        }
        self.hop_ids = hops
            .iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), i as u16))
            .collect();
        self.hops = hops;
        self.last = None;
    }

    /// Records the wanted state of `prefix` (None: not advertised) and notes the change:
    /// a new next hop or a new attribute set re-announces it, nothing else does.
    pub fn set(&mut self, prefix: IpNet, path: Option<&PathKey>, changes: &mut Changes) {
        let index = path.map(|p| Hop(self.hop_index(p)));
        let changed = match prefix {
            IpNet::V4(p) => record(&mut self.v4, p, index),
            IpNet::V6(p) => record(&mut self.v6, p, index),
        };
        match (changed, path) {
            (false, _) => {}
            (true, Some(p)) => changes.announce_path(prefix, p),
            (true, None) => changes.withdraw.push(prefix),
        }
    }

    /// Every prefix announced, for re-sending the whole table (route refresh).
    pub fn all(&self) -> Changes {
        let mut changes = Changes::default();
        let mut routes: Vec<(IpNet, Hop)> = self.routes().collect();
        routes.sort_unstable_by_key(|(p, _)| *p);
        for (prefix, index) in routes {
            changes.announce_path(prefix, &self.hops[index.get()]);
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
        self.path(prefix).map(|p| p.next_hop)
    }

    /// The next hop and attribute set `prefix` was announced with.
    pub fn path(&self, prefix: &IpNet) -> Option<&PathKey> {
        let index = match prefix {
            IpNet::V4(p) => self.v4.get(p),
            IpNet::V6(p) => self.v6.get(p),
        }?;
        Some(&self.hops[index.get()])
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
        self.last = None;
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
    fn hop(s: &str) -> Option<PathKey> {
        Some(PathKey::plain(ip(s)))
    }

    /// A table handed over in chunks (as the agent's sync does) packs into as few
    /// UPDATEs as in one piece, for each attribute set: each chunk's last partial
    /// UPDATE waits for the next chunk, and nothing is lost or repeated.
    #[test]
    fn chunks_pack_as_densely_as_one_piece() {
        let codec = Codec {
            four_octet_as: true,
            extended_message: false,
        };
        let template = template();
        let paths: Vec<PathKey> = (0..4u32)
            .map(|i| PathKey {
                next_hop: ip("198.51.100.1"),
                extra: Arc::new(ExtraAttrs {
                    communities: vec![65010 << 16 | i],
                    ..ExtraAttrs::default()
                }),
            })
            .collect();
        let prefixes: Vec<IpNet> = (0..20_000u32)
            .map(|i| IpNet::V4(Ipv4Net::new((0x0a00_0000 + i).into(), 32).unwrap()))
            .collect();
        let mut whole = Changes::default();
        for (i, p) in prefixes.iter().enumerate() {
            whole.announce_path(*p, &paths[i % paths.len()]);
        }
        let mut one_piece = Vec::new();
        let want = whole.encode(&codec, &template, &mut one_piece);

        let (mut chunked, mut held, mut messages) = (Vec::new(), Changes::default(), 0);
        for (n, part) in prefixes.chunks(1500).enumerate() {
            let mut changes = Changes::default();
            for (i, p) in part.iter().enumerate() {
                changes.announce_path(*p, &paths[(n * 1500 + i) % paths.len()]);
            }
            changes.more = (n + 1) * 1500 < prefixes.len();
            changes.absorb(std::mem::take(&mut held));
            messages += changes.encode_holding(&codec, &template, &mut chunked, &mut held);
        }
        assert!(held.is_empty(), "the last chunk sends everything");
        assert_eq!(messages, want, "UPDATEs in chunks vs in one piece");
        assert_eq!(chunked.len(), one_piece.len(), "bytes");
    }

    #[test]
    fn announces_only_what_changed() {
        let mut rib = AdjRibOut::default();
        let mut c = Changes::default();
        rib.set(net("203.0.113.0/24"), hop("198.51.100.1").as_ref(), &mut c);
        rib.set(net("203.0.113.0/24"), hop("198.51.100.1").as_ref(), &mut c);
        assert_eq!(c.announced(), 1);
        rib.set(net("203.0.113.0/24"), hop("198.51.100.2").as_ref(), &mut c);
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
        rib.set(net("203.0.113.0/24"), hop("198.51.100.1").as_ref(), &mut c);
        // Far more distinct next hops than an index holds, each replacing the last.
        for i in 0..70_000u32 {
            let nh = IpAddr::V6(std::net::Ipv6Addr::from(
                0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
            ));
            rib.set(net("2001:db8::/64"), Some(&PathKey::plain(nh)), &mut c);
        }
        assert_eq!(rib.get(&net("203.0.113.0/24")), Some(ip("198.51.100.1")));
        assert_eq!(rib.get(&net("2001:db8::/64")), Some(ip("2001:db8::1:116f")));
    }

    #[test]
    fn all_lists_every_route_sorted() {
        let mut rib = AdjRibOut::default();
        let mut c = Changes::default();
        rib.set(net("2001:db8::/64"), hop("2001:db8:ff::2").as_ref(), &mut c);
        rib.set(net("203.0.113.0/24"), hop("198.51.100.1").as_ref(), &mut c);
        rib.set(net("192.0.2.0/24"), hop("198.51.100.1").as_ref(), &mut c);
        let all = rib.all();
        assert_eq!(all.announced(), 3);
        assert_eq!(
            all.announce[&PathKey::plain(ip("198.51.100.1"))],
            [net("192.0.2.0/24"), net("203.0.113.0/24")]
        );
        assert_eq!(rib.count(Family::Ipv6Unicast), 1);
        assert_eq!(rib.get(&net("203.0.113.0/24")), Some(ip("198.51.100.1")));
    }

    fn with_communities(next_hop: &str, communities: &[u32]) -> PathKey {
        PathKey {
            next_hop: ip(next_hop),
            extra: Arc::new(ExtraAttrs {
                communities: communities.to_vec(),
                ..ExtraAttrs::default()
            }),
        }
    }

    fn template() -> RouteAttrs {
        RouteAttrs {
            origin: crate::bgp::wire::Origin::Igp,
            as_path: vec![65010],
            next_hop: ip("0.0.0.0"),
            link_local_next_hop: None,
            local_pref: None,
            extra: ExtraAttrs::default(),
        }
    }

    const CODEC: Codec = Codec {
        four_octet_as: true,
        extended_message: false,
    };

    #[test]
    fn an_attribute_change_reannounces_only_its_prefixes() {
        let mut rib = AdjRibOut::default();
        let mut c = Changes::default();
        let a = with_communities("198.51.100.1", &[1]);
        let b = with_communities("198.51.100.1", &[2]);
        rib.set(net("203.0.113.0/24"), Some(&a), &mut c);
        rib.set(net("192.0.2.0/24"), Some(&a), &mut c);
        assert_eq!(c.announce.len(), 1);
        let mut c = Changes::default();
        // An equal set in another allocation is the same path.
        let a_again = with_communities("198.51.100.1", &[1]);
        rib.set(net("203.0.113.0/24"), Some(&a_again), &mut c);
        rib.set(net("192.0.2.0/24"), Some(&b), &mut c);
        assert_eq!(c.announce.len(), 1);
        assert_eq!(c.announce[&b], [net("192.0.2.0/24")]);
        assert_eq!(rib.path(&net("192.0.2.0/24")), Some(&b));
        assert_eq!(rib.get(&net("192.0.2.0/24")), Some(ip("198.51.100.1")));
    }

    #[test]
    fn attribute_sets_pack_into_separate_updates() {
        let mut rib = AdjRibOut::default();
        let mut c = Changes::default();
        let a = with_communities("198.51.100.1", &[1]);
        let b = with_communities("198.51.100.1", &[2]);
        rib.set(net("203.0.113.0/24"), Some(&a), &mut c);
        rib.set(net("192.0.2.0/24"), Some(&b), &mut c);
        let mut out = Vec::new();
        assert_eq!(c.encode(&CODEC, &template(), &mut out), 2);
        let mut rest = &out[..];
        let mut seen = Vec::new();
        while !rest.is_empty() {
            let len = crate::bgp::wire::frame_len(rest, &CODEC).unwrap().unwrap();
            let Ok(crate::bgp::wire::Message::Update(u)) =
                crate::bgp::wire::Message::decode(&rest[..len], &CODEC)
            else {
                panic!("not an UPDATE");
            };
            let communities = u.attributes.iter().find_map(|a| match a {
                crate::bgp::wire::PathAttribute::Communities(c) => Some(c.clone()),
                _ => None,
            });
            seen.push((u.nlri, communities));
            rest = &rest[len..];
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                (vec!["192.0.2.0/24".parse().unwrap()], Some(vec![2])),
                (vec!["203.0.113.0/24".parse().unwrap()], Some(vec![1])),
            ]
        );
    }

    #[test]
    fn a_few_attribute_sets_still_pack_densely() {
        // 30,000 /32s over three sets: at most one partly filled UPDATE per set more
        // than the same prefixes with a single set.
        let sets: Vec<PathKey> = (0..3)
            .map(|i| with_communities("198.51.100.1", &[i]))
            .collect();
        let prefixes: Vec<IpNet> = (0..30_000u32)
            .map(|i| {
                IpNet::V4(Ipv4Net::new(std::net::Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap())
            })
            .collect();
        let mut rib = AdjRibOut::default();
        let mut mixed = Changes::default();
        for (i, p) in prefixes.iter().enumerate() {
            rib.set(*p, Some(&sets[i % 3]), &mut mixed);
        }
        let mut one = Changes::default();
        for p in &prefixes {
            one.announce_path(*p, &sets[0]);
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mixed_messages = mixed.encode(&CODEC, &template(), &mut a);
        let one_messages = one.encode(&CODEC, &template(), &mut b);
        assert!(
            mixed_messages <= one_messages + 3,
            "{mixed_messages} vs {one_messages}"
        );
        assert_eq!(rib.hops.len(), 3);
    }
}
