//! `bgp.peers.NAME.bfd*`: parsing, defaults, errors and conflicts across networks.
use super::tests::{error_keys, one_peer_on_two_networks};
use super::*;

fn net(peer_keys: &str) -> String {
    format!(
        "networks:\n  br0:\n    type: bridge\n    config:\n      bgp.peers.r1.address: 192.0.2.1\n      bgp.peers.r1.asn: 65000\n{peer_keys}"
    )
}

fn bfd_of(yaml: &str) -> Option<BfdSettings> {
    let c = parse_str(yaml, "m1").expect("valid");
    c.networks["br0"].peers["r1"].bfd
}

#[test]
fn bfd_off_unless_asked() {
    assert_eq!(bfd_of(&net("")), None);
    assert_eq!(bfd_of(&net("      bgp.peers.r1.bfd: 'false'\n")), None);
}

#[test]
fn bfd_defaults_and_tuning() {
    assert_eq!(
        bfd_of(&net("      bgp.peers.r1.bfd: 'true'\n")),
        Some(BfdSettings {
            min_interval_ms: 300,
            multiplier: 3
        })
    );
    let tuned = net(
        "      bgp.peers.r1.bfd: 'true'\n      bgp.peers.r1.bfd.min_interval: '100'\n      bgp.peers.r1.bfd.multiplier: '5'\n",
    );
    assert_eq!(
        bfd_of(&tuned),
        Some(BfdSettings {
            min_interval_ms: 100,
            multiplier: 5
        })
    );
    assert_eq!(
        parse_str(&tuned, "m1").expect("valid").peers()[0].bfd,
        Some(BfdSettings {
            min_interval_ms: 100,
            multiplier: 5
        })
    );
}

#[test]
fn bfd_bad_values() {
    let p = "networks.br0.config.bgp.peers.r1";
    assert_eq!(
        error_keys(&net("      bgp.peers.r1.bfd: 'maybe'\n")),
        vec![format!("{p}.bfd")]
    );
    for bad in ["0", "5", "60001", "x"] {
        let y = net(&format!(
            "      bgp.peers.r1.bfd: 'true'\n      bgp.peers.r1.bfd.min_interval: '{bad}'\n"
        ));
        assert_eq!(
            error_keys(&y),
            vec![format!("{p}.bfd.min_interval")],
            "{bad}"
        );
    }
    for bad in ["0", "256"] {
        let y = net(&format!(
            "      bgp.peers.r1.bfd: 'true'\n      bgp.peers.r1.bfd.multiplier: '{bad}'\n"
        ));
        assert_eq!(error_keys(&y), vec![format!("{p}.bfd.multiplier")], "{bad}");
    }
    // Tuning without turning it on would do nothing: say so.
    assert_eq!(
        error_keys(&net("      bgp.peers.r1.bfd.multiplier: '4'\n")),
        vec![format!("{p}.bfd")]
    );
    assert_eq!(
        error_keys(&net("      bgp.peers.r1.bfd.foo: '4'\n")),
        vec![format!("{p}.bfd.foo")]
    );
}

#[test]
fn bfd_conflict_across_networks() {
    let on = ["bfd: 'true'"];
    assert!(error_keys(&one_peer_on_two_networks(&on, &on)).is_empty());
    let tuned = one_peer_on_two_networks(&on, &["bfd: 'true'", "bfd.min_interval: '100'"]);
    assert_eq!(
        error_keys(&tuned),
        vec!["networks.br0.config.bgp.peers.r1.bfd"]
    );
    let off = one_peer_on_two_networks(&on, &[]);
    assert_eq!(
        error_keys(&off),
        vec!["networks.br0.config.bgp.peers.r1.bfd"]
    );
}

#[test]
fn bfd_key_typos_get_suggestions() {
    use super::suggest::suggest;
    let p = "networks.br0.config.bgp.peers.r1";
    assert_eq!(
        suggest(&format!("{p}.bfd.multiplyer")).as_deref(),
        Some("bfd.multiplier")
    );
    assert_eq!(
        suggest(&format!("{p}.bfd.min_intreval")).as_deref(),
        Some("bfd.min_interval")
    );
    assert_eq!(suggest(&format!("{p}.bdf")).as_deref(), Some("bfd"));
}
