//! One peer's sync: what its session's queue receives for a config and a kernel view.

use super::*;
use crate::agent::Established;
use crate::bgp::session::{self, PeerStatus, SessionReceiver};
use crate::bgp::wire::community::GRACEFUL_SHUTDOWN;
use crate::config::parse_str;
use crate::kernel::{Address, Link};

/// `forwards` on `br0` (peer r1, exporting `export`) and `br1`: each advertised as a
/// host prefix with this host as next hop, whatever the kernel holds.
fn config(br0: &[String], br1: &[String], export: &str) -> Config {
    let list = |f: &[String]| format!("[{}]", f.join(", "));
    let yaml = format!(
        "
networks:
  br0:
    type: bridge
    forwards: {}
    config:
      bgp.peers.r1.address: 192.0.2.1
      bgp.peers.r1.asn: \"65001\"
      bgp.peers.r1.export: {export}
  br1:
    type: bridge
    forwards: {}
",
        list(br0),
        list(br1)
    );
    parse_str(&yaml, "n1").unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Our end of the session holds 192.0.2.10 on `eth0`, with 2001:db8::10 beside it
/// when `dual`.
fn view(dual: bool) -> KernelView {
    let mut view = KernelView::default();
    view.links.insert(2, Link::up(2, "eth0", None));
    let mut addresses = vec!["192.0.2.10/24"];
    if dual {
        addresses.push("2001:db8::10/64");
    }
    let addresses = addresses
        .into_iter()
        .map(|a| Address {
            ifindex: 2,
            net: a.parse().unwrap(),
            tentative: false,
            link_scope: false,
        })
        .collect();
    view.addresses.insert(2, addresses);
    view
}

/// r1's session, Established over IPv4 in `families`, and the far end of its queue.
fn session(config: &Config, families: &[Family]) -> (PeerSession, SessionReceiver) {
    let peer = config.peers().into_iter().next().unwrap();
    let (cmd, queue) = session::queue();
    let (_, status) = session::status_channel(PeerStatus::default());
    let mut session = PeerSession::new(1, peer, cmd, status);
    session.established = Some(Established {
        epoch: 7,
        view: SessionView {
            local: "192.0.2.10".parse().unwrap(),
            extended_next_hop_ipv4: false,
        },
        families: families.to_vec(),
    });
    (session, queue)
}

const BOTH: &[Family] = &[Family::Ipv4Unicast, Family::Ipv6Unicast];

/// Syncs `session` with what `config` advertises; returns how many change sets it
/// handed to the queue.
async fn sync_only(
    session: &mut PeerSession,
    config: &Config,
    view: &KernelView,
    only: Option<&[IpNet]>,
    drained: bool,
) -> u64 {
    let intent = plan::plan(config, view);
    let input = SyncInput {
        config,
        view,
        adverts: &intent.adverts,
        drained,
    };
    session.sync(&input, only).await
}

/// Syncs `session` with what `config` advertises; returns the change sets it got.
async fn sync(
    session: &mut PeerSession,
    queue: &mut SessionReceiver,
    config: &Config,
    view: &KernelView,
    only: Option<&[IpNet]>,
) -> Vec<Changes> {
    let handed = sync_only(session, config, view, only, false).await;
    let mut got = Vec::new();
    while let Ok(cmd) = queue.try_recv() {
        match cmd {
            SessionCmd::Changes { epoch, changes } => {
                assert_eq!(epoch, 7, "changes carry the session's epoch");
                got.push(changes);
            }
            _ => panic!("only changes expected"),
        }
    }
    assert_eq!(
        handed as usize,
        got.len(),
        "the count of change sets handed"
    );
    got
}

/// Each announced prefix with its next hop, sorted.
fn announced(changes: &Changes) -> Vec<(IpNet, IpAddr)> {
    let mut out: Vec<(IpNet, IpAddr)> = changes
        .announce
        .iter()
        .flat_map(|(path, prefixes)| prefixes.iter().map(|p| (*p, path.next_hop)))
        .collect();
    out.sort();
    out
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_full_sync_announces_each_prefix_under_the_next_hop_of_its_family() {
    let config = config(&strings(&["203.0.113.1", "2001:db8:f::1"]), &[], "all");
    let (mut s, mut queue) = session(&config, BOTH);
    let got = sync(&mut s, &mut queue, &config, &view(true), None).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        announced(&got[0]),
        [
            (net("203.0.113.1/32"), ip("192.0.2.10")),
            (net("2001:db8:f::1/128"), ip("2001:db8::10")),
        ]
    );
    assert!(s.unsent.is_empty());
    // In line: a second full sync has nothing to say.
    assert!(sync(&mut s, &mut queue, &config, &view(true), None)
        .await
        .is_empty());
}

#[tokio::test]
async fn a_prefix_without_a_next_hop_or_a_family_is_held_back_with_the_reason() {
    let config = config(&strings(&["203.0.113.1", "2001:db8:f::1"]), &[], "all");
    // No IPv6 address beside our IPv4 one: no IPv6 next hop for this session.
    let (mut s, mut queue) = session(&config, BOTH);
    let got = sync(&mut s, &mut queue, &config, &view(false), None).await;
    assert_eq!(
        announced(&got[0]),
        [(net("203.0.113.1/32"), ip("192.0.2.10"))]
    );
    assert!(
        s.unsent.contains_key(&Family::Ipv6Unicast),
        "{:?}",
        s.unsent
    );
    // IPv6 not negotiated at all.
    let (mut s, mut queue) = session(&config, &[Family::Ipv4Unicast]);
    sync(&mut s, &mut queue, &config, &view(true), None).await;
    assert_eq!(
        s.unsent[&Family::Ipv6Unicast],
        "family not negotiated with this peer"
    );
}

#[tokio::test]
async fn changed_prefixes_are_announced_or_withdrawn_alone() {
    let before = config(&strings(&["203.0.113.1", "203.0.113.2"]), &[], "all");
    let (mut s, mut queue) = session(&before, BOTH);
    sync(&mut s, &mut queue, &before, &view(true), None).await;
    let after = config(&strings(&["203.0.113.1", "203.0.113.3"]), &[], "all");
    let changed = [net("203.0.113.2/32"), net("203.0.113.3/32")];
    let got = sync(&mut s, &mut queue, &after, &view(true), Some(&changed)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].withdraw, [net("203.0.113.2/32")]);
    assert_eq!(
        announced(&got[0]),
        [(net("203.0.113.3/32"), ip("192.0.2.10"))]
    );
    assert!(sync(&mut s, &mut queue, &after, &view(true), None)
        .await
        .is_empty());
}

#[tokio::test]
async fn a_peer_exporting_its_network_hears_only_that_networks_prefixes() {
    let (ours, theirs) = (strings(&["203.0.113.1"]), strings(&["203.0.113.2"]));
    let scoped = config(&ours, &theirs, "network");
    let (mut s, mut queue) = session(&scoped, BOTH);
    let got = sync(&mut s, &mut queue, &scoped, &view(true), None).await;
    assert_eq!(
        announced(&got[0]),
        [(net("203.0.113.1/32"), ip("192.0.2.10"))]
    );
    // Widened to every prefix: the other network's comes too.
    let all = config(&ours, &theirs, "all");
    s.peer = all.peers().remove(0);
    let got = sync(&mut s, &mut queue, &all, &view(true), None).await;
    assert_eq!(
        announced(&got[0]),
        [(net("203.0.113.2/32"), ip("192.0.2.10"))]
    );
}

#[tokio::test]
async fn a_big_table_goes_out_in_growing_chunks_the_last_one_closing_the_sync() {
    let total = FIRST_SYNC_CHUNK + 2 * FIRST_SYNC_CHUNK + 5;
    let forwards: Vec<String> = (1..=total).map(|i| format!("2001:db8:f::{i:x}")).collect();
    let config = config(&forwards, &[], "all");
    let (mut s, mut queue) = session(&config, BOTH);
    let got = sync(&mut s, &mut queue, &config, &view(true), None).await;
    let sizes: Vec<(usize, bool)> = got.iter().map(|c| (c.announced(), c.more)).collect();
    assert_eq!(
        sizes,
        [
            (FIRST_SYNC_CHUNK, true),
            (2 * FIRST_SYNC_CHUNK, true),
            (5, false)
        ]
    );
}

#[tokio::test]
async fn drained_paths_carry_graceful_shutdown() {
    let config = config(&strings(&["203.0.113.1"]), &[], "all");
    let (mut s, mut queue) = session(&config, BOTH);
    sync_only(&mut s, &config, &view(true), None, true).await;
    let Ok(SessionCmd::Changes { changes, .. }) = queue.try_recv() else {
        panic!("no changes");
    };
    let paths: Vec<&PathKey> = changes.announce.keys().collect();
    assert_eq!(paths.len(), 1);
    assert_eq!(paths[0].extra.communities, [GRACEFUL_SHUTDOWN]);
}

#[tokio::test]
async fn a_full_queue_marks_the_session_for_a_reset() {
    let config = config(&strings(&["203.0.113.1"]), &[], "all");
    let (mut s, _queue) = session(&config, BOTH);
    while s.cmd.send(SessionCmd::BfdUp).is_ok() {}
    assert!(!s.overflowed);
    sync_only(&mut s, &config, &view(true), None, false).await;
    assert!(s.overflowed);
}

#[tokio::test]
async fn next_hops_moved_when_the_address_they_came_from_went() {
    let config = config(&strings(&["2001:db8:f::1"]), &[], "all");
    let (mut s, mut queue) = session(&config, BOTH);
    sync(&mut s, &mut queue, &config, &view(true), None).await;
    assert!(!s.next_hops_moved(&view(true)));
    assert!(s.next_hops_moved(&view(false)));
    // A session that is not established has none to move.
    s.established = None;
    assert!(!s.next_hops_moved(&view(false)));
}
