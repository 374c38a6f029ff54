//! Every fuzz seed captured from a real peer (`scripts/capture-seeds.sh`: FRR, GoBGP and
//! bird2 sessions) decodes with the project's codec as the message its name says.
//!
//! Seed names are `<frr|gobgp|bird>_<open|update|notification|route_refresh>_<shape>`;
//! the shape's words are checked too (families, extended next hop, link-local next hop,
//! MED, LOCAL_PREF, communities, Cease subcodes, enhanced route refresh subtypes).
//!
//! `addpath` UPDATEs were sent on sessions that negotiated ADD-PATH (RFC 7911) for
//! IPv4 unicast, so their NLRI and withdrawn routes carry a 4-octet path identifier.
//! hostbgp never announces ADD-PATH, so no peer sends it such bytes and the codec has
//! no ADD-PATH mode: these seeds are decoded once as they are (any result but a panic)
//! and once with the path identifiers removed, which must decode exactly.
use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

use hostbgp::bgp::wire::{frame_len, Capability, Codec, Family, Message, PathAttribute, Update};

const PEERS: [&str; 3] = ["frr", "gobgp", "bird"];
const TYPES: [(&str, u8); 4] = [
    ("open", 1),
    ("update", 2),
    ("notification", 3),
    ("route_refresh", 5),
];
/// Every captured session negotiated 4-octet AS numbers; none needed extended messages.
const SESSION: Codec = Codec {
    four_octet_as: true,
    extended_message: false,
};

fn seeds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode_message")
}

/// (name, peer, type, shape words, bytes) of one real-peer seed.
type Seed = (String, &'static str, &'static str, Vec<String>, Vec<u8>);

fn real_seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    for entry in fs::read_dir(seeds_dir()).expect("seeds dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(peer) = PEERS.iter().find(|p| name.starts_with(&format!("{p}_"))) else {
            continue;
        };
        let rest = &name[peer.len() + 1..];
        let (typ, _) = TYPES
            .iter()
            .find(|(t, _)| rest.starts_with(&format!("{t}_")))
            .unwrap_or_else(|| panic!("{name}: no message type in the name"));
        let words = rest[typ.len() + 1..]
            .split('_')
            .map(str::to_string)
            .collect();
        let bytes = fs::read(entry.path()).expect("read seed");
        out.push((name, *peer, *typ, words, bytes));
    }
    out.sort();
    out
}

fn has(words: &[String], w: &str) -> bool {
    words.iter().any(|x| x == w)
}

/// Removes the 4-octet path identifiers of an IPv4 UPDATE sent under ADD-PATH
/// (withdrawn routes and NLRI; MP attributes are not used on those sessions).
fn strip_path_ids(msg: &[u8]) -> Vec<u8> {
    fn strip(field: &[u8]) -> Vec<u8> {
        let (mut out, mut i) = (Vec::new(), 0);
        while i < field.len() {
            let len = field[i + 4] as usize;
            let n = 1 + len.div_ceil(8);
            out.extend_from_slice(&field[i + 4..i + 4 + n]);
            i += 4 + n;
        }
        out
    }
    let body = &msg[19..];
    let wl = u16::from_be_bytes([body[0], body[1]]) as usize;
    let withdrawn = strip(&body[2..2 + wl]);
    let al = u16::from_be_bytes([body[2 + wl], body[3 + wl]]) as usize;
    let attrs = &body[4 + wl..4 + wl + al];
    let nlri = strip(&body[4 + wl + al..]);
    let mut out = vec![0xff; 16];
    let len = 19 + 2 + withdrawn.len() + 2 + attrs.len() + nlri.len();
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.push(2);
    out.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    out.extend_from_slice(&withdrawn);
    out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    out.extend_from_slice(attrs);
    out.extend_from_slice(&nlri);
    out
}

fn unknown_attr(u: &Update, code: u8) -> bool {
    u.attributes.iter().any(
        |a| matches!(a, PathAttribute::Unknown { type_code, .. } if u8::from(*type_code) == code),
    )
}

/// Checks an UPDATE against its shape words; returns what is wrong.
fn check_update(u: &Update, words: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    let mp_reach = u.attributes.iter().find_map(|a| match a {
        PathAttribute::MpReach(r) => Some(r),
        _ => None,
    });
    let mp_unreach = u.attributes.iter().find_map(|a| match a {
        PathAttribute::MpUnreach(r) => Some(r),
        _ => None,
    });
    let v6 = has(words, "ipv6");
    let family = if v6 {
        Family::Ipv6Unicast
    } else {
        Family::Ipv4Unicast
    };
    if has(words, "announce") {
        if v6 || has(words, "enhe") {
            match mp_reach {
                Some(r) if r.family == family && !r.nlri.is_empty() => {
                    if !matches!(r.next_hop, IpAddr::V6(_)) {
                        bad.push(format!("IPv4 next hop in MP_REACH: {r:?}"));
                    }
                    if has(words, "lladdr") != r.link_local_next_hop.is_some() {
                        bad.push(format!("link-local next hop: {r:?}"));
                    }
                }
                other => bad.push(format!("no MP_REACH of {family:?} with NLRI: {other:?}")),
            }
        } else {
            if u.nlri.is_empty() {
                bad.push("no NLRI".into());
            }
            if !u
                .attributes
                .iter()
                .any(|a| matches!(a, PathAttribute::NextHop(_)))
            {
                bad.push("no NEXT_HOP".into());
            }
        }
        for (w, ok) in [
            (
                "med",
                u.attributes
                    .iter()
                    .any(|a| matches!(a, PathAttribute::MultiExitDisc(_))),
            ),
            (
                "lp",
                u.attributes
                    .iter()
                    .any(|a| matches!(a, PathAttribute::LocalPref(_))),
            ),
            (
                "comm",
                u.attributes
                    .iter()
                    .any(|a| matches!(a, PathAttribute::Communities(_))),
            ),
            ("extcomm", unknown_attr(u, 16)),
            (
                "lcomm",
                u.attributes
                    .iter()
                    .any(|a| matches!(a, PathAttribute::LargeCommunities(_))),
            ),
        ] {
            if has(words, w) && !ok {
                bad.push(format!("`{w}` in the name but not decoded"));
            }
        }
    } else if has(words, "withdraw") {
        let ok = if v6 {
            mp_unreach.is_some_and(|r| r.family == family && !r.withdrawn.is_empty())
        } else {
            !u.withdrawn.is_empty()
                || mp_unreach.is_some_and(|r| r.family == family && !r.withdrawn.is_empty())
        };
        if !ok {
            bad.push(format!("no withdrawn {family:?} route"));
        }
    } else {
        bad.push(format!("shape {words:?} not understood"));
    }
    bad
}

fn check(name: &str, typ: &str, words: &[String], msg: &Message) -> Vec<String> {
    let mut bad = Vec::new();
    match (typ, msg) {
        ("open", Message::Open(o)) => {
            if o.version != 4 {
                bad.push(format!("version {}", o.version));
            }
            let caps = &o.capabilities;
            let Some(asn) = caps.iter().find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            }) else {
                return vec!["no 4-octet AS capability".into()];
            };
            if asn > 65535 && o.my_as != 23456 {
                bad.push(format!("AS {asn} but My AS {} (not AS_TRANS)", o.my_as));
            }
            for (w, afi) in [("ipv4", 1), ("ipv6", 2)] {
                let mp = caps.contains(&Capability::Multiprotocol { afi, safi: 1 });
                if has(words, w) != mp {
                    bad.push(format!("multiprotocol afi {afi}: {mp}, name says {}", !mp));
                }
            }
            if !caps.contains(&Capability::RouteRefresh) {
                bad.push("no route refresh capability".into());
            }
        }
        ("update", Message::Update(u)) => bad.extend(check_update(u, words)),
        ("notification", Message::Notification(n)) => {
            let sub = if has(words, "reset") {
                4
            } else if has(words, "deconfigured") {
                3
            } else if has(words, "shutdown") {
                2
            } else {
                0
            };
            if (u8::from(n.code), n.subcode) != (6, sub) {
                bad.push(format!("Cease/{sub} expected: {n:?}"));
            }
            if has(words, "message") {
                // RFC 9003: a length octet, then UTF-8
                let text = n
                    .data
                    .split_first()
                    .filter(|(l, t)| **l as usize == t.len())
                    .and_then(|(_, t)| std::str::from_utf8(t).ok());
                if !text.is_some_and(|t| t.starts_with("seed capture")) {
                    bad.push(format!("shutdown communication: {:?}", n.data));
                }
            }
        }
        ("route_refresh", Message::RouteRefresh(r)) => {
            let sub = if has(words, "borr") {
                1
            } else if has(words, "eorr") {
                2
            } else {
                0
            };
            let afi = if has(words, "ipv6") { 2 } else { 1 };
            if (r.afi, r.safi, r.subtype) != (afi, 1, sub) {
                bad.push(format!("afi {afi} subtype {sub} expected: {r:?}"));
            }
        }
        _ => bad.push(format!("decoded as a different message: {msg:?}")),
    }
    bad.into_iter().map(|b| format!("{name}: {b}")).collect()
}

#[test]
fn real_peer_seeds_decode_as_named() {
    let seeds = real_seeds();
    let mut per_peer: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, peer, typ, words, bytes) in &seeds {
        *per_peer.entry(peer).or_default().entry(typ).or_default() += 1;
        let code = TYPES.iter().find(|(t, _)| t == typ).expect("type").1;
        assert_eq!(bytes.get(18), Some(&code), "{name}: header type");
        assert_eq!(
            frame_len(bytes, &SESSION),
            Ok(Some(bytes.len())),
            "{name}: frame length"
        );
        let addpath = has(words, "addpath");
        if addpath {
            // As sent: the codec has no ADD-PATH mode; any answer but a panic will do.
            match Message::decode(bytes, &SESSION) {
                Ok(m) => eprintln!("{name} as sent, without ADD-PATH: {m:?}"),
                Err(e) => eprintln!("{name} as sent, without ADD-PATH: {}", e.reason),
            }
        }
        let input = if addpath {
            strip_path_ids(bytes)
        } else {
            bytes.clone()
        };
        let codecs: &[Codec] = if *typ == "open" {
            // OPENs come before anything is negotiated.
            &[Codec::default(), SESSION]
        } else {
            &[SESSION]
        };
        for codec in codecs {
            match Message::decode(&input, codec) {
                Ok(msg) => {
                    failures.extend(check(name, typ, words, &msg));
                    let mut again = Vec::new();
                    msg.encode(codec, &mut again);
                    if Message::decode(&again, codec).as_ref() != Ok(&msg) {
                        failures.push(format!("{name}: re-encoding does not decode the same"));
                    }
                }
                Err(e) => failures.push(format!(
                    "{name}: decode error under {codec:?}: {e:?}\n  bytes: {}",
                    hex(&input)
                )),
            }
        }
    }
    eprintln!("real-peer seeds: {per_peer:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The corpus keeps every kind of message from each real implementation.
    for peer in PEERS {
        let kinds = per_peer.get(peer).cloned().unwrap_or_default();
        for (typ, _) in TYPES {
            assert!(
                kinds.get(typ).copied().unwrap_or(0) > 0 || (typ == "route_refresh"),
                "no {typ} seed from {peer}: {kinds:?}"
            );
        }
        assert!(
            kinds.get("update").copied().unwrap_or(0) >= 5,
            "{peer}: {kinds:?}"
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn strip_path_ids_removes_the_identifiers() {
    // withdrawn 192.0.2.0/24 path 1; NLRI 198.51.100.0/25 path 7, no attributes
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&[0, 19 + 2 + 8 + 2 + 9, 2, 0, 8, 0, 0, 0, 1, 24, 192, 0, 2]);
    m.extend_from_slice(&[0, 0, 0, 0, 0, 7, 25, 198, 51, 100, 0]);
    let s = strip_path_ids(&m);
    let mut want = vec![0xff; 16];
    want.extend_from_slice(&[0, 19 + 2 + 4 + 2 + 5, 2, 0, 4, 24, 192, 0, 2, 0, 0]);
    want.extend_from_slice(&[25, 198, 51, 100, 0]);
    assert_eq!(s, want);
}
