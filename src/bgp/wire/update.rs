//! UPDATE (RFC 4271 section 4.3), path attributes, MP-BGP (RFC 4760), 4-octet AS
//! (RFC 6793), extended next hop (RFC 8950) and revised error handling (RFC 7606).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::codes::{AttributeType, SegmentType, UpdateSubcode};
use super::prefix::{self, PrefixError};
use super::reader::Reader;
use super::{
    AsPathSegment, Codec, DecodeError, ErrorAction, Family, MpReach, MpUnreach, Origin,
    PathAttribute, Update,
};

pub const FLAG_OPTIONAL: u8 = 0x80;
pub const FLAG_TRANSITIVE: u8 = 0x40;
pub const FLAG_PARTIAL: u8 = 0x20;
pub const FLAG_EXTENDED_LENGTH: u8 = 0x10;

const WELL_KNOWN: u8 = FLAG_TRANSITIVE;
const OPTIONAL_NON_TRANSITIVE: u8 = FLAG_OPTIONAL;
const OPTIONAL_TRANSITIVE: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;

/// The optional and transitive flags of an attribute of type `code` as its RFC gives
/// them: those hostbgp writes, and those it asks of a peer's. An unnamed type is taken
/// as optional transitive, the only unknown attribute a speaker passes on (RFC 4271
/// section 5).
pub(crate) fn attr_flags(code: AttributeType) -> u8 {
    match code {
        AttributeType::Origin
        | AttributeType::AsPath
        | AttributeType::NextHop
        | AttributeType::LocalPref
        | AttributeType::AtomicAggregate => WELL_KNOWN,
        AttributeType::MultiExitDisc
        | AttributeType::MpReachNlri
        | AttributeType::MpUnreachNlri => OPTIONAL_NON_TRANSITIVE,
        AttributeType::Aggregator
        | AttributeType::Communities
        | AttributeType::As4Path
        | AttributeType::LargeCommunity
        | AttributeType::Other(_) => OPTIONAL_TRANSITIVE,
    }
}

impl Origin {
    pub fn code(self) -> u8 {
        match self {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }
    }
    pub fn from_code(c: u8) -> Option<Origin> {
        match c {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }
}

impl PathAttribute {
    pub fn type_code(&self) -> AttributeType {
        match self {
            PathAttribute::Origin(_) => AttributeType::Origin,
            PathAttribute::AsPath(_) => AttributeType::AsPath,
            PathAttribute::NextHop(_) => AttributeType::NextHop,
            PathAttribute::MultiExitDisc(_) => AttributeType::MultiExitDisc,
            PathAttribute::LocalPref(_) => AttributeType::LocalPref,
            PathAttribute::Communities(_) => AttributeType::Communities,
            PathAttribute::LargeCommunities(_) => AttributeType::LargeCommunity,
            PathAttribute::MpReach(_) => AttributeType::MpReachNlri,
            PathAttribute::MpUnreach(_) => AttributeType::MpUnreachNlri,
            PathAttribute::Unknown { type_code, .. } => *type_code,
        }
    }

    /// Appends flags, type, length and value.
    pub fn encode(&self, codec: &Codec, out: &mut Vec<u8>) {
        let (flags, force_ext) = match self {
            PathAttribute::Unknown { flags, .. } => (
                *flags & !FLAG_EXTENDED_LENGTH,
                flags & FLAG_EXTENDED_LENGTH != 0,
            ),
            _ => (attr_flags(self.type_code()), false),
        };
        let start = begin_attr(out, flags, self.type_code());
        match self {
            PathAttribute::Origin(o) => out.push(o.code()),
            PathAttribute::AsPath(segs) => put_as_path(out, segs, codec.four_octet_as),
            PathAttribute::NextHop(a) => out.extend_from_slice(&a.octets()),
            PathAttribute::MultiExitDisc(v) | PathAttribute::LocalPref(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            PathAttribute::Communities(c) => put_communities(out, c),
            PathAttribute::LargeCommunities(c) => put_large_communities(out, c),
            PathAttribute::MpReach(m) => {
                put_mp_reach_head(out, m.family, m.next_hop, m.link_local_next_hop);
                for p in &m.nlri {
                    prefix::put(out, p);
                }
            }
            PathAttribute::MpUnreach(m) => {
                out.extend_from_slice(&m.family.afi().to_be_bytes());
                out.push(m.family.safi());
                for p in &m.withdrawn {
                    prefix::put(out, p);
                }
            }
            PathAttribute::Unknown { value, .. } => {
                out.extend_from_slice(&value[..value.len().min(u16::MAX as usize)])
            }
        }
        end_attr(out, start, force_ext);
    }
}

/// Starts an attribute with a 2-byte length placeholder; see [`end_attr`].
#[inline]
pub(crate) fn begin_attr(out: &mut Vec<u8>, flags: u8, code: AttributeType) -> usize {
    let start = out.len();
    out.extend_from_slice(&[flags | FLAG_EXTENDED_LENGTH, code.into(), 0, 0]);
    start
}

/// Fills in the length; uses the 1-byte form when the value fits and `force_ext` is off.
#[inline]
pub(crate) fn end_attr(out: &mut Vec<u8>, start: usize, force_ext: bool) {
    let vlen = out.len() - start - 4;
    if vlen <= 255 && !force_ext {
        out[start] &= !FLAG_EXTENDED_LENGTH;
        out.remove(start + 2);
        out[start + 2] = vlen as u8;
    } else {
        let l = vlen.min(u16::MAX as usize) as u16;
        out[start + 2..start + 4].copy_from_slice(&l.to_be_bytes());
    }
}

/// AS_PATH segments; segments over 255 ASNs are split. 2-octet ASNs over 65535
/// become AS_TRANS.
pub(crate) fn put_as_path(out: &mut Vec<u8>, segs: &[AsPathSegment], four: bool) {
    for seg in segs {
        for chunk in seg.asns.chunks(255) {
            out.push(seg.kind.into());
            out.push(chunk.len() as u8);
            for &asn in chunk {
                if four {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let a = u16::try_from(asn).unwrap_or(super::AS_TRANS);
                    out.extend_from_slice(&a.to_be_bytes());
                }
            }
        }
    }
}

/// COMMUNITIES value; the caller keeps it within an attribute's 65535 bytes.
pub(crate) fn put_communities(out: &mut Vec<u8>, communities: &[u32]) {
    for c in communities {
        out.extend_from_slice(&c.to_be_bytes());
    }
}

/// LARGE_COMMUNITY value, 12 bytes each.
pub(crate) fn put_large_communities(out: &mut Vec<u8>, communities: &[[u32; 3]]) {
    for c in communities {
        for part in c {
            out.extend_from_slice(&part.to_be_bytes());
        }
    }
}

pub(crate) fn put_mp_reach_head(
    out: &mut Vec<u8>,
    family: Family,
    next_hop: IpAddr,
    link_local: Option<Ipv6Addr>,
) {
    out.extend_from_slice(&family.afi().to_be_bytes());
    out.push(family.safi());
    match next_hop {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => match link_local {
            Some(ll) => {
                out.push(32);
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&ll.octets());
            }
            None => {
                out.push(16);
                out.extend_from_slice(&a.octets());
            }
        },
    }
    out.push(0); // reserved (was SNPA count)
}

pub(crate) fn encode(u: &Update, codec: &Codec, out: &mut Vec<u8>) {
    let wl_at = out.len();
    out.extend_from_slice(&[0, 0]);
    for p in &u.withdrawn {
        prefix::put_v4(out, p);
    }
    let wl = (out.len() - wl_at - 2).min(u16::MAX as usize) as u16;
    out[wl_at..wl_at + 2].copy_from_slice(&wl.to_be_bytes());
    let al_at = out.len();
    out.extend_from_slice(&[0, 0]);
    for a in &u.attributes {
        a.encode(codec, out);
    }
    let al = (out.len() - al_at - 2).min(u16::MAX as usize) as u16;
    out[al_at..al_at + 2].copy_from_slice(&al.to_be_bytes());
    for p in &u.nlri {
        prefix::put_v4(out, p);
    }
}

impl Update {
    /// The End-of-RIB marker of `family` (RFC 4724 section 2).
    pub fn end_of_rib(family: Family) -> Update {
        match family {
            Family::Ipv4Unicast => Update::default(),
            Family::Ipv6Unicast => Update {
                attributes: vec![PathAttribute::MpUnreach(MpUnreach {
                    family,
                    withdrawn: Vec::new(),
                })],
                ..Update::default()
            },
        }
    }

    /// The family this UPDATE is the End-of-RIB marker of, if it is one.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::Ipv4Unicast),
            [PathAttribute::MpUnreach(m)] if m.withdrawn.is_empty() => Some(m.family),
            _ => None,
        }
    }
}

fn update_err(
    subcode: UpdateSubcode,
    data: &[u8],
    action: ErrorAction,
    reason: impl Into<String>,
) -> DecodeError {
    DecodeError::new(subcode, data.to_vec(), action, reason)
}

fn attr_name(code: AttributeType) -> String {
    match code.name() {
        Some(name) => name.into(),
        None => format!("attribute {}", u8::from(code)),
    }
}

/// Keeps the most severe error seen (the first of equal severity).
struct Worst(Option<DecodeError>);

impl Worst {
    fn note(&mut self, e: DecodeError) {
        match &self.0 {
            Some(w) if w.action.severity() >= e.action.severity() => {}
            _ => self.0 = Some(e),
        }
    }
}

pub(crate) fn decode(body: &[u8], codec: &Codec) -> Result<Update, DecodeError> {
    let reset = ErrorAction::SessionReset;
    let mut r = Reader::new(body);
    let wl = r.u16().unwrap_or(0) as usize;
    let Some(withdrawn_bytes) = r.take(wl) else {
        return Err(update_err(
            UpdateSubcode::MalformedAttributeList,
            &[],
            reset,
            format!("withdrawn routes length {wl} overruns the message"),
        ));
    };
    let Some(al) = r.u16() else {
        return Err(update_err(
            UpdateSubcode::MalformedAttributeList,
            &[],
            reset,
            "no room for the total path attribute length",
        ));
    };
    let Some(attr_bytes) = r.take(al as usize) else {
        return Err(update_err(
            UpdateSubcode::MalformedAttributeList,
            &[],
            reset,
            format!("total path attribute length {al} overruns the message"),
        ));
    };
    let nlri_bytes = r.rest();
    let net_err = |field: &str, e: PrefixError| {
        update_err(
            UpdateSubcode::InvalidNetworkField,
            &[],
            ErrorAction::SessionReset,
            format!("{field}: {e}"),
        )
    };
    let withdrawn =
        prefix::read_v4_list(withdrawn_bytes).map_err(|e| net_err("withdrawn routes", e))?;
    let nlri = prefix::read_v4_list(nlri_bytes).map_err(|e| net_err("NLRI", e))?;

    let mut worst = Worst(None);
    let mut seen = [false; 256];
    let mut attributes = Vec::new();
    let mut mp_reach_nlri = false;
    let mut r = Reader::new(attr_bytes);
    while !r.is_empty() {
        let attr_start = attr_bytes.len() - r.remaining();
        let flags = r.u8().unwrap_or(0);
        let byte = r.u8();
        let len = if flags & FLAG_EXTENDED_LENGTH != 0 {
            r.u16()
        } else {
            r.u8().map(u16::from)
        };
        let (Some(byte), Some(len)) = (byte, len) else {
            worst.note(update_err(
                UpdateSubcode::MalformedAttributeList,
                &[],
                ErrorAction::TreatAsWithdraw,
                "truncated path attribute header",
            ));
            break;
        };
        let code = AttributeType::from(byte);
        let is_mp = matches!(
            code,
            AttributeType::MpReachNlri | AttributeType::MpUnreachNlri
        );
        let Some(value) = r.take(len as usize) else {
            let e = update_err(
                UpdateSubcode::MalformedAttributeList,
                &[],
                if is_mp {
                    ErrorAction::SessionReset
                } else {
                    ErrorAction::TreatAsWithdraw
                },
                format!(
                    "{} length {len} overruns the attribute field",
                    attr_name(code)
                ),
            );
            if is_mp {
                return Err(e);
            }
            worst.note(e);
            break;
        };
        let whole = &attr_bytes[attr_start..attr_bytes.len() - r.remaining()];
        if seen[usize::from(byte)] {
            let e_reason = format!("duplicate {}", attr_name(code));
            if is_mp {
                return Err(update_err(
                    UpdateSubcode::MalformedAttributeList,
                    &[],
                    reset,
                    e_reason,
                ));
            }
            worst.note(update_err(
                UpdateSubcode::MalformedAttributeList,
                &[],
                ErrorAction::AttributeDiscard,
                e_reason,
            ));
            continue;
        }
        seen[usize::from(byte)] = true;
        match decode_attr(flags, code, value, whole, codec) {
            Ok(Some(a)) => {
                if let PathAttribute::MpReach(m) = &a {
                    mp_reach_nlri = !m.nlri.is_empty();
                }
                attributes.push(a);
            }
            Ok(None) => {}
            Err(e) if e.action == ErrorAction::SessionReset => return Err(e),
            Err(e) => worst.note(e),
        }
    }

    if !nlri.is_empty() || mp_reach_nlri {
        let mut needed = vec![AttributeType::Origin, AttributeType::AsPath];
        if !nlri.is_empty() {
            needed.push(AttributeType::NextHop);
        }
        for code in needed {
            let byte = u8::from(code);
            // An attribute dropped as malformed already produced its own error.
            if !seen[usize::from(byte)] {
                worst.note(update_err(
                    UpdateSubcode::MissingWellKnownAttribute,
                    &[byte],
                    ErrorAction::TreatAsWithdraw,
                    format!("missing {}", attr_name(code)),
                ));
            }
        }
    }
    match worst.0 {
        Some(e) => Err(e),
        None => Ok(Update {
            withdrawn,
            attributes,
            nlri,
        }),
    }
}

/// Decodes one attribute. `Ok(None)` drops it silently.
fn decode_attr(
    flags: u8,
    code: AttributeType,
    value: &[u8],
    whole: &[u8],
    codec: &Codec,
) -> Result<Option<PathAttribute>, DecodeError> {
    let taw = ErrorAction::TreatAsWithdraw;
    let ot = flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE);
    let expect_flags = |action: ErrorAction| {
        if ot != attr_flags(code) {
            Err(update_err(
                UpdateSubcode::AttributeFlagsError,
                whole,
                action,
                format!("{} with flags {flags:#04x}", attr_name(code)),
            ))
        } else {
            Ok(())
        }
    };
    let len_err = |action: ErrorAction| {
        Err(update_err(
            UpdateSubcode::AttributeLengthError,
            whole,
            action,
            format!("{} with length {}", attr_name(code), value.len()),
        ))
    };
    let u32_of = |v: &[u8]| u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    Ok(Some(match code {
        AttributeType::Origin => {
            expect_flags(taw)?;
            if value.len() != 1 {
                return len_err(taw);
            }
            match Origin::from_code(value[0]) {
                Some(o) => PathAttribute::Origin(o),
                None => {
                    return Err(update_err(
                        UpdateSubcode::InvalidOriginAttribute,
                        whole,
                        taw,
                        format!("ORIGIN value {}", value[0]),
                    ))
                }
            }
        }
        AttributeType::AsPath => {
            expect_flags(taw)?;
            match read_as_path(value, codec.four_octet_as) {
                Ok(segs) => PathAttribute::AsPath(segs),
                Err(why) => {
                    return Err(update_err(
                        UpdateSubcode::MalformedAsPath,
                        &[],
                        taw,
                        format!("malformed AS_PATH: {why}"),
                    ))
                }
            }
        }
        AttributeType::NextHop => {
            expect_flags(taw)?;
            if value.len() != 4 {
                return len_err(taw);
            }
            PathAttribute::NextHop(Ipv4Addr::from(u32_of(value)))
        }
        AttributeType::MultiExitDisc => {
            expect_flags(taw)?;
            if value.len() != 4 {
                return len_err(taw);
            }
            PathAttribute::MultiExitDisc(u32_of(value))
        }
        AttributeType::LocalPref => {
            expect_flags(taw)?;
            if value.len() != 4 {
                return len_err(taw);
            }
            PathAttribute::LocalPref(u32_of(value))
        }
        // RFC 7606 sections 7.8 and 7.13: a bad length is treat-as-withdraw.
        AttributeType::Communities => {
            expect_flags(taw)?;
            if value.is_empty() || value.len() % 4 != 0 {
                return len_err(taw);
            }
            PathAttribute::Communities(value.chunks_exact(4).map(u32_of).collect())
        }
        AttributeType::LargeCommunity => {
            expect_flags(taw)?;
            if value.is_empty() || value.len() % 12 != 0 {
                return len_err(taw);
            }
            let large = value
                .chunks_exact(12)
                .map(|c| [u32_of(c), u32_of(&c[4..]), u32_of(&c[8..])])
                .collect();
            PathAttribute::LargeCommunities(large)
        }
        AttributeType::MpReachNlri | AttributeType::MpUnreachNlri => {
            let reset = ErrorAction::SessionReset;
            expect_flags(reset)?;
            let opt_err = |why: String| {
                Err(update_err(
                    UpdateSubcode::OptionalAttributeError,
                    whole,
                    reset,
                    format!("malformed {}: {why}", attr_name(code)),
                ))
            };
            let mut r = Reader::new(value);
            let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
                return opt_err(format!("length {}", value.len()));
            };
            let Some(family) = Family::from_afi_safi(afi, safi) else {
                return Ok(Some(PathAttribute::Unknown {
                    flags,
                    type_code: code,
                    value: value.to_vec(),
                }));
            };
            if code == AttributeType::MpUnreachNlri {
                return match prefix::read_list(r.rest(), family) {
                    Ok(withdrawn) => Ok(Some(PathAttribute::MpUnreach(MpUnreach {
                        family,
                        withdrawn,
                    }))),
                    Err(e) => opt_err(e.to_string()),
                };
            }
            let Some(nh) = r.u8().and_then(|l| r.take(l as usize)) else {
                return opt_err("next hop overruns the attribute".into());
            };
            let v6 = |b: &[u8]| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[..16]);
                Ipv6Addr::from(a)
            };
            let (next_hop, link_local_next_hop) = match (family, nh.len()) {
                (Family::Ipv4Unicast, 4) => (IpAddr::V4(Ipv4Addr::from(u32_of(nh))), None),
                (_, 16) => (IpAddr::V6(v6(nh)), None),
                (_, 32) => (IpAddr::V6(v6(nh)), Some(v6(&nh[16..]))),
                (_, l) => return opt_err(format!("next hop length {l}")),
            };
            if r.u8().is_none() {
                return opt_err("no reserved byte".into());
            }
            match prefix::read_list(r.rest(), family) {
                Ok(nlri) => PathAttribute::MpReach(MpReach {
                    family,
                    next_hop,
                    link_local_next_hop,
                    nlri,
                }),
                Err(e) => return opt_err(e.to_string()),
            }
        }
        // Attributes hostbgp does not interpret: kept as bytes once checked.
        AttributeType::AtomicAggregate
        | AttributeType::Aggregator
        | AttributeType::As4Path
        | AttributeType::Other(_) => {
            if flags & FLAG_OPTIONAL == 0 && code != AttributeType::AtomicAggregate {
                return Err(update_err(
                    UpdateSubcode::UnrecognizedWellKnownAttribute,
                    whole,
                    ErrorAction::SessionReset,
                    format!("unrecognized well-known attribute {}", u8::from(code)),
                ));
            }
            // RFC 7606 sections 7.6 and 7.7: bad lengths are discarded.
            let agg_len = if codec.four_octet_as { 8 } else { 6 };
            if (code == AttributeType::AtomicAggregate && !value.is_empty())
                || (code == AttributeType::Aggregator && value.len() != agg_len)
            {
                return len_err(ErrorAction::AttributeDiscard);
            }
            PathAttribute::Unknown {
                flags,
                type_code: code,
                value: value.to_vec(),
            }
        }
    }))
}

fn read_as_path(value: &[u8], four: bool) -> Result<Vec<AsPathSegment>, String> {
    let size = if four { 4 } else { 2 };
    let mut r = Reader::new(value);
    let mut segs = Vec::new();
    while !r.is_empty() {
        let (Some(kind), Some(count)) = (r.u8().map(SegmentType::from), r.u8()) else {
            return Err("truncated segment header".into());
        };
        if let SegmentType::Other(kind) = kind {
            return Err(format!("segment type {kind}"));
        }
        if count == 0 {
            return Err("empty segment".into());
        }
        let Some(bytes) = r.take(count as usize * size) else {
            return Err("segment overruns the attribute".into());
        };
        let asns = bytes
            .chunks_exact(size)
            .map(|c| {
                if four {
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                } else {
                    u16::from_be_bytes([c[0], c[1]]) as u32
                }
            })
            .collect();
        segs.push(AsPathSegment { kind, asns });
    }
    Ok(segs)
}
