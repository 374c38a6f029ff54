//! The advertised set, stored for a million prefixes: sorted per-family vectors of
//! (prefix, kind), where a kind (owners + next-hop rule) is shared by every prefix
//! of one network or NIC. 9 bytes per IPv4 prefix, 21 per IPv6 one; a BTreeMap of
//! full entries cost about 110. The kernel-dependent layer above it is a map of the
//! same (prefix, kind) pairs, changed prefix by prefix as events arrive.
use std::collections::{btree_map, BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use foldhash::HashMap as FastHashMap;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{joined_owners, Advert, Attrs, NextHopRule, Owners};

/// Index of an [`Advert`] in [`Adverts::kinds`]. Packed (alignment 1) so that an
/// entry is 9 bytes for IPv4 and 21 for IPv6, not 12 and 24.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C, packed)]
pub struct KindId(u32);

impl KindId {
    fn index(self) -> usize {
        self.0 as usize
    }
}

const _: () = assert!(std::mem::size_of::<(Ipv4Net, KindId)>() == 9);
const _: () = assert!(std::mem::size_of::<(Ipv6Net, KindId)>() == 21);

/// Sorted, duplicate-free prefix -> advert; iteration is in `IpNet` order.
#[derive(Clone, Debug, Default)]
pub struct Adverts {
    v4: Vec<(Ipv4Net, KindId)>,
    v6: Vec<(Ipv6Net, KindId)>,
    kinds: Vec<Advert>,
}

/// Equality and `[prefix]` as for a map, through the type's `iter` and `get`.
macro_rules! map_like {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.iter().eq(other.iter())
            }
        }

        impl Eq for $t {}

        impl std::ops::Index<&IpNet> for $t {
            type Output = Advert;

            /// Like a map's index: panics if `prefix` is not advertised.
            fn index(&self, prefix: &IpNet) -> &Advert {
                match self.get(prefix) {
                    Some(advert) => advert,
                    None => panic!("{prefix} is not advertised"),
                }
            }
        }
    };
}

map_like!(Adverts);

impl Adverts {
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn count_v4(&self) -> usize {
        self.v4.len()
    }

    pub fn count_v6(&self) -> usize {
        self.v6.len()
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&Advert> {
        let kind = match prefix {
            IpNet::V4(p) => find(&self.v4, p),
            IpNet::V6(p) => find(&self.v6, p),
        }?;
        Some(&self.kinds[kind.index()])
    }

    pub fn contains_key(&self, prefix: &IpNet) -> bool {
        self.get(prefix).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &Advert)> + '_ {
        let kinds = &self.kinds;
        self.entries().map(move |(p, k)| (p, &kinds[k.index()]))
    }

    /// (prefix, kind) in `IpNet` order.
    fn entries(&self) -> impl Iterator<Item = (IpNet, KindId)> + '_ {
        let v4 = self.v4.iter().map(|(p, k)| (IpNet::V4(*p), *k));
        v4.chain(self.v6.iter().map(|(p, k)| (IpNet::V6(*p), *k)))
    }

    pub fn values(&self) -> impl Iterator<Item = &Advert> + '_ {
        self.iter().map(|(_, a)| a)
    }

    pub fn keys(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.iter().map(|(p, _)| p)
    }
}

fn find<P: Ord>(entries: &[(P, KindId)], prefix: &P) -> Option<KindId> {
    entries
        .binary_search_by(|(p, _)| p.cmp(prefix))
        .ok()
        .map(|i| entries[i].1)
}

/// The advertised set in two layers: what the config alone decides (OVN networks and
/// NICs: possibly millions of prefixes), shared while the config stays, and what
/// depends on the kernel (bridges, bridged NICs), changed prefix by prefix as events
/// arrive. An event then costs the few prefixes it touches, not the whole table. A
/// prefix in both layers is in `dynamic`, with both layers' owners.
#[derive(Clone, Debug, Default)]
pub struct AdvertSet {
    statics: Arc<Adverts>,
    dynamic: DynamicAdverts,
}

map_like!(AdvertSet);

impl AdvertSet {
    /// The set of `statics` alone; [`AdvertSet::set_dynamic`] adds the rest.
    pub fn new(statics: Arc<Adverts>) -> AdvertSet {
        AdvertSet {
            statics,
            dynamic: DynamicAdverts::default(),
        }
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&Advert> {
        self.dynamic
            .get(prefix)
            .or_else(|| self.statics.get(prefix))
    }

    pub fn contains_key(&self, prefix: &IpNet) -> bool {
        self.get(prefix).is_some()
    }

    /// What the config alone advertises for `prefix`.
    pub fn static_advert(&self, prefix: &IpNet) -> Option<&Advert> {
        self.statics.get(prefix)
    }

    /// Sets (or with `None` clears) the kernel-dependent advert of `prefix`, which
    /// hides the static one while set. Returns whether anything changed.
    pub fn set_dynamic(&mut self, prefix: IpNet, advert: Option<Advert>) -> bool {
        self.dynamic.set(prefix, advert)
    }

    /// Forgets every kernel-dependent advert.
    pub fn clear_dynamic(&mut self) {
        self.dynamic = DynamicAdverts::default();
    }

    /// Every advert in `IpNet` order; `dynamic` wins where both layers hold a prefix.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &Advert)> + '_ {
        let v4 = Layered::new(&self.statics, |a| &a.v4, &self.dynamic, &self.dynamic.v4)
            .map(|(p, a)| (IpNet::V4(p), a));
        v4.chain(
            Layered::new(&self.statics, |a| &a.v6, &self.dynamic, &self.dynamic.v6)
                .map(|(p, a)| (IpNet::V6(p), a)),
        )
    }

    pub fn keys(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.iter().map(|(p, _)| p)
    }

    pub fn values(&self) -> impl Iterator<Item = &Advert> + '_ {
        self.iter().map(|(_, a)| a)
    }

    pub fn is_empty(&self) -> bool {
        self.statics.is_empty() && self.dynamic.is_empty()
    }

    /// IPv4 prefixes, counting one held by both layers twice (a sizing hint).
    pub fn count_v4(&self) -> usize {
        self.statics.count_v4() + self.dynamic.v4.len()
    }

    /// IPv6 prefixes, counting one held by both layers twice (a sizing hint).
    pub fn count_v6(&self) -> usize {
        self.statics.count_v6() + self.dynamic.v6.len()
    }
}

/// The kernel-dependent layer: sorted maps of (prefix, kind), with each kind counted
/// by its users so that kinds of stopped NICs do not pile up over months of events.
#[derive(Clone, Debug, Default)]
struct DynamicAdverts {
    v4: BTreeMap<Ipv4Net, KindId>,
    v6: BTreeMap<Ipv6Net, KindId>,
    /// Indexed by `KindId`; `None` marks a free slot.
    kinds: Vec<Option<CountedKind>>,
    ids: FastHashMap<Advert, KindId>,
    free: Vec<KindId>,
    last: Option<KindId>,
}

#[derive(Clone, Debug)]
struct CountedKind {
    advert: Advert,
    users: u32,
}

impl DynamicAdverts {
    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    fn kind(&self, id: KindId) -> &Advert {
        match &self.kinds[id.index()] {
            Some(counted) => &counted.advert,
            None => unreachable!("a prefix refers to a freed kind"),
        }
    }

    fn get(&self, prefix: &IpNet) -> Option<&Advert> {
        let id = match prefix {
            IpNet::V4(p) => self.v4.get(p),
            IpNet::V6(p) => self.v6.get(p),
        }?;
        Some(self.kind(*id))
    }

    fn set(&mut self, prefix: IpNet, advert: Option<Advert>) -> bool {
        let old = match prefix {
            IpNet::V4(p) => self.v4.get(&p),
            IpNet::V6(p) => self.v6.get(&p),
        }
        .copied();
        match (old, &advert) {
            (None, None) => return false,
            // Prefixes of one NIC share its owners' Arc, so this is a pointer compare.
            (Some(id), Some(a)) if self.kind(id) == a => return false,
            _ => {}
        }
        let new = advert.map(|a| self.acquire(a));
        match (prefix, new) {
            (IpNet::V4(p), Some(id)) => drop(self.v4.insert(p, id)),
            (IpNet::V6(p), Some(id)) => drop(self.v6.insert(p, id)),
            (IpNet::V4(p), None) => drop(self.v4.remove(&p)),
            (IpNet::V6(p), None) => drop(self.v6.remove(&p)),
        }
        if let Some(id) = old {
            self.release(id);
        }
        true
    }

    fn acquire(&mut self, advert: Advert) -> KindId {
        // Prefixes come in runs of one NIC's, so the last kind is checked before
        // hashing the owners' names.
        let known = self
            .last
            .filter(|id| matches!(&self.kinds[id.index()], Some(k) if k.advert == advert))
            .or_else(|| self.ids.get(&advert).copied());
        let id = match known {
            Some(id) => {
                if let Some(counted) = &mut self.kinds[id.index()] {
                    counted.users += 1;
                }
                id
            }
            None => self.add_kind(advert),
        };
        self.last = Some(id);
        id
    }

    fn add_kind(&mut self, advert: Advert) -> KindId {
        let counted = Some(CountedKind {
            advert: advert.clone(),
            users: 1,
        });
        let id = match self.free.pop() {
            Some(id) => {
                self.kinds[id.index()] = counted;
                id
            }
            None => {
                self.kinds.push(counted);
                KindId(self.kinds.len() as u32 - 1)
            }
        };
        self.ids.insert(advert, id);
        id
    }

    fn release(&mut self, id: KindId) {
        let Some(counted) = &mut self.kinds[id.index()] else {
            return;
        };
        counted.users -= 1;
        if counted.users == 0 {
            if let Some(gone) = self.kinds[id.index()].take() {
                self.ids.remove(&gone.advert);
            }
            self.free.push(id);
        }
    }
}

/// Merges one family's sorted entries of the two layers, the dynamic one winning ties.
/// A cursor over the static slice, not a peekable iterator: a full-table sync walks
/// a million of these, and the peekable merge cost 23 ns a prefix against 2 for one
/// layer alone.
struct Layered<'a, P> {
    statics: &'a [(P, KindId)],
    static_kinds: &'a [Advert],
    dynamic: btree_map::Iter<'a, P, KindId>,
    next_dynamic: Option<(&'a P, &'a KindId)>,
    dynamic_kinds: &'a DynamicAdverts,
}

impl<'a, P> Layered<'a, P> {
    fn new(
        statics: &'a Adverts,
        entries: impl Fn(&'a Adverts) -> &'a [(P, KindId)],
        dynamic: &'a DynamicAdverts,
        dynamic_entries: &'a BTreeMap<P, KindId>,
    ) -> Self {
        let mut iter = dynamic_entries.iter();
        Layered {
            statics: entries(statics),
            static_kinds: &statics.kinds,
            next_dynamic: iter.next(),
            dynamic: iter,
            dynamic_kinds: dynamic,
        }
    }
}

impl<'a, P: Ord + Copy> Iterator for Layered<'a, P> {
    type Item = (P, &'a Advert);

    fn next(&mut self) -> Option<Self::Item> {
        let take_static = match (self.statics.first(), self.next_dynamic) {
            (Some(s), Some((d, _))) => match s.0.cmp(d) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Equal => {
                    self.statics = &self.statics[1..];
                    false
                }
                std::cmp::Ordering::Greater => false,
            },
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_static {
            let ((prefix, kind), rest) = self.statics.split_first()?;
            self.statics = rest;
            Some((*prefix, &self.static_kinds[kind.index()]))
        } else {
            let (prefix, kind) = self.next_dynamic?;
            self.next_dynamic = self.dynamic.next();
            Some((*prefix, self.dynamic_kinds.kind(*kind)))
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (s, d) = (
            self.statics.len(),
            self.dynamic.len() + usize::from(self.next_dynamic.is_some()),
        );
        (s.max(d), Some(s + d))
    }
}

/// Collects adverts in any order; [`AdvertsBuilder::finish`] sorts them and merges
/// a prefix claimed by several owners (anycast). The first claim's next-hop rule wins.
#[derive(Default)]
pub struct AdvertsBuilder {
    adverts: Adverts,
    ids: HashMap<Advert, KindId>,
    merged: FastHashMap<(KindId, KindId), KindId>,
}

impl AdvertsBuilder {
    /// The shared kind for `owners` advertised by `next_hop`; look it up once per
    /// network or NIC, then `push` each prefix with it.
    pub fn kind(&mut self, owners: &Owners, next_hop: NextHopRule, attrs: &Attrs) -> KindId {
        self.intern(Advert {
            owners: owners.clone(),
            next_hop,
            attrs: attrs.clone(),
        })
    }

    fn intern(&mut self, advert: Advert) -> KindId {
        if let Some(id) = self.ids.get(&advert) {
            return *id;
        }
        let id = KindId(self.adverts.kinds.len() as u32);
        self.adverts.kinds.push(advert.clone());
        self.ids.insert(advert, id);
        id
    }

    pub fn push(&mut self, prefix: IpNet, kind: KindId) {
        match prefix {
            IpNet::V4(p) => self.adverts.v4.push((p, kind)),
            IpNet::V6(p) => self.adverts.v6.push((p, kind)),
        }
    }

    pub fn finish(mut self) -> Adverts {
        let mut v4 = std::mem::take(&mut self.adverts.v4);
        let mut v6 = std::mem::take(&mut self.adverts.v6);
        self.sort_and_merge(&mut v4);
        self.sort_and_merge(&mut v6);
        self.adverts.v4 = v4;
        self.adverts.v6 = v6;
        self.adverts
    }

    /// Stable sort keeps claims in push order, so the first claim stays first.
    fn sort_and_merge<P: Ord + Copy>(&mut self, entries: &mut Vec<(P, KindId)>) {
        entries.sort_by_key(|(p, _)| *p);
        entries.dedup_by(|later, kept| {
            if later.0 != kept.0 {
                return false;
            }
            kept.1 = self.merge(kept.1, later.1);
            true
        });
    }

    fn merge(&mut self, first: KindId, then: KindId) -> KindId {
        if first == then {
            return first;
        }
        if let Some(id) = self.merged.get(&(first, then)) {
            return *id;
        }
        let (a, b) = (
            &self.adverts.kinds[first.index()],
            &self.adverts.kinds[then.index()],
        );
        let id = match joined_owners(&a.owners, &b.owners) {
            None => first,
            Some(owners) => {
                let next_hop = a.next_hop.clone();
                let attrs = a.attrs.clone();
                self.intern(Advert {
                    owners,
                    next_hop,
                    attrs,
                })
            }
        };
        self.merged.insert((first, then), id);
        id
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::Owner;
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn owners(names: &[&str]) -> Owners {
        names
            .iter()
            .map(|n| Owner::Network(n.to_string()))
            .collect()
    }

    fn fixed(s: &str) -> NextHopRule {
        NextHopRule::Fixed(s.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn iterates_sorted_v4_before_v6_whatever_the_push_order() {
        let mut b = AdvertsBuilder::default();
        let k = b.kind(&owners(&["a"]), NextHopRule::Host(None), &Attrs::default());
        for p in [
            "2001:db8::/64",
            "203.0.113.0/24",
            "192.0.2.0/24",
            "192.0.2.0/25",
        ] {
            b.push(net(p), k);
        }
        let adverts = b.finish();
        let keys: Vec<String> = adverts.keys().map(|p| p.to_string()).collect();
        assert_eq!(
            keys,
            [
                "192.0.2.0/24",
                "192.0.2.0/25",
                "203.0.113.0/24",
                "2001:db8::/64"
            ]
        );
        assert_eq!((adverts.count_v4(), adverts.count_v6()), (3, 1));
        assert!(adverts.contains_key(&net("192.0.2.0/25")));
        assert!(!adverts.contains_key(&net("192.0.2.128/25")));
    }

    #[test]
    fn a_prefix_of_several_owners_merges_them_and_keeps_the_first_rule() {
        let mut b = AdvertsBuilder::default();
        let kb = b.kind(&owners(&["b"]), fixed("192.0.2.1"), &Attrs::default());
        let ka = b.kind(&owners(&["a"]), fixed("192.0.2.2"), &Attrs::default());
        b.push(net("198.51.100.0/24"), kb);
        b.push(net("198.51.100.0/24"), ka);
        b.push(net("198.51.100.0/24"), kb);
        b.push(net("203.0.113.0/24"), ka);
        let adverts = b.finish();
        let merged = adverts.get(&net("198.51.100.0/24")).unwrap();
        assert_eq!(merged.owners, owners(&["a", "b"]));
        assert_eq!(merged.next_hop, fixed("192.0.2.1"));
        assert_eq!(
            adverts.get(&net("203.0.113.0/24")).unwrap().owners,
            owners(&["a"])
        );
        assert_eq!(adverts.len(), 2);
    }

    fn layer(items: &[(&str, &str, &str)]) -> Adverts {
        let mut b = AdvertsBuilder::default();
        for (p, owner, hop) in items {
            let k = b.kind(&owners(&[owner]), fixed(hop), &Attrs::default());
            b.push(net(p), k);
        }
        b.finish()
    }

    fn host(owner: &str) -> Advert {
        Advert {
            owners: owners(&[owner]),
            next_hop: NextHopRule::Host(None),
            attrs: Attrs::default(),
        }
    }

    #[test]
    fn layers_merge_in_order_and_the_dynamic_one_wins() {
        let statics = Arc::new(layer(&[
            ("192.0.2.0/24", "ovn", "198.51.100.20"),
            ("2001:db8:1::/48", "ovn", "2001:db8:ff::20"),
        ]));
        let mut set = AdvertSet::new(statics);
        assert!(set.set_dynamic(net("198.51.100.0/24"), Some(host("br"))));
        assert!(set.set_dynamic(net("192.0.2.0/24"), Some(host("br"))));
        assert!(!set.set_dynamic(net("192.0.2.0/24"), Some(host("br"))));
        let keys: Vec<String> = set.keys().map(|p| p.to_string()).collect();
        assert_eq!(keys, ["192.0.2.0/24", "198.51.100.0/24", "2001:db8:1::/48"]);
        assert_eq!(set[&net("192.0.2.0/24")], host("br"));
        assert_eq!(
            set.static_advert(&net("192.0.2.0/24")).unwrap().owners,
            owners(&["ovn"])
        );
        assert!(!set.contains_key(&net("203.0.113.0/24")));
        assert_eq!((set.count_v4(), set.count_v6()), (3, 1));
        // Clearing the dynamic advert uncovers the static one again.
        assert!(set.set_dynamic(net("192.0.2.0/24"), None));
        assert!(!set.set_dynamic(net("192.0.2.0/24"), None));
        assert_eq!(set[&net("192.0.2.0/24")].owners, owners(&["ovn"]));
        assert_eq!(set.iter().count(), 3);
        set.clear_dynamic();
        assert_eq!(
            set.keys().collect::<Vec<_>>(),
            [net("192.0.2.0/24"), net("2001:db8:1::/48")]
        );
    }

    #[test]
    fn kinds_are_shared_while_used_and_freed_after() {
        let mut set = AdvertSet::default();
        for i in 0..100u8 {
            set.set_dynamic(net(&format!("10.0.{i}.0/24")), Some(host("a")));
        }
        assert_eq!(set.dynamic.ids.len(), 1);
        // Every prefix moves to owner "b": "a" is freed and its slot reused.
        for i in 0..100u8 {
            set.set_dynamic(net(&format!("10.0.{i}.0/24")), Some(host("b")));
        }
        assert_eq!(set.dynamic.ids.len(), 1);
        assert_eq!(set.dynamic.kinds.len(), 2);
        for round in 0..50 {
            let owner = format!("n{round}");
            set.set_dynamic(net("10.0.0.0/24"), Some(host(&owner)));
        }
        assert_eq!(set.dynamic.ids.len(), 2);
        assert!(set.dynamic.kinds.len() <= 3);
        for i in 0..100u8 {
            set.set_dynamic(net(&format!("10.0.{i}.0/24")), None);
        }
        assert!(set.is_empty() && set.dynamic.ids.is_empty());
    }
}
