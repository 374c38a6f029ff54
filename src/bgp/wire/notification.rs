//! NOTIFICATION (RFC 4271 section 4.5) and the shutdown communication (RFC 8203/9003).
use std::fmt;

use super::codes;
use super::Notification;

pub(crate) fn decode(body: &[u8]) -> Notification {
    // The header check guarantees at least 2 bytes.
    Notification {
        code: body.first().copied().unwrap_or(0),
        subcode: body.get(1).copied().unwrap_or(0),
        data: body.get(2..).unwrap_or(&[]).to_vec(),
    }
}

/// Longest shutdown communication (RFC 9003).
pub const MAX_SHUTDOWN_MESSAGE_LEN: usize = 255;

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// Cease with `subcode` (RFC 4486) and no data.
    pub fn cease(subcode: u8) -> Notification {
        Notification::new(codes::CEASE, subcode, Vec::new())
    }

    /// Cease/Administrative Shutdown carrying `message` (truncated to 255 bytes on a
    /// character boundary).
    pub fn cease_shutdown(message: &str) -> Notification {
        let mut end = message.len().min(MAX_SHUTDOWN_MESSAGE_LEN);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&message.as_bytes()[..end]);
        Notification::new(codes::CEASE, codes::cease::ADMINISTRATIVE_SHUTDOWN, data)
    }

    /// The shutdown communication of a Cease/Administrative Shutdown or Reset, if any
    /// (invalid UTF-8 is replaced, a length past the data is clipped).
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != codes::CEASE
            || (self.subcode != codes::cease::ADMINISTRATIVE_SHUTDOWN
                && self.subcode != codes::cease::ADMINISTRATIVE_RESET)
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        if len == 0 {
            return None;
        }
        let text = rest.get(..len as usize).unwrap_or(rest);
        Some(String::from_utf8_lossy(text).into_owned())
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match codes::code_name(self.code) {
            Some(name) => f.write_str(name)?,
            None => write!(f, "Error code {}", self.code)?,
        }
        match codes::subcode_name(self.code, self.subcode) {
            Some(name) => write!(f, "/{name}")?,
            None => write!(f, "/subcode {}", self.subcode)?,
        }
        if let Some(msg) = self.shutdown_message() {
            write!(f, ": {msg:?}")
        } else if !self.data.is_empty() {
            f.write_str(" (data ")?;
            for b in self.data.iter().take(64) {
                write!(f, "{b:02x}")?;
            }
            if self.data.len() > 64 {
                f.write_str("...")?;
            }
            f.write_str(")")
        } else {
            Ok(())
        }
    }
}
