//! The codes of the BGP registries the codec speaks: NOTIFICATION error codes and
//! subcodes (RFC 4271 section 4.5 and the IANA "BGP Error (Notification) Codes" and
//! subcode registries), capability codes (IANA "Capability Codes"), path attribute
//! type codes (IANA "BGP Path Attributes") and AS_PATH segment types.
//!
//! Each value and its name is written once, in the table that makes its enum. A
//! value the tables lack decodes as `Other`, so whatever a peer sends is kept,
//! shown by number and sent on unchanged.

/// Subcode 0. IANA registers it (as Unspecific, Unspecified Error or Reserved) for
/// some codes only, but a peer sends it under any code, and status and logs have
/// always shown it by this one name.
const UNSPECIFIC: &str = "Unspecific";

/// An enum over a one-byte registry: one `Variant = value, "Name";` line per value,
/// plus `Other(u8)`, with `From` both ways and `name()`.
macro_rules! registry {
    (
        $(#[$meta:meta])*
        $name:ident { $($variant:ident = $value:literal, $text:expr;)+ }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        pub enum $name {
            $($variant,)+
            /// A value with no variant of its own. `From<u8>` never makes `Other` of
            /// one that has a variant; a hand-made one compares, hashes and is named
            /// as that variant.
            Other(u8),
        }

        // By the byte, as on the wire: a message built with a hand-made `Other`
        // of a named value equals the one that comes back decoded.
        impl PartialEq for $name {
            fn eq(&self, other: &$name) -> bool {
                u8::from(*self) == u8::from(*other)
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                u8::from(*self).hash(state);
            }
        }

        impl From<u8> for $name {
            fn from(value: u8) -> $name {
                match value {
                    $($value => $name::$variant,)+
                    other => $name::Other(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                match value {
                    $($name::$variant => $value,)+
                    $name::Other(other) => other,
                }
            }
        }

        impl $name {
            /// The registry's name; `None` for `Other`.
            pub fn name(self) -> Option<&'static str> {
                match $name::from(u8::from(self)) {
                    $($name::$variant => Some($text),)+
                    $name::Other(_) => None,
                }
            }

            #[cfg(test)]
            pub(crate) const KNOWN: &'static [$name] = &[$($name::$variant),+];
        }
    };
}

/// A registry of subcodes: that of `$code`, with `Unspecific = 0` in front.
macro_rules! subcodes {
    (
        $(#[$meta:meta])*
        $name:ident of $code:ident { $($variant:ident = $value:literal, $text:expr;)+ }
    ) => {
        registry! {
            $(#[$meta])*
            $name {
                Unspecific = 0, UNSPECIFIC;
                $($variant = $value, $text;)+
            }
        }

        impl Subcode for $name {
            const CODE: ErrorCode = ErrorCode::$code;
        }
    };
}

/// The subcodes of one error code, so that a subcode alone says which code it goes
/// with (`Notification::error` builds the pair from it).
pub trait Subcode: Copy + Eq + From<u8> + Into<u8> {
    const CODE: ErrorCode;
}

registry! {
    /// The error code of a NOTIFICATION.
    ErrorCode {
        MessageHeader = 1, "Message Header Error";
        Open = 2, "OPEN Message Error";
        Update = 3, "UPDATE Message Error";
        HoldTimerExpired = 4, "Hold Timer Expired";
        Fsm = 5, "Finite State Machine Error";
        Cease = 6, "Cease";
        RouteRefresh = 7, "ROUTE-REFRESH Message Error";
    }
}

subcodes! {
    /// Subcodes of Message Header Error.
    HeaderSubcode of MessageHeader {
        ConnectionNotSynchronized = 1, "Connection Not Synchronized";
        BadMessageLength = 2, "Bad Message Length";
        BadMessageType = 3, "Bad Message Type";
    }
}

subcodes! {
    /// Subcodes of OPEN Message Error.
    OpenSubcode of Open {
        UnsupportedVersionNumber = 1, "Unsupported Version Number";
        BadPeerAs = 2, "Bad Peer AS";
        BadBgpIdentifier = 3, "Bad BGP Identifier";
        UnsupportedOptionalParameter = 4, "Unsupported Optional Parameter";
        UnacceptableHoldTime = 6, "Unacceptable Hold Time";
        UnsupportedCapability = 7, "Unsupported Capability";
        RoleMismatch = 11, "Role Mismatch";
    }
}

subcodes! {
    /// Subcodes of UPDATE Message Error.
    UpdateSubcode of Update {
        MalformedAttributeList = 1, "Malformed Attribute List";
        UnrecognizedWellKnownAttribute = 2, "Unrecognized Well-known Attribute";
        MissingWellKnownAttribute = 3, "Missing Well-known Attribute";
        AttributeFlagsError = 4, "Attribute Flags Error";
        AttributeLengthError = 5, "Attribute Length Error";
        InvalidOriginAttribute = 6, "Invalid ORIGIN Attribute";
        InvalidNextHopAttribute = 8, "Invalid NEXT_HOP Attribute";
        OptionalAttributeError = 9, "Optional Attribute Error";
        InvalidNetworkField = 10, "Invalid Network Field";
        MalformedAsPath = 11, "Malformed AS_PATH";
    }
}

subcodes! {
    /// Subcodes of Finite State Machine Error (RFC 6608).
    FsmSubcode of Fsm {
        UnexpectedMessageInOpenSent = 1, "Receive Unexpected Message in OpenSent State";
        UnexpectedMessageInOpenConfirm = 2, "Receive Unexpected Message in OpenConfirm State";
        UnexpectedMessageInEstablished = 3, "Receive Unexpected Message in Established State";
    }
}

subcodes! {
    /// Subcodes of Cease (RFC 4486, 8538, 9384).
    CeaseSubcode of Cease {
        MaximumPrefixesReached = 1, "Maximum Number of Prefixes Reached";
        AdministrativeShutdown = 2, "Administrative Shutdown";
        PeerDeconfigured = 3, "Peer De-configured";
        AdministrativeReset = 4, "Administrative Reset";
        ConnectionRejected = 5, "Connection Rejected";
        OtherConfigurationChange = 6, "Other Configuration Change";
        ConnectionCollisionResolution = 7, "Connection Collision Resolution";
        OutOfResources = 8, "Out of Resources";
        HardReset = 9, "Hard Reset";
        BfdDown = 10, "BFD Down";
    }
}

subcodes! {
    /// Subcodes of ROUTE-REFRESH Message Error (RFC 7313).
    RouteRefreshSubcode of RouteRefresh {
        InvalidMessageLength = 1, "Invalid Message Length";
    }
}

impl ErrorCode {
    /// The name of `subcode` under this code.
    pub fn subcode_name(self, subcode: u8) -> Option<&'static str> {
        match ErrorCode::from(u8::from(self)) {
            ErrorCode::MessageHeader => HeaderSubcode::from(subcode).name(),
            ErrorCode::Open => OpenSubcode::from(subcode).name(),
            ErrorCode::Update => UpdateSubcode::from(subcode).name(),
            ErrorCode::Fsm => FsmSubcode::from(subcode).name(),
            ErrorCode::Cease => CeaseSubcode::from(subcode).name(),
            ErrorCode::RouteRefresh => RouteRefreshSubcode::from(subcode).name(),
            ErrorCode::HoldTimerExpired | ErrorCode::Other(_) => {
                (subcode == 0).then_some(UNSPECIFIC)
            }
        }
    }
}

registry! {
    /// The code of a capability in an OPEN (RFC 5492).
    CapabilityCode {
        Multiprotocol = 1, "Multiprotocol Extensions for BGP-4";
        RouteRefresh = 2, "Route Refresh Capability for BGP-4";
        ExtendedNextHop = 5, "Extended Next Hop Encoding";
        ExtendedMessage = 6, "BGP Extended Message";
        GracefulRestart = 64, "Graceful Restart Capability";
        FourOctetAs = 65, "Support for 4-octet AS number capability";
    }
}

registry! {
    /// The type code of a path attribute (RFC 4271 section 4.3).
    AttributeType {
        Origin = 1, "ORIGIN";
        AsPath = 2, "AS_PATH";
        NextHop = 3, "NEXT_HOP";
        MultiExitDisc = 4, "MULTI_EXIT_DISC";
        LocalPref = 5, "LOCAL_PREF";
        AtomicAggregate = 6, "ATOMIC_AGGREGATE";
        Aggregator = 7, "AGGREGATOR";
        Communities = 8, "COMMUNITIES";
        MpReachNlri = 14, "MP_REACH_NLRI";
        MpUnreachNlri = 15, "MP_UNREACH_NLRI";
        As4Path = 17, "AS4_PATH";
        LargeCommunity = 32, "LARGE_COMMUNITY";
    }
}

registry! {
    /// The type of an AS_PATH segment (RFC 4271 section 4.3, RFC 5065 section 3).
    SegmentType {
        AsSet = 1, "AS_SET";
        AsSequence = 2, "AS_SEQUENCE";
        AsConfedSequence = 3, "AS_CONFED_SEQUENCE";
        AsConfedSet = 4, "AS_CONFED_SET";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every named value comes back as itself (its own variant, not an `Other` that
    /// equals it by byte), no two share a byte, and every byte survives the trip.
    fn round_trips<T>(known: &[T])
    where
        T: Copy + std::fmt::Debug + Eq + From<u8> + Into<u8>,
    {
        let mut seen = std::collections::BTreeSet::new();
        for &v in known {
            let byte: u8 = v.into();
            let back = T::from(byte);
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&v),
                "{byte} decodes to {back:?}, not {v:?}"
            );
            assert!(seen.insert(byte), "{byte} is named twice ({v:?})");
        }
        for byte in 0..=u8::MAX {
            assert_eq!(T::from(byte).into(), byte);
        }
    }

    #[test]
    fn every_value_round_trips() {
        round_trips(ErrorCode::KNOWN);
        round_trips(HeaderSubcode::KNOWN);
        round_trips(OpenSubcode::KNOWN);
        round_trips(UpdateSubcode::KNOWN);
        round_trips(FsmSubcode::KNOWN);
        round_trips(CeaseSubcode::KNOWN);
        round_trips(RouteRefreshSubcode::KNOWN);
        round_trips(CapabilityCode::KNOWN);
        round_trips(AttributeType::KNOWN);
        round_trips(SegmentType::KNOWN);
    }

    // `matches!`, not `==`: equality is by the byte, so `from(n) == Other(n)` always
    // holds, whichever variant `from` makes.
    #[test]
    fn unknown_values_are_other() {
        for byte in [0, 8, 99, 255] {
            assert!(matches!(ErrorCode::from(byte), ErrorCode::Other(b) if b == byte));
            assert_eq!(ErrorCode::Other(byte).name(), None);
        }
        assert!(matches!(OpenSubcode::from(5), OpenSubcode::Other(5)));
        assert!(matches!(UpdateSubcode::from(7), UpdateSubcode::Other(7)));
        assert!(matches!(CeaseSubcode::from(11), CeaseSubcode::Other(11)));
        assert_eq!(CeaseSubcode::from(255).name(), None);
        assert_eq!(u8::from(RouteRefreshSubcode::from(2)), 2);
        // FQDN and a vendor's code: capabilities the codec keeps as bytes.
        for byte in [0, 73, 128] {
            assert!(matches!(CapabilityCode::from(byte), CapabilityCode::Other(b) if b == byte));
            assert_eq!(CapabilityCode::from(byte).name(), None);
        }
        // Extended communities, AS4_AGGREGATOR, a private one.
        for byte in [0, 16, 18, 255] {
            assert!(matches!(AttributeType::from(byte), AttributeType::Other(b) if b == byte));
            assert_eq!(AttributeType::from(byte).name(), None);
        }
        for byte in [0, 5, 255] {
            assert!(matches!(SegmentType::from(byte), SegmentType::Other(b) if b == byte));
            assert_eq!(SegmentType::from(byte).name(), None);
        }
    }

    #[test]
    fn a_hand_made_other_equals_the_named_value() {
        assert_eq!(ErrorCode::Other(6), ErrorCode::Cease);
        assert_eq!(CeaseSubcode::Other(9), CeaseSubcode::HardReset);
        assert_ne!(CeaseSubcode::Other(99), CeaseSubcode::HardReset);
        assert_eq!(CeaseSubcode::Other(9).name(), Some("Hard Reset"));
        assert_eq!(ErrorCode::Other(6).subcode_name(9), Some("Hard Reset"));
        let hashed: std::collections::HashSet<_> = [ErrorCode::Other(6), ErrorCode::Cease].into();
        assert_eq!(hashed.len(), 1);
        assert_eq!(CapabilityCode::Other(64), CapabilityCode::GracefulRestart);
        assert_eq!(AttributeType::Other(17).name(), Some("AS4_PATH"));
        assert_eq!(SegmentType::Other(2), SegmentType::AsSequence);
    }

    /// Each subcode type's code names its subcodes as the type does.
    fn names_under_its_code<S: Subcode + std::fmt::Debug>(name: fn(S) -> Option<&'static str>) {
        for byte in 0..=u8::MAX {
            assert_eq!(S::CODE.subcode_name(byte), name(S::from(byte)), "{byte}");
        }
    }

    #[test]
    fn subcode_types_match_their_codes() {
        names_under_its_code(HeaderSubcode::name);
        names_under_its_code(OpenSubcode::name);
        names_under_its_code(UpdateSubcode::name);
        names_under_its_code(FsmSubcode::name);
        names_under_its_code(CeaseSubcode::name);
        names_under_its_code(RouteRefreshSubcode::name);
        assert_eq!(
            ErrorCode::HoldTimerExpired.subcode_name(0),
            Some("Unspecific")
        );
        assert_eq!(ErrorCode::HoldTimerExpired.subcode_name(1), None);
        assert_eq!(ErrorCode::Other(99).subcode_name(0), Some("Unspecific"));
        assert_eq!(ErrorCode::Other(99).subcode_name(2), None);
    }

    /// The names status and logs have shown all along (the IANA registries' names):
    /// written out by number here, apart from the tables, so a slip in a table shows.
    #[test]
    fn names_are_the_registry_names() {
        let codes = [
            (1, "Message Header Error"),
            (2, "OPEN Message Error"),
            (3, "UPDATE Message Error"),
            (4, "Hold Timer Expired"),
            (5, "Finite State Machine Error"),
            (6, "Cease"),
            (7, "ROUTE-REFRESH Message Error"),
        ];
        for (code, name) in codes {
            assert_eq!(ErrorCode::from(code).name(), Some(name));
        }
        assert_eq!(ErrorCode::KNOWN.len(), codes.len());
        let subcodes = [
            (1, 1, "Connection Not Synchronized"),
            (1, 2, "Bad Message Length"),
            (1, 3, "Bad Message Type"),
            (2, 1, "Unsupported Version Number"),
            (2, 2, "Bad Peer AS"),
            (2, 3, "Bad BGP Identifier"),
            (2, 4, "Unsupported Optional Parameter"),
            (2, 6, "Unacceptable Hold Time"),
            (2, 7, "Unsupported Capability"),
            (2, 11, "Role Mismatch"),
            (3, 1, "Malformed Attribute List"),
            (3, 2, "Unrecognized Well-known Attribute"),
            (3, 3, "Missing Well-known Attribute"),
            (3, 4, "Attribute Flags Error"),
            (3, 5, "Attribute Length Error"),
            (3, 6, "Invalid ORIGIN Attribute"),
            (3, 8, "Invalid NEXT_HOP Attribute"),
            (3, 9, "Optional Attribute Error"),
            (3, 10, "Invalid Network Field"),
            (3, 11, "Malformed AS_PATH"),
            (5, 1, "Receive Unexpected Message in OpenSent State"),
            (5, 2, "Receive Unexpected Message in OpenConfirm State"),
            (5, 3, "Receive Unexpected Message in Established State"),
            (6, 1, "Maximum Number of Prefixes Reached"),
            (6, 2, "Administrative Shutdown"),
            (6, 3, "Peer De-configured"),
            (6, 4, "Administrative Reset"),
            (6, 5, "Connection Rejected"),
            (6, 6, "Other Configuration Change"),
            (6, 7, "Connection Collision Resolution"),
            (6, 8, "Out of Resources"),
            (6, 9, "Hard Reset"),
            (6, 10, "BFD Down"),
            (7, 1, "Invalid Message Length"),
        ];
        for (code, subcode, name) in subcodes {
            assert_eq!(ErrorCode::from(code).subcode_name(subcode), Some(name));
        }
        // Nothing named beyond the list (and subcode 0 under each code).
        let named = (0..=u8::MAX)
            .flat_map(|c| (1..=u8::MAX).map(move |s| (c, s)))
            .filter(|&(c, s)| ErrorCode::from(c).subcode_name(s).is_some())
            .count();
        assert_eq!(named, subcodes.len());
        for code in 0..=u8::MAX {
            assert_eq!(ErrorCode::from(code).subcode_name(0), Some("Unspecific"));
        }
    }

    /// Names of the registries beyond NOTIFICATION, written out by number as above:
    /// IANA's descriptions (AS_PATH segment types: RFC 4271's and RFC 5065's).
    #[test]
    fn names_of_capabilities_attributes_and_segments() {
        fn named<T: From<u8>>(name: fn(T) -> Option<&'static str>) -> Vec<(u8, &'static str)> {
            (0..=u8::MAX)
                .filter_map(|byte| name(T::from(byte)).map(|n| (byte, n)))
                .collect()
        }
        assert_eq!(
            named(CapabilityCode::name),
            [
                (1, "Multiprotocol Extensions for BGP-4"),
                (2, "Route Refresh Capability for BGP-4"),
                (5, "Extended Next Hop Encoding"),
                (6, "BGP Extended Message"),
                (64, "Graceful Restart Capability"),
                (65, "Support for 4-octet AS number capability"),
            ]
        );
        assert_eq!(
            named(AttributeType::name),
            [
                (1, "ORIGIN"),
                (2, "AS_PATH"),
                (3, "NEXT_HOP"),
                (4, "MULTI_EXIT_DISC"),
                (5, "LOCAL_PREF"),
                (6, "ATOMIC_AGGREGATE"),
                (7, "AGGREGATOR"),
                (8, "COMMUNITIES"),
                (14, "MP_REACH_NLRI"),
                (15, "MP_UNREACH_NLRI"),
                (17, "AS4_PATH"),
                (32, "LARGE_COMMUNITY"),
            ]
        );
        assert_eq!(
            named(SegmentType::name),
            [
                (1, "AS_SET"),
                (2, "AS_SEQUENCE"),
                (3, "AS_CONFED_SEQUENCE"),
                (4, "AS_CONFED_SET"),
            ]
        );
    }
}
