//! IPv6 router discovery for unnumbered peers (`bgp.peers.NAME.interface`): learning
//! the link-local address of the router on an interface from its Router
//! Advertisements, and announcing ours so the router learns us.
//!
//! - `wire.rs`: the RS and RA messages (pure).
pub mod wire;
