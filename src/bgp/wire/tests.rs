//! Hand-checked byte vectors for every message, capability, attribute and error path.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use super::codes::{
    AttributeType, CapabilityCode, CeaseSubcode, ErrorCode, OpenSubcode, SegmentType,
};
use super::*;

const C4: Codec = Codec {
    four_octet_as: true,
    extended_message: false,
};
const C2: Codec = Codec {
    four_octet_as: false,
    extended_message: false,
};
const CX: Codec = Codec {
    four_octet_as: true,
    extended_message: true,
};

/// Parses hex, ignoring spaces.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Wraps a body into a message with a correct header.
/// An UPDATE of `reach` alone, with ORIGIN IGP and an empty AS_PATH.
pub(crate) fn mp_update(reach: MpReach) -> Update {
    Update {
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(vec![]),
            PathAttribute::MpReach(reach),
        ],
        ..Update::default()
    }
}

pub(crate) fn frame(typ: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&((body.len() + 19) as u16).to_be_bytes());
    v.push(typ);
    v.extend_from_slice(body);
    v
}

fn enc(m: &Message, c: &Codec) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode(c, &mut v);
    v
}

fn v4(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}
fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn err_of(buf: &[u8], c: &Codec) -> DecodeError {
    Message::decode(buf, c).expect_err("expected a decode error")
}

fn assert_err(e: &DecodeError, code: u8, subcode: u8, action: ErrorAction) {
    assert_eq!(
        (
            u8::from(e.notification.code),
            e.notification.subcode,
            e.action
        ),
        (code, subcode, action),
        "{e:?}"
    );
    assert!(!e.reason.is_empty());
}

fn update_body(withdrawn: &str, attrs: &str, nlri: &str) -> Vec<u8> {
    let (w, a, n) = (hex(withdrawn), hex(attrs), hex(nlri));
    let mut b = (w.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(&w);
    b.extend_from_slice(&(a.len() as u16).to_be_bytes());
    b.extend_from_slice(&a);
    b.extend_from_slice(&n);
    b
}

fn update_err(withdrawn: &str, attrs: &str, nlri: &str, c: &Codec) -> DecodeError {
    err_of(&frame(2, &update_body(withdrawn, attrs, nlri)), c)
}

/// The third path attribute (after ORIGIN and AS_PATH) of an UPDATE with only `attrs`,
/// an MP_REACH_NLRI.
fn mp_reach_of(attrs: &str) -> MpReach {
    let u = update_ok("", attrs, "", &C4);
    match &u.attributes[2] {
        PathAttribute::MpReach(m) => m.clone(),
        other => panic!("{other:?}"),
    }
}

fn update_ok(withdrawn: &str, attrs: &str, nlri: &str, c: &Codec) -> Update {
    match Message::decode(&frame(2, &update_body(withdrawn, attrs, nlri)), c) {
        Ok(Message::Update(u)) => u,
        other => panic!("{other:?}"),
    }
}

// ---------- helpers, header, KEEPALIVE ----------

#[test]
fn family_and_codec() {
    assert_eq!(Family::Ipv4Unicast.afi(), 1);
    assert_eq!(Family::Ipv6Unicast.afi(), 2);
    assert_eq!(Family::Ipv6Unicast.safi(), 1);
    assert_eq!(Family::from_afi_safi(2, 1), Some(Family::Ipv6Unicast));
    assert_eq!(Family::from_afi_safi(1, 1), Some(Family::Ipv4Unicast));
    assert_eq!(Family::from_afi_safi(1, 2), None);
    assert_eq!(Family::of(&net("10.0.0.0/8")), Family::Ipv4Unicast);
    assert_eq!(Family::of(&net("2001:db8::/32")), Family::Ipv6Unicast);
    assert_eq!(C4.max_len(), 4096);
    assert_eq!(CX.max_len(), 65535);
}

#[test]
fn keepalive() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0013 04");
    assert_eq!(enc(&Message::Keepalive, &C4), bytes);
    assert_eq!(Message::decode(&bytes, &C4), Ok(Message::Keepalive));
    assert_eq!(frame_len(&bytes, &C4), Ok(Some(19)));
    let long = frame(4, &[0]);
    assert_err(&err_of(&long, &CX), 1, 2, ErrorAction::SessionReset);
    assert_eq!(err_of(&long, &CX).notification.data, vec![0, 20]);
}

#[test]
fn frame_len_checks() {
    let ka = enc(&Message::Keepalive, &C4);
    assert_eq!(frame_len(&ka[..18], &C4), Ok(None));
    assert_eq!(frame_len(&[], &C4), Ok(None));
    let mut bad = ka.clone();
    bad[3] = 0xfe;
    let e = frame_len(&bad, &C4).unwrap_err();
    assert_err(&e, 1, 1, ErrorAction::SessionReset);
    let mut short = ka.clone();
    short[17] = 18;
    let e = frame_len(&short, &C4).unwrap_err();
    assert_err(&e, 1, 2, ErrorAction::SessionReset);
    assert_eq!(e.notification.data, vec![0, 18]);
    let mut big = ka.clone();
    big[16..18].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(
        frame_len(&big, &C4).unwrap_err().notification.data,
        vec![0x10, 0x01]
    );
    assert_eq!(frame_len(&big, &CX), Ok(Some(4097)));
    // decode needs exactly one whole message
    assert_err(&err_of(&ka[..10], &C4), 1, 2, ErrorAction::SessionReset);
    let mut two = ka.clone();
    two.extend_from_slice(&ka);
    assert_err(&err_of(&two, &C4), 1, 2, ErrorAction::SessionReset);
}

#[test]
fn bad_type_and_per_type_lengths() {
    let e = err_of(&frame(9, &[]), &C4);
    assert_err(&e, 1, 3, ErrorAction::SessionReset);
    assert_eq!(e.notification.data, vec![9]);
    // OPEN shorter than 29, UPDATE shorter than 23, NOTIFICATION shorter than 21
    for (msg_type, body) in [(1, &[4; 9][..]), (2, &[0; 3]), (3, &[6])] {
        let e = err_of(&frame(msg_type, body), &C4);
        assert_err(&e, 1, 2, ErrorAction::SessionReset);
    }
    // OPEN over 4096 even with extended messages
    let mut open = hex("04 fde9 00f0 c0000201 00");
    open.resize(5000, 0);
    assert_err(
        &err_of(&frame(1, &open), &CX),
        1,
        2,
        ErrorAction::SessionReset,
    );
}

// ---------- OPEN ----------

fn bird_open() -> Open {
    Open {
        version: 4,
        my_as: 65001,
        hold_time: 240,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![
            Capability::Multiprotocol { afi: 1, safi: 1 },
            Capability::Multiprotocol { afi: 2, safi: 1 },
            Capability::RouteRefresh,
            Capability::ExtendedNextHop(vec![ExtendedNextHopEntry {
                nlri_afi: 1,
                nlri_safi: 1,
                next_hop_afi: 2,
            }]),
            Capability::ExtendedMessage,
            Capability::GracefulRestart(GracefulRestart::ipv4_unicast(true, false, 120)),
            Capability::FourOctetAs(65001),
        ],
    }
}

const BIRD_CAPS: &str = "0104 00010001 0104 00020001 0200 0506 000100010002 0600
     4006 8078 00010180 4104 0000fde9";

#[test]
fn open_encode_decode() {
    let caps = hex(BIRD_CAPS);
    let mut body = hex("04 fde9 00f0 c0000201");
    body.push(caps.len() as u8 + 2);
    body.push(2);
    body.push(caps.len() as u8);
    body.extend_from_slice(&caps);
    let bytes = frame(1, &body);
    let m = Message::Open(bird_open());
    assert_eq!(enc(&m, &C4), bytes);
    assert_eq!(Message::decode(&bytes, &C4), Ok(m));
}

#[test]
fn open_one_capability_per_parameter() {
    let mut params = Vec::new();
    for cap in ["0104 00010001", "0200", "4104 fde80001"] {
        let c = hex(cap);
        params.push(2);
        params.push(c.len() as u8);
        params.extend_from_slice(&c);
    }
    let mut body = hex("04 5ba0 005a 0a000001");
    body.push(params.len() as u8);
    body.extend_from_slice(&params);
    let Ok(Message::Open(o)) = Message::decode(&frame(1, &body), &C4) else {
        panic!()
    };
    assert_eq!(
        o.capabilities,
        vec![
            Capability::Multiprotocol { afi: 1, safi: 1 },
            Capability::RouteRefresh,
            Capability::FourOctetAs(0xfde80001),
        ]
    );
    assert_eq!(o.my_as, 23456);
    assert_eq!(o.asn(), 0xfde80001);
    assert_eq!(o.hold_time, 90);
}

#[test]
fn open_asn_without_capability_and_no_params() {
    let body = hex("04 fde9 0000 0a000001 00");
    let Ok(Message::Open(o)) = Message::decode(&frame(1, &body), &C4) else {
        panic!()
    };
    assert_eq!(o.asn(), 65001);
    assert!(o.capabilities.is_empty());
    assert_eq!(enc(&Message::Open(o), &C4), frame(1, &body));
}

#[test]
fn open_unknown_capability_kept() {
    // 73 = FQDN capability; 128 = old Cisco route refresh
    let body = hex("04 fde9 00b4 0a000001 0c 02 0a 4906 0468 6f73 7400 8000");
    let bytes = frame(1, &body);
    let Ok(Message::Open(o)) = Message::decode(&bytes, &C4) else {
        panic!()
    };
    assert_eq!(
        o.capabilities,
        vec![
            Capability::Unknown {
                code: CapabilityCode::Other(73),
                value: hex("0468 6f73 7400")
            },
            Capability::Unknown {
                code: CapabilityCode::Other(128),
                value: vec![]
            },
        ]
    );
    assert_eq!(enc(&Message::Open(o), &C4), bytes);
}

#[test]
fn open_extended_optional_parameters() {
    // RFC 9072: 255, 255, ext len, then type + 2-byte length
    let caps = hex("0104 00020001 4104 0000fde9");
    let mut body = hex("04 fde9 00f0 c0000201 ff ff");
    body.extend_from_slice(&((caps.len() + 3) as u16).to_be_bytes());
    body.push(2);
    body.extend_from_slice(&(caps.len() as u16).to_be_bytes());
    body.extend_from_slice(&caps);
    let Ok(Message::Open(o)) = Message::decode(&frame(1, &body), &C4) else {
        panic!()
    };
    assert_eq!(o.capabilities.len(), 2);
    assert_eq!(o.asn(), 65001);
    // Encoding uses the extended form only when the capabilities exceed 253 bytes.
    let mut big = o.clone();
    big.capabilities.push(Capability::Unknown {
        code: CapabilityCode::Other(200),
        value: vec![7; 255],
    });
    let bytes = enc(&Message::Open(big.clone()), &C4);
    assert_eq!(&bytes[28..31], &[255, 255, 0x01]);
    assert_eq!(Message::decode(&bytes, &C4), Ok(Message::Open(big)));
}

#[test]
fn open_errors() {
    let e = err_of(&frame(1, &hex("03 fde9 00f0 c0000201 00")), &C4);
    assert_err(&e, 2, 1, ErrorAction::SessionReset);
    assert_eq!(e.notification.data, vec![0, 4]);
    // (OPEN body, OPEN Message Error subcode)
    for (body, subcode) in [
        // hold time 1 and 2
        ("04 fde9 0001 c0000201 00", 6),
        ("04 fde9 0002 c0000201 00", 6),
        // BGP identifier 0
        ("04 fde9 00f0 00000000 00", 3),
        // parameter type 1 (authentication, deprecated)
        ("04 fde9 00f0 c0000201 04 01 02 0000", 4),
        // capability overruns its parameter
        ("04 fde9 00f0 c0000201 04 02 02 0104", 0),
        // parameter overruns the optional parameters
        ("04 fde9 00f0 c0000201 03 02 05 02", 0),
        // optional parameter length disagrees with the message
        ("04 fde9 00f0 c0000201 05 02 02 0200", 0),
    ] {
        let e = err_of(&frame(1, &hex(body)), &C4);
        assert_err(&e, 2, subcode, ErrorAction::SessionReset);
    }
    // malformed known capabilities
    for cap in [
        "0103 000100",
        "0201 00",
        "0505 0001000100",
        "4003 000000",
        "4102 0000",
        "0601 00",
    ] {
        let c = hex(cap);
        let mut body = hex("04 fde9 00f0 c0000201");
        body.extend_from_slice(&[c.len() as u8 + 2, 2, c.len() as u8]);
        body.extend_from_slice(&c);
        let e = err_of(&frame(1, &body), &C4);
        assert_err(&e, 2, 0, ErrorAction::SessionReset);
    }
}

#[test]
fn graceful_restart_flags() {
    let c = Capability::decode(
        CapabilityCode::GracefulRestart,
        &hex("4fff 00020100 00010180"),
    )
    .unwrap();
    assert_eq!(
        c,
        Capability::GracefulRestart(GracefulRestart {
            restart_state: false,
            notification: true,
            restart_time: 4095,
            families: vec![
                GracefulRestartFamily {
                    afi: 2,
                    safi: 1,
                    forwarding_state: false
                },
                GracefulRestartFamily {
                    afi: 1,
                    safi: 1,
                    forwarding_state: true
                },
            ],
        })
    );
    let mut out = Vec::new();
    c.encode(&mut out);
    assert_eq!(out, hex("400a 4fff 00020100 00010180"));
    // RFC 8538 section 2: R is 0x8000 and N 0x4000 of the 2-byte field, the time
    // its low 12 bits; the 2 bits between are reserved.
    let ours = Capability::GracefulRestart(GracefulRestart::ipv4_unicast(false, true, 3600));
    let mut out = Vec::new();
    ours.encode(&mut out);
    assert_eq!(out, hex("4006 4e10 00010180"));
    assert_eq!(
        Capability::decode(CapabilityCode::GracefulRestart, &out[2..]),
        Ok(ours)
    );
    let both = Capability::decode(CapabilityCode::GracefulRestart, &hex("c078")).unwrap();
    let Capability::GracefulRestart(both) = both else {
        panic!("{both:?}")
    };
    assert!(both.restart_state && both.notification);
    assert_eq!(both.restart_time, 120);
    let reserved = Capability::decode(CapabilityCode::GracefulRestart, &hex("3078")).unwrap();
    let Capability::GracefulRestart(reserved) = reserved else {
        panic!("{reserved:?}")
    };
    assert!(!reserved.restart_state && !reserved.notification);
    assert_eq!(reserved.restart_time, 120);
    assert_eq!(
        Capability::decode(CapabilityCode::GracefulRestart, &hex("8000")),
        Ok(Capability::GracefulRestart(GracefulRestart {
            restart_state: true,
            notification: false,
            restart_time: 0,
            families: vec![]
        }))
    );
}

// ---------- UPDATE ----------

#[test]
fn update_ipv4_classic() {
    let u = Update {
        withdrawn: vec![v4("10.0.0.0/8")],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(vec![AsPathSegment {
                kind: SegmentType::AsSequence,
                asns: vec![65001, 4200000000],
            }]),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            PathAttribute::MultiExitDisc(10),
            PathAttribute::LocalPref(100),
        ],
        nlri: vec![
            v4("198.51.100.0/24"),
            v4("203.0.113.128/25"),
            v4("0.0.0.0/0"),
        ],
    };
    let body = update_body(
        "08 0a",
        "40 01 01 00
         40 02 0a 02 02 0000fde9 fa56ea00
         40 03 04 c0000201
         80 04 04 0000000a
         40 05 04 00000064",
        "18 c63364 19 cb007180 00",
    );
    let m = Message::Update(u);
    assert_eq!(enc(&m, &C4), frame(2, &body));
    assert_eq!(Message::decode(&frame(2, &body), &C4), Ok(m));
}

#[test]
fn update_as_path_two_octet() {
    let u = update_ok("", "40 02 0a 01 01 fde9 02 02 5ba0 0001", "", &C2);
    assert_eq!(
        u.attributes,
        vec![PathAttribute::AsPath(vec![
            AsPathSegment {
                kind: SegmentType::AsSet,
                asns: vec![65001]
            },
            AsPathSegment {
                kind: SegmentType::AsSequence,
                asns: vec![23456, 1]
            },
        ])]
    );
    // a 4-octet ASN becomes AS_TRANS on a 2-octet session
    let m = Message::Update(Update {
        attributes: vec![PathAttribute::AsPath(vec![AsPathSegment {
            kind: SegmentType::AsConfedSequence,
            asns: vec![4200000000],
        }])],
        ..Update::default()
    });
    assert_eq!(
        enc(&m, &C2),
        frame(2, &update_body("", "40 02 04 03 01 5ba0", ""))
    );
    // confed set
    let u = update_ok("", "40 02 06 04 01 00000001", "", &C4);
    assert_eq!(
        u.attributes[0],
        PathAttribute::AsPath(vec![AsPathSegment {
            kind: SegmentType::AsConfedSet,
            asns: vec![1]
        }])
    );
}

#[test]
fn update_host_bits_are_cleared() {
    let u = update_ok("", "", "", &C4);
    assert_eq!(u, Update::default());
    let u = update_ok("09 0aff", "", "", &C4);
    assert_eq!(u.withdrawn, vec![v4("10.128.0.0/9")]);
    let m = Message::Update(Update {
        withdrawn: vec![v4("10.255.1.1/9")],
        ..Update::default()
    });
    assert_eq!(enc(&m, &C4), frame(2, &update_body("09 0a80", "", "")));
}

#[test]
fn update_mp_reach_ipv6() {
    let g: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let ll: Ipv6Addr = "fe80::1".parse().unwrap();
    let attrs = "40 01 01 00 40 02 00
         90 0e 0035 0002 01 20 20010db8000000000000000000000001 fe800000000000000000000000000001 00
         30 20010db80001 40 20010db800020000";
    let u = update_ok("", attrs, "", &C4);
    let want = mp_update(MpReach {
        family: Family::Ipv6Unicast,
        next_hop: IpAddr::V6(g),
        link_local_next_hop: Some(ll),
        nlri: vec![net("2001:db8:1::/48"), net("2001:db8:2::/64")],
    });
    assert_eq!(u, want);
    // our encoder uses the 1-byte length for a 49-byte value
    let attrs1 = attrs.replace("90 0e 0035", "80 0e 35");
    assert_eq!(
        enc(&Message::Update(want), &C4),
        frame(2, &update_body("", &attrs1, ""))
    );
    // 16-byte next hop
    let m = mp_reach_of(
        "40 01 01 02 40 02 00 80 0e 16 0002 01 10 20010db8000000000000000000000001 00 00",
    );
    assert_eq!((m.next_hop, m.link_local_next_hop), (IpAddr::V6(g), None));
    assert_eq!(m.nlri, vec![net("::/0")]);
}

#[test]
fn update_mp_reach_ipv4_over_ipv6_next_hop() {
    // RFC 8950: IPv4 NLRI with a 16-byte IPv6 next hop
    let m = mp_reach_of(
        "40 01 01 00 40 02 00 80 0e 19 0001 01 10 20010db8000000000000000000000001 00 18 c63364",
    );
    assert_eq!(
        m,
        MpReach {
            family: Family::Ipv4Unicast,
            next_hop: "2001:db8::1".parse().unwrap(),
            link_local_next_hop: None,
            nlri: vec![net("198.51.100.0/24")],
        }
    );
    // IPv4 next hop in MP_REACH for IPv4
    let m = mp_reach_of("40 01 01 00 40 02 00 80 0e 0d 0001 01 04 c0000201 00 18 c63364");
    assert_eq!(m.next_hop, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
}

#[test]
fn update_mp_unreach_and_end_of_rib() {
    let u = update_ok("", "80 0f 0b 0002 01 30 20010db80001 00", "", &C4);
    assert_eq!(
        u.attributes,
        vec![PathAttribute::MpUnreach(MpUnreach {
            family: Family::Ipv6Unicast,
            withdrawn: vec![net("2001:db8:1::/48"), net("::/0")],
        })]
    );
    assert_eq!(u.end_of_rib_family(), None);
    let eor6 = Update::end_of_rib(Family::Ipv6Unicast);
    assert_eq!(
        enc(&Message::Update(eor6.clone()), &C4),
        frame(2, &hex("0000 0006 800f03000201"))
    );
    assert_eq!(eor6.end_of_rib_family(), Some(Family::Ipv6Unicast));
    let eor4 = Update::end_of_rib(Family::Ipv4Unicast);
    assert_eq!(
        enc(&Message::Update(eor4.clone()), &C4),
        frame(2, &hex("0000 0000"))
    );
    assert_eq!(eor4.end_of_rib_family(), Some(Family::Ipv4Unicast));
    assert_eq!(
        update_ok("", "40 01 01 00", "", &C4).end_of_rib_family(),
        None
    );
}

#[test]
fn update_unknown_attributes_byte_exact() {
    // extended communities (optional transitive), an unassigned type with the
    // extended-length flag, AS4_PATH, MP_REACH for SAFI 128 and MP_UNREACH for AFI 25
    let attrs = "c0 10 08 0002fde900000064
         d0 21 000c 0000fde9 00000001 00000002
         c0 11 06 02 01 fa56ea00
         80 0e 05 0001 80 00 00
         80 0f 03 0019 46
         40 06 00";
    let u = update_ok("", attrs, "", &C2);
    assert_eq!(u.attributes.len(), 6);
    assert_eq!(
        u.attributes[1],
        PathAttribute::Unknown {
            flags: 0xd0,
            type_code: AttributeType::Other(33),
            value: hex("0000fde9 00000001 00000002")
        }
    );
    assert_eq!(
        u.attributes[3],
        PathAttribute::Unknown {
            flags: 0x80,
            type_code: AttributeType::MpReachNlri,
            value: hex("0001 80 00 00")
        }
    );
    assert_eq!(
        enc(&Message::Update(u), &C2),
        frame(2, &update_body("", attrs, ""))
    );
}

#[test]
fn update_communities_and_large_communities() {
    // RFC 1997 type 8 and RFC 8092 type 32, both optional transitive
    let attrs = "c0 08 08 fdf20064 ffffff01
         c0 20 18 0000fdf2 00000001 00000002 fa56ea00 00000000 ffffffff";
    let u = update_ok("", attrs, "", &C4);
    assert_eq!(
        u.attributes,
        vec![
            PathAttribute::Communities(vec![0xfdf2_0064, 0xffff_ff01]),
            PathAttribute::LargeCommunities(vec![[65010, 1, 2], [4_200_000_000, 0, u32::MAX]]),
        ]
    );
    assert_eq!(
        enc(&Message::Update(u), &C4),
        frame(2, &update_body("", attrs, ""))
    );
    // RFC 7606 7.8 / RFC 8092 5: not a non-zero multiple of 4 (12) bytes, or the
    // wrong flags, is treat-as-withdraw
    let t = ErrorAction::TreatAsWithdraw;
    let ok = "40 01 01 00 40 02 00 40 03 04 c0000201";
    for bad in [
        "c0 08 00",
        "c0 08 03 fdf200",
        "40 08 04 fdf20064",
        "c0 20 00",
        "c0 20 08 0000fdf2 00000001",
        "80 20 0c 0000fdf2 00000001 00000002",
    ] {
        let e = update_err("", &format!("{ok} {bad}"), "18 c63364", &C4);
        assert_eq!(e.action, t, "{bad}: {e}");
    }
}

#[test]
fn pack_announce_extra_attributes_bytes() {
    // MED, communities, large communities and a prepend of 2 on an eBGP path
    let mut a = attrs("192.0.2.1");
    a.extra = ExtraAttrs {
        med: Some(50),
        communities: vec![0xfdf2_0064, 0xffff_ff01],
        large_communities: vec![[65010, 1, 2]],
        as_path_prepend: 2,
    };
    let mut out = Vec::new();
    assert_eq!(
        pack_announce(&C4, &a, &[net("198.51.100.0/24")], &mut out),
        1
    );
    let want = "40 01 01 00 40 02 0e 02 03 0000fdf2 0000fdf2 0000fdf2
        80 04 04 00000032
        c0 08 08 fdf20064 ffffff01
        c0 20 0c 0000fdf2 00000001 00000002
        40 03 04 c0000201";
    assert_eq!(out, frame(2, &update_body("", want, "18 c63364")));
    // iBGP: the empty path is not prepended
    a.as_path = vec![];
    a.extra = ExtraAttrs {
        as_path_prepend: 3,
        ..ExtraAttrs::default()
    };
    let mut out = Vec::new();
    pack_announce(&C4, &a, &[net("198.51.100.0/24")], &mut out);
    let want = "40 01 01 00 40 02 00 40 03 04 c0000201";
    assert_eq!(out, frame(2, &update_body("", want, "18 c63364")));
}

#[test]
fn extra_attrs_merge() {
    let network = ExtraAttrs {
        med: Some(10),
        communities: vec![2, 5],
        large_communities: vec![[1, 2, 3]],
        as_path_prepend: 2,
    };
    let nic = ExtraAttrs {
        med: Some(20),
        communities: vec![1, 5],
        large_communities: vec![],
        as_path_prepend: 0,
    };
    let both = network.with(&nic);
    assert_eq!(both.med, Some(20));
    assert_eq!(both.communities, vec![1, 2, 5]);
    assert_eq!(both.large_communities, vec![[1, 2, 3]]);
    assert_eq!(both.as_path_prepend, 2);
    assert_eq!(ExtraAttrs::default().with(&network), network);
}

#[test]
fn drained_attrs_add_graceful_shutdown_in_order() {
    use super::community::{GRACEFUL_SHUTDOWN, NO_EXPORT};
    let plain = ExtraAttrs::default().drained();
    assert_eq!(plain.communities, vec![GRACEFUL_SHUTDOWN]);
    let a = ExtraAttrs {
        med: Some(7),
        communities: vec![65010 << 16 | 100, NO_EXPORT],
        large_communities: vec![[65010, 1, 2]],
        as_path_prepend: 1,
    };
    let d = a.drained();
    assert_eq!(
        d.communities,
        vec![65010 << 16 | 100, GRACEFUL_SHUTDOWN, NO_EXPORT]
    );
    assert_eq!((d.med, d.as_path_prepend), (a.med, a.as_path_prepend));
    assert_eq!(d.large_communities, a.large_communities);
    // Draining twice, or a set that already asks for it, changes nothing more.
    assert_eq!(d.drained(), d);
    // On the wire: one COMMUNITIES attribute carrying 65535:0 among the others.
    let mut route = attrs("192.0.2.1");
    route.extra = ExtraAttrs::default().drained();
    let mut out = Vec::new();
    pack_announce(&C4, &route, &[net("198.51.100.0/24")], &mut out);
    assert!(out
        .windows(7)
        .any(|w| w == [0xc0, 0x08, 0x04, 0xff, 0xff, 0x00, 0x00]));
}

#[test]
fn update_extended_length() {
    // decode: known attribute with the extended-length flag
    let u = update_ok("", "50 01 0001 02", "", &C4);
    assert_eq!(
        u.attributes,
        vec![PathAttribute::Origin(Origin::Incomplete)]
    );
    // encode: a value over 255 bytes uses it
    let m = Message::Update(Update {
        attributes: vec![PathAttribute::AsPath(vec![AsPathSegment {
            kind: SegmentType::AsSequence,
            asns: (1..=100).collect(),
        }])],
        ..Update::default()
    });
    let b = enc(&m, &C4);
    assert_eq!(&b[23..27], &hex("50 02 0192"));
    assert_eq!(Message::decode(&b, &C4), Ok(m));
}

#[test]
fn update_session_reset_errors() {
    let r = ErrorAction::SessionReset;
    // withdrawn length past the message
    assert_err(&err_of(&frame(2, &hex("0005 08 0a 0000")), &C4), 3, 1, r);
    // total attribute length past the message
    assert_err(&err_of(&frame(2, &hex("0000 0009 40010100")), &C4), 3, 1, r);
    // prefix length 33, truncated prefix, in withdrawn and NLRI
    assert_err(&update_err("21 0a000000 00", "", "", &C4), 3, 10, r);
    assert_err(
        &update_err("", "40 01 01 00 40 02 00 40 03 04 c0000201", "18 0a00", &C4),
        3,
        10,
        r,
    );
    // MP_REACH: prefix over 128, bad next hop length, truncated, wrong flags, duplicate
    assert_err(
        &update_err(
            "",
            "80 0e 16 0002 01 10 20010db8000000000000000000000001 00 81",
            "",
            &C4,
        ),
        3,
        9,
        r,
    );
    assert_err(
        &update_err("", "80 0e 0a 0002 01 05 0102030405 00", "", &C4),
        3,
        9,
        r,
    );
    assert_err(
        &update_err("", "80 0e 0a 0001 01 08 0102030405060708 00", "", &C4),
        3,
        9,
        r,
    );
    assert_err(&update_err("", "80 0e 02 0002", "", &C4), 3, 9, r);
    assert_err(
        &update_err("", "80 0e 08 0002 01 10 20010db8", "", &C4),
        3,
        9,
        r,
    );
    assert_err(&update_err("", "40 0f 03 000201", "", &C4), 3, 4, r);
    assert_err(
        &update_err("", "80 0f 03 000201 80 0f 03 000201", "", &C4),
        3,
        1,
        r,
    );
    assert_err(&update_err("", "80 0f 04 000201 21", "", &C4), 3, 9, r);
    // MP_UNREACH running past the attribute field
    assert_err(&update_err("", "80 0f 09 000201", "", &C4), 3, 1, r);
    // unrecognized well-known attribute
    assert_err(&update_err("", "40 63 01 00", "", &C4), 3, 2, r);
}

#[test]
fn update_treat_as_withdraw_errors() {
    let t = ErrorAction::TreatAsWithdraw;
    let ok = "40 01 01 00 40 02 00 40 03 04 c0000201";
    let nlri = "18 c63364";
    // ORIGIN length and value
    let e = update_err("", "40 01 02 0000 40 02 00 40 03 04 c0000201", nlri, &C4);
    assert_err(&e, 3, 5, t);
    assert_eq!(e.notification.data, hex("40 01 02 0000"));
    assert_err(
        &update_err("", "40 01 01 03 40 02 00 40 03 04 c0000201", nlri, &C4),
        3,
        6,
        t,
    );
    // AS_PATH: bad segment type, empty segment, overrun, odd bytes
    for p in [
        "40 02 06 05 01 00000001",
        "40 02 02 02 00",
        "40 02 06 02 02 00000001",
        "40 02 01 02",
    ] {
        assert_err(
            &update_err("", &format!("40 01 01 00 {p}"), "", &C4),
            3,
            11,
            t,
        );
    }
    // AS_PATH with 2-byte ASNs read by a 4-octet codec
    assert_err(&update_err("", "40 02 04 02 01 fde9", "", &C4), 3, 11, t);
    // NEXT_HOP, MED, LOCAL_PREF lengths
    assert_err(
        &update_err("", "40 01 01 00 40 02 00 40 03 05 c000020100", nlri, &C4),
        3,
        5,
        t,
    );
    assert_err(
        &update_err("", &format!("{ok} 80 04 02 0000"), nlri, &C4),
        3,
        5,
        t,
    );
    assert_err(
        &update_err("", &format!("{ok} 40 05 05 0000000000"), nlri, &C4),
        3,
        5,
        t,
    );
    // wrong flags on well-known and on MED
    assert_err(&update_err("", "c0 01 01 00", "", &C4), 3, 4, t);
    assert_err(&update_err("", "40 04 04 00000000", "", &C4), 3, 4, t);
    // missing well-known attributes with NLRI: NEXT_HOP, ORIGIN; with MP_REACH NLRI: AS_PATH
    let e = update_err("", "40 01 01 00 40 02 00", nlri, &C4);
    assert_err(&e, 3, 3, t);
    assert_eq!(e.notification.data, vec![3]);
    let e = update_err("", "40 02 00 40 03 04 c0000201", nlri, &C4);
    assert_eq!(e.notification.data, vec![1]);
    let e = update_err(
        "",
        "40 01 01 00 80 0e 0d 0001 01 04 c0000201 00 18 c63364",
        "",
        &C4,
    );
    assert_err(&e, 3, 3, t);
    assert_eq!(e.notification.data, vec![2]);
    // attribute running past the attribute field; truncated attribute header
    assert_err(
        &update_err("", "40 01 01 00 c0 08 08 0000", "", &C4),
        3,
        1,
        t,
    );
    assert_err(&update_err("", "40 01 01 00 c0", "", &C4), 3, 1, t);
    assert_err(&update_err("", "40 01 01 00 d0 08 00", "", &C4), 3, 1, t);
}

#[test]
fn update_attribute_discard_errors() {
    let d = ErrorAction::AttributeDiscard;
    // duplicates (other than MP_*) are discarded
    assert_err(&update_err("", "40 01 01 00 40 01 01 02", "", &C4), 3, 1, d);
    assert_err(&update_err("", "c0 10 00 c0 10 00", "", &C4), 3, 1, d);
    // ATOMIC_AGGREGATE and AGGREGATOR length errors
    assert_err(&update_err("", "40 06 01 00", "", &C4), 3, 5, d);
    assert_err(&update_err("", "c0 07 06 fde9c0000201", "", &C4), 3, 5, d);
    assert!(
        update_ok("", "c0 07 06 fde9c0000201", "", &C2)
            .attributes
            .len()
            == 1
    );
    // the most severe error wins: discard + treat-as-withdraw
    let e = update_err("", "40 01 01 00 40 01 01 00 40 02 00", "18 c63364", &C4);
    assert_err(&e, 3, 3, ErrorAction::TreatAsWithdraw);
}

/// Reasons (for logs) name an attribute as the registry does, an unnamed one by number.
#[test]
fn update_reasons_name_attributes() {
    let reason = |attrs: &str| update_err("", attrs, "", &C4).reason;
    assert_eq!(reason("40 01 01 00 40 01 01 02"), "duplicate ORIGIN");
    let as4_path = "c0 11 06 02 01 fa56ea00";
    assert_eq!(
        reason(&format!("{as4_path} {as4_path}")),
        "duplicate AS4_PATH"
    );
    assert_eq!(reason("c0 10 00 c0 10 00"), "duplicate attribute 16");
    assert_eq!(reason("40 06 01 00"), "ATOMIC_AGGREGATE with length 1");
    assert_eq!(reason("40 63 00"), "unrecognized well-known attribute 99");
}

// ---------- NOTIFICATION, ROUTE-REFRESH ----------

/// `n` is the NOTIFICATION message whose body is `body` (hex), both ways.
fn assert_notification_wire(n: &Notification, body: &str) {
    let bytes = frame(3, &hex(body));
    assert_eq!(enc(&Message::Notification(n.clone()), &C4), bytes);
    assert_eq!(
        Message::decode(&bytes, &C4),
        Ok(Message::Notification(n.clone()))
    );
}

#[test]
fn notification_bytes_and_display() {
    let n = Notification::new(2, 2, vec![0xfd, 0xe9]);
    assert_notification_wire(&n, "0202 fde9");
    assert_eq!(n.to_string(), "OPEN Message Error/Bad Peer AS (data fde9)");
    for (code, subcode, shown) in [
        (4, 0, "Hold Timer Expired/Unspecific"),
        (9, 9, "Error code 9/subcode 9"),
        (3, 11, "UPDATE Message Error/Malformed AS_PATH"),
    ] {
        assert_eq!(Notification::new(code, subcode, vec![]).to_string(), shown);
    }
}

/// Codes and subcodes without a name come through as they were sent, and are shown
/// by number.
#[test]
fn unknown_codes_and_subcodes_pass_through() {
    let unknown = frame(3, &hex("63 2a 0102"));
    let Ok(Message::Notification(n)) = Message::decode(&unknown, &C4) else {
        panic!("a NOTIFICATION with an unknown code decodes");
    };
    assert_eq!((n.code, n.subcode), (ErrorCode::Other(99), 42));
    assert_eq!(enc(&Message::Notification(n.clone()), &C4), unknown);
    assert_eq!(n.to_string(), "Error code 99/subcode 42 (data 0102)");
    assert_eq!(n.subcode_of::<CeaseSubcode>(), None);

    let cease = frame(3, &hex("06 63"));
    let Ok(Message::Notification(n)) = Message::decode(&cease, &C4) else {
        panic!("a Cease with an unknown subcode decodes");
    };
    assert_eq!(n.subcode_of(), Some(CeaseSubcode::Other(99)));
    assert_eq!(enc(&Message::Notification(n.clone()), &C4), cease);
    assert_eq!(n.to_string(), "Cease/subcode 99");

    // Known code, subcode another code's: the byte is kept, read under its own code.
    let n = Notification::new(ErrorCode::Open, u8::from(CeaseSubcode::HardReset), vec![]);
    assert_notification_wire(&n, "0209");
    assert!(!n.is_hard_reset());
    assert_eq!(n.subcode_of(), Some(OpenSubcode::Other(9)));
    assert_eq!(n.to_string(), "OPEN Message Error/subcode 9");

    let hard = Notification::hard_reset(&Notification::new(99, 42, vec![1]));
    assert_notification_wire(&hard, "0609 632a 01");
    assert_eq!(
        hard.to_string(),
        "Cease/Hard Reset (Error code 99/subcode 42) (data 01)"
    );
}

/// RFC 8538 section 3: Cease/Hard Reset (6/9) whose data is the original
/// NOTIFICATION's code, subcode and data.
#[test]
fn hard_reset_wraps_the_original() {
    let hold = Notification::new(4, 0, vec![]);
    let n = Notification::hard_reset(&hold);
    assert_notification_wire(&n, "0609 0400");
    assert_eq!(n.hard_reset_inner(), Some(hold));
    assert_eq!(
        n.to_string(),
        "Cease/Hard Reset (Hold Timer Expired/Unspecific)"
    );
    let shut = Notification::hard_reset(&Notification::cease_shutdown("bye"));
    assert_notification_wire(&shut, "0609 0602 03 627965");
    assert_eq!(shut.shutdown_message().as_deref(), Some("bye"));
    assert_eq!(
        shut.to_string(),
        "Cease/Hard Reset (Cease/Administrative Shutdown): \"bye\""
    );
    let update = Notification::hard_reset(&Notification::new(3, 1, vec![0xab]));
    assert_eq!(
        update.to_string(),
        "Cease/Hard Reset (UPDATE Message Error/Malformed Attribute List) (data ab)"
    );
    // A Hard Reset without data (or a truncated one) is named alone.
    let bare = Notification::new(6, 9, vec![]);
    assert_eq!(bare.hard_reset_inner(), None);
    assert_eq!(bare.to_string(), "Cease/Hard Reset");
    assert_eq!(
        Notification::new(6, 9, vec![4]).to_string(),
        "Cease/Hard Reset (data 04)"
    );
}

#[test]
fn cease_shutdown() {
    let n = Notification::cease_shutdown("maintenance");
    assert_notification_wire(&n, "0602 0b 6d61696e74656e616e6365");
    assert_eq!(n.shutdown_message().as_deref(), Some("maintenance"));
    assert_eq!(
        n.to_string(),
        "Cease/Administrative Shutdown: \"maintenance\""
    );
    // 200 two-byte characters: cut to 127 characters = 254 bytes
    let long = "é".repeat(200);
    let n = Notification::cease_shutdown(&long);
    assert_eq!(n.data[0], 254);
    assert_eq!(n.data.len(), 255);
    assert_eq!(n.shutdown_message().unwrap().chars().count(), 127);
    let n = Notification::cease_shutdown(&"a".repeat(300));
    assert_eq!((n.data[0], n.data.len()), (255, 256));
    let empty = Notification::cease_shutdown("");
    assert_eq!(empty.data, vec![0]);
    assert_eq!(empty.shutdown_message(), None);
    assert_eq!(empty.to_string(), "Cease/Administrative Shutdown (data 00)");
    // length past the data is clipped; other codes have no message
    assert_eq!(
        Notification::new(6, 4, hex("05 6869"))
            .shutdown_message()
            .as_deref(),
        Some("hi")
    );
    assert_eq!(
        Notification::new(6, 3, hex("02 6869")).shutdown_message(),
        None
    );
}

#[test]
fn route_refresh() {
    let rr = RouteRefresh {
        afi: 2,
        subtype: 0,
        safi: 1,
    };
    let bytes = frame(5, &hex("0002 00 01"));
    assert_eq!(enc(&Message::RouteRefresh(rr), &C4), bytes);
    assert_eq!(Message::decode(&bytes, &C4), Ok(Message::RouteRefresh(rr)));
    assert_err(
        &err_of(&frame(5, &hex("0002 01 01 00")), &C4),
        7,
        1,
        ErrorAction::SessionReset,
    );
    assert_err(
        &err_of(&frame(5, &hex("0002 00 01 00")), &C4),
        1,
        2,
        ErrorAction::SessionReset,
    );
    assert_err(
        &err_of(&frame(5, &hex("0002 00")), &C4),
        1,
        2,
        ErrorAction::SessionReset,
    );
}

#[test]
fn decode_error_display() {
    let e = update_err("", "40 01 01 03", "", &C4);
    assert!(e.to_string().contains("Invalid ORIGIN Attribute"), "{e}");
}

// ---------- packing ----------

fn attrs(nh: &str) -> RouteAttrs {
    RouteAttrs {
        origin: Origin::Igp,
        as_path: vec![65010],
        next_hop: nh.parse().unwrap(),
        link_local_next_hop: None,
        local_pref: None,
        extra: ExtraAttrs::default(),
    }
}

#[test]
fn pack_announce_ipv4_bytes() {
    let mut out = Vec::new();
    let n = pack_announce(
        &C4,
        &attrs("192.0.2.1"),
        &[net("198.51.100.0/24")],
        &mut out,
    );
    assert_eq!(n, 1);
    assert_eq!(
        out,
        frame(
            2,
            &update_body(
                "",
                "40 01 01 00 40 02 06 02 01 0000fdf2 40 03 04 c0000201",
                "18 c63364"
            )
        )
    );
}

#[test]
fn pack_announce_ipv6_bytes() {
    let mut a = attrs("2001:db8::1");
    a.link_local_next_hop = Some("fe80::1".parse().unwrap());
    a.local_pref = Some(100);
    a.as_path = vec![];
    let mut out = Vec::new();
    let n = pack_announce(&C4, &a, &[net("2001:db8:1::/48")], &mut out);
    assert_eq!(n, 1);
    let want = "40 01 01 00 40 02 00 40 05 04 00000064
        80 0e 2c 0002 01 20 20010db8000000000000000000000001 fe800000000000000000000000000001 00
        30 20010db80001";
    assert_eq!(out, frame(2, &update_body("", want, "")));
    // IPv6 prefixes with an IPv4 next hop are never sent
    let mut out = Vec::new();
    assert_eq!(
        pack_announce(&C4, &attrs("192.0.2.1"), &[net("2001:db8::/32")], &mut out),
        0
    );
    assert!(out.is_empty());
}

#[test]
fn pack_announce_as4_path_on_two_octet_session() {
    let mut a = attrs("192.0.2.1");
    a.as_path = vec![4200000000, 65001];
    let mut out = Vec::new();
    pack_announce(&C2, &a, &[net("10.0.0.0/8")], &mut out);
    assert_eq!(
        out,
        frame(
            2,
            &update_body(
                "",
                "40 01 01 00 40 02 06 02 02 5ba0 fde9 c0 11 0a 02 02 fa56ea00 0000fde9 40 03 04 c0000201",
                "08 0a"
            )
        )
    );
}

#[test]
fn pack_withdraw_bytes() {
    let mut out = Vec::new();
    let n = pack_withdraw(&C4, &[net("2001:db8::/32"), net("10.0.0.0/8")], &mut out);
    assert_eq!(n, 2);
    let mut want = frame(2, &update_body("08 0a", "", ""));
    want.extend(frame(
        2,
        &update_body("", "80 0f 08 0002 01 20 20010db8", ""),
    ));
    assert_eq!(out, want);
    assert_eq!(pack_withdraw(&C4, &[], &mut out), 0);
}

#[test]
fn pack_long_as_path_splits_segments() {
    let mut a = attrs("192.0.2.1");
    a.as_path = (1..=300).collect();
    let mut out = Vec::new();
    pack_announce(&C4, &a, &[net("10.0.0.0/8")], &mut out);
    let Ok(Message::Update(u)) = Message::decode(&out, &C4) else {
        panic!()
    };
    let PathAttribute::AsPath(segs) = &u.attributes[1] else {
        panic!()
    };
    assert_eq!(
        segs.iter().map(|s| s.asns.len()).collect::<Vec<_>>(),
        vec![255, 45]
    );
    assert!(segs.iter().all(|s| s.kind == SegmentType::AsSequence));
}

/// Splits a byte stream into messages with `frame_len`.
pub(crate) fn split(mut buf: &[u8], c: &Codec) -> Vec<Update> {
    let mut v = Vec::new();
    while !buf.is_empty() {
        let len = frame_len(buf, c).unwrap().unwrap();
        assert!(len <= c.max_len());
        match Message::decode(&buf[..len], c) {
            Ok(Message::Update(u)) => v.push(u),
            other => panic!("{other:?}"),
        }
        buf = &buf[len..];
    }
    v
}

#[test]
fn pack_many_prefixes_fill_messages() {
    let prefixes: Vec<IpNet> = (0..5000u32)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()))
        .collect();
    for c in [C4, CX] {
        let mut out = Vec::new();
        let n = pack_announce(&c, &attrs("192.0.2.1"), &prefixes, &mut out);
        let ups = split(&out, &c);
        assert_eq!(ups.len(), n);
        let got: Vec<IpNet> = ups
            .iter()
            .flat_map(|u| u.nlri.iter().map(|p| IpNet::V4(*p)))
            .collect();
        assert_eq!(got, prefixes);
        // every message but the last is full to within one prefix
        let mut off = 0;
        for _ in 0..n - 1 {
            let len = frame_len(&out[off..], &c).unwrap().unwrap();
            assert!(len + 4 > c.max_len(), "{len}");
            off += len;
        }
        let mut out = Vec::new();
        let n = pack_withdraw(&c, &prefixes, &mut out);
        assert_eq!(split(&out, &c).len(), n);
        assert_eq!(n, if c.extended_message { 1 } else { 5 });
    }
}

/// The hand-built seeds round-trip byte for byte. Those captured from real peers
/// (`bird_`, `frr_`, `gobgp_`, some with add-path IDs) are checked by tests/seeds.rs.
#[test]
fn fuzz_seeds_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode_message");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if ["bird_", "frr_", "gobgp_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let m = Message::decode(&bytes, &C4);
        assert!(m.is_ok(), "{}: {m:?}", path.display());
        assert_eq!(enc(&m.unwrap(), &C4), bytes, "{}", path.display());
        n += 1;
    }
    assert!(n >= 8);
}

/// Timing of the hot path; run with `--ignored --nocapture` (meaningful in release).
#[test]
#[ignore]
fn pack_million_prefixes_timing() {
    let v4: Vec<IpNet> = (0..1_000_000u32)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap()))
        .collect();
    let v6: Vec<IpNet> = (0..1_000_000u128)
        .map(|i| {
            IpNet::V6(
                ipnet::Ipv6Net::new(Ipv6Addr::from((0x2001_0db8u128 << 96) + (i << 64)), 64)
                    .unwrap(),
            )
        })
        .collect();
    let mut out = Vec::with_capacity(16 << 20);
    for (name, p, a) in [
        ("v4", &v4, attrs("192.0.2.1")),
        ("v6", &v6, attrs("2001:db8::1")),
    ] {
        out.clear();
        let t = std::time::Instant::now();
        let n = pack_announce(&C4, &a, p, &mut out);
        let ta = t.elapsed();
        out.clear();
        let t = std::time::Instant::now();
        let m = pack_withdraw(&C4, p, &mut out);
        eprintln!(
            "{name}: announce {n} msgs in {ta:?}, withdraw {m} msgs in {:?}",
            t.elapsed()
        );
    }
}
