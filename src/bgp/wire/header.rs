//! Message header (RFC 4271 section 4.1), framing, and dispatch by message type.
use super::codes::{HeaderSubcode, RouteRefreshSubcode};
use super::reader::Reader;
use super::{
    notification, open, update, Codec, DecodeError, ErrorAction, Message, RouteRefresh, HEADER_LEN,
    MAX_MESSAGE_LEN,
};

pub const MARKER: [u8; 16] = [0xff; 16];
pub const MSG_OPEN: u8 = 1;
pub const MSG_UPDATE: u8 = 2;
pub const MSG_NOTIFICATION: u8 = 3;
pub const MSG_KEEPALIVE: u8 = 4;
pub const MSG_ROUTE_REFRESH: u8 = 5;

fn bad_length(len_bytes: &[u8], reason: String) -> DecodeError {
    DecodeError::new(
        HeaderSubcode::BadMessageLength,
        len_bytes.to_vec(),
        ErrorAction::SessionReset,
        reason,
    )
}

pub(crate) fn frame_len(buf: &[u8], codec: &Codec) -> Result<Option<usize>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16] != MARKER {
        return Err(DecodeError::new(
            HeaderSubcode::ConnectionNotSynchronized,
            Vec::new(),
            ErrorAction::SessionReset,
            "header marker is not all ones",
        ));
    }
    let len = u16::from_be_bytes([buf[16], buf[17]]) as usize;
    if len < HEADER_LEN || len > codec.max_len() {
        return Err(bad_length(
            &buf[16..18],
            format!("message length {len} outside 19..={}", codec.max_len()),
        ));
    }
    Ok(Some(len))
}

pub(crate) fn decode(buf: &[u8], codec: &Codec) -> Result<Message, DecodeError> {
    let len = match frame_len(buf, codec)? {
        Some(l) => l,
        None => {
            return Err(bad_length(
                buf.get(16..18).unwrap_or(&[]),
                format!("{} bytes is shorter than a header", buf.len()),
            ))
        }
    };
    let len_bytes = &buf[16..18];
    if len != buf.len() {
        return Err(bad_length(
            len_bytes,
            format!("header says {len} bytes but {} were given", buf.len()),
        ));
    }
    let typ = buf[18];
    let (min, max) = match typ {
        MSG_OPEN => (29, MAX_MESSAGE_LEN),
        MSG_UPDATE => (23, usize::MAX),
        MSG_NOTIFICATION => (21, usize::MAX),
        MSG_KEEPALIVE => (19, 19),
        MSG_ROUTE_REFRESH => (23, usize::MAX),
        _ => {
            return Err(DecodeError::new(
                HeaderSubcode::BadMessageType,
                vec![typ],
                ErrorAction::SessionReset,
                format!("unknown message type {typ}"),
            ))
        }
    };
    if len < min || len > max {
        return Err(bad_length(
            len_bytes,
            format!("bad length {len} for message type {typ}"),
        ));
    }
    let body = &buf[HEADER_LEN..];
    match typ {
        MSG_OPEN => open::decode(body).map(Message::Open),
        MSG_UPDATE => update::decode(body, codec).map(Message::Update),
        MSG_NOTIFICATION => Ok(Message::Notification(notification::decode(body))),
        MSG_KEEPALIVE => Ok(Message::Keepalive),
        _ => decode_route_refresh(body, len_bytes),
    }
}

fn decode_route_refresh(body: &[u8], len_bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::new(body);
    let (Some(afi), Some(subtype), Some(safi)) = (r.u16(), r.u8(), r.u8()) else {
        return Err(bad_length(len_bytes, "short ROUTE-REFRESH".into()));
    };
    if !r.is_empty() {
        // RFC 7313 section 5: subtypes 1 and 2 (BoRR/EoRR) get their own error.
        if subtype == 1 || subtype == 2 {
            return Err(DecodeError::new(
                RouteRefreshSubcode::InvalidMessageLength,
                body.to_vec(),
                ErrorAction::SessionReset,
                "ROUTE-REFRESH longer than 4 bytes",
            ));
        }
        return Err(bad_length(
            len_bytes,
            "ROUTE-REFRESH longer than 23 bytes".into(),
        ));
    }
    Ok(Message::RouteRefresh(RouteRefresh { afi, subtype, safi }))
}

pub(crate) fn encode(msg: &Message, codec: &Codec, out: &mut Vec<u8>) {
    let start = begin(out, msg.type_code());
    match msg {
        Message::Open(o) => open::encode(o, out),
        Message::Update(u) => update::encode(u, codec, out),
        Message::Notification(n) => {
            out.push(n.code.into());
            out.push(n.subcode);
            out.extend_from_slice(&n.data);
        }
        Message::Keepalive => {}
        Message::RouteRefresh(r) => {
            out.extend_from_slice(&r.afi.to_be_bytes());
            out.push(r.subtype);
            out.push(r.safi);
        }
    }
    finish(out, start);
}

/// Starts a message: marker, placeholder length, type. Returns its start offset.
#[inline]
pub(crate) fn begin(out: &mut Vec<u8>, typ: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, typ]);
    start
}

/// Writes the length of the message begun at `start`.
#[inline]
pub(crate) fn finish(out: &mut [u8], start: usize) {
    let len = (out.len() - start).min(u16::MAX as usize) as u16;
    out[start + 16..start + 18].copy_from_slice(&len.to_be_bytes());
}
