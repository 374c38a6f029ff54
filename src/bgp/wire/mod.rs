//! BGP-4 wire format (RFC 4271 and extensions). Pure: no I/O.
//!
//! Decoding never panics: every read is bounds-checked and errors carry the
//! NOTIFICATION to send together with the RFC 7606 action to take.
//!
//! UPDATE errors: decoding goes on past attribute-level errors and returns the most
//! severe one (`SessionReset` > `TreatAsWithdraw` > `AttributeDiscard`, first of equal
//! severity); `SessionReset` errors return at once. Only `SessionReset` needs the
//! NOTIFICATION to be sent; for the others it documents what was wrong.
//! Unknown attributes (and MP_REACH/MP_UNREACH of other AFI/SAFIs) are kept
//! byte-exact as `PathAttribute::Unknown`, flags included; encoding an `Unknown`
//! uses the extended length when its flags ask for it or the value exceeds 255 bytes.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use codes::{AttributeType, CapabilityCode, ErrorCode, SegmentType, Subcode};

pub mod codes;
pub mod community;
mod header;
mod notification;
mod open;
mod pack;
mod prefix;
mod reader;
mod update;

#[cfg(test)]
mod netgauze_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use header::{
    MARKER, MSG_KEEPALIVE, MSG_NOTIFICATION, MSG_OPEN, MSG_ROUTE_REFRESH, MSG_UPDATE,
};
pub use update::{FLAG_EXTENDED_LENGTH, FLAG_OPTIONAL, FLAG_PARTIAL, FLAG_TRANSITIVE};

pub const HEADER_LEN: usize = 19;
pub const MAX_MESSAGE_LEN: usize = 4096;
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
pub const AS_TRANS: u16 = 23456;
pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const SAFI_UNICAST: u8 = 1;

/// The address families hostbgp advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    /// The name status and logs use.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        }
    }

    pub fn afi(self) -> u16 {
        match self {
            Family::Ipv4Unicast => AFI_IPV4,
            Family::Ipv6Unicast => AFI_IPV6,
        }
    }
    pub fn safi(self) -> u8 {
        SAFI_UNICAST
    }
    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Family> {
        match (afi, safi) {
            (AFI_IPV4, SAFI_UNICAST) => Some(Family::Ipv4Unicast),
            (AFI_IPV6, SAFI_UNICAST) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }
}

/// What the two speakers negotiated that changes how bytes are read and written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Codec {
    pub four_octet_as: bool,
    pub extended_message: bool,
}

impl Codec {
    pub fn max_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// Appends the encoded message (header included) to `out`.
    ///
    /// The caller keeps the message within `codec.max_len()` (the packers do);
    /// an over-long message is written with a wrong length field, never a panic.
    pub fn encode(&self, codec: &Codec, out: &mut Vec<u8>) {
        header::encode(self, codec, out)
    }
    /// Decodes exactly one whole message (header included).
    pub fn decode(buf: &[u8], codec: &Codec) -> Result<Message, DecodeError> {
        header::decode(buf, codec)
    }
    /// The message type code of the header.
    pub fn type_code(&self) -> u8 {
        match self {
            Message::Open(_) => MSG_OPEN,
            Message::Update(_) => MSG_UPDATE,
            Message::Notification(_) => MSG_NOTIFICATION,
            Message::Keepalive => MSG_KEEPALIVE,
            Message::RouteRefresh(_) => MSG_ROUTE_REFRESH,
        }
    }
}

/// Length of the message at the start of `buf` once its header is complete.
pub fn frame_len(buf: &[u8], codec: &Codec) -> Result<Option<usize>, DecodeError> {
    header::frame_len(buf, codec)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorAction {
    SessionReset,
    TreatAsWithdraw,
    AttributeDiscard,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub notification: Notification,
    pub action: ErrorAction,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    Multiprotocol {
        afi: u16,
        safi: u8,
    },
    RouteRefresh,
    ExtendedNextHop(Vec<ExtendedNextHopEntry>),
    ExtendedMessage,
    GracefulRestart(GracefulRestart),
    FourOctetAs(u32),
    Unknown {
        code: CapabilityCode,
        value: Vec<u8>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtendedNextHopEntry {
    pub nlri_afi: u16,
    pub nlri_safi: u16,
    pub next_hop_afi: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestart {
    pub restart_state: bool,
    pub notification: bool,
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

#[cfg(test)]
impl GracefulRestart {
    /// The capability for IPv4 unicast alone, its forwarding state kept.
    pub(crate) fn ipv4_unicast(restart_state: bool, notification: bool, restart_time: u16) -> Self {
        GracefulRestart {
            restart_state,
            notification,
            restart_time,
            families: vec![GracefulRestartFamily {
                afi: AFI_IPV4,
                safi: SAFI_UNICAST,
                forwarding_state: true,
            }],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    pub afi: u16,
    pub safi: u8,
    pub forwarding_state: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Net>,
    pub attributes: Vec<PathAttribute>,
    pub nlri: Vec<Ipv4Net>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsPathSegment {
    pub kind: SegmentType,
    pub asns: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathAttribute {
    Origin(Origin),
    AsPath(Vec<AsPathSegment>),
    NextHop(Ipv4Addr),
    MultiExitDisc(u32),
    LocalPref(u32),
    /// RFC 1997, each `ASN << 16 | VALUE`.
    Communities(Vec<u32>),
    /// RFC 8092: (global administrator, local data 1, local data 2).
    LargeCommunities(Vec<[u32; 3]>),
    MpReach(MpReach),
    MpUnreach(MpUnreach),
    Unknown {
        flags: u8,
        type_code: AttributeType,
        value: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpReach {
    pub family: Family,
    pub next_hop: IpAddr,
    pub link_local_next_hop: Option<Ipv6Addr>,
    pub nlri: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub code: ErrorCode,
    /// Kept as the byte that came: what it means depends on `code`, and
    /// `subcode_of` reads it as that code's subcode.
    pub subcode: u8,
    pub data: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    pub afi: u16,
    pub subtype: u8,
    pub safi: u8,
}

/// Attributes shared by the prefixes of one packed announcement.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    pub origin: Origin,
    pub as_path: Vec<u32>,
    pub next_hop: IpAddr,
    pub link_local_next_hop: Option<Ipv6Addr>,
    pub local_pref: Option<u32>,
    /// What the advertising network or NIC adds (the `bgp.*` path-attribute keys).
    pub extra: ExtraAttrs,
}

/// Path attributes a network or NIC adds to its prefixes. Prefixes with different
/// values go in different UPDATEs, so it is a key of the Adj-RIB-Out grouping.
/// Kept normalized (sorted, no duplicates) so equal sets compare and hash equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtraAttrs {
    pub med: Option<u32>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<[u32; 3]>,
    /// How many more times our ASN goes in front of an eBGP AS_PATH.
    pub as_path_prepend: u8,
}

impl ExtraAttrs {
    /// `self` with `more` added: communities unioned, `more`'s MED and prepend win.
    pub fn with(&self, more: &ExtraAttrs) -> ExtraAttrs {
        let mut communities = self.communities.clone();
        communities.extend_from_slice(&more.communities);
        communities.sort_unstable();
        communities.dedup();
        let mut large_communities = self.large_communities.clone();
        large_communities.extend_from_slice(&more.large_communities);
        large_communities.sort_unstable();
        large_communities.dedup();
        ExtraAttrs {
            med: more.med.or(self.med),
            communities,
            large_communities,
            as_path_prepend: if more.as_path_prepend > 0 {
                more.as_path_prepend
            } else {
                self.as_path_prepend
            },
        }
    }

    /// `self` with GRACEFUL_SHUTDOWN added (RFC 8326 drain), still normalized so
    /// drained sets that were equal stay equal (and share UPDATEs).
    pub fn drained(&self) -> ExtraAttrs {
        let mut drained = self.clone();
        if let Err(at) = drained
            .communities
            .binary_search(&community::GRACEFUL_SHUTDOWN)
        {
            drained.communities.insert(at, community::GRACEFUL_SHUTDOWN);
        }
        drained
    }
}

/// Appends as few UPDATE messages as possible announcing `prefixes`.
///
/// IPv4 prefixes go in the NLRI field with NEXT_HOP when the next hop is IPv4, in
/// MP_REACH (RFC 8950) when it is IPv6. IPv6 prefixes need an IPv6 next hop; with an
/// IPv4 next hop they are skipped (never sent with a mismatched family).
/// Returns the number of messages appended.
pub fn pack_announce(
    codec: &Codec,
    attrs: &RouteAttrs,
    prefixes: &[IpNet],
    out: &mut Vec<u8>,
) -> usize {
    pack::announce(codec, attrs, prefixes, out, None)
}

/// As [`pack_announce`], but a last UPDATE per family that would not be full is left
/// out and its prefixes appended to `held`, to be packed with the prefixes that follow
/// (a full table handed over in chunks then packs as densely as in one piece).
pub fn pack_announce_whole(
    codec: &Codec,
    attrs: &RouteAttrs,
    prefixes: &[IpNet],
    out: &mut Vec<u8>,
    held: &mut Vec<IpNet>,
) -> usize {
    pack::announce(codec, attrs, prefixes, out, Some(held))
}

/// Appends as few UPDATE messages as possible withdrawing `prefixes`
/// (IPv4 in the withdrawn-routes field, IPv6 in MP_UNREACH; mixed slices are fine).
pub fn pack_withdraw(codec: &Codec, prefixes: &[IpNet], out: &mut Vec<u8>) -> usize {
    pack::withdraw(codec, prefixes, out)
}

impl DecodeError {
    pub(crate) fn new(
        subcode: impl Subcode,
        data: Vec<u8>,
        action: ErrorAction,
        reason: impl Into<String>,
    ) -> DecodeError {
        DecodeError {
            notification: Notification::error(subcode, data),
            action,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.notification)
    }
}

impl std::error::Error for DecodeError {}

impl ErrorAction {
    /// Higher is more severe.
    pub fn severity(&self) -> u8 {
        match self {
            ErrorAction::AttributeDiscard => 1,
            ErrorAction::TreatAsWithdraw => 2,
            ErrorAction::SessionReset => 3,
        }
    }
}
