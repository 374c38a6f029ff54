//! Neighbour (ARP / NDP) entries: what the kernel learned of the addresses behind its
//! interfaces. Instances on a bridge without a static address in the config are
//! found here, by their NIC's MAC (`bgp.ipvN.instances`).
//!
//! Parsed by hand from `struct ndmsg` and two attributes: the watch is on the
//! instance start/stop latency path, and a busy bridge sends neighbour updates all
//! the time (each REACHABLE -> STALE -> DELAY -> REACHABLE round is a message).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libc::{
    NDA_DST, NDA_LLADDR, NTF_PROXY, NUD_DELAY, NUD_PERMANENT, NUD_PROBE, NUD_REACHABLE, NUD_STALE,
    RTM_DELNEIGH,
};

use super::netlink::{AF_INET, AF_INET6};
use super::KernelEvent;

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl std::str::FromStr for Mac {
    type Err = String;

    /// `00:16:3e:12:34:56` (either case), as LXD writes `hwaddr`.
    fn from_str(s: &str) -> Result<Mac, String> {
        let bad = || format!("must be a MAC address like 00:16:3e:12:34:56, got {s:?}");
        let mut out = [0u8; 6];
        let mut parts = s.trim().split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

/// A neighbour entry the kernel holds as usable: an address behind `ifindex` at `mac`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Neighbour {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub mac: Mac,
}

/// `struct ndmsg`: family u8, pad u8, pad u16, ifindex i32, state u16, flags u8, type u8.
const NDMSG_LEN: usize = 12;
/// NUD_* states in which the kernel holds a live (or fixed) mapping. INCOMPLETE and
/// FAILED mean no answer; NOARP entries (multicast, broadcast) name no host.
const NUD_PRESENT: u16 = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT;

/// The event of one RTM_NEWNEIGH / RTM_DELNEIGH payload, or None for what hostbgp has
/// no use for (other families such as the bridge's FDB, IPv6 link-local, proxy
/// entries, a live entry without a MAC) and for a malformed message, which is
/// dropped whole.
pub(crate) fn event_from_payload(ty: u16, payload: &[u8]) -> Option<KernelEvent> {
    parse(ty, payload).unwrap_or_else(|Malformed(why)| {
        tracing::debug!(
            why,
            len = payload.len(),
            "malformed neighbour message dropped"
        );
        None
    })
}

/// Why a neighbour message could not be read.
struct Malformed(&'static str);

fn parse(ty: u16, payload: &[u8]) -> Result<Option<KernelEvent>, Malformed> {
    let short = |what| move || Malformed(what);
    let header = payload.get(..NDMSG_LEN).ok_or_else(short("short header"))?;
    let family = header[0];
    if family != AF_INET && family != AF_INET6 {
        return Ok(None);
    }
    let word = |at: usize| [header[at], header[at + 1], header[at + 2], header[at + 3]];
    let ifindex = u32::from_ne_bytes(word(4));
    let state = u16::from_ne_bytes([header[8], header[9]]);
    // A proxy ARP/NDP entry answers for someone else.
    if header[10] & NTF_PROXY != 0 {
        return Ok(None);
    }
    let mut dst = None;
    let mut lladdr = None;
    let mut rest = &payload[NDMSG_LEN..];
    // The attributes, each a 4-byte (len, type) header and its value padded to 4.
    while !rest.is_empty() {
        let nla = rest.get(..4).ok_or_else(short("short attribute header"))?;
        let len = usize::from(u16::from_ne_bytes([nla[0], nla[1]]));
        let kind = u16::from_ne_bytes([nla[2], nla[3]]) & 0x3fff;
        let value = rest.get(4..len).ok_or_else(short("bad attribute length"))?;
        match kind {
            NDA_DST => dst = Some(value),
            NDA_LLADDR => lladdr = Some(value),
            _ => {}
        }
        // The last attribute's padding may be missing.
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    let dst = dst.ok_or_else(short("no NDA_DST"))?;
    let ip = if family == AF_INET {
        let v4 = <[u8; 4]>::try_from(dst).map_err(|_| Malformed("bad IPv4 NDA_DST"))?;
        IpAddr::V4(Ipv4Addr::from(v4))
    } else {
        let v6 = <[u8; 16]>::try_from(dst).map_err(|_| Malformed("bad IPv6 NDA_DST"))?;
        IpAddr::V6(Ipv6Addr::from(v6))
    };
    // An instance's own address is global; fe80:: addresses are every port's.
    if let IpAddr::V6(v6) = ip {
        if v6.segments()[0] & 0xffc0 == 0xfe80 {
            return Ok(None);
        }
    }
    if ty == RTM_DELNEIGH || state & NUD_PRESENT == 0 {
        return Ok(Some(KernelEvent::NeighbourGone { ifindex, ip }));
    }
    let Some(lladdr) = lladdr else {
        return Ok(None);
    };
    let mac =
        Mac(<[u8; 6]>::try_from(lladdr).map_err(|_| Malformed("not an Ethernet NDA_LLADDR"))?);
    Ok(Some(KernelEvent::NeighbourSeen(Neighbour {
        ifindex,
        ip,
        mac,
    })))
}

/// The kernel's usable neighbour entries, by interface and address, with the
/// addresses of each MAC at hand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Neighbours {
    by_ip: BTreeMap<(u32, IpAddr), Mac>,
    by_mac: BTreeMap<(u32, Mac), BTreeSet<IpAddr>>,
}

impl Neighbours {
    /// The MAC the kernel holds for `ip` behind `ifindex`.
    pub fn mac_of(&self, ifindex: u32, ip: &IpAddr) -> Option<Mac> {
        self.by_ip.get(&(ifindex, *ip)).copied()
    }

    /// The addresses the kernel holds for `mac` behind `ifindex`, sorted.
    pub fn addresses_of(&self, ifindex: u32, mac: Mac) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_mac
            .get(&(ifindex, mac))
            .into_iter()
            .flatten()
            .copied()
    }

    pub fn insert(&mut self, n: Neighbour) {
        if let Some(old) = self.by_ip.insert((n.ifindex, n.ip), n.mac) {
            self.forget_mac(n.ifindex, old, &n.ip);
        }
        self.by_mac
            .entry((n.ifindex, n.mac))
            .or_default()
            .insert(n.ip);
    }

    pub fn remove(&mut self, ifindex: u32, ip: &IpAddr) {
        if let Some(old) = self.by_ip.remove(&(ifindex, *ip)) {
            self.forget_mac(ifindex, old, ip);
        }
    }

    /// Drops every entry of an interface (the kernel flushes them with it). Every
    /// instance stop deletes a veth: a range, not a scan of the host's whole table.
    pub fn remove_link(&mut self, ifindex: u32) {
        let lowest = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let highest = IpAddr::V6(Ipv6Addr::from(u128::MAX));
        let ips: Vec<(u32, IpAddr)> = self
            .by_ip
            .range((ifindex, lowest)..=(ifindex, highest))
            .map(|(k, _)| *k)
            .collect();
        for key in ips {
            if let Some(mac) = self.by_ip.remove(&key) {
                self.by_mac.remove(&(ifindex, mac));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    fn forget_mac(&mut self, ifindex: u32, mac: Mac, ip: &IpAddr) {
        if let Some(set) = self.by_mac.get_mut(&(ifindex, mac)) {
            set.remove(ip);
            if set.is_empty() {
                self.by_mac.remove(&(ifindex, mac));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use libc::{NUD_FAILED, NUD_INCOMPLETE, NUD_NOARP, RTM_NEWNEIGH};

    use super::*;
    use crate::kernel::netlink::AF_BRIDGE;

    const MAC: Mac = Mac([0x00, 0x16, 0x3e, 0x12, 0x34, 0x56]);

    /// An ndmsg payload as the kernel sends it.
    fn payload(family: u8, ifindex: u32, state: u16, flags: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut p = vec![family, 0, 0, 0];
        p.extend_from_slice(&ifindex.to_ne_bytes());
        p.extend_from_slice(&state.to_ne_bytes());
        p.extend_from_slice(&[flags, 1]);
        for (kind, value) in attrs {
            p.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
            p.extend_from_slice(&kind.to_ne_bytes());
            p.extend_from_slice(value);
            p.resize((p.len() + 3) & !3, 0);
        }
        p
    }

    const V4: [u8; 4] = [192, 0, 2, 10];

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    /// A present IPv4 entry, 192.0.2.10 at MAC on ifindex 7.
    fn stale_v4() -> Vec<u8> {
        payload(
            AF_INET,
            7,
            NUD_STALE,
            0,
            &[(NDA_DST, &V4), (NDA_LLADDR, &MAC.0)],
        )
    }

    #[test]
    fn present_entries_carry_their_mac() {
        let p = stale_v4();
        let seen = Neighbour {
            ifindex: 7,
            ip: "192.0.2.10".parse().unwrap(),
            mac: MAC,
        };
        assert_eq!(
            event_from_payload(RTM_NEWNEIGH, &p),
            Some(KernelEvent::NeighbourSeen(seen))
        );
        let a = v6("2001:db8::10");
        // Unknown attributes (NDA_CACHEINFO, NDA_PROBES) are skipped.
        let p = payload(
            AF_INET6,
            7,
            NUD_REACHABLE,
            0,
            &[
                (NDA_DST, &a),
                (3, &[0; 16]),
                (NDA_LLADDR, &MAC.0),
                (4, &[1, 0, 0, 0]),
            ],
        );
        assert!(matches!(
            event_from_payload(RTM_NEWNEIGH, &p),
            Some(KernelEvent::NeighbourSeen(n)) if n.ip == "2001:db8::10".parse::<IpAddr>().unwrap()
        ));
    }

    #[test]
    fn failed_incomplete_noarp_and_deleted_entries_are_gone() {
        let gone = Some(KernelEvent::NeighbourGone {
            ifindex: 7,
            ip: "192.0.2.10".parse().unwrap(),
        });
        for state in [NUD_FAILED, NUD_INCOMPLETE, NUD_NOARP, 0] {
            let p = payload(AF_INET, 7, state, 0, &[(NDA_DST, &V4)]);
            assert_eq!(event_from_payload(RTM_NEWNEIGH, &p), gone);
        }
        let p = stale_v4();
        assert_eq!(event_from_payload(RTM_DELNEIGH, &p), gone);
    }

    #[test]
    fn what_is_of_no_use_is_dropped() {
        let fdb = payload(AF_BRIDGE, 7, NUD_REACHABLE, 0, &[(NDA_LLADDR, &MAC.0)]);
        assert_eq!(event_from_payload(RTM_NEWNEIGH, &fdb), None);
        let ll = v6("fe80::216:3eff:fe12:3456");
        let p = payload(
            AF_INET6,
            7,
            NUD_REACHABLE,
            0,
            &[(NDA_DST, &ll), (NDA_LLADDR, &MAC.0)],
        );
        assert_eq!(event_from_payload(RTM_NEWNEIGH, &p), None);
        assert_eq!(event_from_payload(RTM_DELNEIGH, &p), None);
        let proxy = payload(AF_INET, 7, NUD_REACHABLE, NTF_PROXY, &[(NDA_DST, &V4)]);
        assert_eq!(event_from_payload(RTM_NEWNEIGH, &proxy), None);
    }

    #[test]
    fn malformed_messages_are_dropped_whole() {
        let good = stale_v4();
        // Every truncation is refused, but of the last attribute's padding (which
        // netlink allows to be missing).
        let unpadded = NDMSG_LEN + 8 + 4 + 6;
        for cut in 0..good.len() {
            let ev = event_from_payload(RTM_NEWNEIGH, &good[..cut]);
            assert_eq!(ev.is_some(), cut >= unpadded, "cut at {cut}: {ev:?}");
        }
        // A present entry without a MAC, or with one of the wrong size.
        let p = payload(AF_INET, 7, NUD_STALE, 0, &[(NDA_DST, &V4)]);
        assert_eq!(event_from_payload(RTM_NEWNEIGH, &p), None);
        let p = payload(
            AF_INET,
            7,
            NUD_STALE,
            0,
            &[(NDA_DST, &V4), (NDA_LLADDR, &[1, 2, 3])],
        );
        assert_eq!(event_from_payload(RTM_NEWNEIGH, &p), None);
        // An address of the wrong size for the family.
        let p = payload(
            AF_INET6,
            7,
            NUD_STALE,
            0,
            &[(NDA_DST, &V4), (NDA_LLADDR, &MAC.0)],
        );
        assert_eq!(event_from_payload(RTM_NEWNEIGH, &p), None);
        // An attribute length shorter than its header, or past the end.
        let mut p = good.clone();
        p[NDMSG_LEN..NDMSG_LEN + 2].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(event_from_payload(RTM_NEWNEIGH, &p), None);
        p[NDMSG_LEN..NDMSG_LEN + 2].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(event_from_payload(RTM_NEWNEIGH, &p), None);
    }

    #[test]
    fn mac_parsing() {
        assert_eq!("00:16:3E:12:34:56".parse::<Mac>(), Ok(MAC));
        assert_eq!(MAC.to_string(), "00:16:3e:12:34:56");
        for bad in [
            "",
            "00:16:3e:12:34",
            "00:16:3e:12:34:56:78",
            "0:16:3e:12:34:56",
            "zz:16:3e:12:34:56",
            "00-16-3e-12-34-56",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn table_indexes_by_address_and_mac() {
        let other = Mac([2, 0, 0, 0, 0, 1]);
        let n = |ip: &str, mac| Neighbour {
            ifindex: 7,
            ip: ip.parse().unwrap(),
            mac,
        };
        let mut t = Neighbours::default();
        t.insert(n("192.0.2.10", MAC));
        t.insert(n("2001:db8::10", MAC));
        t.insert(n("192.0.2.11", other));
        assert_eq!(t.addresses_of(7, MAC).count(), 2);
        // The address moves to another MAC (an instance replaced by another).
        t.insert(n("192.0.2.10", other));
        assert_eq!(t.addresses_of(7, MAC).count(), 1);
        assert_eq!(t.addresses_of(7, other).count(), 2);
        assert_eq!(t.mac_of(7, &"192.0.2.10".parse().unwrap()), Some(other));
        t.remove(7, &"2001:db8::10".parse().unwrap());
        assert_eq!(t.addresses_of(7, MAC).count(), 0);
        t.insert(n("192.0.2.99", MAC));
        t.insert(Neighbour {
            ifindex: 8,
            ip: "192.0.2.10".parse().unwrap(),
            mac: MAC,
        });
        t.remove_link(7);
        assert_eq!(t.len(), 1);
        assert_eq!(t.addresses_of(8, MAC).count(), 1);
        t.remove_link(8);
        assert!(t.is_empty());
        assert_eq!(t, Neighbours::default());
    }

    proptest::proptest! {
        /// Outside input: any bytes after a valid header are parsed or dropped,
        /// never a panic.
        #[test]
        fn any_payload_is_parsed_or_dropped(
            family in proptest::sample::select(vec![AF_INET, AF_INET6, AF_BRIDGE]),
            state in proptest::prelude::any::<u16>(),
            attrs in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96),
            del in proptest::prelude::any::<bool>(),
        ) {
            let mut p = payload(family, 7, state, 0, &[]);
            p.extend_from_slice(&attrs);
            let ty = if del { RTM_DELNEIGH } else { RTM_NEWNEIGH };
            let _ = event_from_payload(ty, &p);
        }
    }
}
