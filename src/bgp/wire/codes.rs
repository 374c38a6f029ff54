//! NOTIFICATION error codes and subcodes (RFC 4271 section 4.5 and the IANA registry).

pub const MESSAGE_HEADER_ERROR: u8 = 1;
pub const OPEN_MESSAGE_ERROR: u8 = 2;
pub const UPDATE_MESSAGE_ERROR: u8 = 3;
pub const HOLD_TIMER_EXPIRED: u8 = 4;
pub const FSM_ERROR: u8 = 5;
pub const CEASE: u8 = 6;
pub const ROUTE_REFRESH_MESSAGE_ERROR: u8 = 7;

/// Subcode 0, valid for every code.
pub const UNSPECIFIC: u8 = 0;

/// Subcodes of Message Header Error.
pub mod header {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// Subcodes of OPEN Message Error.
pub mod open {
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    pub const ROLE_MISMATCH: u8 = 11;
}

/// Subcodes of UPDATE Message Error.
pub mod update {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Subcodes of Finite State Machine Error (RFC 6608).
pub mod fsm {
    pub const UNEXPECTED_MESSAGE_IN_OPENSENT: u8 = 1;
    pub const UNEXPECTED_MESSAGE_IN_OPENCONFIRM: u8 = 2;
    pub const UNEXPECTED_MESSAGE_IN_ESTABLISHED: u8 = 3;
}

/// Subcodes of Cease (RFC 4486, 8538, 9384).
pub mod cease {
    pub const MAXIMUM_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;
}

/// Subcodes of ROUTE-REFRESH Message Error (RFC 7313).
pub mod route_refresh {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// Human name of an error code.
pub fn code_name(code: u8) -> Option<&'static str> {
    Some(match code {
        MESSAGE_HEADER_ERROR => "Message Header Error",
        OPEN_MESSAGE_ERROR => "OPEN Message Error",
        UPDATE_MESSAGE_ERROR => "UPDATE Message Error",
        HOLD_TIMER_EXPIRED => "Hold Timer Expired",
        FSM_ERROR => "Finite State Machine Error",
        CEASE => "Cease",
        ROUTE_REFRESH_MESSAGE_ERROR => "ROUTE-REFRESH Message Error",
        _ => return None,
    })
}

/// Human name of a subcode of `code`.
pub fn subcode_name(code: u8, subcode: u8) -> Option<&'static str> {
    if subcode == UNSPECIFIC {
        return Some("Unspecific");
    }
    Some(match (code, subcode) {
        (MESSAGE_HEADER_ERROR, 1) => "Connection Not Synchronized",
        (MESSAGE_HEADER_ERROR, 2) => "Bad Message Length",
        (MESSAGE_HEADER_ERROR, 3) => "Bad Message Type",
        (OPEN_MESSAGE_ERROR, 1) => "Unsupported Version Number",
        (OPEN_MESSAGE_ERROR, 2) => "Bad Peer AS",
        (OPEN_MESSAGE_ERROR, 3) => "Bad BGP Identifier",
        (OPEN_MESSAGE_ERROR, 4) => "Unsupported Optional Parameter",
        (OPEN_MESSAGE_ERROR, 6) => "Unacceptable Hold Time",
        (OPEN_MESSAGE_ERROR, 7) => "Unsupported Capability",
        (OPEN_MESSAGE_ERROR, 11) => "Role Mismatch",
        (UPDATE_MESSAGE_ERROR, 1) => "Malformed Attribute List",
        (UPDATE_MESSAGE_ERROR, 2) => "Unrecognized Well-known Attribute",
        (UPDATE_MESSAGE_ERROR, 3) => "Missing Well-known Attribute",
        (UPDATE_MESSAGE_ERROR, 4) => "Attribute Flags Error",
        (UPDATE_MESSAGE_ERROR, 5) => "Attribute Length Error",
        (UPDATE_MESSAGE_ERROR, 6) => "Invalid ORIGIN Attribute",
        (UPDATE_MESSAGE_ERROR, 8) => "Invalid NEXT_HOP Attribute",
        (UPDATE_MESSAGE_ERROR, 9) => "Optional Attribute Error",
        (UPDATE_MESSAGE_ERROR, 10) => "Invalid Network Field",
        (UPDATE_MESSAGE_ERROR, 11) => "Malformed AS_PATH",
        (FSM_ERROR, 1) => "Receive Unexpected Message in OpenSent State",
        (FSM_ERROR, 2) => "Receive Unexpected Message in OpenConfirm State",
        (FSM_ERROR, 3) => "Receive Unexpected Message in Established State",
        (CEASE, 1) => "Maximum Number of Prefixes Reached",
        (CEASE, 2) => "Administrative Shutdown",
        (CEASE, 3) => "Peer De-configured",
        (CEASE, 4) => "Administrative Reset",
        (CEASE, 5) => "Connection Rejected",
        (CEASE, 6) => "Other Configuration Change",
        (CEASE, 7) => "Connection Collision Resolution",
        (CEASE, 8) => "Out of Resources",
        (CEASE, 9) => "Hard Reset",
        (CEASE, 10) => "BFD Down",
        (ROUTE_REFRESH_MESSAGE_ERROR, 1) => "Invalid Message Length",
        _ => return None,
    })
}
