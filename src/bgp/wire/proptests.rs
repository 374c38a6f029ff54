//! Property tests: encode/decode round trips and packing coverage.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::prelude::*;

use super::tests::split;
use super::*;

pub(crate) fn arb_v4net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0..=32u8).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
}

pub(crate) fn arb_v6net() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0..=128u8)
        .prop_map(|(a, l)| Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc())
}

fn arb_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

pub(crate) fn arb_codec() -> impl Strategy<Value = Codec> {
    (any::<bool>(), any::<bool>()).prop_map(|(four_octet_as, extended_message)| Codec {
        four_octet_as,
        extended_message,
    })
}

pub(crate) fn arb_capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Capability::Multiprotocol { afi, safi }),
        Just(Capability::RouteRefresh),
        vec(
            (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(a, s, n)| {
                ExtendedNextHopEntry {
                    nlri_afi: a,
                    nlri_safi: s,
                    next_hop_afi: n,
                }
            }),
            0..5
        )
        .prop_map(Capability::ExtendedNextHop),
        Just(Capability::ExtendedMessage),
        (
            any::<bool>(),
            any::<bool>(),
            0..4096u16,
            vec(
                (any::<u16>(), any::<u8>(), any::<bool>()).prop_map(|(afi, safi, f)| {
                    GracefulRestartFamily {
                        afi,
                        safi,
                        forwarding_state: f,
                    }
                }),
                0..4
            )
        )
            .prop_map(|(r, n, t, families)| {
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: r,
                    notification: n,
                    restart_time: t,
                    families,
                })
            }),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (
            any::<u8>()
                .prop_map(CapabilityCode::from)
                .prop_filter("known", |c| matches!(c, CapabilityCode::Other(_))),
            vec(any::<u8>(), 0..100)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

pub(crate) fn arb_open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        any::<u16>().prop_filter("hold 1/2", |h| *h != 1 && *h != 2),
        1..=u32::MAX,
        vec(arb_capability(), 0..10),
    )
        .prop_map(open)
}

/// A version 4 OPEN of generated (my AS, hold time, BGP identifier, capabilities).
pub(crate) fn open((my_as, hold_time, id, capabilities): (u16, u16, u32, Vec<Capability>)) -> Open {
    Open {
        version: 4,
        my_as,
        hold_time,
        bgp_id: Ipv4Addr::from(id),
        capabilities,
    }
}

fn arb_as_path(four: bool) -> impl Strategy<Value = Vec<AsPathSegment>> {
    let asn = if four {
        any::<u32>().boxed()
    } else {
        (0..=u16::MAX as u32).boxed()
    };
    vec(
        (1..=4u8, vec(asn, 1..12)).prop_map(|(kind, asns)| AsPathSegment {
            kind: kind.into(),
            asns,
        }),
        0..4,
    )
}

fn arb_mp_reach() -> impl Strategy<Value = MpReach> {
    let v4 = (
        prop_oneof![
            any::<u32>().prop_map(|a| (IpAddr::V4(Ipv4Addr::from(a)), None)),
            (arb_v6(), proptest::option::of(arb_v6())).prop_map(|(a, ll)| (IpAddr::V6(a), ll)),
        ],
        vec(arb_v4net().prop_map(IpNet::V4), 0..10),
    )
        .prop_map(|((next_hop, ll), nlri)| MpReach {
            family: Family::Ipv4Unicast,
            next_hop,
            link_local_next_hop: ll,
            nlri,
        });
    let v6 = (
        arb_v6(),
        proptest::option::of(arb_v6()),
        vec(arb_v6net().prop_map(IpNet::V6), 0..10),
    )
        .prop_map(|(nh, ll, nlri)| MpReach {
            family: Family::Ipv6Unicast,
            next_hop: IpAddr::V6(nh),
            link_local_next_hop: ll,
            nlri,
        });
    prop_oneof![v4, v6]
}

fn arb_mp_unreach() -> impl Strategy<Value = MpUnreach> {
    prop_oneof![
        vec(arb_v4net().prop_map(IpNet::V4), 0..10).prop_map(|w| MpUnreach {
            family: Family::Ipv4Unicast,
            withdrawn: w
        }),
        vec(arb_v6net().prop_map(IpNet::V6), 0..10).prop_map(|w| MpUnreach {
            family: Family::Ipv6Unicast,
            withdrawn: w
        }),
    ]
}

/// COMMUNITIES and LARGE_COMMUNITY, up to past the one-byte length.
fn arb_communities() -> impl Strategy<Value = PathAttribute> {
    prop_oneof![
        vec(any::<u32>(), 1..80).prop_map(PathAttribute::Communities),
        vec(any::<[u32; 3]>(), 1..30).prop_map(PathAttribute::LargeCommunities),
    ]
}

/// Optional attributes we keep opaque (extended communities, AS4_PATH, ...).
fn arb_unknown() -> impl Strategy<Value = PathAttribute> {
    (
        prop_oneof![Just(16u8), Just(17), 100..=255u8],
        prop_oneof![Just(0x80u8), Just(0xc0)],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![vec(any::<u8>(), 0..20), vec(any::<u8>(), 250..300)],
    )
        .prop_map(|(type_code, base, partial, ext, value)| {
            let mut flags = base;
            if partial {
                flags |= 0x20;
            }
            if ext || value.len() > 255 {
                flags |= 0x10;
            }
            PathAttribute::Unknown {
                flags,
                type_code: type_code.into(),
                value,
            }
        })
}

pub(crate) fn arb_update(four: bool) -> impl Strategy<Value = Update> {
    (
        vec(arb_v4net(), 0..10),
        vec(arb_v4net(), 0..10),
        (
            proptest::option::of(prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ]),
            proptest::option::of(arb_as_path(four)),
            proptest::option::of(any::<u32>().prop_map(Ipv4Addr::from)),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(arb_mp_reach()),
            proptest::option::of(arb_mp_unreach()),
            vec(prop_oneof![arb_unknown(), arb_communities()], 0..3),
        ),
        any::<u64>(),
    )
        .prop_map(
            |(withdrawn, nlri, (origin, as_path, nh, med, lp, reach, unreach, unknown), seed)| {
                let mp_nlri = reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
                let needs = !nlri.is_empty() || mp_nlri;
                let mut attrs = Vec::new();
                if let Some(o) = origin.or(needs.then_some(Origin::Igp)) {
                    attrs.push(PathAttribute::Origin(o));
                }
                if let Some(p) = as_path.or(needs.then(Vec::new)) {
                    attrs.push(PathAttribute::AsPath(p));
                }
                let nh = nh.or((!nlri.is_empty()).then_some(Ipv4Addr::new(192, 0, 2, 1)));
                if let Some(nh) = nh {
                    attrs.push(PathAttribute::NextHop(nh));
                }
                attrs.extend(med.map(PathAttribute::MultiExitDisc));
                attrs.extend(lp.map(PathAttribute::LocalPref));
                attrs.extend(reach.map(PathAttribute::MpReach));
                attrs.extend(unreach.map(PathAttribute::MpUnreach));
                for u in unknown {
                    if !attrs.iter().any(|a| a.type_code() == u.type_code()) {
                        attrs.push(u);
                    }
                }
                // deterministic shuffle
                let mut s = seed;
                for i in (1..attrs.len()).rev() {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    attrs.swap(i, (s >> 33) as usize % (i + 1));
                }
                Update {
                    withdrawn,
                    attributes: attrs,
                    nlri,
                }
            },
        )
}

pub(crate) fn arb_message(four: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        arb_open().prop_map(Message::Open),
        arb_update(four).prop_map(Message::Update),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..64))
            .prop_map(|(c, s, d)| Message::Notification(Notification::new(c, s, d))),
        Just(Message::Keepalive),
        (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(afi, subtype, safi)| {
            Message::RouteRefresh(RouteRefresh { afi, subtype, safi })
        }),
    ]
}

fn arb_codec_and_message() -> impl Strategy<Value = (Codec, Message)> {
    arb_codec().prop_flat_map(|c| (Just(c), arb_message(c.four_octet_as)))
}

fn arb_route_attrs() -> impl Strategy<Value = RouteAttrs> {
    (
        prop_oneof![Just(Origin::Igp), Just(Origin::Incomplete)],
        prop_oneof![vec(any::<u32>(), 0..5), vec(any::<u32>(), 250..300)],
        prop_oneof![
            any::<u32>().prop_map(|a| (IpAddr::V4(Ipv4Addr::from(a)), None)),
            (arb_v6(), proptest::option::of(arb_v6())).prop_map(|(a, ll)| (IpAddr::V6(a), ll)),
        ],
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(origin, as_path, (next_hop, ll), local_pref)| RouteAttrs {
            origin,
            as_path,
            next_hop,
            link_local_next_hop: ll,
            local_pref,
            extra: ExtraAttrs::default(),
        })
}

fn arb_prefixes() -> impl Strategy<Value = Vec<IpNet>> {
    prop_oneof![
        vec(
            prop_oneof![
                arb_v4net().prop_map(IpNet::V4),
                arb_v6net().prop_map(IpNet::V6)
            ],
            0..50
        ),
        vec(
            prop_oneof![
                arb_v4net().prop_map(IpNet::V4),
                arb_v6net().prop_map(IpNet::V6)
            ],
            500..1500
        ),
    ]
}

/// Prefixes a decoded UPDATE announces and withdraws.
fn covered(u: &Update) -> (Vec<IpNet>, Vec<IpNet>) {
    let mut ann: Vec<IpNet> = u.nlri.iter().map(|p| IpNet::V4(*p)).collect();
    let mut wd: Vec<IpNet> = u.withdrawn.iter().map(|p| IpNet::V4(*p)).collect();
    for a in &u.attributes {
        match a {
            PathAttribute::MpReach(m) => ann.extend(m.nlri.iter().copied()),
            PathAttribute::MpUnreach(m) => wd.extend(m.withdrawn.iter().copied()),
            _ => {}
        }
    }
    (ann, wd)
}

fn sorted_by_family(prefixes: &[IpNet]) -> Vec<IpNet> {
    let mut v: Vec<IpNet> = prefixes
        .iter()
        .filter(|p| p.addr().is_ipv4())
        .copied()
        .collect();
    v.extend(prefixes.iter().filter(|p| p.addr().is_ipv6()).copied());
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn message_round_trip((codec, msg) in arb_codec_and_message()) {
        let mut buf = Vec::new();
        msg.encode(&codec, &mut buf);
        prop_assert_eq!(frame_len(&buf, &codec), Ok(Some(buf.len())));
        prop_assert_eq!(Message::decode(&buf, &codec), Ok(msg));
    }

    #[test]
    fn pack_announce_covers_input(codec in arb_codec(), attrs in arb_route_attrs(), prefixes in arb_prefixes()) {
        let mut out = Vec::new();
        let n = pack_announce(&codec, &attrs, &prefixes, &mut out);
        let ups = split(&out, &codec);
        prop_assert_eq!(ups.len(), n);
        let mut got = Vec::new();
        for u in &ups {
            prop_assert!(u.withdrawn.is_empty());
            let (ann, wd) = covered(u);
            prop_assert!(wd.is_empty());
            prop_assert!(!ann.is_empty());
            got.extend(ann);
            prop_assert!(u.attributes.contains(&PathAttribute::Origin(attrs.origin)));
            let path: Vec<u32> = u.attributes.iter().find_map(|a| match a {
                PathAttribute::AsPath(s) => Some(s.iter().flat_map(|s| s.asns.iter().copied()).collect()),
                _ => None,
            }).unwrap();
            let want: Vec<u32> = attrs.as_path.iter().map(|&a| {
                if codec.four_octet_as || a <= 0xffff { a } else { AS_TRANS as u32 }
            }).collect();
            prop_assert_eq!(path, want);
            let lp = u.attributes.iter().find_map(|a| match a {
                PathAttribute::LocalPref(v) => Some(*v),
                _ => None,
            });
            prop_assert_eq!(lp, attrs.local_pref);
            for a in &u.attributes {
                match a {
                    PathAttribute::NextHop(nh) => prop_assert_eq!(IpAddr::V4(*nh), attrs.next_hop),
                    PathAttribute::MpReach(m) => {
                        prop_assert_eq!(m.next_hop, attrs.next_hop);
                        prop_assert_eq!(m.link_local_next_hop, attrs.link_local_next_hop);
                    }
                    _ => {}
                }
            }
        }
        let mut want = sorted_by_family(&prefixes);
        if attrs.next_hop.is_ipv4() {
            want.retain(|p| p.addr().is_ipv4());
        }
        prop_assert_eq!(got, want);
    }

    /// Holding the last partial UPDATE of each family: every UPDATE written is full
    /// (no longest prefix would fit), and what was written plus what was held is the
    /// input, in order.
    #[test]
    fn pack_announce_whole_holds_only_a_partial_tail(codec in arb_codec(), attrs in arb_route_attrs(), prefixes in arb_prefixes()) {
        let mut out = Vec::new();
        let mut held = Vec::new();
        let n = pack_announce_whole(&codec, &attrs, &prefixes, &mut out, &mut held);
        let mut all = Vec::new();
        let whole = pack_announce(&codec, &attrs, &prefixes, &mut all);
        prop_assert!(n <= whole && whole <= n + 2, "{} whole of {}", n, whole);
        let ups = split(&out, &codec);
        prop_assert_eq!(ups.len(), n);
        let mut start = 0;
        let mut got = Vec::new();
        for u in &ups {
            let len = frame_len(&out[start..], &codec).unwrap().unwrap();
            prop_assert!(len + 17 > codec.max_len(), "an UPDATE of {} bytes was not held", len);
            start += len;
            got.extend(covered(u).0);
        }
        got.extend(held.iter().copied());
        let mut want = sorted_by_family(&prefixes);
        if attrs.next_hop.is_ipv4() {
            want.retain(|p| p.addr().is_ipv4());
        }
        prop_assert_eq!(sorted_by_family(&got), want);
    }

    #[test]
    fn pack_withdraw_covers_input(codec in arb_codec(), prefixes in arb_prefixes()) {
        let mut out = Vec::new();
        let n = pack_withdraw(&codec, &prefixes, &mut out);
        let ups = split(&out, &codec);
        prop_assert_eq!(ups.len(), n);
        let mut got = Vec::new();
        for u in &ups {
            let (ann, wd) = covered(u);
            prop_assert!(ann.is_empty());
            prop_assert!(!wd.is_empty());
            prop_assert_eq!(u.end_of_rib_family(), None);
            got.extend(wd);
        }
        prop_assert_eq!(got, sorted_by_family(&prefixes));
    }

    #[test]
    fn decode_never_panics(codec in arb_codec(), bytes in vec(any::<u8>(), 0..200)) {
        let mut buf = vec![0xff; 16];
        buf.extend_from_slice(&((bytes.len() + 18) as u16).to_be_bytes());
        buf.extend_from_slice(&bytes);
        let _ = frame_len(&buf, &codec);
        if let Ok(m) = Message::decode(&buf, &codec) {
            let mut again = Vec::new();
            m.encode(&codec, &mut again);
            prop_assert_eq!(Message::decode(&again, &codec), Ok(m));
        }
    }
}
