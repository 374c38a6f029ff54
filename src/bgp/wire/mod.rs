//! BGP-4 wire format (RFC 4271 and extensions). Pure: no I/O.
//!
//! SKELETON: the public API below is fixed; bodies are filled in by the codec work.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

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
    pub fn afi(self) -> u16 {
        todo!()
    }
    pub fn safi(self) -> u8 {
        todo!()
    }
    pub fn from_afi_safi(_afi: u16, _safi: u8) -> Option<Family> {
        todo!()
    }
    pub fn of(_net: &IpNet) -> Family {
        todo!()
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
        todo!()
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
    pub fn encode(&self, _codec: &Codec, _out: &mut Vec<u8>) {
        todo!()
    }
    /// Decodes exactly one whole message (header included).
    pub fn decode(_buf: &[u8], _codec: &Codec) -> Result<Message, DecodeError> {
        todo!()
    }
}

/// Length of the message at the start of `buf` once its header is complete.
pub fn frame_len(_buf: &[u8], _codec: &Codec) -> Result<Option<usize>, DecodeError> {
    todo!()
}

#[derive(Clone, Debug, PartialEq, Eq)]
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
    Multiprotocol { afi: u16, safi: u8 },
    RouteRefresh,
    ExtendedNextHop(Vec<ExtendedNextHopEntry>),
    ExtendedMessage,
    GracefulRestart(GracefulRestart),
    FourOctetAs(u32),
    Unknown { code: u8, value: Vec<u8> },
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
    pub kind: u8,
    pub asns: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathAttribute {
    Origin(Origin),
    AsPath(Vec<AsPathSegment>),
    NextHop(Ipv4Addr),
    MultiExitDisc(u32),
    LocalPref(u32),
    MpReach(MpReach),
    MpUnreach(MpUnreach),
    Unknown {
        flags: u8,
        type_code: u8,
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
    pub code: u8,
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
}

/// Appends as few UPDATE messages as possible announcing `prefixes`.
pub fn pack_announce(
    _codec: &Codec,
    _attrs: &RouteAttrs,
    _prefixes: &[IpNet],
    _out: &mut Vec<u8>,
) -> usize {
    todo!()
}

/// Appends as few UPDATE messages as possible withdrawing `prefixes`.
pub fn pack_withdraw(_codec: &Codec, _prefixes: &[IpNet], _out: &mut Vec<u8>) -> usize {
    todo!()
}

impl Open {
    pub fn asn(&self) -> u32 {
        todo!()
    }
}

impl Update {
    pub fn end_of_rib(_family: Family) -> Update {
        todo!()
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        todo!()
    }
}
