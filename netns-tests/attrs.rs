//! Issue 16 item 1: per-network and per-NIC path attributes (communities, large
//! communities, MED, AS_PATH prepend) as bird2 receives them.

use crate::bird::BirdRoute;
use crate::instances::{instance, start};
use crate::lab::{self, wait_until_state, TIMEOUT};
use crate::speaker::config_yaml;

/// The network's attributes; the NIC below adds to them.
const NETWORK_KEYS: &[(&str, &str)] = &[
    ("bgp.communities", "65010:100 no-export"),
    ("bgp.large_communities", "65010:1:2"),
    ("bgp.med", "50"),
    ("bgp.as_path_prepend", "2"),
];

/// c1 on br0 with 203.0.113.64/28; `med` is its own MED.
fn nic(med: &str) -> String {
    format!(
        "  c1:
    devices:
      eth0: {{type: nic, network: br0, host_name: vc1, ipv4.routes.external: 203.0.113.64/28, bgp.communities: \"65010:200\", bgp.large_communities: \"65010:3:4\", bgp.med: \"{med}\", bgp.as_path_prepend: \"1\"}}
"
    )
}

fn attr<'a>(r: &'a BirdRoute, key: &str) -> &'a str {
    r.attr(key)
        .unwrap_or_else(|| panic!("{} has no {key}: {r:?}", r.prefix))
}

/// `r` carries each attribute of `want` with that value.
fn assert_attrs(r: &BirdRoute, want: &[(&str, &str)]) {
    for (key, value) in want {
        assert_eq!(attr(r, key), *value, "{key}: {r:?}");
    }
}

#[test]
fn network_and_nic_attributes_reach_bird() {
    if !lab::require_root("network_and_nic_attributes_reach_bird") {
        return;
    }
    let env = start(&nic("60"), NETWORK_KEYS, false);
    let (l, h) = (&env.topo.lab, &env.topo.h);
    instance(l, h, "i1", "vc1", &["203.0.113.65/32"]);
    l.enslave(h, "vc1", "br0");

    // The bridge's own subnet: the network's attributes only.
    let net = env.router.wait_route("192.0.2.0/24");
    let communities = attr(&net, "BGP.community");
    assert!(communities.contains("(65010,100)"), "{net:?}");
    assert!(!communities.contains("(65010,200)"), "{net:?}");
    // NO_EXPORT is 65535:65281; bird may print it by number or by name.
    assert!(
        communities.contains("(65535,65281)") || communities.contains("no-export"),
        "{net:?}"
    );
    assert_attrs(
        &net,
        &[
            ("BGP.large_community", "(65010, 1, 2)"),
            ("BGP.med", "50"),
            ("BGP.as_path", "65010 65010 65010"),
        ],
    );

    // The NIC's prefix: communities unioned, its MED and prepend win.
    let nic_route = env.router.wait_route("203.0.113.64/28");
    let communities = attr(&nic_route, "BGP.community");
    assert!(
        communities.contains("(65010,100)") && communities.contains("(65010,200)"),
        "{nic_route:?}"
    );
    assert_attrs(
        &nic_route,
        &[
            ("BGP.large_community", "(65010, 1, 2) (65010, 3, 4)"),
            ("BGP.med", "60"),
            ("BGP.as_path", "65010 65010"),
        ],
    );

    // A reload that changes the NIC's MED re-announces its prefix with the new value;
    // the network's prefix keeps its attributes.
    env.hb
        .write_config(&config_yaml(lab::ROUTER_V6, NETWORK_KEYS, &nic("70")));
    env.hb.reload().expect("hostbgp reload");
    wait_until_state("bird sees MED 70 on 203.0.113.64/28", TIMEOUT, || {
        let r = env.router.route("203.0.113.64/28");
        (r.iter().any(|r| r.attr("BGP.med") == Some("70")), r)
    });
    let net = env.router.wait_route("192.0.2.0/24");
    assert_eq!(attr(&net, "BGP.med"), "50", "{net:?}");
    env.router.assert_clean("h1");
}
