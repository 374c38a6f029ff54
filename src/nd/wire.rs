//! ICMPv6 Router Solicitation and Router Advertisement (RFC 4861 sections 4.1, 4.2):
//! a zero-copy view with checked accessors, a `Repr` of what hostbgp reads and
//! writes, and `emit`.
//!
//! The buffer is the ICMPv6 message only, as a raw `IPPROTO_ICMPV6` socket hands it
//! over and takes it: no IPv6 header. The checksum is never computed here: Linux
//! fills it in on send and verifies it on receive for every raw ICMPv6 socket (RFC
//! 3542 section 3.1; `raw_v6.c` sets the checksum offset 2 for them). `emit` leaves
//! the field zero.
//!
//! `Packet::new_checked` runs the message checks of RFC 4861 sections 6.1.1 and 6.1.2
//! that the message alone can answer: known type, code 0, length at least the fixed
//! part, and options that are each non-empty and end inside the message. The IP-level
//! ones (hop limit 255, link-local source of an RA, unspecified source without a
//! Source Link-Layer Address option) are the caller's, who has the IPv6 header's
//! fields from the socket.
use std::fmt;

use crate::kernel::Mac;

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICIT: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERT: u8 = 134;
/// Type, code, checksum and the reserved word.
pub const RS_HEADER_LEN: usize = 8;
/// Type, code, checksum, hop limit, flags, router lifetime, reachable, retrans.
pub const RA_HEADER_LEN: usize = 16;
/// Options are counted in units of 8 bytes (RFC 4861 section 4.6).
pub const OPTION_UNIT: usize = 8;

/// Option types hostbgp reads or writes (RFC 4861 section 4.6).
pub mod option {
    pub const SOURCE_LINK_LAYER_ADDR: u8 = 1;
    pub const TARGET_LINK_LAYER_ADDR: u8 = 2;
    pub const PREFIX_INFORMATION: u8 = 3;
    pub const MTU: u8 = 5;
}

/// The bits of an RA's flags byte (RFC 4861, RFC 4191 for the preference, RFC 5175).
pub mod flags {
    pub const MANAGED: u8 = 0x80;
    pub const OTHER: u8 = 0x40;
    pub const HOME_AGENT: u8 = 0x20;
    /// Default Router Preference, two bits; 00 is medium.
    pub const PREFERENCE_MASK: u8 = 0x18;
    pub const PROXY: u8 = 0x04;
}

mod field {
    use std::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const RS_RESERVED: Range<usize> = 4..8;
    pub const RA_HOP_LIMIT: usize = 4;
    pub const RA_FLAGS: usize = 5;
    pub const RA_ROUTER_LIFETIME: Range<usize> = 6..8;
    pub const RA_REACHABLE_TIME: Range<usize> = 8..12;
    pub const RA_RETRANS_TIMER: Range<usize> = 12..16;
}

/// Why a received message is discarded, naming what was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the fixed part of its type (or than the 2 bytes of type and code).
    Truncated {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    /// Neither a Router Solicitation nor a Router Advertisement.
    Type(u8),
    /// RFC 4861: the code of both messages is 0.
    Code { msg_type: u8, code: u8 },
    /// An option whose length field is 0 (RFC 4861 section 4.6: discard the packet).
    OptionZeroLength { option_type: u8, offset: usize },
    /// An option whose length runs past the end of the message.
    OptionOverrun {
        option_type: u8,
        offset: usize,
        len: usize,
        remaining: usize,
    },
    /// An option header cut off: a single byte left after the last whole option.
    OptionHeaderTruncated { offset: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { what, needed, got } => {
                write!(f, "{what} truncated: {got} bytes where {needed} are needed")
            }
            Error::Type(t) => write!(f, "ICMPv6 type {t} is neither RS (133) nor RA (134)"),
            Error::Code { msg_type, code } => {
                write!(f, "ICMPv6 type {msg_type} with code {code}, not 0")
            }
            Error::OptionZeroLength {
                option_type,
                offset,
            } => write!(f, "option type {option_type} at byte {offset} has length 0"),
            Error::OptionOverrun {
                option_type,
                offset,
                len,
                remaining,
            } => write!(
                f,
                "option type {option_type} at byte {offset} is {len} bytes long but only {remaining} remain"
            ),
            Error::OptionHeaderTruncated { offset } => {
                write!(f, "option header at byte {offset} is cut off")
            }
        }
    }
}

impl std::error::Error for Error {}

fn be_u16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The fixed length of a message type, if it is one of ours.
fn header_len(msg_type: u8) -> Option<usize> {
    match msg_type {
        ROUTER_SOLICIT => Some(RS_HEADER_LEN),
        ROUTER_ADVERT => Some(RA_HEADER_LEN),
        _ => None,
    }
}

fn what(msg_type: u8) -> &'static str {
    if msg_type == ROUTER_ADVERT {
        "router advertisement"
    } else {
        "router solicitation"
    }
}

/// A view of an RS or RA over a buffer.
///
/// The accessors index without bounds checks beyond the slice's own: call them on a
/// view from `new_checked` (or after `check`), or they may panic. The RA accessors
/// read an RS's options as if they were RA fields: look at `msg_type` first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// The view, once the message passes every check that needs only its bytes.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Type, code, length of the fixed part, and the options' lengths.
    pub fn check(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        if data.len() < 2 {
            return Err(Error::Truncated {
                what: "ICMPv6 message",
                needed: 2,
                got: data.len(),
            });
        }
        let msg_type = data[field::TYPE];
        let needed = header_len(msg_type).ok_or(Error::Type(msg_type))?;
        if data[field::CODE] != 0 {
            return Err(Error::Code {
                msg_type,
                code: data[field::CODE],
            });
        }
        if data.len() < needed {
            return Err(Error::Truncated {
                what: what(msg_type),
                needed,
                got: data.len(),
            });
        }
        for opt in self.options() {
            opt?;
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// RA: Cur Hop Limit (0: unspecified).
    pub fn cur_hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::RA_HOP_LIMIT]
    }

    /// RA: the flags byte (`flags::*`).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::RA_FLAGS]
    }

    /// RA: Router Lifetime in seconds (0: not a default router).
    pub fn router_lifetime(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::RA_ROUTER_LIFETIME])
    }

    /// RA: Reachable Time in milliseconds (0: unspecified).
    pub fn reachable_time(&self) -> u32 {
        be_u32(&self.buffer.as_ref()[field::RA_REACHABLE_TIME])
    }

    /// RA: Retrans Timer in milliseconds (0: unspecified).
    pub fn retrans_timer(&self) -> u32 {
        be_u32(&self.buffer.as_ref()[field::RA_RETRANS_TIMER])
    }

    /// The options after the fixed part, each as (type, body after type and length).
    /// A malformed option ends the walk with its error.
    pub fn options(&self) -> Options<'_> {
        let data = self.buffer.as_ref();
        let start = header_len(data[field::TYPE]).unwrap_or(data.len());
        Options {
            data,
            offset: start.min(data.len()),
        }
    }

    /// The first Source Link-Layer Address option holding an Ethernet address (option
    /// length 1). Options of other lengths are another link layer's, and skipped.
    pub fn source_ll_addr(&self) -> Option<Mac> {
        self.options().find_map(|opt| match opt {
            Ok(Opt {
                option_type: option::SOURCE_LINK_LAYER_ADDR,
                body,
            }) => <[u8; 6]>::try_from(body).ok().map(Mac),
            _ => None,
        })
    }
}

/// One option: its type and its bytes after the type and length bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opt<'a> {
    pub option_type: u8,
    pub body: &'a [u8],
}

/// The options of a message, in order (`Packet::options`).
pub struct Options<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<Opt<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.data[self.offset..];
        if rest.is_empty() {
            return None;
        }
        let offset = self.offset;
        // Whatever happens now, the walk ends or moves past this option.
        self.offset = self.data.len();
        if rest.len() < 2 {
            return Some(Err(Error::OptionHeaderTruncated { offset }));
        }
        let option_type = rest[0];
        let len = usize::from(rest[1]) * OPTION_UNIT;
        if len == 0 {
            return Some(Err(Error::OptionZeroLength {
                option_type,
                offset,
            }));
        }
        if len > rest.len() {
            return Some(Err(Error::OptionOverrun {
                option_type,
                offset,
                len,
                remaining: rest.len(),
            }));
        }
        self.offset = offset + len;
        Some(Ok(Opt {
            option_type,
            body: &rest[2..len],
        }))
    }
}

/// A Router Solicitation as hostbgp reads and writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterSolicit {
    pub source_ll_addr: Option<Mac>,
}

/// A Router Advertisement as hostbgp reads and writes it: the fixed fields and the
/// Source Link-Layer Address. Other options (prefixes, MTU, RDNSS...) are skipped on
/// parse and never emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterAdvert {
    pub cur_hop_limit: u8,
    /// The flags byte (`flags::*`), reserved bits included as received.
    pub flags: u8,
    /// Seconds; 0 tells hosts not to use the sender as a default router.
    pub router_lifetime: u16,
    /// Milliseconds; 0 is unspecified.
    pub reachable_time: u32,
    /// Milliseconds; 0 is unspecified.
    pub retrans_timer: u32,
    pub source_ll_addr: Option<Mac>,
}

impl RouterAdvert {
    /// An RA that only announces the sender: no default router (lifetime 0), every
    /// other field unspecified, and the sender's MAC when known.
    pub fn announce(source_ll_addr: Option<Mac>) -> RouterAdvert {
        RouterAdvert {
            cur_hop_limit: 0,
            flags: 0,
            router_lifetime: 0,
            reachable_time: 0,
            retrans_timer: 0,
            source_ll_addr,
        }
    }
}

/// A parsed RS or RA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr {
    RouterSolicit(RouterSolicit),
    RouterAdvert(RouterAdvert),
}

/// The Source Link-Layer Address option of an Ethernet address: one unit.
const SLLA_LEN: usize = OPTION_UNIT;

impl Repr {
    /// Parses a checked view.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check()?;
        let source_ll_addr = packet.source_ll_addr();
        Ok(match packet.msg_type() {
            ROUTER_SOLICIT => Repr::RouterSolicit(RouterSolicit { source_ll_addr }),
            _ => Repr::RouterAdvert(RouterAdvert {
                cur_hop_limit: packet.cur_hop_limit(),
                flags: packet.flags(),
                router_lifetime: packet.router_lifetime(),
                reachable_time: packet.reachable_time(),
                retrans_timer: packet.retrans_timer(),
                source_ll_addr,
            }),
        })
    }

    /// Checks and parses a received message.
    pub fn from_bytes(bytes: &[u8]) -> Result<Repr, Error> {
        Repr::parse(&Packet::new_checked(bytes)?)
    }

    fn source_ll_addr(&self) -> Option<Mac> {
        match self {
            Repr::RouterSolicit(rs) => rs.source_ll_addr,
            Repr::RouterAdvert(ra) => ra.source_ll_addr,
        }
    }

    /// The length `emit` writes.
    pub fn buffer_len(&self) -> usize {
        let fixed = match self {
            Repr::RouterSolicit(_) => RS_HEADER_LEN,
            Repr::RouterAdvert(_) => RA_HEADER_LEN,
        };
        fixed + self.source_ll_addr().map_or(0, |_| SLLA_LEN)
    }

    /// Writes the message into the first `buffer_len()` bytes of `buf`, checksum
    /// zero (the kernel fills it in). Panics when `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..self.buffer_len()];
        buf.fill(0);
        let opts_at = match self {
            Repr::RouterSolicit(_) => {
                buf[field::TYPE] = ROUTER_SOLICIT;
                buf[field::RS_RESERVED].fill(0);
                RS_HEADER_LEN
            }
            Repr::RouterAdvert(ra) => {
                buf[field::TYPE] = ROUTER_ADVERT;
                buf[field::RA_HOP_LIMIT] = ra.cur_hop_limit;
                buf[field::RA_FLAGS] = ra.flags;
                buf[field::RA_ROUTER_LIFETIME].copy_from_slice(&ra.router_lifetime.to_be_bytes());
                buf[field::RA_REACHABLE_TIME].copy_from_slice(&ra.reachable_time.to_be_bytes());
                buf[field::RA_RETRANS_TIMER].copy_from_slice(&ra.retrans_timer.to_be_bytes());
                RA_HEADER_LEN
            }
        };
        buf[field::CODE] = 0;
        buf[field::CHECKSUM].fill(0);
        if let Some(mac) = self.source_ll_addr() {
            let opt = &mut buf[opts_at..opts_at + SLLA_LEN];
            opt[0] = option::SOURCE_LINK_LAYER_ADDR;
            opt[1] = (SLLA_LEN / OPTION_UNIT) as u8;
            opt[2..].copy_from_slice(&mac.0);
        }
    }

    /// The message as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len()];
        self.emit(&mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);

    /// FRR 8.4's RA as tcpdump showed it: hop limit 64, no flags, lifetime 30 s,
    /// reachable and retrans 0, Source Link-Layer Address fe:52:bf:3d:b0:49.
    const FRR_RA: [u8; 24] = [
        0x86, 0x00, 0x12, 0x34, // type 134, code 0, checksum (kernel's)
        0x40, 0x00, 0x00, 0x1e, // hop limit 64, flags, lifetime 30
        0x00, 0x00, 0x00, 0x00, // reachable
        0x00, 0x00, 0x00, 0x00, // retrans
        0x01, 0x01, 0xfe, 0x52, 0xbf, 0x3d, 0xb0, 0x49, // SLLA
    ];

    #[test]
    fn parses_frr_router_advertisement() {
        let packet = Packet::new_checked(&FRR_RA[..]).expect("valid");
        assert_eq!(packet.checksum(), 0x1234);
        let repr = Repr::parse(&packet).expect("parse");
        assert_eq!(
            repr,
            Repr::RouterAdvert(RouterAdvert {
                cur_hop_limit: 64,
                flags: 0,
                router_lifetime: 30,
                reachable_time: 0,
                retrans_timer: 0,
                source_ll_addr: Some(Mac([0xfe, 0x52, 0xbf, 0x3d, 0xb0, 0x49])),
            })
        );
    }

    #[test]
    fn emits_announcement_byte_for_byte() {
        let bytes = Repr::RouterAdvert(RouterAdvert::announce(Some(MAC))).to_bytes();
        assert_eq!(
            bytes,
            [
                0x86, 0, 0, 0, // type, code, checksum left to the kernel
                0, 0, 0, 0, // hop limit, flags, lifetime 0
                0, 0, 0, 0, 0, 0, 0, 0, // reachable, retrans
                1, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
            ]
        );
        let bare = Repr::RouterAdvert(RouterAdvert::announce(None)).to_bytes();
        assert_eq!(bare, [0x86, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn emits_solicitation_byte_for_byte() {
        let rs = Repr::RouterSolicit(RouterSolicit {
            source_ll_addr: Some(MAC),
        });
        assert_eq!(
            rs.to_bytes(),
            [0x85, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]
        );
        let bare = Repr::RouterSolicit(RouterSolicit {
            source_ll_addr: None,
        });
        assert_eq!(bare.to_bytes(), [0x85, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Repr::from_bytes(&bare.to_bytes()), Ok(bare));
        assert_eq!(Repr::from_bytes(&rs.to_bytes()), Ok(rs));
    }

    #[test]
    fn round_trips_every_field() {
        let ra = Repr::RouterAdvert(RouterAdvert {
            cur_hop_limit: 255,
            flags: flags::MANAGED | flags::OTHER | 0x08,
            router_lifetime: 9000,
            reachable_time: 0x0102_0304,
            retrans_timer: 0xa0b0_c0d0,
            source_ll_addr: Some(MAC),
        });
        let bytes = ra.to_bytes();
        assert_eq!(bytes.len(), ra.buffer_len());
        assert_eq!(
            &bytes[4..16],
            &[255, 0xc8, 0x23, 0x28, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0]
        );
        assert_eq!(Repr::from_bytes(&bytes), Ok(ra));
    }

    #[test]
    fn emit_overwrites_stale_bytes() {
        let mut buf = [0xaa; 32];
        let ra = Repr::RouterAdvert(RouterAdvert::announce(None));
        ra.emit(&mut buf);
        assert_eq!(
            &buf[..16],
            &[0x86, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(buf[16], 0xaa, "nothing written past buffer_len");
    }

    #[test]
    fn skips_unknown_and_other_options() {
        let mut ra = FRR_RA[..16].to_vec();
        // MTU option (1 unit), an unknown type 200 (2 units), then the SLLA.
        ra.extend_from_slice(&[5, 1, 0, 0, 0, 0, 0x05, 0xdc]);
        ra.extend_from_slice(&[200, 2, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]);
        ra.extend_from_slice(&[1, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
        let packet = Packet::new_checked(&ra[..]).expect("valid");
        let types: Vec<u8> = packet
            .options()
            .map(|o| o.expect("well-formed").option_type)
            .collect();
        assert_eq!(types, [option::MTU, 200, option::SOURCE_LINK_LAYER_ADDR]);
        assert_eq!(packet.source_ll_addr(), Some(MAC));
    }

    #[test]
    fn non_ethernet_source_link_layer_address_is_skipped() {
        let mut ra = FRR_RA[..16].to_vec();
        // A 2-unit SLLA (another link layer), then an Ethernet one.
        ra.extend_from_slice(&[1, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        ra.extend_from_slice(&[1, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
        assert_eq!(
            Packet::new_checked(&ra[..])
                .expect("valid")
                .source_ll_addr(),
            Some(MAC)
        );
        ra.truncate(32);
        assert_eq!(
            Packet::new_checked(&ra[..])
                .expect("valid")
                .source_ll_addr(),
            None
        );
    }

    #[test]
    fn rejects_other_types_and_codes() {
        // Neighbour Solicitation (135).
        assert_eq!(
            Packet::new_checked(&[135u8, 0, 0, 0, 0, 0, 0, 0][..]),
            Err(Error::Type(135))
        );
        let mut ra = FRR_RA;
        ra[1] = 1;
        assert_eq!(
            Packet::new_checked(&ra[..]),
            Err(Error::Code {
                msg_type: ROUTER_ADVERT,
                code: 1
            })
        );
        assert_eq!(
            Error::Code {
                msg_type: 134,
                code: 1
            }
            .to_string(),
            "ICMPv6 type 134 with code 1, not 0"
        );
    }

    #[test]
    fn rejects_truncated_fixed_parts() {
        assert_eq!(
            Packet::new_checked(&[][..] as &[u8]),
            Err(Error::Truncated {
                what: "ICMPv6 message",
                needed: 2,
                got: 0
            })
        );
        assert_eq!(
            Packet::new_checked(&FRR_RA[..15]),
            Err(Error::Truncated {
                what: "router advertisement",
                needed: 16,
                got: 15
            })
        );
        assert_eq!(
            Packet::new_checked(&[133u8, 0, 0, 0, 0, 0, 0][..]),
            Err(Error::Truncated {
                what: "router solicitation",
                needed: 8,
                got: 7
            })
        );
        assert_eq!(
            Error::Truncated {
                what: "router advertisement",
                needed: 16,
                got: 15
            }
            .to_string(),
            "router advertisement truncated: 15 bytes where 16 are needed"
        );
    }

    #[test]
    fn rejects_zero_length_option() {
        let mut ra = FRR_RA;
        ra[17] = 0;
        let err = Packet::new_checked(&ra[..]).unwrap_err();
        assert_eq!(
            err,
            Error::OptionZeroLength {
                option_type: 1,
                offset: 16
            }
        );
        assert_eq!(err.to_string(), "option type 1 at byte 16 has length 0");
    }

    #[test]
    fn rejects_option_overrun() {
        let mut ra = FRR_RA;
        ra[17] = 2;
        let err = Packet::new_checked(&ra[..]).unwrap_err();
        assert_eq!(
            err,
            Error::OptionOverrun {
                option_type: 1,
                offset: 16,
                len: 16,
                remaining: 8
            }
        );
        assert_eq!(
            err.to_string(),
            "option type 1 at byte 16 is 16 bytes long but only 8 remain"
        );
        // Cut inside the option body.
        assert!(matches!(
            Packet::new_checked(&FRR_RA[..20]),
            Err(Error::OptionOverrun { remaining: 4, .. })
        ));
    }

    #[test]
    fn rejects_cut_option_header() {
        let mut ra = FRR_RA.to_vec();
        ra.push(1);
        assert_eq!(
            Packet::new_checked(&ra[..]),
            Err(Error::OptionHeaderTruncated { offset: 24 })
        );
    }

    #[test]
    fn solicitation_options_start_after_eight_bytes() {
        let rs = [
            133u8, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
        ];
        assert_eq!(
            Repr::from_bytes(&rs),
            Ok(Repr::RouterSolicit(RouterSolicit {
                source_ll_addr: Some(MAC)
            }))
        );
        // An RS is valid with a non-zero reserved word (RFC 4861: ignored).
        let mut odd = rs;
        odd[4] = 0xff;
        assert!(Repr::from_bytes(&odd).is_ok());
    }

    #[test]
    fn parse_rechecks_an_unchecked_view() {
        let packet = Packet::new_unchecked(&FRR_RA[..10]);
        assert!(matches!(
            Repr::parse(&packet),
            Err(Error::Truncated { needed: 16, .. })
        ));
    }
}
