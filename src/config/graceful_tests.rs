//! `hostbgp.graceful_restart` and `bgp.peers.NAME.graceful_restart.time`: parsing,
//! defaults, located errors, suggestions, conflicts and the no-effect warning.
use super::diagnose::check;
use super::suggest::suggest;
use super::tests::{error_keys, one_peer_on_two_networks};
use super::*;

const P: &str = "networks.br0.config.bgp.peers.r1";

fn yaml(server: &str, peer: &str) -> String {
    format!(
        "config:\n  core.bgp_address: \"[::]:179\"\n  core.bgp_asn: 65010\n{server}networks:\n  br0:\n    type: bridge\n    config:\n      bgp.peers.r1.address: 192.0.2.1\n      bgp.peers.r1.asn: 65000\n{peer}"
    )
}

#[test]
fn defaults_on_with_the_server_time() {
    let c = parse_str(&yaml("", ""), "m1").expect("valid");
    assert!(c.server.graceful_restart);
    assert_eq!(c.server.graceful_restart_time, 120);
    assert_eq!(c.peers()[0].graceful_restart_time, None);
    assert_eq!(c.max_graceful_restart_time(), 120);
}

#[test]
fn per_peer_time_and_switch() {
    let c = parse_str(
        &yaml(
            "  hostbgp.graceful_restart: \"false\"\n",
            "      bgp.peers.r1.graceful_restart.time: 3600\n",
        ),
        "m1",
    )
    .expect("valid");
    assert!(!c.server.graceful_restart);
    assert_eq!(
        c.networks["br0"].peers["r1"].graceful_restart_time,
        Some(3600)
    );
    assert_eq!(c.peers()[0].graceful_restart_time, Some(3600));
    assert_eq!(c.max_graceful_restart_time(), 3600);
    // Zero is a valid offer (RFC 4724: do not wait for me), unlike the server key.
    let zero = parse_str(
        &yaml("", "      bgp.peers.r1.graceful_restart.time: '0'\n"),
        "m1",
    )
    .expect("valid");
    assert_eq!(zero.peers()[0].graceful_restart_time, Some(0));
    assert_eq!(zero.max_graceful_restart_time(), 120);
    for on in ["true", "yes", "1", "on"] {
        let c = parse_str(
            &yaml(&format!("  hostbgp.graceful_restart: '{on}'\n"), ""),
            "m1",
        )
        .expect("valid");
        assert!(c.server.graceful_restart, "{on}");
    }
}

#[test]
fn bad_values() {
    for bad in ["4096", "-1", "x", "1.5"] {
        let y = yaml(
            "",
            &format!("      bgp.peers.r1.graceful_restart.time: '{bad}'\n"),
        );
        assert_eq!(
            error_keys(&y),
            vec![format!("{P}.graceful_restart.time")],
            "{bad}"
        );
    }
    assert_eq!(
        error_keys(&yaml("  hostbgp.graceful_restart: maybe\n", "")),
        vec!["config.hostbgp.graceful_restart"]
    );
    assert_eq!(
        error_keys(&yaml("", "      bgp.peers.r1.graceful_restart.tim: 5\n")),
        vec![format!("{P}.graceful_restart.tim")]
    );
}

#[test]
fn errors_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hostbgp.yaml");
    let text = yaml(
        "  hostbgp.graceful_restrat: \"false\"\n",
        "      bgp.peers.r1.graceful_restart.time: 5000\n      bgp.peers.r1.graceful_restart.tmie: 5\n",
    );
    std::fs::write(&path, text).expect("write");
    let r = check(&path, "m1");
    let f = path.display().to_string();
    let lines: Vec<String> = r.errors.iter().map(|d| d.to_string()).collect();
    for want in [
        format!("{f}:4: config.hostbgp.graceful_restrat: unknown key, did you mean hostbgp.graceful_restart?"),
        format!("{f}:11: {P}.graceful_restart.time: must be between 0 and 4095, got 5000"),
        format!("{f}:12: {P}.graceful_restart.tmie: unknown key, did you mean graceful_restart.time?"),
    ] {
        assert!(lines.contains(&want), "{want}\nnot in {lines:#?}");
    }
}

#[test]
fn typos_get_suggestions() {
    for typo in [
        "graceful_restart.tmie",
        "graceful_restrat.time",
        "gracefull_restart.time",
    ] {
        assert_eq!(
            suggest(&format!("{P}.{typo}")).as_deref(),
            Some("graceful_restart.time"),
            "{typo}"
        );
    }
    assert_eq!(
        suggest("config.hostbgp.graceful_restat").as_deref(),
        Some("hostbgp.graceful_restart")
    );
    // The older dotted fields still work, and a peer name with dots too.
    assert_eq!(
        suggest(&format!("{P}.bfd.multiplyer")).as_deref(),
        Some("bfd.multiplier")
    );
    assert_eq!(
        suggest("networks.br0.config.bgp.peers.r1.example.as").as_deref(),
        Some("asn")
    );
}

#[test]
fn conflict_across_networks() {
    let long = ["graceful_restart.time: 3600"];
    assert!(error_keys(&one_peer_on_two_networks(&long, &long)).is_empty());
    let other = one_peer_on_two_networks(&long, &["graceful_restart.time: 120"]);
    assert_eq!(
        error_keys(&other),
        vec![format!("{P}.graceful_restart.time")]
    );
}

#[test]
fn per_peer_time_without_graceful_restart_warns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hostbgp.yaml");
    std::fs::write(
        &path,
        yaml(
            "  hostbgp.graceful_restart: \"false\"\n",
            "      bgp.peers.r1.graceful_restart.time: 3600\n",
        ),
    )
    .expect("write");
    let r = check(&path, "m1");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let f = path.display().to_string();
    let w: Vec<String> = r.warnings.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        vec![format!("{f}:11: warning: {P}.graceful_restart.time: has no effect: config.hostbgp.graceful_restart is false (no graceful restart capability is sent)")]
    );
}
