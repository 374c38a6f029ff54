#![no_main]
//! Packet::new_checked + Repr::parse on arbitrary bytes; whatever parses must re-emit
//! to bytes that parse to the same Repr, and a session fed it must send nothing a
//! receiver would discard.
use std::num::NonZeroU32;

use hostbgp::bfd::{Action, Config, Event, Packet, Repr, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let packet = match Packet::new_checked(data) {
        Ok(packet) => packet,
        Err(_) => return,
    };
    let repr = match Repr::parse(&packet) {
        Ok(repr) => repr,
        Err(_) => {
            assert!(packet.auth_present());
            return;
        }
    };
    let again = repr.to_bytes();
    assert_eq!(Repr::decode(&again), Ok(repr));

    // The session the packet is addressed to, so that every parsed packet reaches it.
    let local = NonZeroU32::new(repr.your_discriminator).unwrap_or(NonZeroU32::MIN);
    let mut session = Session::new(Config::default(), local);
    let mut jitter = || 0x8000_0000u32;
    let mut actions = session.start(&mut jitter);
    // Twice: a Down packet moves Down to Init, a second one may move it on.
    for _ in 0..2 {
        actions.extend(session.handle(Event::Received(repr), &mut jitter));
        actions.extend(session.handle(Event::TransmitTimerExpired, &mut jitter));
    }
    for action in actions {
        if let Action::Send(sent) = action {
            assert!(!(sent.poll && sent.final_));
            assert_eq!(Repr::decode(&sent.to_bytes()), Ok(sent));
        }
    }
});
