//! Which prefixes a peer hears (`bgp.peers.NAME.export`). Pure: the agent asks it for
//! each prefix of a sync, so it answers from the prefix's owners alone.
use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Owner, Owners};
use crate::config::{Config, Export, NetworkKind, Peer};

/// The networks whose prefixes a peer scoped to `network` hears: those declaring it,
/// and the OVN networks using one of them as uplink (their routes reach the world
/// through that uplink's routers). `None`: every prefix.
pub fn scope_networks<'a>(config: &'a Config, peer: &Peer) -> Option<BTreeSet<&'a str>> {
    if peer.export == Export::All {
        return None;
    }
    let mut networks: BTreeSet<&str> = peer
        .declared_by
        .iter()
        .filter_map(|(n, _)| config.networks.get_key_value(n).map(|(k, _)| k.as_str()))
        .collect();
    let ovn = config.networks.values().filter(|n| {
        n.kind == NetworkKind::Ovn && n.uplink.as_deref().is_some_and(|up| networks.contains(up))
    });
    let ovn: Vec<&str> = ovn.map(|n| n.name.as_str()).collect();
    networks.extend(ovn);
    Some(networks)
}

/// The network an owner's prefixes belong to: its own, or its NIC's.
pub fn owner_network<'a>(config: &'a Config, owner: &'a Owner) -> Option<&'a str> {
    match owner {
        Owner::Network(n) => Some(n),
        Owner::Instance { instance, device } => config
            .instances
            .get(instance)
            .and_then(|i| i.nics.get(device))
            .map(|nic| nic.network.as_str()),
    }
}

/// One peer's export filter for one sync.
pub struct ExportFilter<'a> {
    config: &'a Config,
    networks: Option<BTreeSet<&'a str>>,
    /// Prefixes come in runs of one network's or NIC's (one shared owner list), so
    /// the last answer is checked by pointer before the owners are looked up.
    last: Option<(Owners, bool)>,
}

impl<'a> ExportFilter<'a> {
    pub fn new(config: &'a Config, peer: &Peer) -> ExportFilter<'a> {
        ExportFilter {
            config,
            networks: scope_networks(config, peer),
            last: None,
        }
    }

    /// Whether the peer hears a prefix owned by `owners` (an anycast prefix: when any
    /// of its owners is in scope).
    pub fn allows(&mut self, owners: &Owners) -> bool {
        let Some(networks) = &self.networks else {
            return true;
        };
        if let Some((o, answer)) = &self.last {
            if Arc::ptr_eq(o, owners) {
                return *answer;
            }
        }
        let config = self.config;
        let answer = owners
            .iter()
            .filter_map(|o| owner_network(config, o))
            .any(|n| networks.contains(n));
        self.last = Some((owners.clone(), answer));
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    const YAML: &str = "
networks:
  br0:
    type: bridge
    config:
      bgp.peers.r1.address: 192.0.2.1
      bgp.peers.r1.asn: \"65001\"
      bgp.peers.r1.export: network
  br1:
    type: bridge
    config:
      bgp.peers.r2.address: 192.0.2.2
      bgp.peers.r2.asn: \"65002\"
  uplink:
    type: physical
    config:
      bgp.peers.up.address: 192.0.2.3
      bgp.peers.up.asn: \"65003\"
      bgp.peers.up.export: network
  ovn1:
    type: ovn
    config:
      network: uplink
      ipv4.address: 10.20.0.1/24
      volatile.network.ipv4.address: 198.51.100.20
instances:
  c1:
    devices:
      eth0: {type: nic, network: br0, host_name: vc1}
  c2:
    devices:
      eth0: {type: nic, network: br1, host_name: vc2}
  c3:
    location: n1
    devices:
      eth0: {type: nic, network: ovn1}
";

    fn owners(list: &[Owner]) -> Owners {
        Owners::from(list.to_vec())
    }

    fn net(n: &str) -> Owner {
        Owner::Network(n.into())
    }

    fn nic(instance: &str) -> Owner {
        Owner::Instance {
            instance: instance.into(),
            device: "eth0".into(),
        }
    }

    /// Which of the owners' prefixes each peer (by address) hears.
    fn heard(config: &Config, address: &str) -> Vec<String> {
        let peers = config.peers();
        let peer = peers
            .iter()
            .find(|p| p.remote.to_string() == address)
            .expect("peer");
        let mut filter = ExportFilter::new(config, peer);
        let all = [
            net("br0"),
            net("br1"),
            net("uplink"),
            net("ovn1"),
            nic("c1"),
            nic("c2"),
            nic("c3"),
        ];
        all.iter()
            .filter(|o| filter.allows(&owners(&[(*o).clone()])))
            .map(|o| o.to_string())
            .collect()
    }

    #[test]
    fn a_scoped_peer_hears_its_networks_their_nics_and_ovn_children() {
        let config = parse_str(YAML, "n1").expect("config");
        assert_eq!(
            heard(&config, "192.0.2.1"),
            ["network/br0", "instance/c1/eth0"]
        );
        assert_eq!(heard(&config, "192.0.2.2").len(), 7, "export: all");
        assert_eq!(
            heard(&config, "192.0.2.3"),
            ["network/uplink", "network/ovn1", "instance/c3/eth0"]
        );
    }

    #[test]
    fn an_anycast_prefix_is_heard_when_any_owner_is_in_scope() {
        let config = parse_str(YAML, "n1").expect("config");
        let peers = config.peers();
        let r1 = peers
            .iter()
            .find(|p| p.remote.to_string() == "192.0.2.1")
            .expect("r1");
        let mut filter = ExportFilter::new(&config, r1);
        assert!(filter.allows(&owners(&[nic("c1"), nic("c2")])));
        assert!(!filter.allows(&owners(&[nic("c2"), net("br1")])));
        // The same list again (a run of prefixes) gives the same answer.
        let shared = owners(&[net("br1")]);
        assert!(!filter.allows(&shared));
        assert!(!filter.allows(&shared));
        // An owner the config no longer knows is in no scope.
        assert!(!filter.allows(&owners(&[nic("gone")])));
    }

    #[test]
    fn a_peer_declared_on_two_scoped_networks_hears_both() {
        let yaml = YAML.replace(
            "      bgp.peers.r2.address: 192.0.2.2\n      bgp.peers.r2.asn: \"65002\"\n",
            "      bgp.peers.r2.address: 192.0.2.1\n      bgp.peers.r2.asn: \"65001\"\n      bgp.peers.r2.export: network\n",
        );
        let config = parse_str(&yaml, "n1").expect("config");
        assert_eq!(
            heard(&config, "192.0.2.1"),
            [
                "network/br0",
                "network/br1",
                "instance/c1/eth0",
                "instance/c2/eth0"
            ]
        );
    }
}
