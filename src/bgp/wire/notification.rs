//! NOTIFICATION (RFC 4271 section 4.5) and the shutdown communication (RFC 8203/9003).
use std::fmt;

use super::codes::{CeaseSubcode, ErrorCode, Subcode};
use super::Notification;

pub(crate) fn decode(body: &[u8]) -> Notification {
    // The header check guarantees at least 2 bytes.
    Notification {
        code: body.first().copied().unwrap_or(0).into(),
        subcode: body.get(1).copied().unwrap_or(0),
        data: body.get(2..).unwrap_or(&[]).to_vec(),
    }
}

/// Longest shutdown communication (RFC 9003).
pub const MAX_SHUTDOWN_MESSAGE_LEN: usize = 255;

impl Notification {
    /// Any code and any subcode byte: for a code with no subcodes of its own (Hold
    /// Timer Expired) and for bytes taken as they are; `error` is the typed way.
    pub fn new(code: impl Into<ErrorCode>, subcode: u8, data: Vec<u8>) -> Notification {
        Notification {
            code: code.into(),
            subcode,
            data,
        }
    }

    /// `subcode` under the code it belongs to, so that the two cannot disagree.
    pub fn error<S: Subcode>(subcode: S, data: Vec<u8>) -> Notification {
        Notification::new(S::CODE, subcode.into(), data)
    }

    /// Cease with `subcode` (RFC 4486) and no data.
    pub fn cease(subcode: CeaseSubcode) -> Notification {
        Notification::error(subcode, Vec::new())
    }

    /// The subcode as one of `S`, when the code is `S`'s.
    pub fn subcode_of<S: Subcode>(&self) -> Option<S> {
        (self.code == S::CODE).then(|| S::from(self.subcode))
    }

    /// Whether this is `subcode` under its code.
    pub fn is<S: Subcode>(&self, subcode: S) -> bool {
        self.subcode_of() == Some(subcode)
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
        Notification::error(CeaseSubcode::AdministrativeShutdown, data)
    }

    /// Cease/Hard Reset carrying `inner` (RFC 8538 section 3): its code, subcode and
    /// data become the data, so the peer still learns why.
    pub fn hard_reset(inner: &Notification) -> Notification {
        let mut data = Vec::with_capacity(inner.data.len() + 2);
        data.push(inner.code.into());
        data.push(inner.subcode);
        data.extend_from_slice(&inner.data);
        Notification::error(CeaseSubcode::HardReset, data)
    }

    pub fn is_hard_reset(&self) -> bool {
        self.is(CeaseSubcode::HardReset)
    }

    /// The NOTIFICATION a Cease/Hard Reset carries, when it carries one.
    pub fn hard_reset_inner(&self) -> Option<Notification> {
        if !self.is_hard_reset() || self.data.len() < 2 {
            return None;
        }
        Some(decode(&self.data))
    }

    /// "Code/Subcode" in words; a Hard Reset names what it carries:
    /// `Cease/Hard Reset (Hold Timer Expired/Unspecific)`.
    pub fn name(&self) -> String {
        let code = match self.code.name() {
            Some(name) => name.to_string(),
            None => format!("Error code {}", u8::from(self.code)),
        };
        let subcode = match self.code.subcode_name(self.subcode) {
            Some(name) => name.to_string(),
            None => format!("subcode {}", self.subcode),
        };
        match self.hard_reset_inner() {
            Some(inner) if !inner.is_hard_reset() => {
                format!("{code}/{subcode} ({})", inner.name())
            }
            _ => format!("{code}/{subcode}"),
        }
    }

    /// The shutdown communication of a Cease/Administrative Shutdown or Reset, if any
    /// (invalid UTF-8 is replaced, a length past the data is clipped), also when a
    /// Hard Reset carries it.
    pub fn shutdown_message(&self) -> Option<String> {
        if let Some(inner) = self.hard_reset_inner().filter(|i| !i.is_hard_reset()) {
            return inner.shutdown_message();
        }
        if !matches!(
            self.subcode_of(),
            Some(CeaseSubcode::AdministrativeShutdown | CeaseSubcode::AdministrativeReset)
        ) {
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
        f.write_str(&self.name())?;
        // A Hard Reset's data is the NOTIFICATION its name already gave.
        let data = match self.hard_reset_inner() {
            Some(inner) if !inner.is_hard_reset() => inner.data,
            _ => self.data.clone(),
        };
        if let Some(msg) = self.shutdown_message() {
            write!(f, ": {msg:?}")
        } else if !data.is_empty() {
            f.write_str(" (data ")?;
            for b in data.iter().take(64) {
                write!(f, "{b:02x}")?;
            }
            if data.len() > 64 {
                f.write_str("...")?;
            }
            f.write_str(")")
        } else {
            Ok(())
        }
    }
}
