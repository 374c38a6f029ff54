//! Well-known communities (RFC 1997, RFC 8326): COMMUNITIES values, not codes, so
//! they live apart from the NOTIFICATION codes.
pub const GRACEFUL_SHUTDOWN: u32 = 0xFFFF_0000;
pub const NO_EXPORT: u32 = 0xFFFF_FF01;
pub const NO_ADVERTISE: u32 = 0xFFFF_FF02;
pub const NO_EXPORT_SUBCONFED: u32 = 0xFFFF_FF03;
