//! The control packet (RFC 5880 section 4.1): a zero-copy view with checked accessors,
//! and a `Repr` of the mandatory section.
//!
//! `Packet::new_checked` runs the reception checks of RFC 5880 section 6.8.6 that need
//! no session state, so a checked view is a packet a session may look at. The
//! authentication section is checked for shape only: hostbgp runs no authentication, so
//! `Repr::parse` rejects any packet with the A bit set, as 6.8.6 requires.
use std::fmt;
use std::time::Duration;

use super::codes::{Diagnostic, State};

/// The only protocol version (RFC 5880).
pub const VERSION: u8 = 1;
/// The mandatory section; also the whole packet when there is no authentication.
pub const HEADER_LEN: usize = 24;
/// Auth Type and Auth Len, the part of the authentication section every type has.
pub const AUTH_HEADER_LEN: usize = 2;
/// RFC 5880 section 6.8.6: with the A bit set the Length field must be at least this.
pub const MIN_AUTH_PACKET_LEN: usize = HEADER_LEN + AUTH_HEADER_LEN;

/// Authentication types (RFC 5880 section 4.1), for messages about rejected packets.
pub mod auth_type {
    pub const SIMPLE_PASSWORD: u8 = 1;
    pub const KEYED_MD5: u8 = 2;
    pub const METICULOUS_KEYED_MD5: u8 = 3;
    pub const KEYED_SHA1: u8 = 4;
    pub const METICULOUS_KEYED_SHA1: u8 = 5;
}

mod field {
    use std::ops::Range;

    pub const VERS_DIAG: usize = 0;
    pub const STA_FLAGS: usize = 1;
    pub const DETECT_MULT: usize = 2;
    pub const LENGTH: usize = 3;
    pub const MY_DISCRIMINATOR: Range<usize> = 4..8;
    pub const YOUR_DISCRIMINATOR: Range<usize> = 8..12;
    pub const DESIRED_MIN_TX: Range<usize> = 12..16;
    pub const REQUIRED_MIN_RX: Range<usize> = 16..20;
    pub const REQUIRED_MIN_ECHO_RX: Range<usize> = 20..24;
    pub const AUTH_TYPE: usize = 24;
    pub const AUTH_LEN: usize = 25;
}

mod bits {
    pub const VERSION_SHIFT: u8 = 5;
    pub const STATE_SHIFT: u8 = 6;
    pub const POLL: u8 = 0x20;
    pub const FINAL: u8 = 0x10;
    pub const CONTROL_PLANE_INDEPENDENT: u8 = 0x08;
    pub const AUTH_PRESENT: u8 = 0x04;
    pub const DEMAND: u8 = 0x02;
    pub const MULTIPOINT: u8 = 0x01;
}

/// Why a received packet is discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the mandatory section or than the Length field.
    Truncated {
        needed: usize,
        got: usize,
    },
    Version(u8),
    /// The Length field is below the minimum (24, or 26 with the A bit set).
    Length(u8),
    /// The authentication section is shorter than its own header or overruns Length.
    AuthLength {
        auth_len: u8,
        length: u8,
    },
    ZeroDetectMult,
    Multipoint,
    ZeroMyDiscriminator,
    /// Your Discriminator is zero, which only a Down or AdminDown sender may send.
    ZeroYourDiscriminator(State),
    /// The A bit is set but this speaker runs no authentication.
    Authenticated {
        auth_type: u8,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { needed, got } => {
                write!(f, "truncated: {got} bytes where {needed} are needed")
            }
            Error::Version(v) => write!(f, "version {v}, not {VERSION}"),
            Error::Length(len) => write!(f, "length field {len} is too small"),
            Error::AuthLength { auth_len, length } => write!(
                f,
                "authentication length {auth_len} does not fit a packet of length {length}"
            ),
            Error::ZeroDetectMult => f.write_str("detect multiplier is zero"),
            Error::Multipoint => f.write_str("multipoint bit set"),
            Error::ZeroMyDiscriminator => f.write_str("my discriminator is zero"),
            Error::ZeroYourDiscriminator(state) => {
                write!(f, "your discriminator is zero in state {state}")
            }
            Error::Authenticated { auth_type } => {
                write!(
                    f,
                    "authentication type {auth_type} requested, none configured"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    u32::from_be_bytes(word)
}

/// A view of a control packet over a buffer.
///
/// The accessors index without bounds checks beyond the slice's own: call them on a
/// view from `new_checked` (or after `check_len`), or they may panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// The view, once the packet passes every reception check that needs no session.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        packet.check_fields()?;
        Ok(packet)
    }

    /// The buffer holds the mandatory section and all `length()` bytes, and the
    /// Length field (and the authentication section's, when present) is consistent.
    pub fn check_len(&self) -> Result<(), Error> {
        let got = self.buffer.as_ref().len();
        if got < HEADER_LEN {
            return Err(Error::Truncated {
                needed: HEADER_LEN,
                got,
            });
        }
        let length = self.length();
        let min = if self.auth_present() {
            MIN_AUTH_PACKET_LEN
        } else {
            HEADER_LEN
        };
        if usize::from(length) < min {
            return Err(Error::Length(length));
        }
        if usize::from(length) > got {
            return Err(Error::Truncated {
                needed: usize::from(length),
                got,
            });
        }
        // With the A bit, `length` >= 26 is in the buffer: the section header is there.
        if let Some(auth_len) = self.auth_len() {
            let fits = usize::from(auth_len) >= AUTH_HEADER_LEN
                && HEADER_LEN + usize::from(auth_len) <= usize::from(length);
            if !fits {
                return Err(Error::AuthLength { auth_len, length });
            }
        }
        Ok(())
    }

    fn check_fields(&self) -> Result<(), Error> {
        if self.version() != VERSION {
            return Err(Error::Version(self.version()));
        }
        if self.detect_mult() == 0 {
            return Err(Error::ZeroDetectMult);
        }
        if self.multipoint() {
            return Err(Error::Multipoint);
        }
        if self.my_discriminator() == 0 {
            return Err(Error::ZeroMyDiscriminator);
        }
        let state = self.state();
        if self.your_discriminator() == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(Error::ZeroYourDiscriminator(state));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.bytes()[field::VERS_DIAG] >> bits::VERSION_SHIFT
    }

    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::from_bits(self.bytes()[field::VERS_DIAG])
    }

    pub fn state(&self) -> State {
        State::from_bits(self.bytes()[field::STA_FLAGS] >> bits::STATE_SHIFT)
    }

    fn flag(&self, mask: u8) -> bool {
        self.bytes()[field::STA_FLAGS] & mask != 0
    }

    pub fn poll(&self) -> bool {
        self.flag(bits::POLL)
    }

    pub fn final_(&self) -> bool {
        self.flag(bits::FINAL)
    }

    pub fn control_plane_independent(&self) -> bool {
        self.flag(bits::CONTROL_PLANE_INDEPENDENT)
    }

    pub fn auth_present(&self) -> bool {
        self.flag(bits::AUTH_PRESENT)
    }

    pub fn demand(&self) -> bool {
        self.flag(bits::DEMAND)
    }

    pub fn multipoint(&self) -> bool {
        self.flag(bits::MULTIPOINT)
    }

    pub fn detect_mult(&self) -> u8 {
        self.bytes()[field::DETECT_MULT]
    }

    /// The Length field: the packet's length in bytes, authentication included.
    pub fn length(&self) -> u8 {
        self.bytes()[field::LENGTH]
    }

    pub fn my_discriminator(&self) -> u32 {
        be_u32(&self.bytes()[field::MY_DISCRIMINATOR])
    }

    pub fn your_discriminator(&self) -> u32 {
        be_u32(&self.bytes()[field::YOUR_DISCRIMINATOR])
    }

    /// Microseconds, as on the wire.
    pub fn desired_min_tx(&self) -> u32 {
        be_u32(&self.bytes()[field::DESIRED_MIN_TX])
    }

    /// Microseconds, as on the wire.
    pub fn required_min_rx(&self) -> u32 {
        be_u32(&self.bytes()[field::REQUIRED_MIN_RX])
    }

    /// Microseconds, as on the wire.
    pub fn required_min_echo_rx(&self) -> u32 {
        be_u32(&self.bytes()[field::REQUIRED_MIN_ECHO_RX])
    }

    /// The authentication section's Auth Type, when the A bit says there is one.
    pub fn auth_type(&self) -> Option<u8> {
        self.auth_byte(field::AUTH_TYPE)
    }

    /// The authentication section's Auth Len, when the A bit says there is one.
    pub fn auth_len(&self) -> Option<u8> {
        self.auth_byte(field::AUTH_LEN)
    }

    fn auth_byte(&self, index: usize) -> Option<u8> {
        if self.auth_present() {
            self.bytes().get(index).copied()
        } else {
            None
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Also sets the version, which shares the byte.
    pub fn set_diagnostic(&mut self, diagnostic: Diagnostic) {
        self.bytes_mut()[field::VERS_DIAG] = (VERSION << bits::VERSION_SHIFT) | diagnostic.bits();
    }

    /// Sets the state and every flag at once: they share one byte.
    pub fn set_state_and_flags(&mut self, state: State, flags: u8) {
        self.bytes_mut()[field::STA_FLAGS] = (state.bits() << bits::STATE_SHIFT) | (flags & 0x3f);
    }

    pub fn set_detect_mult(&mut self, mult: u8) {
        self.bytes_mut()[field::DETECT_MULT] = mult;
    }

    pub fn set_length(&mut self, length: u8) {
        self.bytes_mut()[field::LENGTH] = length;
    }

    pub fn set_my_discriminator(&mut self, value: u32) {
        self.bytes_mut()[field::MY_DISCRIMINATOR].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_your_discriminator(&mut self, value: u32) {
        self.bytes_mut()[field::YOUR_DISCRIMINATOR].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_desired_min_tx(&mut self, micros: u32) {
        self.bytes_mut()[field::DESIRED_MIN_TX].copy_from_slice(&micros.to_be_bytes());
    }

    pub fn set_required_min_rx(&mut self, micros: u32) {
        self.bytes_mut()[field::REQUIRED_MIN_RX].copy_from_slice(&micros.to_be_bytes());
    }

    pub fn set_required_min_echo_rx(&mut self, micros: u32) {
        self.bytes_mut()[field::REQUIRED_MIN_ECHO_RX].copy_from_slice(&micros.to_be_bytes());
    }
}

/// An interval field as a `Duration` (the wire counts microseconds).
pub fn micros_to_duration(micros: u32) -> Duration {
    Duration::from_micros(u64::from(micros))
}

/// The wire form of an interval: whole microseconds, saturating at the field's maximum
/// (71 minutes, far above any BFD timer).
pub fn duration_to_micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The mandatory section of an unauthenticated control packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub state: State,
    pub diagnostic: Diagnostic,
    pub poll: bool,
    pub final_: bool,
    pub control_plane_independent: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub required_min_echo_rx: Duration,
}

impl Repr {
    /// What `emit` writes: no authentication section.
    pub const BUFFER_LEN: usize = HEADER_LEN;

    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        packet.check_fields()?;
        if let Some(auth_type) = packet.auth_type() {
            return Err(Error::Authenticated { auth_type });
        }
        Ok(Repr {
            state: packet.state(),
            diagnostic: packet.diagnostic(),
            poll: packet.poll(),
            final_: packet.final_(),
            control_plane_independent: packet.control_plane_independent(),
            demand: packet.demand(),
            detect_mult: packet.detect_mult(),
            my_discriminator: packet.my_discriminator(),
            your_discriminator: packet.your_discriminator(),
            desired_min_tx: micros_to_duration(packet.desired_min_tx()),
            required_min_rx: micros_to_duration(packet.required_min_rx()),
            required_min_echo_rx: micros_to_duration(packet.required_min_echo_rx()),
        })
    }

    /// Checks and parses a received datagram's payload.
    pub fn decode(bytes: &[u8]) -> Result<Repr, Error> {
        Repr::parse(&Packet::new_checked(bytes)?)
    }

    /// Writes the first `BUFFER_LEN` bytes of `packet`, which must hold that many.
    /// Nothing is validated: a session only builds packets it may send.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let mut flags = 0;
        for (set, mask) in [
            (self.poll, bits::POLL),
            (self.final_, bits::FINAL),
            (
                self.control_plane_independent,
                bits::CONTROL_PLANE_INDEPENDENT,
            ),
            (self.demand, bits::DEMAND),
        ] {
            if set {
                flags |= mask;
            }
        }
        packet.set_diagnostic(self.diagnostic);
        packet.set_state_and_flags(self.state, flags);
        packet.set_detect_mult(self.detect_mult);
        // HEADER_LEN is 24: it fits the 8-bit field.
        packet.set_length(HEADER_LEN as u8);
        packet.set_my_discriminator(self.my_discriminator);
        packet.set_your_discriminator(self.your_discriminator);
        packet.set_desired_min_tx(duration_to_micros(self.desired_min_tx));
        packet.set_required_min_rx(duration_to_micros(self.required_min_rx));
        packet.set_required_min_echo_rx(duration_to_micros(self.required_min_echo_rx));
    }

    /// The datagram payload to send.
    pub fn to_bytes(&self) -> [u8; Repr::BUFFER_LEN] {
        let mut bytes = [0u8; Repr::BUFFER_LEN];
        self.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        bytes
    }
}
