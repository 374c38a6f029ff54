//! OPEN (RFC 4271 section 4.2), capabilities (RFC 5492) and extended optional
//! parameters (RFC 9072).
use std::net::Ipv4Addr;

use super::codes::{CapabilityCode, OpenSubcode};
use super::reader::Reader;
use super::{
    Capability, DecodeError, ErrorAction, ExtendedNextHopEntry, GracefulRestart,
    GracefulRestartFamily, Open,
};

const PARAM_CAPABILITIES: u8 = 2;
const PARAM_EXTENDED: u8 = 255;
const GR_RESTART_STATE: u16 = 0x8000;
const GR_NOTIFICATION: u16 = 0x4000;
const GR_TIME_MASK: u16 = 0x0fff;
const GR_FORWARDING: u8 = 0x80;

impl Open {
    /// The speaker's AS: the 4-octet AS capability if present, else `my_as`.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(self.my_as as u32)
    }
}

impl Capability {
    pub fn code(&self) -> CapabilityCode {
        match self {
            Capability::Multiprotocol { .. } => CapabilityCode::Multiprotocol,
            Capability::RouteRefresh => CapabilityCode::RouteRefresh,
            Capability::ExtendedNextHop(_) => CapabilityCode::ExtendedNextHop,
            Capability::ExtendedMessage => CapabilityCode::ExtendedMessage,
            Capability::GracefulRestart(_) => CapabilityCode::GracefulRestart,
            Capability::FourOctetAs(_) => CapabilityCode::FourOctetAs,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Appends code, length and value. Values longer than 255 bytes cannot be
    /// expressed; they are cut to 255.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.code().into());
        let len_at = out.len();
        out.push(0);
        match self {
            Capability::Multiprotocol { afi, safi } => {
                out.extend_from_slice(&afi.to_be_bytes());
                out.push(0);
                out.push(*safi);
            }
            Capability::RouteRefresh | Capability::ExtendedMessage => {}
            Capability::ExtendedNextHop(entries) => {
                for e in entries.iter().take(42) {
                    out.extend_from_slice(&e.nlri_afi.to_be_bytes());
                    out.extend_from_slice(&e.nlri_safi.to_be_bytes());
                    out.extend_from_slice(&e.next_hop_afi.to_be_bytes());
                }
            }
            Capability::GracefulRestart(gr) => {
                let mut v = gr.restart_time & GR_TIME_MASK;
                if gr.restart_state {
                    v |= GR_RESTART_STATE;
                }
                if gr.notification {
                    v |= GR_NOTIFICATION;
                }
                out.extend_from_slice(&v.to_be_bytes());
                for f in gr.families.iter().take(63) {
                    out.extend_from_slice(&f.afi.to_be_bytes());
                    out.push(f.safi);
                    out.push(if f.forwarding_state { GR_FORWARDING } else { 0 });
                }
            }
            Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
            Capability::Unknown { value, .. } => {
                out.extend_from_slice(&value[..value.len().min(255)])
            }
        }
        out[len_at] = (out.len() - len_at - 1).min(255) as u8;
    }

    /// Decodes one capability value; `Err` is a reason text.
    pub fn decode(code: CapabilityCode, value: &[u8]) -> Result<Capability, String> {
        let bad = |what: &str| Err(format!("{what} capability with length {}", value.len()));
        let mut r = Reader::new(value);
        // A hand-made `Other` of a named code is read as that code.
        Ok(match CapabilityCode::from(u8::from(code)) {
            CapabilityCode::Multiprotocol => {
                if value.len() != 4 {
                    return bad("Multiprotocol");
                }
                Capability::Multiprotocol {
                    afi: u16::from_be_bytes([value[0], value[1]]),
                    safi: value[3],
                }
            }
            CapabilityCode::RouteRefresh | CapabilityCode::ExtendedMessage if !value.is_empty() => {
                return bad("Route Refresh / Extended Message");
            }
            CapabilityCode::RouteRefresh => Capability::RouteRefresh,
            CapabilityCode::ExtendedMessage => Capability::ExtendedMessage,
            CapabilityCode::ExtendedNextHop => {
                if value.len() % 6 != 0 {
                    return bad("Extended Next Hop");
                }
                let mut entries = Vec::with_capacity(value.len() / 6);
                while let (Some(nlri_afi), Some(nlri_safi), Some(next_hop_afi)) =
                    (r.u16(), r.u16(), r.u16())
                {
                    entries.push(ExtendedNextHopEntry {
                        nlri_afi,
                        nlri_safi,
                        next_hop_afi,
                    });
                }
                Capability::ExtendedNextHop(entries)
            }
            CapabilityCode::GracefulRestart => {
                if value.len() < 2 || (value.len() - 2) % 4 != 0 {
                    return bad("Graceful Restart");
                }
                let v = r.u16().unwrap_or(0);
                let mut families = Vec::with_capacity((value.len() - 2) / 4);
                while let (Some(afi), Some(safi), Some(flags)) = (r.u16(), r.u8(), r.u8()) {
                    families.push(GracefulRestartFamily {
                        afi,
                        safi,
                        forwarding_state: flags & GR_FORWARDING != 0,
                    });
                }
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: v & GR_RESTART_STATE != 0,
                    notification: v & GR_NOTIFICATION != 0,
                    restart_time: v & GR_TIME_MASK,
                    families,
                })
            }
            CapabilityCode::FourOctetAs => match r.u32() {
                Some(asn) if value.len() == 4 => Capability::FourOctetAs(asn),
                _ => return bad("4-octet AS"),
            },
            CapabilityCode::Other(_) => Capability::Unknown {
                code,
                value: value.to_vec(),
            },
        })
    }
}

pub(crate) fn encode(o: &Open, out: &mut Vec<u8>) {
    out.push(o.version);
    out.extend_from_slice(&o.my_as.to_be_bytes());
    out.extend_from_slice(&o.hold_time.to_be_bytes());
    out.extend_from_slice(&o.bgp_id.octets());
    if o.capabilities.is_empty() {
        out.push(0);
        return;
    }
    let mut caps = Vec::with_capacity(64);
    for c in &o.capabilities {
        c.encode(&mut caps);
    }
    if caps.len() + 2 <= 255 {
        out.push((caps.len() + 2) as u8);
        out.push(PARAM_CAPABILITIES);
        out.push(caps.len() as u8);
    } else {
        // RFC 9072 extended optional parameters.
        let caps_len = caps.len().min(u16::MAX as usize - 3) as u16;
        out.push(255);
        out.push(PARAM_EXTENDED);
        out.extend_from_slice(&(caps_len + 3).to_be_bytes());
        out.push(PARAM_CAPABILITIES);
        out.extend_from_slice(&caps_len.to_be_bytes());
        caps.truncate(caps_len as usize);
    }
    out.extend_from_slice(&caps);
}

fn open_err(subcode: OpenSubcode, data: Vec<u8>, reason: impl Into<String>) -> DecodeError {
    DecodeError::new(subcode, data, ErrorAction::SessionReset, reason)
}

/// The parameters' declared length (`what`'s) must be what follows.
fn check_params_len(what: &str, declared: usize, params: &[u8]) -> Result<(), DecodeError> {
    if declared == params.len() {
        return Ok(());
    }
    Err(open_err(
        OpenSubcode::Unspecific,
        Vec::new(),
        format!("{what} length {declared} but {} bytes follow", params.len()),
    ))
}

pub(crate) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
    let mut r = Reader::new(body);
    let (Some(version), Some(my_as), Some(hold_time), Some(id), Some(opt_len)) =
        (r.u8(), r.u16(), r.u16(), r.u32(), r.u8())
    else {
        return Err(open_err(
            OpenSubcode::Unspecific,
            Vec::new(),
            "truncated OPEN",
        ));
    };
    if version != 4 {
        return Err(open_err(
            OpenSubcode::UnsupportedVersionNumber,
            vec![0, 4],
            format!("BGP version {version}, only 4 is supported"),
        ));
    }
    if hold_time == 1 || hold_time == 2 {
        return Err(open_err(
            OpenSubcode::UnacceptableHoldTime,
            Vec::new(),
            format!("hold time {hold_time}"),
        ));
    }
    let bgp_id = Ipv4Addr::from(id);
    if id == 0 {
        return Err(open_err(
            OpenSubcode::BadBgpIdentifier,
            Vec::new(),
            "BGP identifier 0.0.0.0",
        ));
    }
    let rest = r.rest();
    let extended = opt_len == 255 && rest.first() == Some(&PARAM_EXTENDED);
    let params = if extended {
        let mut r = Reader::new(&rest[1..]);
        let Some(ext_len) = r.u16() else {
            return Err(open_err(
                OpenSubcode::Unspecific,
                Vec::new(),
                "truncated extended optional parameters",
            ));
        };
        let params = r.rest();
        check_params_len("extended optional parameters", ext_len.into(), params)?;
        params
    } else {
        check_params_len("optional parameters", opt_len.into(), rest)?;
        rest
    };
    let mut capabilities = Vec::new();
    let mut r = Reader::new(params);
    while !r.is_empty() {
        let ptype = r.u8().unwrap_or(0);
        let plen = if extended {
            r.u16()
        } else {
            r.u8().map(u16::from)
        };
        let Some(value) = plen.and_then(|l| r.take(l as usize)) else {
            return Err(open_err(
                OpenSubcode::Unspecific,
                Vec::new(),
                "optional parameter overruns the OPEN",
            ));
        };
        if ptype != PARAM_CAPABILITIES {
            return Err(open_err(
                OpenSubcode::UnsupportedOptionalParameter,
                Vec::new(),
                format!("unsupported optional parameter type {ptype}"),
            ));
        }
        let mut cr = Reader::new(value);
        while !cr.is_empty() {
            let code = cr.u8().unwrap_or(0);
            let Some(cval) = cr.u8().and_then(|l| cr.take(l as usize)) else {
                return Err(open_err(
                    OpenSubcode::Unspecific,
                    Vec::new(),
                    format!("capability {code} overruns its parameter"),
                ));
            };
            capabilities.push(Capability::decode(code.into(), cval).map_err(|e| {
                open_err(
                    OpenSubcode::Unspecific,
                    Vec::new(),
                    format!("malformed {e}"),
                )
            })?);
        }
    }
    Ok(Open {
        version,
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}
