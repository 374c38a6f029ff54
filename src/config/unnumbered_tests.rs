//! `bgp.peers.NAME.interface` (unnumbered peers): parsing, exclusivity with
//! `address`, what it cannot be combined with, and peers merged across networks.
use super::*;

fn yaml(peer: &str) -> String {
    format!(
        "config:\n  core.bgp_address: \"[::]:179\"\n  core.bgp_asn: 65010\nnetworks:\n  br0:\n    type: bridge\n    config:\n      bgp.peers.r1.asn: 65000\n{peer}"
    )
}

fn errors(y: &str) -> Vec<String> {
    match parse_str(y, "m1") {
        Ok(_) => Vec::new(),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn an_interface_instead_of_an_address() {
    let c = parse_str(&yaml("      bgp.peers.r1.interface: uplink0\n"), "m1").expect("valid");
    let peers = c.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].remote, Remote::Interface("uplink0".into()));
    assert_eq!(peers[0].remote.address(), None);
    assert_eq!(peers[0].remote.to_string(), "uplink0");
    assert_eq!(peers[0].remote.described(), "interface uplink0");
}

#[test]
fn address_and_interface_exclude_each_other() {
    let e = errors(&yaml(
        "      bgp.peers.r1.interface: uplink0\n      bgp.peers.r1.address: 192.0.2.1\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("networks.br0.config.bgp.peers.r1.interface: ")
            && e[0].contains("exclude each other"),
        "{e:?}"
    );
}

#[test]
fn one_of_them_is_required() {
    let e = errors(&yaml(""));
    assert_eq!(
        e,
        ["networks.br0.config.bgp.peers.r1.address: required: a peer needs an address (or an interface, unnumbered) and an asn"]
    );
}

#[test]
fn bad_interface_names_are_named() {
    // An empty value is an unset key, as in LXD.
    for bad in ["a-name-longer-than-15", "'a b'", "'x/y'"] {
        let e = errors(&yaml(&format!("      bgp.peers.r1.interface: {bad}\n")));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(
            e[0].starts_with("networks.br0.config.bgp.peers.r1.interface: "),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn bfd_is_accepted_with_an_interface() {
    let c = parse_str(
        &yaml("      bgp.peers.r1.interface: uplink0\n      bgp.peers.r1.bfd: 'true'\n      bgp.peers.r1.bfd.min_interval: 100\n"),
        "m1",
    )
    .expect("valid");
    let peers = c.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].remote, Remote::Interface("uplink0".into()));
    assert_eq!(
        peers[0].bfd,
        Some(BfdSettings {
            min_interval_ms: 100,
            ..BfdSettings::default()
        })
    );
}

#[test]
fn one_interface_on_two_networks_is_one_peer() {
    let y = format!(
        "{}  br1:\n    type: bridge\n    config:\n      bgp.peers.up.interface: uplink0\n      bgp.peers.up.asn: {{ASN}}\n",
        yaml("      bgp.peers.r1.interface: uplink0\n")
    );
    let same = parse_str(&y.replace("{ASN}", "65000"), "m1").expect("valid");
    let peers = same.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0].declared_by,
        [
            ("br0".to_string(), "r1".to_string()),
            ("br1".into(), "up".into())
        ]
    );
    let e = errors(&y.replace("{ASN}", "65001"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("(same peer interface uplink0)"), "{e:?}");
}
