//! Why something configured is not advertised (`hostbgp routes --all`), from the same
//! config, kernel view and intent the agent acts on.
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::own_addrs::OwnAddrs;
use super::{instance_owner, nics_on, Intent};
use crate::config::{Config, Network, NetworkKind, Nic};
use crate::kernel::KernelView;

/// One configured thing that is not advertised now, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotAdvertised {
    /// The prefix, when the config names one (a bridge's subnet comes from the kernel).
    pub prefix: Option<String>,
    pub owner: String,
    pub reason: String,
}

/// What the kernel says of a wanted route that is not in: an install error, or who
/// displaced it; the agent knows these, the plan does not.
pub trait RouteTrouble {
    fn trouble(&self, prefix: &IpNet) -> Option<String>;
}

/// Every bridge subnet family and NIC prefix of `config` that is not advertised.
pub fn not_advertised(
    config: &Config,
    view: &KernelView,
    intent: &Intent,
    trouble: &dyn RouteTrouble,
) -> Vec<NotAdvertised> {
    let mut out = Vec::new();
    for network in config
        .networks
        .values()
        .filter(|n| n.kind == NetworkKind::Bridge)
    {
        bridge_reasons(network, view, &mut out);
    }
    for (instance, nic, network) in nics_on(config, NetworkKind::Bridge) {
        let owner = instance_owner(instance, nic).to_string();
        let prefixes = nic
            .ipv4_routes_external
            .iter()
            .map(|p| IpNet::V4(*p))
            .chain(nic.ipv6_routes_external.iter().map(|p| IpNet::V6(*p)));
        for prefix in prefixes.filter(|p| !intent.adverts.contains_key(p)) {
            let reason = match nic_stopped(nic, network, view) {
                Some(why) => why,
                None => match (
                    intent.routes.contains_key(&prefix),
                    trouble.trouble(&prefix),
                ) {
                    (_, Some(why)) => why,
                    (true, None) => "its kernel route is not in yet".to_string(),
                    (false, None) => "another NIC claims the same prefix".to_string(),
                },
            };
            out.push(NotAdvertised {
                prefix: Some(prefix.to_string()),
                owner: owner.clone(),
                reason,
            });
        }
        own_reasons(nic, network, view, &owner, &mut out);
    }
    out
}

/// Why a NIC's own address is not advertised (`bgp.ipvN.instances`).
fn own_reasons(
    nic: &Nic,
    network: &Network,
    view: &KernelView,
    owner: &str,
    out: &mut Vec<NotAdvertised>,
) {
    let Some(own) = OwnAddrs::new(network, nic) else {
        return;
    };
    let bridge = view.link_by_name(&network.name).map(|l| l.index);
    for family in own.enabled() {
        let reason = match (nic_stopped(nic, network, view), bridge) {
            (Some(why), _) => why,
            (None, Some(bridge)) => match own.missing(family, bridge, view) {
                Some(why) => why,
                None => continue,
            },
            (None, None) => continue,
        };
        let key = ["ipv4", "ipv6"][family];
        out.push(NotAdvertised {
            prefix: None,
            owner: owner.to_string(),
            reason: format!("bgp.{key}.instances: {reason}"),
        });
    }
}

fn bridge_reasons(network: &Network, view: &KernelView, out: &mut Vec<NotAdvertised>) {
    let owner = format!("network/{}", network.name);
    let mut push = |reason: String| {
        out.push(NotAdvertised {
            prefix: None,
            owner: owner.clone(),
            reason,
        })
    };
    let Some(link) = view.link_by_name(&network.name) else {
        push(format!(
            "bridge {} does not exist on this host",
            network.name
        ));
        return;
    };
    for (v4, nat, nat_address) in [
        (true, network.ipv4.nat, network.ipv4.nat_address.is_some()),
        (false, network.ipv6.nat, network.ipv6.nat_address.is_some()),
    ] {
        let family = if v4 { "ipv4" } else { "ipv6" };
        if nat {
            if !nat_address {
                push(format!(
                    "{family}.nat is true: the subnet is not advertised (set {family}.nat.address to advertise the NAT address)"
                ));
            }
            continue;
        }
        let addresses: Vec<_> = view
            .addresses_of(link.index)
            .iter()
            .filter(|a| a.net.addr().is_ipv4() == v4 && !a.link_scope)
            .collect();
        if addresses.is_empty() {
            push(format!("bridge {} has no {family} address", network.name));
        } else if addresses.iter().all(|a| a.tentative) {
            push(format!(
                "bridge {}'s {family} address is tentative (duplicate address detection running)",
                network.name
            ));
        }
    }
}

/// Why `nic` counts as stopped, if it does.
fn nic_stopped(nic: &Nic, network: &Network, view: &KernelView) -> Option<String> {
    let Some(bridge) = view.link_by_name(&network.name) else {
        return Some(format!(
            "bridge {} does not exist on this host",
            network.name
        ));
    };
    let Some(host) = nic.host_name.as_deref() else {
        return Some("instance stopped (no host-side interface)".to_string());
    };
    let Some(port) = view.link_by_name(host) else {
        return Some(format!("instance stopped: {host} does not exist"));
    };
    if port.master != Some(bridge.index) {
        return Some(format!(
            "instance stopped: {host} is not a port of {}",
            network.name
        ));
    }
    if !bridge.admin_up {
        return Some(format!("bridge {} is down", network.name));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Address, KernelEvent, Link};

    struct NoTrouble;
    impl RouteTrouble for NoTrouble {
        fn trouble(&self, _: &IpNet) -> Option<String> {
            None
        }
    }

    struct Displaced;
    impl RouteTrouble for Displaced {
        fn trouble(&self, _: &IpNet) -> Option<String> {
            Some("a proto static route replaced ours".into())
        }
    }

    fn config(nat4: &str) -> Config {
        crate::config::parse_str(
            &format!(
                "networks:\n  br0:\n    type: bridge\n    config: {{ipv4.nat: \"{nat4}\", ipv6.nat: \"false\"}}\ninstances:\n  c1:\n    devices:\n      eth0: {{type: nic, network: br0, host_name: vc1, ipv4.routes.external: 203.0.113.64/28}}\n"
            ),
            "node1",
        )
        .unwrap()
    }

    fn reasons(c: &Config, view: &KernelView, trouble: &dyn RouteTrouble) -> Vec<String> {
        let intent = super::super::plan(c, view);
        not_advertised(c, view, &intent, trouble)
            .into_iter()
            .map(|n| format!("{} {}: {}", n.owner, n.prefix.unwrap_or_default(), n.reason))
            .collect()
    }

    #[test]
    fn explains_each_case() {
        let c = config("false");
        let mut view = KernelView::default();
        assert_eq!(
            reasons(&c, &view, &NoTrouble),
            [
                "network/br0 : bridge br0 does not exist on this host",
                "instance/c1/eth0 203.0.113.64/28: bridge br0 does not exist on this host"
            ]
        );
        view.apply(&KernelEvent::LinkChanged(Link::up(3, "br0", None)));
        view.apply(&KernelEvent::AddressAdded(Address {
            ifindex: 3,
            net: "2001:db8::1/64".parse().unwrap(),
            tentative: true,
            link_scope: false,
        }));
        assert_eq!(
            reasons(&c, &view, &NoTrouble),
            [
                "network/br0 : bridge br0 has no ipv4 address",
                "network/br0 : bridge br0's ipv6 address is tentative (duplicate address detection running)",
                "instance/c1/eth0 203.0.113.64/28: instance stopped: vc1 does not exist"
            ]
        );
        view.apply(&KernelEvent::LinkChanged(Link::up(4, "vc1", None)));
        assert!(reasons(&c, &view, &NoTrouble)[2].ends_with("vc1 is not a port of br0"));
        view.apply(&KernelEvent::LinkChanged(Link::up(4, "vc1", Some(3))));
        // Running, but its route is not in the kernel: the agent says why.
        assert!(reasons(&config("true"), &view, &Displaced)
            .iter()
            .any(|r| r == "instance/c1/eth0 203.0.113.64/28: a proto static route replaced ours"));
        assert!(reasons(&config("true"), &view, &NoTrouble)
            .iter()
            .any(|r| r.starts_with("network/br0 : ipv4.nat is true")));
    }
}
