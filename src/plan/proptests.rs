//! The incremental planner against a rebuild: after any sequence of kernel events,
//! updating with what each batch touched must give the intent that planning from
//! scratch gives, and the delta must name every prefix whose advert or route moved.
use std::collections::BTreeSet;

use ipnet::IpNet;
use proptest::collection::vec;
use proptest::prelude::*;

use super::tests::{bridge, config, instance, nic, BR};
use super::*;
use crate::config::NetworkKind;
use crate::kernel::{Address, KernelEvent, Link, Mac, Neighbour, RouteNextHop};

const BR1: u32 = BR + 1;
/// Host-side interfaces of the NICs, then a stray link.
const PORTS: [&str; 5] = ["v0", "v1", "v2", "v3", "x"];
/// Few enough that NICs, bridges and the OVN network keep claiming the same ones.
const V4: [&str; 5] = [
    "203.0.113.0/32",
    "203.0.113.1/32",
    "203.0.113.2/32",
    "198.51.100.0/24",
    "192.0.2.0/24",
];
const V6: [&str; 2] = ["2001:db8:1::/64", "2001:db8:2::/64"];
const ADDRESSES: [&str; 5] = [
    "198.51.100.1/24",
    "198.51.100.2/24",
    "192.0.2.1/24",
    "2001:db8:2::1/64",
    "10.0.0.1/24",
];

/// Neighbours: inside and outside the bridges' subnets, one a NIC's external /32.
const NEIGHBOURS: [&str; 5] = [
    "198.51.100.50",
    "192.0.2.50",
    "203.0.113.1",
    "2001:db8:2::50",
    "10.0.0.50",
];
/// The NICs' MACs (two NICs share the first), then a stray one.
const MACS: [Mac; 3] = [
    Mac([0, 0x16, 0x3e, 0, 0, 1]),
    Mac([0, 0x16, 0x3e, 0, 0, 2]),
    Mac([0, 0x16, 0x3e, 0, 0, 3]),
];

fn prefixes() -> Vec<IpNet> {
    V4.iter()
        .chain(V6.iter())
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Two bridges (br1 with a fixed IPv4 next hop and NAT), an OVN network claiming some
/// of the same prefixes, and four NICs over overlapping prefixes.
fn lab_config(picks: &[(usize, Vec<usize>)]) -> Config {
    let mut br0 = bridge("br0");
    br0.ipv4.instances = true;
    br0.ipv6.instances = true;
    // br0's subnets come from its config, br1's from the kernel's addresses.
    br0.ipv4.address = Some("198.51.100.1/24".parse().unwrap());
    br0.ipv6.address = Some("2001:db8:2::1/64".parse().unwrap());
    let mut br1 = bridge("br1");
    br1.ipv4.instances = true;
    br1.ipv4.nexthop = Some("198.51.100.9".parse().unwrap());
    br1.ipv6.nat = true;
    let mut ovn = bridge("ovn1");
    ovn.kind = NetworkKind::Ovn;
    ovn.ipv4.ovn_router_address = Some("198.51.100.20".parse().unwrap());
    ovn.ipv4.address = Some("192.0.2.1/24".parse().unwrap());
    let mut instances = Vec::new();
    for (i, (network, claims)) in picks.iter().enumerate() {
        let all = prefixes();
        let claimed = |v6: bool| -> Vec<String> {
            claims
                .iter()
                .map(|c| all[*c % all.len()])
                .filter(|p| p.addr().is_ipv6() == v6)
                .map(|p| p.to_string())
                .collect()
        };
        let (ext4, ext6) = (claimed(false), claimed(true));
        let gateway = (i % 2 == 0).then(|| format!("198.51.100.{}", 10 + i));
        let mut n = nic(
            ["br0", "br1", "ovn1"][*network % 3],
            PORTS[i],
            gateway.as_deref(),
            &ext4.iter().map(String::as_str).collect::<Vec<_>>(),
            &ext6.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        n.name = format!("eth{i}");
        n.hwaddr = [Some(MACS[0]), Some(MACS[1]), Some(MACS[0]), None][i % 4];
        instances.push(instance(&format!("c{i}"), Some("node1"), n));
    }
    config(vec![br0, br1, ovn], instances)
}

fn link_names() -> Vec<&'static str> {
    ["br0", "br1"].into_iter().chain(PORTS).collect()
}

fn any_event() -> impl Strategy<Value = KernelEvent> {
    let index = 0..7u32;
    let prefix = 0..V4.len() + V6.len();
    prop_oneof![
        // A link appears or changes: any name (renames too), any master, up or down.
        (index.clone(), 0..7usize, 0..3u32, any::<bool>()).prop_map(|(i, name, master, up)| {
            let mut link = Link::up(
                BR + i,
                link_names()[name],
                [None, Some(BR), Some(BR1)][master as usize],
            );
            link.admin_up = up;
            KernelEvent::LinkChanged(link)
        }),
        index.clone().prop_map(|i| KernelEvent::LinkRemoved(BR + i)),
        index.prop_map(|i| KernelEvent::PortReleased(BR + i)),
        (0..2u32, 0..ADDRESSES.len(), any::<bool>(), any::<bool>()).prop_map(
            |(bridge, a, tentative, add)| {
                let address = Address {
                    ifindex: BR + bridge,
                    net: ADDRESSES[a].parse().unwrap(),
                    tentative,
                    link_scope: false,
                };
                if add {
                    KernelEvent::AddressAdded(address)
                } else {
                    KernelEvent::AddressRemoved(address)
                }
            }
        ),
        (prefix.clone(), 0..2u32).prop_map(|(p, via)| {
            let prefix = prefixes()[p];
            KernelEvent::RouteChanged(Route {
                prefix,
                next_hops: vec![RouteNextHop {
                    ifindex: BR + via,
                    gateway: None,
                }],
            })
        }),
        prefix.prop_map(|p| KernelEvent::RouteRemoved(prefixes()[p])),
        neighbour_event(),
    ]
}

fn neighbour_event() -> impl Strategy<Value = KernelEvent> {
    (0..3u32, 0..NEIGHBOURS.len(), 0..MACS.len(), any::<bool>()).prop_map(|(i, a, mac, seen)| {
        let ifindex = BR + i;
        let ip = NEIGHBOURS[a].parse().unwrap();
        if seen {
            KernelEvent::NeighbourSeen(Neighbour {
                ifindex,
                ip,
                mac: MACS[mac],
            })
        } else {
            KernelEvent::NeighbourGone { ifindex, ip }
        }
    })
}

fn nic_picks() -> impl Strategy<Value = Vec<(usize, Vec<usize>)>> {
    vec((0..3usize, vec(0..V4.len() + V6.len(), 0..4)), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn updates_end_where_a_rebuild_does(
        picks in nic_picks(),
        batches in vec(vec(any_event(), 1..4), 1..24),
    ) {
        replay(&lab_config(&picks), KernelView::default(), batches)?;
    }

    /// From a host where both bridges and every port are up, so that instances run
    /// and their neighbours count: what the random walk above rarely reaches.
    #[test]
    fn own_addresses_end_where_a_rebuild_does(
        picks in nic_picks(),
        batches in vec(vec(prop_oneof![3 => neighbour_event(), 1 => any_event()], 1..4), 1..24),
    ) {
        let mut view = KernelView::default();
        view.apply(&KernelEvent::LinkChanged(Link::up(BR, "br0", None)));
        view.apply(&KernelEvent::LinkChanged(Link::up(BR1, "br1", None)));
        for (i, port) in PORTS.iter().enumerate().take(4) {
            let master = [BR, BR1][i % 2];
            view.apply(&KernelEvent::LinkChanged(Link::up(BR + 2 + i as u32, port, Some(master))));
        }
        view.apply(&KernelEvent::AddressAdded(Address {
            ifindex: BR1,
            net: ADDRESSES[0].parse().unwrap(),
            tentative: false,
            link_scope: false,
        }));
        replay(&lab_config(&picks), view, batches)?;
    }
}

/// Applies `batches` one at a time, updating a planner, and compares each step with
/// a rebuild.
fn replay(
    config: &Config,
    mut view: KernelView,
    batches: Vec<Vec<KernelEvent>>,
) -> Result<(), TestCaseError> {
    let mut planner = Planner::new(config);
    planner.rebuild(&view);
    for batch in batches {
        let before = planner.intent().clone();
        let mut touched = Touched::default();
        for event in &batch {
            touched.note(&view, event);
            view.apply(event);
        }
        let delta = planner.update(&view, &touched);
        let rebuilt = plan(config, &view);
        prop_assert_eq!(planner.intent(), &rebuilt, "after {:?}", batch);
        let moved: BTreeSet<IpNet> = prefixes()
            .into_iter()
            .chain(before.adverts.keys())
            .chain(rebuilt.adverts.keys())
            .filter(|p| before.adverts.get(p) != rebuilt.adverts.get(p))
            .collect();
        let reported: BTreeSet<IpNet> = delta.adverts.iter().copied().collect();
        prop_assert!(
            moved.is_subset(&reported),
            "adverts moved {:?}, reported {:?}",
            moved,
            reported
        );
        let moved: BTreeSet<IpNet> = before
            .routes
            .keys()
            .chain(rebuilt.routes.keys())
            .filter(|p| before.routes.get(p) != rebuilt.routes.get(p))
            .copied()
            .collect();
        prop_assert_eq!(moved.into_iter().collect::<Vec<_>>(), delta.routes);
    }
    Ok(())
}
