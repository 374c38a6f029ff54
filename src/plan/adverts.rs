//! The advertised set, stored for a million prefixes: sorted per-family vectors of
//! (prefix, kind), where a kind (owners + next-hop rule) is shared by every prefix
//! of one network or NIC. 12 bytes per IPv4 prefix, 24 per IPv6 one; a BTreeMap of
//! full entries cost about 110.
use std::collections::HashMap;
use std::hash::Hash;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustc_hash::FxHashMap;

use super::{Advert, NextHopRule, Owners};

/// Index of an [`Advert`] in [`Adverts::kinds`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KindId(u32);

/// Sorted, duplicate-free prefix -> advert; iteration is in `IpNet` order.
#[derive(Clone, Debug, Default)]
pub struct Adverts {
    v4: Vec<(Ipv4Net, KindId)>,
    v6: Vec<(Ipv6Net, KindId)>,
    kinds: Vec<Advert>,
}

impl PartialEq for Adverts {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for Adverts {}

impl std::ops::Index<&IpNet> for Adverts {
    type Output = Advert;

    /// Like a map's index: panics if `prefix` is not advertised.
    fn index(&self, prefix: &IpNet) -> &Advert {
        match self.get(prefix) {
            Some(advert) => advert,
            None => panic!("{prefix} is not advertised"),
        }
    }
}

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
        Some(&self.kinds[kind.0 as usize])
    }

    pub fn contains_key(&self, prefix: &IpNet) -> bool {
        self.get(prefix).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &Advert)> + '_ {
        let kinds = &self.kinds;
        let v4 = self.v4.iter().map(|(p, k)| (IpNet::V4(*p), k));
        let v6 = self.v6.iter().map(|(p, k)| (IpNet::V6(*p), k));
        v4.chain(v6).map(move |(p, k)| (p, &kinds[k.0 as usize]))
    }

    pub fn values(&self) -> impl Iterator<Item = &Advert> + '_ {
        self.iter().map(|(_, a)| a)
    }

    pub fn keys(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.iter().map(|(p, _)| p)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&IpNet, &Advert) -> bool) {
        let kinds = &self.kinds;
        self.v4
            .retain(|(p, k)| keep(&IpNet::V4(*p), &kinds[k.0 as usize]));
        self.v6
            .retain(|(p, k)| keep(&IpNet::V6(*p), &kinds[k.0 as usize]));
    }

    /// Prefixes added, removed, or advertised differently in `self` than in `old`,
    /// in order. A merge of the two sorted vectors: no set of keys is built.
    pub fn changed_since(&self, old: &Adverts) -> Vec<IpNet> {
        let same = same_kinds(old, self);
        let mut out = Vec::new();
        merge_changes(&old.v4, &self.v4, &same, IpNet::V4, &mut out);
        merge_changes(&old.v6, &self.v6, &same, IpNet::V6, &mut out);
        out
    }
}

fn find<P: Ord>(entries: &[(P, KindId)], prefix: &P) -> Option<KindId> {
    entries
        .binary_search_by(|(p, _)| p.cmp(prefix))
        .ok()
        .map(|i| entries[i].1)
}

/// For each kind of `old`, the kind of `new` with the same value, if any.
fn same_kinds(old: &Adverts, new: &Adverts) -> Vec<Option<KindId>> {
    let by_value: HashMap<&Advert, KindId> = new
        .kinds
        .iter()
        .enumerate()
        .map(|(i, a)| (a, KindId(i as u32)))
        .collect();
    old.kinds.iter().map(|a| by_value.get(a).copied()).collect()
}

fn merge_changes<P: Ord + Copy>(
    old: &[(P, KindId)],
    new: &[(P, KindId)],
    same: &[Option<KindId>],
    wrap: impl Fn(P) -> IpNet,
    out: &mut Vec<IpNet>,
) {
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some((a, ka)), Some((b, kb))) if a == b => {
                if same[ka.0 as usize] != Some(*kb) {
                    out.push(wrap(*a));
                }
                i += 1;
                j += 1;
            }
            (Some((a, _)), Some((b, _))) if a < b => {
                out.push(wrap(*a));
                i += 1;
            }
            (Some((a, _)), None) => {
                out.push(wrap(*a));
                i += 1;
            }
            (_, Some((b, _))) => {
                out.push(wrap(*b));
                j += 1;
            }
            (None, None) => break,
        }
    }
}

/// Collects adverts in any order; [`AdvertsBuilder::finish`] sorts them and merges
/// a prefix claimed by several owners (anycast). The first claim's next-hop rule wins.
#[derive(Default)]
pub struct AdvertsBuilder {
    adverts: Adverts,
    ids: HashMap<Advert, KindId>,
    merged: FxHashMap<(KindId, KindId), KindId>,
}

impl AdvertsBuilder {
    /// The shared kind for `owners` advertised by `next_hop`; look it up once per
    /// network or NIC, then `push` each prefix with it.
    pub fn kind(&mut self, owners: &Owners, next_hop: NextHopRule) -> KindId {
        self.intern(Advert {
            owners: owners.clone(),
            next_hop,
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
            &self.adverts.kinds[first.0 as usize],
            &self.adverts.kinds[then.0 as usize],
        );
        let id = if b.owners.iter().all(|w| a.owners.contains(w)) {
            first
        } else {
            let mut owners: Vec<_> = a.owners.iter().chain(b.owners.iter()).cloned().collect();
            owners.sort();
            owners.dedup();
            let next_hop = a.next_hop.clone();
            self.intern(Advert {
                owners: Owners::from(owners),
                next_hop,
            })
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
        let k = b.kind(&owners(&["a"]), NextHopRule::Host(None));
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
        let kb = b.kind(&owners(&["b"]), fixed("192.0.2.1"));
        let ka = b.kind(&owners(&["a"]), fixed("192.0.2.2"));
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

    #[test]
    fn changes_are_additions_removals_and_different_adverts_only() {
        let build = |items: &[(&str, &str)]| {
            let mut b = AdvertsBuilder::default();
            for (p, owner) in items {
                let k = b.kind(&owners(&[owner]), NextHopRule::Host(None));
                b.push(net(p), k);
            }
            b.finish()
        };
        let old = build(&[
            ("192.0.2.0/24", "a"),
            ("198.51.100.0/24", "a"),
            ("2001:db8:1::/48", "a"),
        ]);
        let new = build(&[
            ("198.51.100.0/24", "a"),
            ("203.0.113.0/24", "a"),
            ("2001:db8:1::/48", "b"),
            ("2001:db8:2::/48", "b"),
        ]);
        let changed: Vec<String> = new
            .changed_since(&old)
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            changed,
            [
                "192.0.2.0/24",
                "203.0.113.0/24",
                "2001:db8:1::/48",
                "2001:db8:2::/48"
            ]
        );
        assert!(new.changed_since(&new.clone()).is_empty());
        assert_eq!(old.changed_since(&Adverts::default()).len(), 3);
    }

    #[test]
    fn retain_drops_what_the_filter_refuses() {
        let mut b = AdvertsBuilder::default();
        let k = b.kind(&owners(&["a"]), NextHopRule::Host(None));
        b.push(net("192.0.2.0/24"), k);
        b.push(net("2001:db8::/32"), k);
        let mut adverts = b.finish();
        adverts.retain(|p, _| matches!(p, IpNet::V6(_)));
        assert_eq!(adverts.keys().collect::<Vec<_>>(), [net("2001:db8::/32")]);
    }
}
