//! BFD, Bidirectional Forwarding Detection (RFC 5880), asynchronous mode for single-hop
//! sessions (RFC 5881): it tells BGP within a second that a peer is unreachable, where
//! the hold timer would take minutes. Pure, like `bgp::wire`: no sockets, no clocks.
//!
//! Layout, one job per file:
//! - `codes`: the State and Diag fields.
//! - `packet`: the control packet. `Packet` is a zero-copy view whose `new_checked`
//!   runs the reception checks that need no session; `Repr` is what the state machine
//!   reads and writes. Authenticated packets are rejected (no authentication here).
//! - `demux`: local discriminators, and which session a packet is for.
//! - `timers`: interval negotiation, detection time and transmit jitter.
//! - `session`: one session's state machine, `Session::handle(Event) -> Vec<Action>`.
//!
//! The socket task (to come) owns, per peer, a `Session` and its two timers, and:
//! - receives on UDP 3784 (RFC 5881 section 4; IPv4 and IPv6), and drops datagrams
//!   whose TTL or hop limit is not 255 (`IP_RECVTTL`/`IPV6_RECVHOPLIMIT`, section 5):
//!   that check is what makes single hop safe without authentication;
//! - decodes with `Repr::decode`, finds the session with `Demux::lookup` keyed by
//!   source address and interface, and feeds `Event::Received`;
//! - sends from a source port in 49152..=65535 (section 4) with TTL 255, to port 3784;
//! - turns each `Action` into a send, a timer (re)arm or a notification, and feeds
//!   `Event::TransmitTimerExpired` and `Event::DetectionTimerExpired` when they fire;
//! - calls `Session::start` once, after `Demux::insert` gave the discriminator.
//!
//! For BGP: `Action::SessionDown(cause)` with `cause.is_path_failure()` closes the BGP
//! session at once; `Action::SessionUp` lets it start.
pub mod codes;
pub mod demux;
pub mod packet;
pub mod session;
pub mod timers;

#[cfg(test)]
mod captures;
#[cfg(test)]
mod packet_tests;
#[cfg(test)]
mod session_tests;

pub use codes::{Diagnostic, State};
pub use demux::{Demux, LookupError};
pub use packet::{Error, Packet, Repr};
pub use session::{Action, Config, DownCause, Event, Session};
pub use timers::{Jitter, XorShift32};

/// RFC 5881 section 4: single-hop control packets go to this UDP port.
pub const CONTROL_PORT: u16 = 3784;
/// RFC 5881 section 4: the source port range for control packets.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 section 5: sent with, and only accepted with, this TTL or hop limit.
pub const TTL: u8 = 255;
