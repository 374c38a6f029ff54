//! The control packet against hand-checked bytes, and round trips.
use std::time::Duration;

use proptest::prelude::*;

use super::captures;
use super::codes::{Diagnostic, State};
use super::packet::{auth_type, Error, Packet, Repr, HEADER_LEN};

const MS: Duration = Duration::from_millis(1);

/// A first packet with 300 ms x 3 configured: Down, no discriminator of ours yet, one
/// packet a second until Up (RFC 5880 section 6.8.3). As bird sends it (see
/// `captures`), but with a Required Min Echo RX: FRR announces its echo
/// receive-interval there.
const FIRST_DOWN: [u8; 24] = [
    0x20, // version 1, diag 0
    0x40, // state Down, no flags
    0x03, // detect mult 3
    0x18, // length 24
    0x5e, 0x2b, 0x00, 0x11, // my discriminator
    0x00, 0x00, 0x00, 0x00, // your discriminator
    0x00, 0x0f, 0x42, 0x40, // desired min tx 1 000 000 us
    0x00, 0x04, 0x93, 0xe0, // required min rx 300 000 us
    0x00, 0x00, 0xc3, 0x50, // required min echo rx 50 000 us
];

/// Up, polling for the 300 ms it wants now that the session is Up.
const UP_POLL: [u8; 24] = [
    0x20, // version 1, diag 0
    0xe0, // state Up, Poll
    0x03, 0x18, // mult 3, length 24
    0x5e, 0x2b, 0x00, 0x11, // my discriminator
    0x00, 0x00, 0x00, 0x2a, // your discriminator 42
    0x00, 0x04, 0x93, 0xe0, // desired min tx 300 ms
    0x00, 0x04, 0x93, 0xe0, // required min rx 300 ms
    0x00, 0x00, 0x00, 0x00, // no echo
];

/// A first packet with 300 ms x 3 configured, as the session sends it and bird does:
/// Down, your discriminator 0, one packet a second until Up (RFC 5880 section
/// 6.8.3), no diagnostic, no flags, no echo.
pub(super) fn first_down(my_discriminator: u32) -> Repr {
    Repr {
        state: State::Down,
        diagnostic: Diagnostic::NoDiagnostic,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator,
        your_discriminator: 0,
        desired_min_tx: 1000 * MS,
        required_min_rx: 300 * MS,
        required_min_echo_rx: Duration::ZERO,
    }
}

/// `FIRST_DOWN`, decoded.
fn first_down_repr() -> Repr {
    Repr {
        required_min_echo_rx: 50 * MS,
        ..first_down(0x5e2b_0011)
    }
}

fn decode(bytes: &[u8]) -> Result<Repr, Error> {
    Repr::decode(bytes)
}

fn with(bytes: &[u8], index: usize, value: u8) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[index] = value;
    v
}

#[test]
fn first_down_packet() {
    let packet = Packet::new_checked(&FIRST_DOWN[..]).expect("valid");
    assert_eq!(packet.version(), 1);
    assert_eq!(packet.length(), 24);
    assert_eq!(packet.desired_min_tx(), 1_000_000);
    assert!(!packet.auth_present());
    assert_eq!(
        packet.auth_type(),
        None,
        "no section, no read past the 24 bytes"
    );
    assert_eq!(Repr::parse(&packet), Ok(first_down_repr()));
    assert_eq!(first_down_repr().to_bytes(), FIRST_DOWN);
}

#[test]
fn up_with_poll_and_final() {
    let repr = decode(&UP_POLL).expect("valid");
    assert_eq!(repr.state, State::Up);
    assert!(repr.poll && !repr.final_);
    assert_eq!(repr.your_discriminator, 42);
    assert_eq!(repr.desired_min_tx, 300 * MS);
    assert_eq!(repr.to_bytes(), UP_POLL);

    let answer = Repr {
        poll: false,
        final_: true,
        ..repr
    };
    assert_eq!(answer.to_bytes()[1], 0xd0, "state Up, Final");
}

#[test]
fn every_flag_and_diagnostic_lands_in_its_bits() {
    let repr = Repr {
        state: State::AdminDown,
        diagnostic: Diagnostic::AdministrativelyDown,
        control_plane_independent: true,
        demand: true,
        ..first_down_repr()
    };
    let bytes = repr.to_bytes();
    assert_eq!(bytes[0], 0x27, "version 1, diag 7");
    assert_eq!(bytes[1], 0x0a, "AdminDown, C and D");
    assert_eq!(decode(&bytes), Ok(repr));

    let timed_out = Repr {
        diagnostic: Diagnostic::ControlDetectionTimeExpired,
        ..first_down_repr()
    };
    assert_eq!(timed_out.to_bytes()[..2], [0x21, 0x40]);
    assert_eq!(
        decode(&with(&FIRST_DOWN, 0, 0x3f)).map(|r| r.diagnostic),
        Ok(Diagnostic::Other(31))
    );
}

#[test]
fn bytes_past_the_length_field_are_not_the_packet() {
    let mut datagram = FIRST_DOWN.to_vec();
    datagram.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(decode(&datagram), Ok(first_down_repr()));
}

#[test]
fn reception_checks_without_session_state() {
    assert_eq!(
        decode(&FIRST_DOWN[..23]),
        Err(Error::Truncated {
            needed: 24,
            got: 23
        })
    );
    assert_eq!(decode(&[]), Err(Error::Truncated { needed: 24, got: 0 }));
    assert_eq!(decode(&with(&FIRST_DOWN, 0, 0x00)), Err(Error::Version(0)));
    assert_eq!(decode(&with(&FIRST_DOWN, 0, 0x40)), Err(Error::Version(2)));
    assert_eq!(decode(&with(&FIRST_DOWN, 3, 23)), Err(Error::Length(23)));
    assert_eq!(
        decode(&with(&FIRST_DOWN, 3, 25)),
        Err(Error::Truncated {
            needed: 25,
            got: 24
        })
    );
    assert_eq!(decode(&with(&FIRST_DOWN, 2, 0)), Err(Error::ZeroDetectMult));
    assert_eq!(decode(&with(&FIRST_DOWN, 1, 0x41)), Err(Error::Multipoint));
    let mut no_my = FIRST_DOWN;
    no_my[4..8].copy_from_slice(&[0; 4]);
    assert_eq!(decode(&no_my), Err(Error::ZeroMyDiscriminator));
    // Only Down and AdminDown may not know our discriminator yet.
    assert_eq!(
        decode(&with(&FIRST_DOWN, 1, 0x80)),
        Err(Error::ZeroYourDiscriminator(State::Init))
    );
    assert_eq!(
        decode(&with(&FIRST_DOWN, 1, 0xc0)),
        Err(Error::ZeroYourDiscriminator(State::Up))
    );
    assert!(decode(&with(&FIRST_DOWN, 1, 0x00)).is_ok(), "AdminDown");
}

/// FIRST_DOWN with the A bit and a simple password section, "abc" with key id 1.
fn with_simple_password() -> Vec<u8> {
    let mut v = FIRST_DOWN.to_vec();
    v[1] |= 0x04;
    v[3] = 30;
    v.extend_from_slice(&[auth_type::SIMPLE_PASSWORD, 6, 1, b'a', b'b', b'c']);
    v
}

#[test]
fn authentication_is_parsed_only_to_be_rejected() {
    let bytes = with_simple_password();
    let packet = Packet::new_checked(&bytes[..]).expect("well formed");
    assert!(packet.auth_present());
    assert_eq!(packet.auth_type(), Some(auth_type::SIMPLE_PASSWORD));
    assert_eq!(packet.auth_len(), Some(6));
    assert_eq!(
        Repr::parse(&packet),
        Err(Error::Authenticated {
            auth_type: auth_type::SIMPLE_PASSWORD
        })
    );
    // The section's own length must fit in the packet's, and cover its header.
    assert_eq!(
        decode(&with(&bytes, 25, 7)),
        Err(Error::AuthLength {
            auth_len: 7,
            length: 30
        })
    );
    assert_eq!(
        decode(&with(&bytes, 25, 1)),
        Err(Error::AuthLength {
            auth_len: 1,
            length: 30
        })
    );
    // A bit with no room for the section at all.
    let mut bare = FIRST_DOWN;
    bare[1] |= 0x04;
    assert_eq!(decode(&bare), Err(Error::Length(24)));
    assert_eq!(decode(&with(&bare, 3, 25)), Err(Error::Length(25)));
}

#[test]
fn errors_say_what_is_wrong() {
    let text = Error::ZeroYourDiscriminator(State::Up).to_string();
    assert_eq!(text, "your discriminator is zero in state Up");
    assert_eq!(
        Error::Authenticated { auth_type: 2 }.to_string(),
        "authentication type 2 requested, none configured"
    );
}

fn arb_state() -> impl Strategy<Value = State> {
    (0u8..4).prop_map(State::from_bits)
}

prop_compose! {
    /// Every Repr a checked packet can hold.
    pub(super) fn arb_repr()(
        state in arb_state(),
        diag in 0u8..32,
        flags in any::<[bool; 4]>(),
        detect_mult in 1u8..,
        my_discriminator in 1u32..,
        your_discriminator: u32,
        intervals in any::<[u32; 3]>(),
    ) -> Repr {
        let your_discriminator = if matches!(state, State::Down | State::AdminDown) {
            your_discriminator
        } else {
            your_discriminator.max(1)
        };
        Repr {
            state,
            diagnostic: Diagnostic::from_bits(diag),
            poll: flags[0],
            final_: flags[1],
            control_plane_independent: flags[2],
            demand: flags[3],
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx: Duration::from_micros(u64::from(intervals[0])),
            required_min_rx: Duration::from_micros(u64::from(intervals[1])),
            required_min_echo_rx: Duration::from_micros(u64::from(intervals[2])),
        }
    }
}

proptest! {
    #[test]
    fn round_trip(repr in arb_repr()) {
        let bytes = repr.to_bytes();
        prop_assert_eq!(bytes.len(), HEADER_LEN);
        prop_assert_eq!(decode(&bytes), Ok(repr));
    }

    #[test]
    fn whatever_decodes_re_encodes_to_itself(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..64),
        plausible: bool,
    ) {
        // Random bytes are rarely version 1 with a fitting length; make half of them so.
        if plausible && bytes.len() >= HEADER_LEN {
            bytes[0] = 0x20 | (bytes[0] & 0x1f);
            bytes[3] = u8::try_from(HEADER_LEN + usize::from(bytes[3]) % (bytes.len() - HEADER_LEN + 1)).unwrap_or(24);
        }
        if let Ok(repr) = decode(&bytes) {
            let again = repr.to_bytes();
            prop_assert_eq!(decode(&again), Ok(repr));
            // Without authentication the first 24 bytes are all there is, bar Length.
            prop_assert_eq!(&again[..3], &bytes[..3]);
            prop_assert_eq!(&again[4..], &bytes[4..HEADER_LEN]);
        }
    }
}

#[test]
fn bird_captures_decode_and_re_emit_byte_for_byte() {
    for (name, bytes) in captures::ALL {
        let repr = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(repr.to_bytes(), bytes, "{name}");
        assert_eq!(repr.detect_mult, 3, "{name}");
        assert_eq!(repr.required_min_rx, 300 * MS, "{name}");
        assert_eq!(repr.required_min_echo_rx, Duration::ZERO, "{name}");
    }
    let init = decode(&captures::A_INIT).expect("valid");
    assert_eq!(
        (init.state, init.my_discriminator, init.your_discriminator),
        (State::Init, 0x5c4d_cc60, 0xb7b9_2b48)
    );
    assert_eq!(init.desired_min_tx, 1000 * MS);
    let poll = decode(&captures::B_UP_POLL).expect("valid");
    assert_eq!(
        (poll.state, poll.poll, poll.final_),
        (State::Up, true, false)
    );
    assert_eq!(poll.desired_min_tx, 300 * MS);
    let fin = decode(&captures::A_UP_FINAL).expect("valid");
    assert_eq!((fin.state, fin.poll, fin.final_), (State::Up, false, true));
    let timed_out = decode(&captures::A_DOWN_TIMED_OUT).expect("valid");
    assert_eq!(
        (
            timed_out.state,
            timed_out.diagnostic,
            timed_out.your_discriminator
        ),
        (State::Down, Diagnostic::ControlDetectionTimeExpired, 0)
    );
}

/// Writes the captures and the packets above as the fuzzer's seeds: `cargo test --lib bfd -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode_bfd");
    std::fs::create_dir_all(&dir).expect("seed directory");
    for (name, bytes) in captures::ALL {
        std::fs::write(dir.join(name), bytes).expect("seed");
    }
    std::fs::write(dir.join("frr_like_down_echo"), FIRST_DOWN).expect("seed");
    std::fs::write(dir.join("up_poll"), UP_POLL).expect("seed");
    std::fs::write(dir.join("simple_password"), with_simple_password()).expect("seed");
}
