//! BFD, Bidirectional Forwarding Detection (RFC 5880), asynchronous mode for single-hop
//! sessions (RFC 5881): it tells BGP within a second that a peer is unreachable, where
//! the hold timer would take minutes. Pure, like `bgp::wire`: no sockets, no clocks.
//! No authentication (authenticated packets are rejected), no Echo function, no Demand
//! mode of our own (a peer's is honoured).
//!
//! Layout, one job per file:
//! - `codes`: the State and Diag fields.
//! - `packet`: the control packet. `Packet` is a zero-copy view whose `new_checked`
//!   runs the reception checks of RFC 5880 section 6.8.6 that need no session; `Repr`
//!   is what the state machine reads and writes (`Repr::decode`, `Repr::to_bytes`).
//! - `demux`: local discriminators (unique, non-zero, random) and which session a
//!   packet is for (by Your Discriminator, else by peer).
//! - `peer`: how a peer is named: its address, and a link-local one's interface
//!   (RFC 5881 binds a single-hop session to both), and where its packets go.
//! - `timers`: interval negotiation, detection time and transmit jitter, and the
//!   `Jitter` trait the randomness comes through.
//! - `session`: one session's state machine: `Session::handle(Event, jitter)` returns
//!   the `Action`s to carry out. It negotiates timers (one packet a second while not
//!   Up), runs Poll Sequences when our intervals change (including on reaching Up),
//!   answers Polls with Final, and says why it went down (`DownCause`).
//! - `captures` (tests): bird 2.0.12's packets; the session, in bird's place, sends
//!   the same bytes.
//!
//! The socket task (next) owns a `Demux` and, per peer, a `Session` with two timers:
//! - it receives on UDP 3784, IPv4 and IPv6 (RFC 5881 section 4), with
//!   `IP_RECVTTL`/`IPV6_RECVHOPLIMIT`, and drops datagrams whose TTL or hop limit is
//!   not 255 (section 5): that check is what makes single hop safe without
//!   authentication. It needs the receiving interface too (`IP_PKTINFO`,
//!   `IPV6_RECVPKTINFO`) for link-local peers and for the demux key;
//! - decodes with `Repr::decode`, finds the session with `Demux::lookup` keyed by
//!   source address and interface, and feeds `Event::Received`; the detection timer
//!   it restarts runs from the datagram's arrival (`SO_TIMESTAMPNS`), so while every
//!   session is Up and steady the sockets are read at the task's own wake-ups rather
//!   than each packet waking it;
//! - sends with TTL/hop limit 255 from a source port in 49152..=65535 (section 4),
//!   the same one for all of a session's packets, to port 3784;
//! - carries out each `Action` in order: `Send` at once, `Arm*Timer` replaces that
//!   timer's deadline, `StopDetectionTimer` cancels it; and feeds
//!   `Event::TransmitTimerExpired` / `Event::DetectionTimerExpired` when they fire;
//! - seeds an `XorShift32` (clock, pid) for jitter and discriminators, calls
//!   `Demux::insert` for the discriminator, then `Session::start` once; a removed peer
//!   gets `Event::AdminDown` (its packets tell the router it was deliberate) before the
//!   socket closes.
//!
//! For BGP: `Action::SessionDown(cause)` with `cause.is_path_failure()` closes the BGP
//! session at once (an AdminDown on either side is not a failure, RFC 5882 section
//! 3.2); `Action::SessionUp` lets it start. `Config` maps to `bgp.peers.NAME.bfd.*`:
//! `min_interval` is both `desired_min_tx` and `required_min_rx`; changing it on a
//! running session is `Event::ConfigChanged`.
pub mod codes;
pub mod demux;
pub mod packet;
pub mod peer;
pub mod session;
pub mod socket;
pub mod task;
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
pub use peer::BfdPeer;
pub use session::{Action, Config, DownCause, Event, Session, DEFAULT_DETECT_MULT};
pub use timers::{Jitter, XorShift32};

/// RFC 5881 section 4: single-hop control packets go to this UDP port.
pub const CONTROL_PORT: u16 = 3784;
/// RFC 5881 section 4: the source port range for control packets.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 section 5: sent with, and only accepted with, this TTL or hop limit.
pub const TTL: u8 = 255;
