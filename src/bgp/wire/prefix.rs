//! NLRI prefix encoding (RFC 4271 section 4.3, RFC 4760 section 5): length byte, then
//! the minimum number of octets; trailing bits are zeroed on both write and read.
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::Family;

/// Bytes one prefix takes on the wire.
#[inline]
pub(crate) fn wire_len(prefix_len: u8) -> usize {
    1 + (prefix_len as usize).div_ceil(8)
}

#[inline]
pub(crate) fn put_v4(out: &mut Vec<u8>, p: &Ipv4Net) {
    let len = p.prefix_len();
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let bytes = (u32::from(p.addr()) & mask).to_be_bytes();
    out.push(len);
    out.extend_from_slice(&bytes[..(len as usize).div_ceil(8)]);
}

#[inline]
pub(crate) fn put_v6(out: &mut Vec<u8>, p: &Ipv6Net) {
    let len = p.prefix_len();
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    let bytes = (u128::from(p.addr()) & mask).to_be_bytes();
    out.push(len);
    out.extend_from_slice(&bytes[..(len as usize).div_ceil(8)]);
}

#[inline]
pub(crate) fn put(out: &mut Vec<u8>, p: &IpNet) {
    match p {
        IpNet::V4(p) => put_v4(out, p),
        IpNet::V6(p) => put_v6(out, p),
    }
}

/// Why a prefix list failed to parse.
#[derive(Debug)]
pub(crate) enum PrefixError {
    TooLong(u8),
    Truncated,
}

impl std::fmt::Display for PrefixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrefixError::TooLong(l) => write!(f, "prefix length {l} too long"),
            PrefixError::Truncated => write!(f, "prefix runs past the end of its field"),
        }
    }
}

fn read_one(buf: &[u8], pos: &mut usize, max_bits: u8) -> Result<(u8, [u8; 16]), PrefixError> {
    let len = *buf.get(*pos).ok_or(PrefixError::Truncated)?;
    if len > max_bits {
        return Err(PrefixError::TooLong(len));
    }
    let n = (len as usize).div_ceil(8);
    let start = *pos + 1;
    let bytes = buf.get(start..start + n).ok_or(PrefixError::Truncated)?;
    let mut addr = [0u8; 16];
    addr[..n].copy_from_slice(bytes);
    if len % 8 != 0 {
        if let Some(last) = addr.get_mut(n - 1) {
            *last &= 0xffu8 << (8 - len % 8);
        }
    }
    *pos = start + n;
    Ok((len, addr))
}

pub(crate) fn read_v4_list(buf: &[u8]) -> Result<Vec<Ipv4Net>, PrefixError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let (len, a) = read_one(buf, &mut pos, 32)?;
        let addr = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
        out.push(Ipv4Net::new(addr, len).map_err(|_| PrefixError::TooLong(len))?);
    }
    Ok(out)
}

pub(crate) fn read_list(buf: &[u8], family: Family) -> Result<Vec<IpNet>, PrefixError> {
    match family {
        Family::Ipv4Unicast => Ok(read_v4_list(buf)?.into_iter().map(IpNet::V4).collect()),
        Family::Ipv6Unicast => {
            let mut out = Vec::new();
            let mut pos = 0;
            while pos < buf.len() {
                let (len, a) = read_one(buf, &mut pos, 128)?;
                let net =
                    Ipv6Net::new(Ipv6Addr::from(a), len).map_err(|_| PrefixError::TooLong(len))?;
                out.push(IpNet::V6(net));
            }
            Ok(out)
        }
    }
}
