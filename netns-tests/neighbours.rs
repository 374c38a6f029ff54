//! Issue 16 item 4: per-instance addresses (`bgp.ipvN.instances`). A DHCP-less
//! instance whose address is in no config is found in the host's neighbour table by
//! its NIC's MAC once it talks; a static `ipv4.address` is advertised at once; both
//! are withdrawn when the instance stops, though its neighbour entries linger.

use crate::instances::{instance, our_route, start};
use crate::lab::{self, wait_until, Lab, TIMEOUT};

const KEYS: &[(&str, &str)] = &[
    ("ipv4.address", "192.0.2.1/24"),
    ("ipv6.address", "2001:db8:100::1/64"),
    ("bgp.ipv4.instances", "true"),
    ("bgp.ipv6.instances", "true"),
];

const C1_MAC: &str = "00:16:3e:00:00:01";
const C2_MAC: &str = "00:16:3e:00:00:02";

/// c1: only its MAC and veth (its addresses are configured inside the instance);
/// c2: a static IPv4 address.
const INSTANCES: &str = "  c1:
    devices:
      eth0: {type: nic, network: br0, host_name: vc1, hwaddr: \"00:16:3e:00:00:01\"}
  c2:
    devices:
      eth0: {type: nic, network: br0, host_name: vc2, hwaddr: \"00:16:3e:00:00:02\", ipv4.address: 192.0.2.20}
";

/// Gives the instance's eth0 the NIC's MAC, as LXD does from `volatile.DEV.hwaddr`.
/// Live: setting the link down would drop its IPv6 addresses.
fn set_mac(l: &Lab, i: &str, mac: &str) {
    l.ip(i, &["link", "set", "dev", "eth0", "address", mac]);
}

/// The instance talks to the bridge, so the host learns its addresses.
fn ping_bridge(l: &Lab, i: &str) {
    for target in ["192.0.2.1", "2001:db8:100::1"] {
        wait_until(&format!("ping {target} from the instance"), TIMEOUT, || {
            l.try_exec(i, &["ping", "-c1", "-W1", target]).is_ok()
        });
    }
}

#[test]
fn neighbour_learned_and_static_instance_addresses() {
    if !lab::require_root("neighbour_learned_and_static_instance_addresses") {
        return;
    }
    let mut env = start(INSTANCES, KEYS, false);
    let (l, h, r) = (&env.topo.lab, &env.topo.h, &env.topo.r);
    // A fixed bridge MAC, as LXD sets (`volatile.bridge.hwaddr`): otherwise the
    // bridge takes its ports' lowest, and each change of it flushes its neighbours.
    l.ip(
        h,
        &["link", "set", "dev", "br0", "address", "00:16:3e:aa:bb:cc"],
    );

    // c1 starts with addresses hostbgp has never been told of.
    let i1 = instance(l, h, "i1", "vc1", &["192.0.2.10/24", "2001:db8:100::10/64"]);
    set_mac(l, &i1, C1_MAC);
    l.enslave(h, "vc1", "br0");
    ping_bridge(l, &i1);
    let r4 = env.router.wait_route("192.0.2.10/32");
    let r6 = env.router.wait_route("2001:db8:100::10/128");
    assert_eq!(r4.next_hops, [lab::HOST_V4], "{r4:?}");
    assert_eq!(r6.next_hops, [lab::HOST_V6], "{r6:?}");
    // On-link on the bridge: no route of ours.
    assert_eq!(our_route(l, h, "192.0.2.10/32"), "");
    assert_eq!(our_route(l, h, "2001:db8:100::10/128"), "");
    for target in ["192.0.2.10", "2001:db8:100::10"] {
        wait_until(&format!("ping {target} from the router"), TIMEOUT, || {
            l.try_exec(r, &["ping", "-c1", "-W1", target]).is_ok()
        });
    }
    // Only the instance's global addresses: never its link-local one.
    let advertised = env.hb.advertised();
    assert!(
        !advertised.iter().any(|p| p.starts_with("fe80")),
        "{advertised:?}"
    );

    // The neighbour entry deleted (an event, not a poll): withdrawn; relearned when
    // the instance talks again.
    l.ip(h, &["neigh", "del", "192.0.2.10", "dev", "br0"]);
    env.router.wait_no_route("192.0.2.10/32");
    ping_bridge(l, &i1);
    env.router.wait_route("192.0.2.10/32");

    // c2's static address needs no neighbour entry.
    let i2 = instance(l, h, "i2", "vc2", &["192.0.2.20/24"]);
    set_mac(l, &i2, C2_MAC);
    l.enslave(h, "vc2", "br0");
    let r2 = env.router.wait_route("192.0.2.20/32");
    assert_eq!(r2.next_hops, [lab::HOST_V4], "{r2:?}");

    // A restart finds the learned addresses in its first dump of the kernel (the
    // instance says nothing meanwhile).
    env.hb.term();
    assert!(env.hb.wait_exit(TIMEOUT).is_some(), "no exit on SIGTERM");
    env.hb.respawn(l);
    wait_until(
        "hostbgp advertises the learned /32 and /128 again",
        TIMEOUT,
        || {
            let a = env.hb.advertised();
            a.iter().any(|p| p == "192.0.2.10/32") && a.iter().any(|p| p == "2001:db8:100::10/128")
        },
    );
    env.wait_established();
    env.router.wait_route("192.0.2.10/32");
    env.router.wait_route("2001:db8:100::10/128");

    // Stop: the veths go; the host's neighbour entries stay (STALE until GC) but
    // say nothing of a stopped instance.
    l.delete_link(h, "vc1");
    env.router.wait_no_route("192.0.2.10/32");
    env.router.wait_no_route("2001:db8:100::10/128");
    let neigh = l.ip(h, &["neigh", "show", "dev", "br0"]);
    assert!(neigh.contains("192.0.2.10"), "{neigh}");
    l.delete_link(h, "vc2");
    env.router.wait_no_route("192.0.2.20/32");
    // The bridge's subnet stays.
    env.router.wait_route("192.0.2.0/24");
    env.router.assert_no_nexthop_errors();
}
