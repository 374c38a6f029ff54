//! BGP: wire codec, session state machine, sessions and the speaker.
pub mod adj_out;
pub mod fsm;
pub mod graceful;
pub mod md5;
pub mod session;
pub mod speaker;
pub mod wire;
