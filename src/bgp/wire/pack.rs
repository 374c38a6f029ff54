//! Packing of prefixes sharing attributes into as few UPDATEs as fit. Hot path:
//! bytes go straight into `out`; only the shared attribute block is allocated.
use std::iter::Peekable;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use super::codes::{AttributeType, SegmentType};
use super::header::{begin, finish, MSG_UPDATE};
use super::prefix;
use super::update::{
    attr_flags, begin_attr, end_attr, put_as_path, put_communities, put_large_communities,
    put_mp_reach_head,
};
use super::{AsPathSegment, Codec, Family, RouteAttrs, HEADER_LEN};

/// Longest encoded prefix (1 length byte + 16 address bytes).
const MAX_PREFIX_WIRE: usize = 17;

/// A prefix as the packing loops need it: its encoded size, and its encoding.
trait WirePrefix {
    fn wire_len(&self) -> usize;
    fn put(&self, out: &mut Vec<u8>);
}

impl WirePrefix for Ipv4Net {
    fn wire_len(&self) -> usize {
        prefix::wire_len(self.prefix_len())
    }
    fn put(&self, out: &mut Vec<u8>) {
        prefix::put_v4(out, self);
    }
}

impl WirePrefix for IpNet {
    fn wire_len(&self) -> usize {
        prefix::wire_len(self.prefix_len())
    }
    fn put(&self, out: &mut Vec<u8>) {
        prefix::put(out, self);
    }
}

/// Appends prefixes from `nets` while the message stays within `limit` bytes of `out`;
/// how many.
fn fill<'a, P: WirePrefix + 'a>(
    out: &mut Vec<u8>,
    nets: &mut Peekable<impl Iterator<Item = &'a P>>,
    limit: usize,
) -> usize {
    let mut put = 0;
    while let Some(p) = nets.peek() {
        if out.len() + p.wire_len() > limit {
            break;
        }
        p.put(out);
        nets.next();
        put += 1;
    }
    put
}

/// Fills the message begun at `start`, up to `max` bytes (see `fill`). When it is the
/// last of its run and would not be full, and `hold` asks such a message to wait for
/// more prefixes, takes it back out of `out`: `Some(how many prefixes it held)`.
fn fill_or_hold<'a, P: WirePrefix + 'a>(
    out: &mut Vec<u8>,
    nets: &mut Peekable<impl Iterator<Item = &'a P>>,
    start: usize,
    max: usize,
    hold: bool,
) -> Option<usize> {
    let limit = start + max;
    let put = fill(out, nets, limit);
    if hold && nets.peek().is_none() && out.len() + MAX_PREFIX_WIRE <= limit {
        out.truncate(start);
        return Some(put);
    }
    None
}

/// Messages appended, and how many of the run's last prefixes were held back.
#[derive(Default)]
struct Packed {
    messages: usize,
    held: usize,
}

/// Fills the 2-byte length field at `at` with the length of everything after it.
fn patch_len(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

/// The AS_PATH sent: `as_path` with its first ASN (ours, on eBGP) repeated
/// `prepend` more times. An empty (iBGP) path stays empty: prepending there would put
/// our own ASN in front of our own iBGP peers, which drop it as a loop.
fn prepended(as_path: &[u32], prepend: u8) -> Vec<u32> {
    match as_path.first() {
        Some(&ours) => std::iter::repeat_n(ours, usize::from(prepend))
            .chain(as_path.iter().copied())
            .collect(),
        None => Vec::new(),
    }
}

/// Appends an attribute of type `code` whose value `put` writes.
fn put_attr(out: &mut Vec<u8>, code: AttributeType, put: impl FnOnce(&mut Vec<u8>)) {
    let a = begin_attr(out, attr_flags(code), code);
    put(out);
    end_attr(out, a, false);
}

/// ORIGIN, AS_PATH, AS4_PATH (2-octet codec with large ASNs), MED, LOCAL_PREF,
/// COMMUNITIES, LARGE_COMMUNITY.
fn common_attrs(codec: &Codec, attrs: &RouteAttrs) -> Vec<u8> {
    let extra = &attrs.extra;
    let as_path = prepended(&attrs.as_path, extra.as_path_prepend);
    let mut out = Vec::with_capacity(
        48 + as_path.len() * 4 + extra.communities.len() * 4 + extra.large_communities.len() * 12,
    );
    put_attr(&mut out, AttributeType::Origin, |v| {
        v.push(attrs.origin.code())
    });
    let segs: Vec<AsPathSegment> = if as_path.is_empty() {
        Vec::new()
    } else {
        vec![AsPathSegment {
            kind: SegmentType::AsSequence,
            asns: as_path.clone(),
        }]
    };
    put_attr(&mut out, AttributeType::AsPath, |v| {
        put_as_path(v, &segs, codec.four_octet_as)
    });
    if !codec.four_octet_as && as_path.iter().any(|&a| a > u16::MAX as u32) {
        put_attr(&mut out, AttributeType::As4Path, |v| {
            put_as_path(v, &segs, true)
        });
    }
    if let Some(med) = extra.med {
        put_attr(&mut out, AttributeType::MultiExitDisc, |v| {
            v.extend_from_slice(&med.to_be_bytes())
        });
    }
    if let Some(lp) = attrs.local_pref {
        put_attr(&mut out, AttributeType::LocalPref, |v| {
            v.extend_from_slice(&lp.to_be_bytes())
        });
    }
    if !extra.communities.is_empty() {
        put_attr(&mut out, AttributeType::Communities, |v| {
            put_communities(v, &extra.communities)
        });
    }
    if !extra.large_communities.is_empty() {
        put_attr(&mut out, AttributeType::LargeCommunity, |v| {
            put_large_communities(v, &extra.large_communities)
        });
    }
    out
}

/// Appends UPDATEs announcing `prefixes`. With `held`, a last UPDATE per family that
/// would not be full is not written: its prefixes go to `held`, to be packed with the
/// prefixes that follow.
pub(crate) fn announce(
    codec: &Codec,
    attrs: &RouteAttrs,
    prefixes: &[IpNet],
    out: &mut Vec<u8>,
    mut held: Option<&mut Vec<IpNet>>,
) -> usize {
    let has_v4 = prefixes.iter().any(|p| matches!(p, IpNet::V4(_)));
    let has_v6 = prefixes.iter().any(|p| matches!(p, IpNet::V6(_)));
    if !has_v4 && !has_v6 {
        return 0;
    }
    let hold = held.is_some();
    let common = common_attrs(codec, attrs);
    let mut count = 0;
    let is_v4 = |p: &&IpNet| matches!(p, IpNet::V4(_));
    let is_v6 = |p: &&IpNet| matches!(p, IpNet::V6(_));
    if has_v4 {
        let v4 = prefixes.iter().filter(is_v4);
        let packed = match attrs.next_hop {
            IpAddr::V4(nh) => {
                let mut block = common.clone();
                put_attr(&mut block, AttributeType::NextHop, |v| {
                    v.extend_from_slice(&nh.octets())
                });
                let nets = v4.filter_map(|p| match p {
                    IpNet::V4(n) => Some(n),
                    IpNet::V6(_) => None,
                });
                announce_classic(codec, &block, nets, out, hold)
            }
            IpAddr::V6(_) => announce_mp(codec, attrs, &common, Family::Ipv4Unicast, v4, out, hold),
        };
        count += packed.messages;
        if let Some(held) = held.as_deref_mut() {
            keep_tail(held, prefixes.iter().filter(is_v4), packed.held);
        }
    }
    if has_v6 && attrs.next_hop.is_ipv6() {
        let v6 = prefixes.iter().filter(is_v6);
        let packed = announce_mp(codec, attrs, &common, Family::Ipv6Unicast, v6, out, hold);
        count += packed.messages;
        if let Some(held) = held {
            keep_tail(held, prefixes.iter().filter(is_v6), packed.held);
        }
    }
    count
}

/// Appends the last `n` of `run` to `held`, in order.
fn keep_tail<'a>(held: &mut Vec<IpNet>, run: impl DoubleEndedIterator<Item = &'a IpNet>, n: usize) {
    let start = held.len();
    held.extend(run.rev().take(n));
    held[start..].reverse();
}

fn announce_classic<'a>(
    codec: &Codec,
    block: &[u8],
    nets: impl Iterator<Item = &'a Ipv4Net>,
    out: &mut Vec<u8>,
    hold: bool,
) -> Packed {
    let max = codec.max_len();
    let fixed = HEADER_LEN + 4 + block.len();
    let mut packed = Packed::default();
    if fixed + MAX_PREFIX_WIRE > max || block.len() > u16::MAX as usize {
        return packed;
    }
    let mut nets = nets.peekable();
    while nets.peek().is_some() {
        let start = begin(out, MSG_UPDATE);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(block);
        if let Some(held) = fill_or_hold(out, &mut nets, start, max, hold) {
            packed.held = held;
            break;
        }
        finish(out, start);
        packed.messages += 1;
    }
    packed
}

fn announce_mp<'a>(
    codec: &Codec,
    attrs: &RouteAttrs,
    common: &[u8],
    family: Family,
    nets: impl Iterator<Item = &'a IpNet>,
    out: &mut Vec<u8>,
    hold: bool,
) -> Packed {
    let max = codec.max_len();
    // header, withdrawn len, attr len, common, MP_REACH header (4), afi/safi/nhlen (4),
    // next hop (up to 32), reserved (1).
    let fixed = HEADER_LEN + 4 + common.len() + 4 + 4 + 32 + 1;
    let mut packed = Packed::default();
    if fixed + MAX_PREFIX_WIRE > max {
        return packed;
    }
    let mut nets = nets.peekable();
    while nets.peek().is_some() {
        let start = begin(out, MSG_UPDATE);
        out.extend_from_slice(&[0, 0]);
        let al_at = out.len();
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(common);
        let code = AttributeType::MpReachNlri;
        let mp = begin_attr(out, attr_flags(code), code);
        put_mp_reach_head(out, family, attrs.next_hop, attrs.link_local_next_hop);
        if let Some(held) = fill_or_hold(out, &mut nets, start, max, hold) {
            packed.held = held;
            break;
        }
        end_attr(out, mp, false);
        patch_len(out, al_at);
        finish(out, start);
        packed.messages += 1;
    }
    packed
}

pub(crate) fn withdraw(codec: &Codec, prefixes: &[IpNet], out: &mut Vec<u8>) -> usize {
    let max = codec.max_len();
    let mut count = 0;
    let mut v4 = prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        })
        .peekable();
    while v4.peek().is_some() {
        let start = begin(out, MSG_UPDATE);
        let wl_at = out.len();
        out.extend_from_slice(&[0, 0]);
        let limit = start + max - 2; // room for the attribute length
        fill(out, &mut v4, limit);
        patch_len(out, wl_at);
        out.extend_from_slice(&[0, 0]);
        finish(out, start);
        count += 1;
    }
    let mut v6 = prefixes
        .iter()
        .filter(|p| matches!(p, IpNet::V6(_)))
        .peekable();
    while v6.peek().is_some() {
        let start = begin(out, MSG_UPDATE);
        out.extend_from_slice(&[0, 0]);
        let al_at = out.len();
        out.extend_from_slice(&[0, 0]);
        let code = AttributeType::MpUnreachNlri;
        let mp = begin_attr(out, attr_flags(code), code);
        out.extend_from_slice(&Family::Ipv6Unicast.afi().to_be_bytes());
        out.push(Family::Ipv6Unicast.safi());
        let limit = start + max;
        fill(out, &mut v6, limit);
        end_attr(out, mp, false);
        patch_len(out, al_at);
        finish(out, start);
        count += 1;
    }
    count
}
