//! The files the Debian package installs from `dist/`: the example configuration must
//! stay inert as shipped and valid once its example lines are uncommented.
use std::path::Path;

use hostbgp::config;

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/hostbgp.yaml");
    std::fs::read_to_string(path).expect("read dist/hostbgp.yaml")
}

/// The example's convention: prose comments are "# text", example lines are "#" then
/// the YAML ("#members:", "#  key: value").
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if !rest.is_empty() && (!rest.starts_with(' ') || rest.starts_with("  ")) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn shipped_example_is_inert() {
    let cfg = config::parse_str(&example(), "node1").expect("dist/hostbgp.yaml is valid");
    assert_eq!(cfg.server.listen, None, "BGP must be off as shipped");
    assert!(cfg.networks.is_empty(), "{:?}", cfg.networks);
    assert!(cfg.instances.is_empty(), "{:?}", cfg.instances);
}

#[test]
fn uncommented_example_is_valid() {
    let text = uncommented(&example());
    let cfg = config::parse_str(&text, "node1")
        .unwrap_or_else(|e| panic!("uncommented example: {e:?}\n{text}"));
    assert!(cfg.server.listen.is_some());
    assert_eq!(cfg.peers().len(), 1);
    assert_eq!(
        cfg.instances["c1"].nics["eth0"].ipv4_routes_external.len(),
        1
    );
    // The member overlay applied.
    assert_eq!(
        cfg.server.listen.map(|l| l.to_string()).as_deref(),
        Some("198.51.100.1:179")
    );
}

#[test]
fn unit_runs_the_packaged_binary() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/hostbgp.service");
    let unit = std::fs::read_to_string(path).expect("read systemd/hostbgp.service");
    for line in unit.lines().filter(|l| l.starts_with("Exec")) {
        let (_, cmd) = line.split_once('=').expect("Exec line");
        assert!(cmd.starts_with("/usr/bin/hostbgp "), "{line}");
    }
}
