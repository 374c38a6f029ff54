//! Sessions over loopback, without a kernel lab: two hostbgp session tasks talking to
//! each other, and a scripted raw peer for the error paths.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use hostbgp::bgp::adj_out::Changes;
use hostbgp::bgp::fsm::{GracefulRestartParams, LocalParams, State};
use hostbgp::bgp::session::{
    self, PeerStatus, SessionCmd, SessionEvent, SessionParams, StatusView,
};
use hostbgp::bgp::speaker::{Caller, Listener};
use hostbgp::bgp::wire::codes::{CeaseSubcode, ErrorCode};
use hostbgp::bgp::wire::{
    frame_len, Capability, Codec, GracefulRestart, GracefulRestartFamily, Message, Open,
    RouteRefresh,
};
use hostbgp::config::{Peer, PeerSettings, Remote};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

struct Side {
    status: StatusView,
    cmd: session::SessionSender,
    events: mpsc::UnboundedReceiver<SessionEvent>,
    _listener: Option<Listener>,
}

fn peer(address: &str, port: u16, asn: u32, hold_time: u16) -> Peer {
    Peer {
        settings: PeerSettings {
            remote: Remote::Address(address.parse().unwrap()),
            port,
            asn,
            password: None,
            hold_time,
            bfd: None,
            graceful_restart_time: None,
            export: hostbgp::config::Export::All,
        },
        declared_by: vec![("br0".into(), "r1".into())],
    }
}

fn local(asn: u32, id: [u8; 4], hold_time: u16) -> LocalParams {
    LocalParams {
        asn,
        router_id: Ipv4Addr::from(id),
        hold_time,
        graceful_restart: None,
    }
}

fn start(params: SessionParams, listen: Option<SocketAddr>) -> Side {
    let (tx, rx) = session::queue();
    let (ev_tx, events) = mpsc::unbounded_channel();
    let (writer, status) = session::status_channel(PeerStatus::default());
    let listener = listen.map(|addr| {
        let address = params.peer.remote.address().unwrap();
        let (_, dir) = watch::channel(HashMap::from([(Caller::Address(address), tx.clone())]));
        Listener::bind(addr, &[], dir).unwrap()
    });
    tokio::spawn(session::run(params, rx, ev_tx, writer));
    Side {
        status,
        cmd: tx,
        events,
        _listener: listener,
    }
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn established(side: &mut Side) -> u64 {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), side.events.recv()).await {
            Ok(Some(SessionEvent::Established { epoch, .. })) => return epoch,
            Ok(Some(_)) => continue,
            _ => panic!("no Established event"),
        }
    }
}

/// Collisions may take a session or two down before both sides agree: wait until both
/// stay Established, and take A's latest epoch.
async fn settled_epoch(a: &mut Side, b: &Side) -> u64 {
    let mut epoch = 0;
    let mut calm = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Ok(ev) = a.events.try_recv() {
            calm = 0;
            if let SessionEvent::Established { epoch: e, .. } = ev {
                epoch = e;
            }
        }
        let up = [&a.status, &b.status]
            .iter()
            .all(|s| s.borrow().state == State::Established);
        calm = if up { calm + 1 } else { 0 };
        if calm >= 5 && epoch > 0 {
            return epoch;
        }
    }
    panic!("sessions never settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_resolve_the_collision_and_exchange_routes() {
    let (pa, pb) = (free_port("127.0.0.1"), free_port("127.0.0.2"));
    let a = SessionParams {
        id: 1,
        peer: peer("127.0.0.2", pb, 65002, 30),
        local: local(65001, [192, 0, 2, 1], 30),
        bind: Some("127.0.0.1".parse().unwrap()),
    };
    let b = SessionParams {
        id: 2,
        peer: peer("127.0.0.1", pa, 65001, 30),
        local: local(65002, [192, 0, 2, 2], 30),
        bind: Some("127.0.0.2".parse().unwrap()),
    };
    let mut a = start(a, Some(SocketAddr::new("127.0.0.1".parse().unwrap(), pa)));
    let b = start(b, Some(SocketAddr::new("127.0.0.2".parse().unwrap(), pb)));
    let epoch = settled_epoch(&mut a, &b).await;

    let mut changes = Changes::default();
    for i in 0..2000u32 {
        let p = format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap();
        changes.announce(p, "127.0.0.1".parse().unwrap());
    }
    changes.announce(
        "2001:db8:1::/48".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    );
    a.cmd.send(SessionCmd::Changes { epoch, changes }).unwrap();
    // A diff for an older epoch is never applied.
    let mut stale = Changes::default();
    stale.announce(
        "192.0.2.0/24".parse().unwrap(),
        "127.0.0.1".parse().unwrap(),
    );
    a.cmd
        .send(SessionCmd::Changes {
            epoch: epoch + 100,
            changes: stale,
        })
        .unwrap();
    let received = b.status.borrow().received.clone();
    wait_for("B to count 2001 prefixes", || {
        (received.prefixes.load(Ordering::Relaxed) >= 2000).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // IPv4 NLRI are counted from the classic field; 2000 of them, packed.
    assert_eq!(received.prefixes.load(Ordering::Relaxed), 2000);
    assert!(
        received.updates.load(Ordering::Relaxed) < 20,
        "prefixes were not packed"
    );
    for side in [&a, &b] {
        let s = side.status.borrow();
        assert_eq!(s.state, State::Established);
        let n = s.negotiated.as_ref().unwrap();
        assert!(n.four_octet_as && n.extended_message && n.extended_next_hop_ipv4);
    }

    // Stop A with a NOTIFICATION: B sees the session go down and says why.
    let (done, wait) = tokio::sync::oneshot::channel();
    a.cmd
        .send(SessionCmd::Stop {
            notification: Some(hostbgp::bgp::wire::Notification::cease_shutdown("bye")),
            done,
        })
        .unwrap();
    wait.await.unwrap();
    let status = b.status.clone();
    let err = wait_for("B to notice", || status.borrow().last_error.clone()).await;
    assert!(
        err.contains("Cease") || err.contains("NOTIFICATION"),
        "{err}"
    );
}

/// Reads one message from a raw stream.
async fn read_msg(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Message {
    let codec = Codec::default();
    loop {
        if let Ok(Some(len)) = frame_len(buf, &codec) {
            if buf.len() >= len {
                let m = Message::decode(&buf[..len], &codec).unwrap();
                buf.drain(..len);
                return m;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn send_msg(stream: &mut TcpStream, m: Message) {
    let mut out = Vec::new();
    m.encode(&Codec::default(), &mut out);
    stream.write_all(&out).await.unwrap();
}

fn raw_open(asn: u16, hold_time: u16) -> Message {
    Message::Open(Open {
        version: 4,
        my_as: asn,
        hold_time,
        bgp_id: Ipv4Addr::new(192, 0, 2, 99),
        capabilities: vec![Capability::FourOctetAs(u32::from(asn))],
    })
}

/// The next message is the agent's OPEN.
async fn expect_open(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let m = read_msg(stream, buf).await;
    assert!(matches!(m, Message::Open(_)), "expected OPEN, got {m:?}");
}

/// The next message is a NOTIFICATION: its (code, subcode).
async fn notification_codes(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u8, u8) {
    match read_msg(stream, buf).await {
        Message::Notification(n) => (n.code.into(), n.subcode),
        other => panic!("expected NOTIFICATION, got {other:?}"),
    }
}

/// The session's last error, once it has one.
async fn last_error(side: &Side) -> String {
    let status = side.status.clone();
    wait_for("last_error", || status.borrow().last_error.clone()).await
}

/// The agent's connection to `raw` (within 10 s) and its OPEN on it: the peer's end
/// and its read buffer.
async fn accept_open(raw: &TcpListener) -> (TcpStream, Vec<u8>) {
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), raw.accept())
        .await
        .unwrap()
        .unwrap();
    let mut buf = Vec::new();
    expect_open(&mut stream, &mut buf).await;
    (stream, buf)
}

/// A session that connected to a raw peer and sent it its OPEN: the session, the
/// peer's end, and the peer's read buffer.
async fn raw_peer_session(hold_time: u16, asn_expected: u32) -> (Side, TcpStream, Vec<u8>) {
    let raw = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let port = raw.local_addr().unwrap().port();
    let params = SessionParams {
        id: 7,
        peer: peer("127.0.0.3", port, asn_expected, hold_time),
        local: local(65001, [192, 0, 2, 1], hold_time),
        bind: Some("127.0.0.1".parse().unwrap()),
    };
    let side = start(params, None);
    let (stream, buf) = accept_open(&raw).await;
    (side, stream, buf)
}

#[tokio::test]
async fn hold_timer_expires_when_the_peer_goes_silent() {
    let (mut side, mut stream, mut buf) = raw_peer_session(3, 65000).await;
    send_msg(&mut stream, raw_open(65000, 3)).await;
    send_msg(&mut stream, Message::Keepalive).await;
    established(&mut side).await;
    // Say nothing more: within the hold time we get a NOTIFICATION Hold Timer Expired.
    loop {
        match read_msg(&mut stream, &mut buf).await {
            Message::Keepalive => continue,
            Message::Notification(n) => {
                assert_eq!(n.code, ErrorCode::HoldTimerExpired);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let err = last_error(&side).await;
    assert!(err.contains("hold timer"), "{err}");
}

#[tokio::test]
async fn wrong_peer_as_gets_bad_peer_as() {
    let (side, mut stream, mut buf) = raw_peer_session(90, 65000).await;
    send_msg(&mut stream, raw_open(64999, 90)).await;
    assert_eq!(notification_codes(&mut stream, &mut buf).await, (2, 2));
    let err = last_error(&side).await;
    assert!(err.contains("OPEN"), "{err}");
}

#[tokio::test]
async fn bad_marker_gets_connection_not_synchronized() {
    let (_side, mut stream, mut buf) = raw_peer_session(90, 65000).await;
    let mut garbage = vec![0u8; 19];
    garbage[16] = 0;
    garbage[17] = 19;
    garbage[18] = 4;
    stream.write_all(&garbage).await.unwrap();
    assert_eq!(notification_codes(&mut stream, &mut buf).await, (1, 1));
}

fn raw_open_gr(asn: u16) -> Message {
    Message::Open(Open {
        version: 4,
        my_as: asn,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 99),
        capabilities: vec![
            Capability::FourOctetAs(u32::from(asn)),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: false,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    afi: 1,
                    safi: 1,
                    forwarding_state: false,
                }],
            }),
        ],
    })
}

/// A second connection from the peer (bound to its address) to our listener; sends
/// OPEN and returns the first message other than OPEN and KEEPALIVE that comes within
/// 2 s (none while the session waits for our KEEPALIVE).
async fn second_connection(to: SocketAddr) -> (TcpStream, Option<Message>) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut stream = sock.connect(to).await.unwrap();
    send_msg(&mut stream, raw_open_gr(65000)).await;
    let mut buf = Vec::new();
    loop {
        let next = read_msg(&mut stream, &mut buf);
        match tokio::time::timeout(Duration::from_secs(2), next).await {
            Ok(Message::Open(_) | Message::Keepalive) => continue,
            Ok(other) => return (stream, Some(other)),
            Err(_) => return (stream, None),
        }
    }
}

/// The peer's own connection completing right after our session came up is the other
/// half of a collision (RFC 4271 6.8: the Established one stays), not a restart; one
/// that comes later is the peer restarting (RFC 4724 4.2) and replaces the session.
#[tokio::test]
async fn a_second_connection_is_a_collision_first_and_a_restart_later() {
    let raw = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let ours = SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1")));
    let mut local = local(65001, [192, 0, 2, 1], 90);
    local.graceful_restart = Some(GracefulRestartParams {
        restart_time: 120,
        restarting: false,
        forwarding: false,
    });
    let params = SessionParams {
        id: 8,
        peer: peer("127.0.0.3", raw.local_addr().unwrap().port(), 65000, 90),
        local,
        bind: Some("127.0.0.1".parse().unwrap()),
    };
    let mut side = start(params, Some(ours));
    let (mut first, _buf) = accept_open(&raw).await;
    send_msg(&mut first, raw_open_gr(65000)).await;
    send_msg(&mut first, Message::Keepalive).await;
    let epoch = established(&mut side).await;

    let (_collision, reply) = second_connection(ours).await;
    match reply {
        Some(Message::Notification(n)) => {
            assert!(n.is(CeaseSubcode::ConnectionCollisionResolution), "{n}")
        }
        other => panic!("expected Cease / collision, got {other:?}"),
    }
    assert!(
        side.events.try_recv().is_err(),
        "the established session was disturbed"
    );
    assert_eq!(side.status.borrow().state, State::Established);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (mut restarted, reply) = second_connection(ours).await;
    assert!(
        reply.is_none(),
        "expected the restart to be accepted, got {reply:?}"
    );
    match tokio::time::timeout(Duration::from_secs(10), side.events.recv()).await {
        Ok(Some(SessionEvent::Down { epoch: e, .. })) => assert_eq!(e, epoch),
        other => panic!("expected the old session down, got {other:?}"),
    }
    send_msg(&mut restarted, Message::Keepalive).await;
    assert!(established(&mut side).await > epoch);
}

/// A burst of ROUTE-REFRESH requests costs one copy of the Adj-RIB-Out: the agent hears
/// of the first, and the rest are answered by it; once its End-of-RIB is sent, the
/// next request is heard again.
#[tokio::test]
async fn route_refreshes_in_a_burst_are_answered_once() {
    let (mut side, mut stream, _buf) = raw_peer_session(90, 65000).await;
    send_msg(&mut stream, raw_open(65000, 90)).await;
    send_msg(&mut stream, Message::Keepalive).await;
    let epoch = established(&mut side).await;
    let refresh = || {
        Message::RouteRefresh(RouteRefresh {
            afi: 1,
            subtype: 0,
            safi: 1,
        })
    };
    let refreshes = |side: &mut Side| {
        std::iter::from_fn(|| side.events.try_recv().ok())
            .filter(|e| matches!(e, SessionEvent::RouteRefresh { .. }))
            .count()
    };
    for _ in 0..50 {
        send_msg(&mut stream, refresh()).await;
    }
    // The next keepalive exchange shows every request was read.
    send_msg(&mut stream, Message::Keepalive).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(refreshes(&mut side), 1, "50 requests in a row");

    side.cmd
        .send(SessionCmd::EndOfRib {
            epoch,
            families: vec![],
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_msg(&mut stream, refresh()).await;
    wait_for("the request after End-of-RIB", || {
        (refreshes(&mut side) == 1).then_some(())
    })
    .await;
}
