//! Issue 3 acceptance shape: an instance's external routes, end to end with pings.

use crate::lab::{self, wait_until, TIMEOUT};
use crate::speaker::{Env, Opts};

/// hostbgp's kernel route protocol number.
const PROTO: u8 = hostbgp::kernel::ROUTE_PROTOCOL;

const INSTANCES: &str = "  c1:
    devices:
      eth0: {type: nic, network: br0, host_name: vc1, ipv4.routes.external: 203.0.113.64/28, ipv6.routes.external: \"2001:db8:100:40::/64\"}
";

/// Instance namespace `i` joined to the host by veth `vc1` (host side, not yet
/// enslaved): 203.0.113.65/32 and 2001:db8:100:40::1/128, default routes via the
/// bridge's addresses 192.0.2.1 / 2001:db8:100::1. Enables forwarding in the host.
pub fn instance(l: &lab::Lab, h: &str) -> String {
    l.forwarding(h);
    crate::instances::instance(
        l,
        h,
        "i",
        "vc1",
        &["203.0.113.65/32", "2001:db8:100:40::1/128"],
    )
}

#[test]
fn instance_routes_datapath() {
    if !lab::require_root("instance_routes_datapath") {
        return;
    }
    // The bridge's own subnets must not overlap the NIC's external routes.
    let env = Env::start(Opts {
        bridge_addrs: vec!["192.0.2.1/24", lab::BR_V6],
        instances: INSTANCES,
        ..Default::default()
    });
    let l = &env.topo.lab;
    let (r, h) = (&env.topo.r, &env.topo.h);
    let proto = PROTO.to_string();
    let i = instance(l, h);

    env.wait_established();
    env.router.wait_route("192.0.2.0/24");
    assert!(env.router.route("203.0.113.64/28").is_empty());

    // Start: the NIC joins the bridge.
    l.enslave(h, "vc1", "br0");
    let r4 = env.router.wait_route("203.0.113.64/28");
    let r6 = env.router.wait_route("2001:db8:100:40::/64");
    assert_eq!(r4.next_hops, [lab::HOST_V4], "{r4:?}");
    assert_eq!(r6.next_hops, [lab::HOST_V6], "{r6:?}");
    let k4 = l.routes(h, false, &["proto", &proto]);
    assert!(k4.contains("203.0.113.64/28 dev br0"), "{k4}");
    let k6 = l.routes(h, true, &["proto", &proto]);
    assert!(k6.contains("2001:db8:100:40::/64 dev br0"), "{k6}");

    l.wait_ping(r, "203.0.113.65");
    l.wait_ping(r, "2001:db8:100:40::1");

    // Stop: the NIC goes away.
    l.delete_link(h, "vc1");
    env.router.wait_no_route("203.0.113.64/28");
    env.router.wait_no_route("2001:db8:100:40::/64");
    wait_until("host kernel route removed", TIMEOUT, || {
        !l.routes(h, false, &["proto", &proto])
            .contains("203.0.113.64/28")
            && !l
                .routes(h, true, &["proto", &proto])
                .contains("2001:db8:100:40::/64")
    });
    // The instance's end went with it.
    assert!(l.try_ip(&i, &["link", "show", "eth0"]).is_err());
    env.router.assert_no_nexthop_errors();
}
