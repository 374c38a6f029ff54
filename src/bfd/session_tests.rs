//! The state machine, one transition at a time. The jitter source always returns the
//! top of its range, so a transmit timer is armed for the whole interval (or 90% of it
//! with a multiplier of 1) and every expected duration is exact.
use std::num::{NonZeroU32, NonZeroU8};
use std::time::Duration;

use super::captures;
use super::codes::{Diagnostic, State};
use super::packet::Repr;
use super::packet_tests::first_down;
use super::session::{Action, Config, DownCause, Event, Session};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const LOCAL: u32 = 7;
const REMOTE: u32 = 42;

fn no_jitter() -> u32 {
    u32::MAX
}

fn session() -> Session {
    Session::new(Config::default(), NonZeroU32::new(LOCAL).expect("non-zero"))
}

fn handle(s: &mut Session, event: Event) -> Vec<Action> {
    s.handle(event, &mut no_jitter)
}

/// What the peer sends in `state`: FRR's 300 ms x 3, slowed to a second until Up.
fn from_peer(state: State) -> Repr {
    Repr {
        state,
        your_discriminator: if state == State::Down { 0 } else { LOCAL },
        desired_min_tx: if state == State::Up { 300 * MS } else { SECOND },
        ..first_down(REMOTE)
    }
}

/// What `s` does on hearing `repr` from the peer.
fn hear(s: &mut Session, repr: Repr) -> Vec<Action> {
    handle(s, Event::Received(repr))
}

fn sent(actions: &[Action]) -> Vec<Repr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(repr) => Some(*repr),
            _ => None,
        })
        .collect()
}

/// The peer's Up with Final: the answer to our Poll.
fn peer_final() -> Repr {
    Repr {
        final_: true,
        ..from_peer(State::Up)
    }
}

/// The packet a transmit timer expiry sends.
fn tick(s: &mut Session) -> Repr {
    let packets = sent(&handle(s, Event::TransmitTimerExpired));
    assert_eq!(packets.len(), 1, "one periodic packet");
    packets[0]
}

/// `s` is in `state`, with `diagnostic` as its own.
#[track_caller]
fn assert_state(s: &Session, state: State, diagnostic: Diagnostic) {
    assert_eq!((s.state(), s.local_diagnostic()), (state, diagnostic));
}

/// `first`, then what every move to Down or AdminDown ends with: the packet saying so
/// at once, and one a second after it.
fn then_slow_packets(s: &Session, first: &[Action]) -> Vec<Action> {
    let slow = [
        Action::Send(s.packet(false, false)),
        Action::ArmTransmitTimer(SECOND),
    ];
    [first, &slow].concat()
}

/// Started: Down, sending once a second.
fn started_session() -> Session {
    let mut s = session();
    s.start(&mut no_jitter);
    s
}

/// Through the handshake and the Poll Sequence that follows it: Up at 300 ms.
fn up_session() -> Session {
    let mut s = started_session();
    hear(&mut s, from_peer(State::Down));
    hear(&mut s, from_peer(State::Up));
    assert!(tick(&mut s).poll);
    hear(&mut s, peer_final());
    assert_eq!(s.state(), State::Up);
    assert!(!s.polling());
    s
}

#[test]
fn start_sends_down_at_one_packet_a_second() {
    let mut s = session();
    let actions = s.start(&mut no_jitter);
    // 300 ms x 3 by default, but one packet a second until Up.
    let packet = first_down(LOCAL);
    assert_eq!(
        actions,
        vec![Action::Send(packet), Action::ArmTransmitTimer(SECOND)]
    );
}

#[test]
fn three_way_handshake_then_poll_for_the_fast_rate() {
    let mut s = started_session();

    // Down hears Down: Init, said at once. The peer's one second per packet sets
    // detection.
    let actions = hear(&mut s, from_peer(State::Down));
    assert_eq!(s.state(), State::Init);
    let init = s.packet(false, false);
    assert_eq!((init.state, init.your_discriminator), (State::Init, REMOTE));
    assert_eq!(
        actions,
        vec![
            Action::ArmDetectionTimer(3 * SECOND),
            Action::Send(init),
            Action::ArmTransmitTimer(SECOND),
        ]
    );
    assert_eq!(tick(&mut s), init);

    // Init hears Up: Up, and the 300 ms we want needs a Poll Sequence, which the
    // packet saying Up starts. We send at the new rate at once: faster than announced
    // is always safe.
    let actions = hear(&mut s, from_peer(State::Up));
    assert_eq!(s.state(), State::Up);
    assert!(s.polling());
    let poll = s.packet(true, false);
    assert_eq!(
        actions,
        vec![
            Action::SessionUp,
            // The peer's Up announces 300 ms: 3 x 300 ms.
            Action::ArmDetectionTimer(900 * MS),
            Action::Send(poll),
            Action::ArmTransmitTimer(300 * MS),
        ]
    );
    assert_eq!(tick(&mut s), poll);
    assert_eq!(poll.state, State::Up);
    assert!(poll.poll && !poll.final_);
    assert_eq!(poll.desired_min_tx, 300 * MS);

    // The Final ends the Poll Sequence; periodic packets go without Poll.
    let actions = hear(&mut s, peer_final());
    assert_eq!(actions, vec![Action::ArmDetectionTimer(900 * MS)]);
    assert!(!s.polling());
    assert!(!tick(&mut s).poll);
    assert_eq!(s.transmit_interval(), 300 * MS);
    assert_eq!(s.detection_time(), 900 * MS);
}

#[test]
fn down_hearing_init_goes_straight_up() {
    let mut s = started_session();
    let actions = hear(&mut s, from_peer(State::Init));
    assert_eq!(s.state(), State::Up);
    assert!(actions.contains(&Action::SessionUp));
    // The peer's Init still sends once a second: 3 x 1 s.
    assert!(actions.contains(&Action::ArmDetectionTimer(3 * SECOND)));
}

#[test]
fn packets_that_do_not_move_the_state() {
    let mut s = started_session();
    // Down ignores Up (the peer thinks of an older session of ours).
    hear(&mut s, from_peer(State::Up));
    assert_eq!(s.state(), State::Down);
    hear(&mut s, from_peer(State::Down));
    // Init ignores Down (that is the peer not having heard us yet).
    hear(&mut s, from_peer(State::Down));
    assert_eq!(s.state(), State::Init);
    let mut s = up_session();
    hear(&mut s, from_peer(State::Init));
    assert_eq!(s.state(), State::Up);
}

#[test]
fn detection_timeout_takes_up_down_with_diag_1() {
    let mut s = up_session();
    let actions = handle(&mut s, Event::DetectionTimerExpired);
    assert_state(&s, State::Down, Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(s.remote_discriminator(), 0);
    // Back to one packet a second.
    let down = [Action::SessionDown(DownCause::DetectionTimeExpired)];
    assert_eq!(actions, then_slow_packets(&s, &down));
    assert!(DownCause::DetectionTimeExpired.is_path_failure());
    let packet = s.packet(false, false);
    assert_eq!(tick(&mut s), packet);
    assert_eq!(packet.state, State::Down);
    assert_eq!(packet.diagnostic, Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(packet.your_discriminator, 0);
    assert_eq!(packet.desired_min_tx, SECOND);
    // And it comes back with a new handshake, diag cleared.
    hear(&mut s, from_peer(State::Down));
    hear(&mut s, from_peer(State::Up));
    assert_state(&s, State::Up, Diagnostic::NoDiagnostic);
}

#[test]
fn detection_timeout_in_init_and_down() {
    let mut s = started_session();
    hear(&mut s, from_peer(State::Down));
    // Init was never Up: no notification, but the diag says why.
    let actions = handle(&mut s, Event::DetectionTimerExpired);
    assert_state(&s, State::Down, Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(actions, then_slow_packets(&s, &[]));
    // In Down it only forgets the peer's discriminator.
    hear(&mut s, from_peer(State::AdminDown));
    assert_eq!(s.remote_discriminator(), REMOTE);
    assert!(handle(&mut s, Event::DetectionTimerExpired).is_empty());
    assert_eq!(s.remote_discriminator(), 0);
    assert_eq!(s.state(), State::Down);
}

#[test]
fn peer_signals_down_or_admin_down() {
    // RFC 5882 section 3.2: the peer's AdminDown is not a reason to drop BGP.
    let signals = [
        (State::Down, DownCause::NeighborDown, true),
        (State::AdminDown, DownCause::NeighborAdminDown, false),
    ];
    for (peer, cause, path_failure) in signals {
        let mut s = up_session();
        let actions = hear(&mut s, from_peer(peer));
        assert_eq!(
            (s.state(), s.local_diagnostic()),
            (State::Down, Diagnostic::NeighborSignaledSessionDown),
            "peer in {peer}"
        );
        let down = [
            Action::SessionDown(cause),
            Action::ArmDetectionTimer(3 * SECOND),
        ];
        assert_eq!(actions, then_slow_packets(&s, &down), "peer in {peer}");
        assert_eq!(cause.is_path_failure(), path_failure, "{cause:?}");
    }
    // Init goes down too, silently.
    let mut s = session();
    hear(&mut s, from_peer(State::Down));
    let actions = hear(&mut s, from_peer(State::AdminDown));
    assert_eq!(s.state(), State::Down);
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::SessionDown(_) | Action::SessionUp)));
}

#[test]
fn admin_down_and_back_up() {
    let mut s = up_session();
    let actions = handle(&mut s, Event::AdminDown);
    assert_state(&s, State::AdminDown, Diagnostic::AdministrativelyDown);
    let down = [
        Action::SessionDown(DownCause::AdminDown),
        Action::StopDetectionTimer,
    ];
    assert_eq!(actions, then_slow_packets(&s, &down));
    assert!(!DownCause::AdminDown.is_path_failure());
    // The peer learns it from our packets rather than by timing out.
    let packet = tick(&mut s);
    assert_eq!(packet.state, State::AdminDown);
    assert_eq!(packet.diagnostic, Diagnostic::AdministrativelyDown);
    // Packets change nothing in AdminDown, and arm no detection timer.
    assert!(hear(&mut s, from_peer(State::Up)).is_empty());
    assert!(handle(&mut s, Event::AdminDown).is_empty());
    assert_eq!(s.state(), State::AdminDown);

    let actions = handle(&mut s, Event::AdminUp);
    assert_state(&s, State::Down, Diagnostic::NoDiagnostic);
    assert_eq!(actions, then_slow_packets(&s, &[]));
    hear(&mut s, from_peer(State::Init));
    assert_eq!(s.state(), State::Up);
    // AdminUp outside AdminDown changes nothing.
    assert!(handle(&mut s, Event::AdminUp).is_empty());
    assert_eq!(s.state(), State::Up);
}

#[test]
fn admin_down_from_down_notifies_nobody() {
    let mut s = session();
    let actions = handle(&mut s, Event::AdminDown);
    assert_eq!(s.state(), State::AdminDown);
    let stop = [Action::StopDetectionTimer];
    assert_eq!(actions, then_slow_packets(&s, &stop));
}

#[test]
fn a_poll_is_answered_at_once_with_final() {
    let mut s = up_session();
    let actions = hear(
        &mut s,
        Repr {
            poll: true,
            desired_min_tx: 100 * MS,
            ..from_peer(State::Up)
        },
    );
    let answers = sent(&actions);
    assert_eq!(answers.len(), 1);
    assert!(answers[0].final_ && !answers[0].poll);
    assert_eq!(answers[0].state, State::Up);
    // The peer's faster rate shortens the detection time at once.
    assert!(actions.contains(&Action::ArmDetectionTimer(900 * MS)));
    assert_eq!(s.detection_time(), 900 * MS, "3 x max(300 ms ours, 100 ms)");

    // While our own Poll is out, the answer still carries Final alone.
    let mut s = session();
    hear(&mut s, from_peer(State::Down));
    hear(&mut s, from_peer(State::Up));
    assert!(s.polling());
    let actions = hear(
        &mut s,
        Repr {
            poll: true,
            ..from_peer(State::Up)
        },
    );
    let answers = sent(&actions);
    assert!(answers[0].final_ && !answers[0].poll);
    assert!(tick(&mut s).poll, "our Poll goes on on periodic packets");
}

#[test]
fn slower_interval_waits_for_the_final() {
    let mut s = up_session();
    let slower = Config {
        desired_min_tx: 600 * MS,
        required_min_rx: SECOND,
        ..Config::default()
    };
    // A Poll rides on the periodic packets; none is sent extra (section 6.5).
    assert!(handle(&mut s, Event::ConfigChanged(slower)).is_empty());
    assert!(s.polling());
    let poll = tick(&mut s);
    assert!(poll.poll);
    assert_eq!(
        (poll.desired_min_tx, poll.required_min_rx),
        (600 * MS, SECOND)
    );
    // Until the Final: we still send every 300 ms (the peer's detection time is
    // still based on it), and already wait as long as the slower rate needs.
    assert_eq!(s.transmit_interval(), 300 * MS);
    assert_eq!(s.detection_time(), 3 * SECOND);
    let actions = hear(&mut s, peer_final());
    assert_eq!(
        actions,
        vec![
            Action::ArmDetectionTimer(3 * SECOND),
            Action::ArmTransmitTimer(600 * MS),
        ]
    );
    assert!(!s.polling());
    assert!(!tick(&mut s).poll);
}

#[test]
fn faster_interval_sends_faster_at_once_and_detects_faster_after_the_final() {
    let mut s = up_session();
    let faster = Config {
        desired_min_tx: 100 * MS,
        required_min_rx: 100 * MS,
        ..Config::default()
    };
    // The peer wants nothing faster than 300 ms from us: its RequiredMinRx rules.
    assert!(handle(&mut s, Event::ConfigChanged(faster)).is_empty());
    assert_eq!(s.transmit_interval(), 300 * MS);
    // The peer may keep sending at 300 ms until it hears the Poll.
    assert_eq!(s.detection_time(), 900 * MS);
    tick(&mut s);
    let actions = hear(
        &mut s,
        Repr {
            final_: true,
            desired_min_tx: 100 * MS,
            required_min_rx: 100 * MS,
            ..from_peer(State::Up)
        },
    );
    assert_eq!(
        actions,
        vec![
            Action::ArmDetectionTimer(300 * MS),
            Action::ArmTransmitTimer(100 * MS),
        ]
    );
}

#[test]
fn a_change_during_a_poll_gets_a_poll_of_its_own() {
    let mut s = up_session();
    let first = Config {
        desired_min_tx: 500 * MS,
        ..Config::default()
    };
    let second = Config {
        desired_min_tx: 700 * MS,
        ..Config::default()
    };
    handle(&mut s, Event::ConfigChanged(first));
    handle(&mut s, Event::ConfigChanged(second));
    // The Poll out announces what it started with.
    assert_eq!(tick(&mut s).desired_min_tx, 500 * MS);
    let actions = hear(&mut s, peer_final());
    assert!(s.polling(), "second Poll under way");
    // 500 ms is in force; 700 ms waits for the second Final.
    assert!(actions.contains(&Action::ArmTransmitTimer(500 * MS)));
    let poll = tick(&mut s);
    assert!(poll.poll);
    assert_eq!(poll.desired_min_tx, 700 * MS);
    let actions = hear(&mut s, peer_final());
    assert!(actions.contains(&Action::ArmTransmitTimer(700 * MS)));
    assert!(!s.polling());
}

#[test]
fn a_change_while_down_applies_at_once_under_the_floor() {
    let mut s = started_session();
    let config = Config {
        desired_min_tx: 100 * MS,
        required_min_rx: 200 * MS,
        detect_mult: NonZeroU8::new(5).expect("non-zero"),
    };
    // Still one packet a second until Up: nothing to re-arm.
    assert!(handle(&mut s, Event::ConfigChanged(config)).is_empty());
    assert!(!s.polling());
    let packet = tick(&mut s);
    assert_eq!(
        (
            packet.desired_min_tx,
            packet.required_min_rx,
            packet.detect_mult
        ),
        (SECOND, 200 * MS, 5)
    );
    let slow = Config {
        desired_min_tx: 2 * SECOND,
        ..config
    };
    assert_eq!(
        handle(&mut s, Event::ConfigChanged(slow)),
        vec![Action::ArmTransmitTimer(2 * SECOND)]
    );
}

#[test]
fn the_peer_sets_our_pace() {
    let mut s = up_session();
    // The peer wants packets no faster than every 2 s: we slow down at once.
    let actions = hear(
        &mut s,
        Repr {
            required_min_rx: 2 * SECOND,
            ..from_peer(State::Up)
        },
    );
    assert!(actions.contains(&Action::ArmTransmitTimer(2 * SECOND)));
    // A zero RequiredMinRx means no periodic packets at all; the timer keeps going.
    hear(
        &mut s,
        Repr {
            required_min_rx: Duration::ZERO,
            ..from_peer(State::Up)
        },
    );
    let actions = handle(&mut s, Event::TransmitTimerExpired);
    assert_eq!(actions, vec![Action::ArmTransmitTimer(300 * MS)]);
    // Until the peer goes silent: then we call out to it again.
    let mut silent = s.clone();
    handle(&mut silent, Event::DetectionTimerExpired);
    assert_eq!(
        sent(&handle(&mut silent, Event::TransmitTimerExpired)).len(),
        1
    );
    // Likewise while the peer runs Demand mode and both are Up.
    hear(
        &mut s,
        Repr {
            demand: true,
            ..from_peer(State::Up)
        },
    );
    assert!(sent(&handle(&mut s, Event::TransmitTimerExpired)).is_empty());
}

#[test]
fn packets_for_another_discriminator_are_ignored() {
    let mut s = up_session();
    let stray = Repr {
        your_discriminator: LOCAL + 1,
        ..from_peer(State::Down)
    };
    assert!(hear(&mut s, stray).is_empty());
    assert_eq!(s.state(), State::Up);
}

#[test]
fn multiplier_one_jitters_to_ninety_percent() {
    let mut s = Session::new(
        Config {
            detect_mult: NonZeroU8::MIN,
            ..Config::default()
        },
        NonZeroU32::new(LOCAL).expect("non-zero"),
    );
    let actions = s.start(&mut no_jitter);
    assert_eq!(actions[1], Action::ArmTransmitTimer(900 * MS));
    let mut low = || 0u32;
    let actions = s.handle(Event::TransmitTimerExpired, &mut low);
    assert_eq!(actions[1], Action::ArmTransmitTimer(750 * MS));
}

/// Our session in bird A's place, fed what bird B sent in the capture, sends what bird A
/// sent, byte for byte.
#[test]
fn the_bird_conversation_replayed() {
    let decode = |bytes: &[u8]| Repr::decode(bytes).expect("captured packets are valid");
    let mut s = Session::new(
        Config::default(),
        NonZeroU32::new(0x5c4d_cc60).expect("non-zero"),
    );
    let first = sent(&s.start(&mut no_jitter));
    assert_eq!(first[0].to_bytes(), captures::A_DOWN);

    let actions = hear(&mut s, decode(&captures::B_DOWN));
    assert_eq!(sent(&actions)[0].to_bytes(), captures::A_INIT);

    // B's Up with Poll: we go Up and the Final carries it; no second packet.
    let actions = hear(&mut s, decode(&captures::B_UP_POLL));
    assert!(actions.contains(&Action::SessionUp));
    let answers = sent(&actions);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].to_bytes(), captures::A_UP_FINAL);

    assert_eq!(tick(&mut s).to_bytes(), captures::A_UP_POLL);
    hear(&mut s, decode(&captures::B_UP_FINAL));
    assert!(!s.polling());
    hear(&mut s, decode(&captures::B_UP));
    assert_eq!(s.detection_time(), 900 * MS);
    assert_eq!(s.transmit_interval(), 300 * MS);

    let actions = handle(&mut s, Event::DetectionTimerExpired);
    assert!(actions.contains(&Action::SessionDown(DownCause::DetectionTimeExpired)));
    assert_eq!(sent(&actions)[0].to_bytes(), captures::A_DOWN_TIMED_OUT);
}

mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::bfd::packet_tests::arb_repr;
    use crate::bfd::timers::SLOW_TX_INTERVAL;

    fn arb_config() -> impl Strategy<Value = Config> {
        (1u32..3000, 1u32..3000, 1u8..=10).prop_map(|(tx, rx, mult)| Config {
            desired_min_tx: tx * MS,
            required_min_rx: rx * MS,
            detect_mult: NonZeroU8::new(mult).unwrap_or(NonZeroU8::MIN),
        })
    }

    /// Packets from the peer mostly addressed to us, as the demux would pass them.
    fn arb_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            6 => (arb_repr(), any::<bool>()).prop_map(|(mut repr, to_us)| {
                if to_us && repr.your_discriminator != 0 {
                    repr.your_discriminator = LOCAL;
                }
                Event::Received(repr)
            }),
            3 => Just(Event::TransmitTimerExpired),
            2 => Just(Event::DetectionTimerExpired),
            1 => Just(Event::AdminDown),
            1 => Just(Event::AdminUp),
            1 => arb_config().prop_map(Event::ConfigChanged),
        ]
    }

    /// One batch of actions, against the session as the call that made them left it.
    fn check(s: &Session, actions: Vec<Action>, up: &mut bool) -> Result<(), TestCaseError> {
        for action in actions {
            match action {
                Action::Send(packet) => {
                    prop_assert!(!(packet.poll && packet.final_));
                    prop_assert_eq!(Repr::decode(&packet.to_bytes()), Ok(packet));
                    if packet.state != State::Up {
                        prop_assert!(packet.desired_min_tx >= SLOW_TX_INTERVAL);
                    }
                }
                Action::ArmTransmitTimer(d) => {
                    let interval = s.transmit_interval();
                    prop_assert!(d <= interval && d * 4 >= interval * 3);
                }
                Action::SessionUp => {
                    prop_assert!(!*up, "Up twice");
                    *up = true;
                }
                Action::SessionDown(_) => {
                    prop_assert!(*up, "Down without Up");
                    *up = false;
                }
                Action::ArmDetectionTimer(_) | Action::StopDetectionTimer => {}
            }
        }
        prop_assert_eq!(*up, s.state() == State::Up);
        if matches!(s.state(), State::Init | State::Up) {
            prop_assert_ne!(s.remote_discriminator(), 0);
        }
        prop_assert!(s.polling() <= (s.state() == State::Up));
        Ok(())
    }

    proptest! {
        #[test]
        fn whatever_happens_the_session_stays_sane(
            config in arb_config(),
            events in proptest::collection::vec(arb_event(), 0..60),
            samples in proptest::collection::vec(any::<u32>(), 60),
        ) {
            let mut s = Session::new(config, NonZeroU32::new(LOCAL).expect("non-zero"));
            let mut next = samples.into_iter().cycle();
            let mut jitter = move || next.next().unwrap_or(0);
            let mut up = false;
            let actions = s.start(&mut jitter);
            check(&s, actions, &mut up)?;
            for event in events {
                let actions = s.handle(event, &mut jitter);
                check(&s, actions, &mut up)?;
            }
        }
    }
}
