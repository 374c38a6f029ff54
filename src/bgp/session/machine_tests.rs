//! The session's transitions, driven without sockets or a clock.
use super::*;
use crate::bgp::wire::codes::ErrorCode;

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// A peer whose identifier is above ours: RFC 4271 6.8 keeps its connection.
const HIGHER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
/// One below ours: ours survives.
const LOWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 0);

fn conn(id: ConnId, direction: Direction, peer_id: Ipv4Addr) -> ConnInfo {
    ConnInfo {
        id,
        direction,
        peer_id,
        graceful_restart: true,
    }
}

/// What losing a collision does: `conn` closes with Cease/Connection Collision
/// Resolution, and nothing else happens.
fn closed_for_collision(conn: ConnId) -> [Action; 1] {
    [Action::Close {
        conn,
        notification: Some(Notification::cease(
            CeaseSubcode::ConnectionCollisionResolution,
        )),
    }]
}

/// `conn` closing with no NOTIFICATION sent.
fn quiet_close(conn: ConnId) -> Action {
    Action::Close {
        conn,
        notification: None,
    }
}

fn errors(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Error(m) => Some(m.as_str()),
            _ => None,
        })
        .collect()
}

/// A machine that connected out and finished the handshake on `c`, at `t0`: in
/// OpenConfirm.
fn confirming(c: ConnInfo) -> (Machine, Instant) {
    let t0 = Instant::now();
    let mut m = Machine::new(LOCAL, false, true, t0);
    assert_eq!(m.handle(Input::ConnectDue, t0), [Action::Connect]);
    m.handle(Input::HandshakeDone(c), t0);
    (m, t0)
}

/// A machine with `c` Established as epoch 1, at `t0`.
fn established(c: ConnInfo) -> (Machine, Instant) {
    let (mut m, t0) = confirming(c);
    assert_eq!(
        m.handle(Input::ConfirmKeepalive, t0),
        [Action::Established {
            conn: c.id,
            epoch: 1
        }]
    );
    (m, t0)
}

#[test]
fn connect_open_confirm_established() {
    let t0 = Instant::now();
    let mut m = Machine::new(LOCAL, false, true, t0);
    assert_eq!((m.state(), m.connect_at()), (State::Connect, Some(t0)));
    assert_eq!(m.handle(Input::ConnectDue, t0), [Action::Connect]);
    assert_eq!(m.connect_at(), None, "one attempt at a time");
    assert_eq!(m.handle(Input::ConnectDue, t0), [], "no second attempt");
    let c = conn(1, Direction::Outbound, HIGHER);
    assert_eq!(
        m.handle(Input::HandshakeDone(c), t0),
        [Action::ArmKeepalive(1)]
    );
    assert_eq!((m.state(), m.confirm()), (State::OpenConfirm, Some(1)));
    assert_eq!(
        m.handle(Input::ConfirmKeepalive, t0),
        [Action::Established { conn: 1, epoch: 1 }]
    );
    assert_eq!(
        (m.state(), m.established(), m.confirm(), m.epoch()),
        (State::Established, Some(1), None, 1)
    );
    assert_eq!(m.connect_at(), None);
}

#[test]
fn a_failed_attempt_backs_off() {
    let t0 = Instant::now();
    let mut m = Machine::new(LOCAL, false, true, t0);
    m.handle(Input::ConnectDue, t0);
    let a = m.handle(
        Input::HandshakeFailed {
            direction: Direction::Outbound,
            message: "connect to 192.0.2.9:179: refused".into(),
        },
        t0,
    );
    assert_eq!(errors(&a), ["connect to 192.0.2.9:179: refused"]);
    assert_eq!(m.state(), State::Active);
    let next = m.connect_at().expect("tries again");
    assert!(next > t0, "after a backoff");
    assert_eq!(m.handle(Input::ConnectDue, t0), [], "not before it");
    assert_eq!(m.handle(Input::ConnectDue, next), [Action::Connect]);
    // An inbound failure leaves our own attempt alone.
    m.handle(
        Input::HandshakeFailed {
            direction: Direction::Inbound,
            message: "bad OPEN".into(),
        },
        next,
    );
    assert_eq!(m.connect_at(), None, "ours is still running");
}

#[test]
fn collision_in_open_confirm_keeps_the_higher_identifier_side() {
    // Whichever completed first, the connection opened by the side with the higher
    // identifier survives: the peer's (inbound) when its identifier is higher, else
    // ours (outbound).
    let cases = [
        (HIGHER, Direction::Outbound, Direction::Inbound),
        (HIGHER, Direction::Inbound, Direction::Inbound),
        (LOWER, Direction::Inbound, Direction::Outbound),
        (LOWER, Direction::Outbound, Direction::Outbound),
    ];
    for (peer_id, first, survivor) in cases {
        let t0 = Instant::now();
        let mut m = Machine::new(LOCAL, false, true, t0);
        let second = match first {
            Direction::Outbound => Direction::Inbound,
            Direction::Inbound => Direction::Outbound,
        };
        m.handle(Input::HandshakeDone(conn(1, first, peer_id)), t0);
        let a = m.handle(Input::HandshakeDone(conn(2, second, peer_id)), t0);
        let (kept, closed) = if first == survivor { (1, 2) } else { (2, 1) };
        let case = format!("peer {peer_id}, {first:?} first");
        assert_eq!(a, closed_for_collision(closed), "{case}");
        assert_eq!(m.confirm(), Some(kept), "{case}");
    }
}

#[test]
fn the_peer_closing_a_collisions_survivor_reconnects_at_once() {
    let (mut m, t0) = confirming(conn(1, Direction::Outbound, LOWER));
    m.handle(Input::HandshakeDone(conn(2, Direction::Inbound, LOWER)), t0);
    let t1 = t0 + Duration::from_millis(5);
    let a = m.handle(
        Input::ConfirmEnded {
            message: "peer sent NOTIFICATION Cease/Connection Collision Resolution".into(),
            reply: None,
        },
        t1,
    );
    assert_eq!(a[0], quiet_close(1));
    assert_eq!(m.connect_at(), Some(t1), "no backoff");
}

#[test]
fn notification_in_open_confirm_backs_off() {
    let (mut m, t0) = confirming(conn(1, Direction::Outbound, HIGHER));
    let a = m.handle(
        Input::ConfirmEnded {
            message: "peer sent NOTIFICATION Cease/Administrative Shutdown".into(),
            reply: None,
        },
        t0,
    );
    assert_eq!(
        a,
        [
            quiet_close(1),
            Action::WentDown,
            Action::Error("peer sent NOTIFICATION Cease/Administrative Shutdown".into()),
        ]
    );
    assert_eq!(m.state(), State::Active);
    assert!(m.connect_at().is_some_and(|at| at > t0));
}

#[test]
fn hold_timer_expiry_in_established() {
    let (mut m, t0) = established(conn(1, Direction::Outbound, HIGHER));
    let hold = Notification::new(ErrorCode::HoldTimerExpired, 0, vec![]);
    let a = m.handle(
        Input::EstablishedEnded {
            message: "hold timer expired (90s without a message)".into(),
            reply: Some(hold.clone()),
        },
        t0,
    );
    assert_eq!(
        a,
        [
            Action::Close {
                conn: 1,
                notification: Some(hold)
            },
            Action::Down { epoch: 1 },
            Action::WentDown,
            Action::Error("hold timer expired (90s without a message)".into()),
        ]
    );
    assert_eq!((m.state(), m.established()), (State::Active, None));
    assert!(m.connect_at().is_some_and(|at| at > t0));
    // The next session is another epoch.
    let t1 = m.connect_at().expect("retry");
    m.handle(Input::ConnectDue, t1);
    m.handle(
        Input::HandshakeDone(conn(2, Direction::Outbound, HIGHER)),
        t1,
    );
    assert_eq!(
        m.handle(Input::ConfirmKeepalive, t1),
        [Action::Established { conn: 2, epoch: 2 }]
    );
}

#[test]
fn a_second_connection_right_after_established_is_a_collision() {
    let (mut m, t0) = established(conn(1, Direction::Outbound, HIGHER));
    let soon = t0 + COLLISION_WINDOW / 2;
    let a = m.handle(
        Input::HandshakeDone(conn(2, Direction::Inbound, HIGHER)),
        soon,
    );
    assert_eq!(a, closed_for_collision(2));
    assert_eq!(m.established(), Some(1));
}

#[test]
fn a_restarted_peer_replaces_the_established_session() {
    let (mut m, t0) = established(conn(1, Direction::Outbound, HIGHER));
    let later = t0 + COLLISION_WINDOW * 5;
    let a = m.handle(
        Input::HandshakeDone(conn(2, Direction::Inbound, HIGHER)),
        later,
    );
    assert_eq!(
        a,
        [quiet_close(1), Action::Down { epoch: 1 }, Action::WentDown]
    );
    assert_eq!(
        (m.state(), m.established(), m.confirm()),
        (State::OpenConfirm, None, Some(2))
    );
    assert_eq!(
        m.handle(Input::ConfirmKeepalive, later),
        [Action::Established { conn: 2, epoch: 2 }]
    );
    // Without graceful restart the established session stays.
    let plain = ConnInfo {
        graceful_restart: false,
        ..conn(3, Direction::Outbound, HIGHER)
    };
    let (mut m, t0) = established(plain);
    let a = m.handle(
        Input::HandshakeDone(conn(4, Direction::Inbound, HIGHER)),
        t0 + COLLISION_WINDOW * 5,
    );
    assert_eq!(a, closed_for_collision(4));
}

#[test]
fn route_refreshes_are_coalesced_until_answered() {
    let (mut m, t0) = established(conn(1, Direction::Outbound, HIGHER));
    assert_eq!(
        m.handle(Input::RouteRefresh, t0),
        [Action::Refresh { epoch: 1 }]
    );
    assert_eq!(m.handle(Input::RouteRefresh, t0), []);
    m.handle(Input::RefreshAnswered { epoch: 0 }, t0);
    assert_eq!(
        m.handle(Input::RouteRefresh, t0),
        [],
        "an old session's End-of-RIB answers nothing"
    );
    m.handle(Input::RefreshAnswered { epoch: 1 }, t0);
    assert_eq!(
        m.handle(Input::RouteRefresh, t0),
        [Action::Refresh { epoch: 1 }]
    );
}

/// A NOTIFICATION from the peer, or a write that fails: the session ends with
/// nothing sent back.
#[test]
fn established_ends_without_a_reply() {
    let ends = [
        Input::EstablishedEnded {
            message: "peer sent NOTIFICATION Cease/Peer De-configured".into(),
            reply: None,
        },
        Input::WriteFailed {
            message: "peer has not read for 90s".into(),
        },
    ];
    for end in ends {
        let (mut m, t0) = established(conn(1, Direction::Inbound, HIGHER));
        let a = m.handle(end.clone(), t0);
        assert_eq!(
            a[..2],
            [quiet_close(1), Action::Down { epoch: 1 }],
            "{end:?}"
        );
        assert_eq!(m.established(), None, "{end:?}");
    }
}

#[test]
fn bfd_gates_the_start_and_closes_on_down() {
    let t0 = Instant::now();
    let mut m = Machine::new(LOCAL, true, true, t0);
    assert_eq!(m.connect_at(), Some(t0 + BFD_HOLD), "waits for BFD");
    assert_eq!(
        m.handle(Input::Inbound { in_flight: 0 }, t0),
        [Action::Reject("waiting for BFD")]
    );
    let t1 = t0 + Duration::from_secs(1);
    m.handle(Input::BfdUp, t1);
    assert_eq!(m.connect_at(), Some(t1), "at once once Up");
    assert_eq!(
        m.handle(Input::Inbound { in_flight: 0 }, t1),
        [Action::Accept]
    );
    m.handle(Input::ConnectDue, t1);
    m.handle(
        Input::HandshakeDone(conn(1, Direction::Outbound, HIGHER)),
        t1,
    );
    m.handle(Input::ConfirmKeepalive, t1);
    let t2 = t1 + Duration::from_secs(1);
    let a = m.handle(Input::BfdDown, t2);
    let bfd_down = Some(Notification::cease(CeaseSubcode::BfdDown));
    assert_eq!(
        a,
        [
            Action::Close {
                conn: 1,
                notification: bfd_down
            },
            Action::Down { epoch: 1 },
            Action::WentDown,
            Action::AbortHandshakes,
            Action::Error("BFD down: path failure".into()),
        ]
    );
    assert_eq!(m.state(), State::Active);
    assert_eq!(
        m.connect_at(),
        Some(t2 + BFD_HOLD),
        "a router without BFD is not locked out"
    );
    // Without BFD configured, its reports change nothing.
    let mut plain = Machine::new(LOCAL, false, true, t0);
    assert_eq!(plain.handle(Input::BfdDown, t0), []);
    assert_eq!(plain.connect_at(), Some(t0));
}

#[test]
fn too_many_handshakes_are_refused() {
    let t0 = Instant::now();
    let mut m = Machine::new(LOCAL, false, true, t0);
    assert_eq!(
        m.handle(
            Input::Inbound {
                in_flight: MAX_HANDSHAKES
            },
            t0
        ),
        [Action::Reject("too many handshakes in progress")]
    );
}

#[test]
fn an_unnumbered_peer_connects_once_its_router_is_heard() {
    let t0 = Instant::now();
    let mut m = Machine::new(LOCAL, false, false, t0);
    assert_eq!(m.connect_at(), None, "no address yet");
    assert_eq!(m.handle(Input::ConnectDue, t0), []);
    let t1 = t0 + Duration::from_secs(3);
    m.handle(Input::Neighbour, t1);
    assert_eq!(m.connect_at(), Some(t1));
}

#[test]
fn stop_closes_everything_with_the_notification() {
    let (mut m, t0) = established(conn(1, Direction::Outbound, HIGHER));
    m.handle(
        Input::HandshakeDone(conn(2, Direction::Inbound, HIGHER)),
        t0 + COLLISION_WINDOW * 5,
    );
    // 2 replaced 1 (the peer restarted) and is the session now.
    m.handle(Input::ConfirmKeepalive, t0);
    let shutdown = Notification::cease(CeaseSubcode::AdministrativeShutdown);
    let a = m.handle(
        Input::Stop {
            notification: Some(shutdown.clone()),
        },
        t0,
    );
    assert_eq!(
        a,
        [
            Action::Close {
                conn: 2,
                notification: Some(shutdown)
            },
            Action::AbortHandshakes,
            Action::WentDown,
            Action::Exit,
        ]
    );
    assert_eq!(m.state(), State::Idle);
}
