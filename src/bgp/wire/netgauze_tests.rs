//! Cross-checks against the independent `netgauze-bgp-pkt` codec: our bytes parsed by
//! netgauze must mean the same field by field, and the bytes netgauze writes back
//! must decode with ours to the original message.
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use netgauze_bgp_pkt::capabilities::BgpCapability;
use netgauze_bgp_pkt::open::BgpOpenMessageParameter;
use netgauze_bgp_pkt::path_attribute as ng;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use netgauze_parse_utils::WritablePdu;
use proptest::collection::vec;
use proptest::prelude::*;

use super::proptests;

/// Unicast prefixes only: netgauze refuses multicast ones in unicast NLRI.
fn arb_v4net() -> impl Strategy<Value = ipnet::Ipv4Net> {
    proptests::arb_v4net().prop_filter("multicast", |n| !n.addr().is_multicast())
}
fn arb_v6net() -> impl Strategy<Value = ipnet::Ipv6Net> {
    proptests::arb_v6net().prop_filter("multicast", |n| !n.addr().is_multicast())
}
use super::tests::hex;
use super::*;

fn ng_parse(buf: &[u8], four: bool) -> BgpMessage {
    let mut ctx = if four {
        BgpParsingContext::default()
    } else {
        BgpParsingContext::asn2_default()
    };
    let mut r = SliceReader::new(buf);
    match BgpMessage::parse(&mut r, &mut ctx) {
        Ok(m) => m,
        Err(e) => panic!("netgauze rejects: {e:?} in {buf:02x?}"),
    }
}

fn ng_write(m: &BgpMessage) -> Vec<u8> {
    let mut v = Vec::new();
    m.write(&mut v).expect("netgauze writes");
    v
}

fn cap_from_ng(c: &BgpCapability) -> Capability {
    match c {
        BgpCapability::MultiProtocolExtensions(m) => Capability::Multiprotocol {
            afi: u16::from(m.address_type().address_family()),
            safi: u8::from(m.address_type().subsequent_address_family()),
        },
        BgpCapability::RouteRefresh => Capability::RouteRefresh,
        BgpCapability::ExtendedMessage => Capability::ExtendedMessage,
        BgpCapability::FourOctetAs(a) => Capability::FourOctetAs(a.asn4()),
        BgpCapability::GracefulRestartCapability(g) => {
            Capability::GracefulRestart(GracefulRestart {
                restart_state: g.restart(),
                notification: g.graceful_notification(),
                restart_time: g.time(),
                families: g
                    .address_families()
                    .iter()
                    .map(|f| GracefulRestartFamily {
                        afi: u16::from(f.address_type().address_family()),
                        safi: u8::from(f.address_type().subsequent_address_family()),
                        forwarding_state: f.forwarding_state(),
                    })
                    .collect(),
            })
        }
        BgpCapability::ExtendedNextHopEncoding(e) => Capability::ExtendedNextHop(
            e.encodings()
                .iter()
                .map(|e| ExtendedNextHopEntry {
                    nlri_afi: u16::from(e.address_type().address_family()),
                    nlri_safi: u8::from(e.address_type().subsequent_address_family()) as u16,
                    next_hop_afi: u16::from(e.next_hop_afi()),
                })
                .collect(),
        ),
        BgpCapability::Unrecognized(u) => Capability::Unknown {
            code: (*u.code()).into(),
            value: u.value().to_vec(),
        },
        other => panic!("unexpected netgauze capability {other:?}"),
    }
}

fn attr_from_ng(a: &ng::PathAttribute) -> PathAttribute {
    let segs2 = |s: &[ng::As2PathSegment]| {
        s.iter()
            .map(|s| AsPathSegment {
                kind: u8::from(s.segment_type()).into(),
                asns: s.as_numbers().iter().map(|&a| a as u32).collect(),
            })
            .collect()
    };
    let segs4 = |s: &[ng::As4PathSegment]| {
        s.iter()
            .map(|s| AsPathSegment {
                kind: u8::from(s.segment_type()).into(),
                asns: s.as_numbers().to_vec(),
            })
            .collect()
    };
    let v4 = |n: &[netgauze_bgp_pkt::nlri::Ipv4UnicastAddress]| -> Vec<IpNet> {
        n.iter().map(|p| IpNet::V4(p.network().address())).collect()
    };
    let v6 = |n: &[netgauze_bgp_pkt::nlri::Ipv6UnicastAddress]| -> Vec<IpNet> {
        n.iter().map(|p| IpNet::V6(p.network().address())).collect()
    };
    match a.value() {
        ng::PathAttributeValue::Origin(o) => PathAttribute::Origin(match o {
            ng::Origin::IGP => Origin::Igp,
            ng::Origin::EGP => Origin::Egp,
            ng::Origin::Incomplete => Origin::Incomplete,
        }),
        ng::PathAttributeValue::AsPath(ng::AsPath::As2PathSegments(s)) => {
            PathAttribute::AsPath(segs2(s))
        }
        ng::PathAttributeValue::AsPath(ng::AsPath::As4PathSegments(s)) => {
            PathAttribute::AsPath(segs4(s))
        }
        ng::PathAttributeValue::NextHop(n) => PathAttribute::NextHop(n.next_hop()),
        ng::PathAttributeValue::MultiExitDiscriminator(m) => {
            PathAttribute::MultiExitDisc(m.metric())
        }
        ng::PathAttributeValue::LocalPreference(l) => PathAttribute::LocalPref(l.metric()),
        ng::PathAttributeValue::Communities(c) => {
            PathAttribute::Communities(c.communities().iter().map(|c| c.value()).collect())
        }
        ng::PathAttributeValue::LargeCommunities(c) => PathAttribute::LargeCommunities(
            c.communities()
                .iter()
                .map(|c| [c.global_admin(), c.local_data1(), c.local_data2()])
                .collect(),
        ),
        ng::PathAttributeValue::MpReach(reach) => {
            // The two families differ in the type of next hop and NLRI alone.
            let (family, next_hop, link_local_next_hop, nlri) = match reach {
                ng::MpReach::Ipv4Unicast {
                    next_hop,
                    next_hop_local,
                    nlri,
                } => (Family::Ipv4Unicast, *next_hop, next_hop_local, v4(nlri)),
                ng::MpReach::Ipv6Unicast {
                    next_hop_global,
                    next_hop_local,
                    nlri,
                } => (
                    Family::Ipv6Unicast,
                    IpAddr::V6(*next_hop_global),
                    next_hop_local,
                    v6(nlri),
                ),
                other => panic!("unexpected netgauze MP_REACH {other:?}"),
            };
            PathAttribute::MpReach(MpReach {
                family,
                next_hop,
                link_local_next_hop: *link_local_next_hop,
                nlri,
            })
        }
        ng::PathAttributeValue::MpUnreach(ng::MpUnreach::Ipv4Unicast { nlri }) => {
            PathAttribute::MpUnreach(MpUnreach {
                family: Family::Ipv4Unicast,
                withdrawn: v4(nlri),
            })
        }
        ng::PathAttributeValue::MpUnreach(ng::MpUnreach::Ipv6Unicast { nlri }) => {
            PathAttribute::MpUnreach(MpUnreach {
                family: Family::Ipv6Unicast,
                withdrawn: v6(nlri),
            })
        }
        ng::PathAttributeValue::UnknownAttribute(u) => {
            let mut flags = 0;
            for (on, bit) in [
                (a.optional(), 0x80),
                (a.transitive(), 0x40),
                (a.partial(), 0x20),
                (a.extended_length(), 0x10),
            ] {
                if on {
                    flags |= bit;
                }
            }
            PathAttribute::Unknown {
                flags,
                type_code: u.code().into(),
                value: u.value().to_vec(),
            }
        }
        other => panic!("unexpected netgauze attribute {other:?}"),
    }
}

/// Netgauze's view in our types; `None` for NOTIFICATION (checked by the write-back).
fn from_ng(m: &BgpMessage) -> Option<Message> {
    Some(match m {
        BgpMessage::Open(o) => Message::Open(Open {
            version: o.version(),
            my_as: o.my_as(),
            hold_time: o.hold_time(),
            bgp_id: o.bgp_id(),
            capabilities: o
                .params()
                .iter()
                .flat_map(|p| match p {
                    BgpOpenMessageParameter::Capabilities(c) => c.iter().map(cap_from_ng),
                })
                .collect(),
        }),
        BgpMessage::Update(u) => Message::Update(Update {
            withdrawn: u
                .withdraw_routes()
                .iter()
                .map(|p| p.network().address())
                .collect(),
            attributes: u.path_attributes().iter().map(attr_from_ng).collect(),
            nlri: u.nlri().iter().map(|p| p.network().address()).collect(),
        }),
        BgpMessage::KeepAlive => Message::Keepalive,
        BgpMessage::RouteRefresh(r) => Message::RouteRefresh(RouteRefresh {
            afi: u16::from(r.address_type().address_family()),
            subtype: u8::from(r.operation_type()),
            safi: u8::from(r.address_type().subsequent_address_family()),
        }),
        BgpMessage::Notification(_) => return None,
    })
}

/// Our message through netgauze and back.
fn check(msg: &Message, four: bool) {
    let codec = Codec {
        four_octet_as: four,
        extended_message: false,
    };
    let mut ours = Vec::new();
    msg.encode(&codec, &mut ours);
    let parsed = ng_parse(&ours, four);
    if let Some(theirs) = from_ng(&parsed) {
        assert_eq!(&theirs, msg, "netgauze reads our bytes differently");
    }
    let written = ng_write(&parsed);
    assert_eq!(
        Message::decode(&written, &codec).as_ref(),
        Ok(msg),
        "netgauze's bytes {written:02x?}"
    );
}

// ---------- strategies restricted to what both codecs model ----------

fn arb_family_pair() -> impl Strategy<Value = (u16, u8)> {
    prop_oneof![Just((1u16, 1u8)), Just((2, 1))]
}

fn arb_cap() -> impl Strategy<Value = Capability> {
    prop_oneof![
        arb_family_pair().prop_map(|(afi, safi)| Capability::Multiprotocol { afi, safi }),
        Just(Capability::RouteRefresh),
        Just(Capability::ExtendedMessage),
        any::<u32>().prop_map(Capability::FourOctetAs),
        vec(arb_family_pair(), 0..3).prop_map(|v| {
            Capability::ExtendedNextHop(
                v.into_iter()
                    .map(|(afi, safi)| ExtendedNextHopEntry {
                        nlri_afi: afi,
                        nlri_safi: safi as u16,
                        next_hop_afi: 2,
                    })
                    .collect(),
            )
        }),
        (
            any::<bool>(),
            any::<bool>(),
            0..4096u16,
            vec((arb_family_pair(), any::<bool>()), 0..3)
        )
            .prop_map(|(r, n, t, f)| {
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: r,
                    notification: n,
                    restart_time: t,
                    families: f
                        .into_iter()
                        .map(|((afi, safi), fs)| GracefulRestartFamily {
                            afi,
                            safi,
                            forwarding_state: fs,
                        })
                        .collect(),
                })
            }),
        (20..=60u8, vec(any::<u8>(), 0..20)).prop_map(|(code, value)| Capability::Unknown {
            code: code.into(),
            value,
        }),
    ]
}

fn arb_open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3..=u16::MAX],
        // netgauze refuses multicast/reserved identifiers (RFC 6286 allows them)
        1..0xe000_0000u32,
        vec(arb_cap(), 0..8),
    )
        .prop_map(proptests::open)
}

fn arb_update(four: bool) -> impl Strategy<Value = Update> {
    let asn = if four {
        any::<u32>().boxed()
    } else {
        (0..=0xffffu32).boxed()
    };
    let v6nets = || vec(arb_v6net().prop_map(IpNet::V6), 0..8);
    let v4nets = || vec(arb_v4net().prop_map(IpNet::V4), 0..8);
    let reach = prop_oneof![
        (any::<u32>(), v4nets()).prop_map(|(a, nlri)| MpReach {
            family: Family::Ipv4Unicast,
            next_hop: IpAddr::V4(Ipv4Addr::from(a)),
            link_local_next_hop: None,
            nlri,
        }),
        (any::<u128>(), proptest::option::of(any::<u128>()), v6nets()).prop_map(|(g, ll, nlri)| {
            MpReach {
                family: Family::Ipv6Unicast,
                next_hop: IpAddr::V6(g.into()),
                link_local_next_hop: ll.map(Into::into),
                nlri,
            }
        }),
    ];
    let unreach = prop_oneof![
        v4nets().prop_map(|w| MpUnreach {
            family: Family::Ipv4Unicast,
            withdrawn: w
        }),
        v6nets().prop_map(|w| MpUnreach {
            family: Family::Ipv6Unicast,
            withdrawn: w
        }),
    ];
    (
        vec(arb_v4net(), 0..8),
        vec(arb_v4net(), 0..8),
        (
            prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ],
            vec(
                (1..=2u8, vec(asn, 1..8)).prop_map(|(kind, asns)| AsPathSegment {
                    kind: kind.into(),
                    asns,
                }),
                0..3,
            ),
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(reach),
            proptest::option::of(unreach),
            proptest::option::of((100..=127u8, any::<bool>(), vec(any::<u8>(), 0..20))),
        ),
    )
        .prop_map(
            |(withdrawn, nlri, (origin, path, nh, med, lp, reach, unreach, unknown))| {
                let mut attributes = vec![
                    PathAttribute::Origin(origin),
                    PathAttribute::AsPath(path),
                    PathAttribute::NextHop(Ipv4Addr::from(nh)),
                ];
                attributes.extend(med.map(PathAttribute::MultiExitDisc));
                attributes.extend(lp.map(PathAttribute::LocalPref));
                attributes.extend(reach.map(PathAttribute::MpReach));
                attributes.extend(unreach.map(PathAttribute::MpUnreach));
                attributes.extend(unknown.map(|(type_code, transitive, value)| {
                    PathAttribute::Unknown {
                        flags: if transitive { 0xc0 } else { 0x80 },
                        type_code: type_code.into(),
                        value,
                    }
                }));
                Update {
                    withdrawn,
                    attributes,
                    nlri,
                }
            },
        )
}

fn arb_notification() -> impl Strategy<Value = Notification> {
    (
        prop_oneof![
            Just((1u8, 1u8)),
            Just((1, 2)),
            Just((1, 3)),
            Just((2, 1)),
            Just((2, 2)),
            Just((2, 4)),
            Just((2, 6)),
            Just((3, 1)),
            Just((3, 3)),
            Just((3, 11)),
            Just((4, 0)),
            Just((5, 0)),
            Just((6, 2)),
            Just((6, 4)),
            Just((6, 6)),
        ],
        vec(any::<u8>(), 0..16),
    )
        .prop_map(|((c, s), d)| Notification::new(c, s, d))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn netgauze_agrees_on_open(o in arb_open()) {
        check(&Message::Open(o), true);
    }

    #[test]
    fn netgauze_agrees_on_update((four, u) in any::<bool>().prop_flat_map(|f| (Just(f), arb_update(f)))) {
        check(&Message::Update(u), four);
    }

    #[test]
    fn netgauze_agrees_on_notification(n in arb_notification()) {
        check(&Message::Notification(n), true);
    }

    #[test]
    fn netgauze_agrees_on_route_refresh((afi, safi) in arb_family_pair(), subtype in 0..=2u8) {
        check(&Message::RouteRefresh(RouteRefresh { afi, subtype, safi }), true);
    }

    #[test]
    fn netgauze_reads_our_packing(
        prefixes in vec(prop_oneof![arb_v4net().prop_map(IpNet::V4), arb_v6net().prop_map(IpNet::V6)], 0..600),
        v6_nh in any::<bool>(),
    ) {
        let attrs = RouteAttrs {
            origin: Origin::Igp,
            as_path: vec![65010, 4200000000],
            next_hop: if v6_nh { "2001:db8::1".parse().unwrap() } else { "192.0.2.1".parse().unwrap() },
            link_local_next_hop: None,
            local_pref: Some(100),
            extra: ExtraAttrs {
                med: Some(50),
                communities: vec![0xfdf2_0064, 0xffff_ff01],
                large_communities: vec![[65010, 1, 2]],
                as_path_prepend: 2,
            },
        };
        let codec = Codec { four_octet_as: true, extended_message: false };
        let mut out = Vec::new();
        pack_announce(&codec, &attrs, &prefixes, &mut out);
        pack_withdraw(&codec, &prefixes, &mut out);
        let mut rest = &out[..];
        while !rest.is_empty() {
            let len = frame_len(rest, &codec).unwrap().unwrap();
            let ours = Message::decode(&rest[..len], &codec).unwrap();
            prop_assert_eq!(from_ng(&ng_parse(&rest[..len], true)), Some(ours));
            rest = &rest[len..];
        }
    }
}

#[test]
fn netgauze_agrees_on_keepalive_and_shutdown() {
    check(&Message::Keepalive, true);
    check(
        &Message::Notification(Notification::cease_shutdown("maintenance")),
        true,
    );
    check(
        &Message::Update(Update::end_of_rib(Family::Ipv6Unicast)),
        true,
    );
    check(
        &Message::Update(Update::end_of_rib(Family::Ipv4Unicast)),
        true,
    );
}

#[test]
fn netgauze_agrees_on_rfc8950_next_hop() {
    for ll in [None, Some("fe80::1".parse().unwrap())] {
        let u = super::tests::mp_update(MpReach {
            family: Family::Ipv4Unicast,
            next_hop: "2001:db8::1".parse().unwrap(),
            link_local_next_hop: ll,
            nlri: vec!["198.51.100.0/24".parse().unwrap()],
        });
        check(&Message::Update(u), true);
    }
}

#[test]
fn netgauze_agrees_on_bird_open() {
    // An OPEN as bird2 sends it (MP v4/v6, RR, ext next hop, ext message, GR, 4-octet AS).
    let caps = hex("0104 00010001 0104 00020001 0200 0506 000100010002 0600
                    4006 8078 00010180 4104 0000fde9");
    let mut body = hex("04 fde9 00f0 c0000201");
    body.extend_from_slice(&[caps.len() as u8 + 2, 2, caps.len() as u8]);
    body.extend_from_slice(&caps);
    let bytes = super::tests::frame(1, &body);
    let ours = Message::decode(&bytes, &Codec::default()).unwrap();
    assert_eq!(from_ng(&ng_parse(&bytes, true)), Some(ours.clone()));
    check(&ours, true);
}
