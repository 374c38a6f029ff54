//! `hostbgp check`'s report: locations, suggestions, hints and warnings.
use std::path::{Path, PathBuf};

use super::diagnose::key_lines;
use super::suggest::{distance, suggest};
use super::*;

const BASE: &str = "config:
  core.bgp_address: \"[::]:179\"
  core.bgp_asn: 65010
networks:
  br0:
    type: bridge
    config:
      bgp.peers.r1.address: 192.0.2.1
      bgp.peers.r1.asn: 65001
";

/// Writes the main file and `conf.d` files (name, text) in a fresh directory.
fn setup(main: &str, confd: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostbgp.yaml");
    std::fs::write(&path, main).unwrap();
    if !confd.is_empty() {
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        for (name, text) in confd {
            std::fs::write(dir.path().join("conf.d").join(name), text).unwrap();
        }
    }
    (dir, path)
}

/// `BASE` with each (from, to) replaced, as the main file alone.
fn base_with(edits: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let main = edits
        .iter()
        .fold(BASE.to_string(), |text, (from, to)| text.replace(from, to));
    setup(&main, &[])
}

/// `FILE:rest`, FILE being `path`: a located error or warning line.
fn at(path: &Path, rest: &str) -> String {
    format!("{}:{rest}", path.display())
}

fn lines(ds: &[Diagnostic]) -> Vec<String> {
    ds.iter().map(|d| d.to_string()).collect()
}

fn errors(path: &Path) -> Vec<String> {
    let r = check(path, "node1");
    assert!(r.config.is_none(), "expected errors");
    lines(&r.errors)
}

fn warnings(path: &Path) -> Vec<String> {
    let r = check(path, "node1");
    assert!(
        r.errors.is_empty(),
        "unexpected errors: {:?}",
        lines(&r.errors)
    );
    assert!(r.config.is_some());
    lines(&r.warnings)
}

/// `lines` with the path of `file` written `FILE`.
fn as_file(file: &Path, lines: Vec<String>) -> Vec<String> {
    let f = file.display().to_string();
    lines.iter().map(|l| l.replace(&f, "FILE")).collect()
}

/// The errors of the file `main` checked alone, its path written `FILE`.
fn errors_of(main: &str) -> Vec<String> {
    let (_d, p) = setup(main, &[]);
    as_file(&p, errors(&p))
}

/// The warnings of the file `main` checked alone, its path written `FILE`.
fn warnings_of(main: &str) -> Vec<String> {
    let (_d, p) = setup(main, &[]);
    as_file(&p, warnings(&p))
}

#[test]
fn key_lines_block_and_flow() {
    let l = key_lines(
        "config:\n  core.bgp_asn: 0\nnetworks:\n  br0: {type: bridge,\n    config: {ipv4.nat: true}}\nlist: [a, {b: 1}]\n",
    );
    assert_eq!(l["config"], 1);
    assert_eq!(l["config.core.bgp_asn"], 2);
    assert_eq!(l["networks.br0"], 4);
    assert_eq!(l["networks.br0.type"], 4);
    assert_eq!(l["networks.br0.config"], 5);
    assert_eq!(l["networks.br0.config.ipv4.nat"], 5);
    assert_eq!(l["list"], 6);
    assert!(key_lines("a: [\n").is_empty());
}

#[test]
fn semantic_errors_name_file_and_line() {
    let (_d, p) = base_with(&[("65010", "0")]);
    assert_eq!(
        errors(&p),
        [at(
            &p,
            "3: config.core.bgp_asn: must be between 1 and 4294967294, got 0"
        )]
    );
    // A missing key points at a sibling.
    let (_d, p) = setup(
        &format!("{BASE}      bgp.peers.r2.address: 192.0.2.5\n"),
        &[],
    );
    assert_eq!(errors(&p), [at(&p, "10: networks.br0.config.bgp.peers.r2.asn: required: a peer needs an address (or an interface, unnumbered) and an asn")]);
}

#[test]
fn overlap_and_peer_conflict_are_located() {
    let yaml = format!(
        "{BASE}  br1:\n    type: physical\n    config:\n      bgp.peers.x.address: 192.0.2.1\n      bgp.peers.x.asn: 65002\ninstances:\n  c1:\n    devices:\n      eth0: {{type: nic, network: br0, host_name: v1, ipv4.routes.external: 203.0.113.64/28}}\n  c2:\n    devices:\n      eth0:\n        type: nic\n        network: br0\n        host_name: v2\n        ipv4.routes.external: 203.0.113.64/26\n"
    );
    assert_eq!(
        errors_of(&yaml),
        [
            "FILE:18: instances.c1.devices.eth0.ipv4.routes.external: 203.0.113.64/28 overlaps instances.c2.devices.eth0.ipv4.routes.external (203.0.113.64/26); that one is at FILE:25",
            "FILE:9: networks.br0.config.bgp.peers.r1.asn: conflicts with networks.br1.config.bgp.peers.x.asn (same peer address 192.0.2.1); that one is at FILE:14",
        ]
    );
}

#[test]
fn errors_in_conf_d_name_their_file() {
    let (d, p) = setup(
        BASE,
        &[(
            "10-peer.yaml",
            "networks:\n  br0:\n    config:\n      bgp.peers.r1.holdtime: 5\n",
        )],
    );
    let f = d.path().join("conf.d/10-peer.yaml").display().to_string();
    assert_eq!(
        errors(&p),
        vec![format!(
            "{f}:4: networks.br0.config.bgp.peers.r1.holdtime: must be between 9 and 65535, got 5"
        )]
    );
    // load() (run, reload) carries the same location.
    let e = load(&p, "node1").unwrap_err();
    assert_eq!(
        e[0].to_string(),
        format!(
            "{f}:4: networks.br0.config.bgp.peers.r1.holdtime: must be between 9 and 65535, got 5"
        )
    );
    assert!(e[0]
        .key
        .ends_with(": networks.br0.config.bgp.peers.r1.holdtime"));
}

#[test]
fn did_you_mean() {
    let cases = [
        ("networks.br0.config.bgp.peers.r1.as", Some("asn")),
        (
            "networks.br0.config.bgp.peers.r1.hold_time",
            Some("holdtime"),
        ),
        ("networks.br0.config.bgp.peers.r1.colour", None),
        ("config.core.bgp_adress", Some("core.bgp_address")),
        ("config.core.bgp_routeid", Some("core.bgp_routerid")),
        (
            "instances.c1.devices.eth0.ipv4.route.external",
            Some("ipv4.routes.external"),
        ),
        ("instances.c1.devices.eth0.netwrok", Some("network")),
        ("instances.c1.devics", Some("devices")),
        ("networks.br0.tpye", Some("type")),
        (
            "networks.br0.config.ipv4.routes.anycats",
            Some("ipv4.routes.anycast"),
        ),
        ("networks.br0.config.ipv4.dhcp", None),
        (
            "members.n1.config.core.bgp_adress",
            Some("core.bgp_address"),
        ),
        (
            "members.n1.networks.br0.bgp.ipv4.nexthp",
            Some("bgp.ipv4.nexthop"),
        ),
        ("confg", Some("config")),
        ("core.bgp_asn", Some("config.core.bgp_asn (inside config:)")),
        ("routes", None),
    ];
    for (key, want) in cases {
        assert_eq!(suggest(key).as_deref(), want, "{key}");
    }
    assert_eq!(distance("as", "asn"), 1);
    assert_eq!(distance("hodltime", "holdtime"), 1);

    let (_d, p) = base_with(&[
        ("bgp.peers.r1.asn", "bgp.peers.r1.as"),
        ("core.bgp_address", "core.bgp_adress"),
    ]);
    let f = p.display().to_string();
    let e = errors(&p);
    for want in [
        format!("{f}:2: config.core.bgp_adress: unknown key, did you mean core.bgp_address?"),
        format!("{f}:9: networks.br0.config.bgp.peers.r1.as: unknown key, did you mean asn?"),
    ] {
        assert!(e.contains(&want), "{want}: {e:?}");
    }
}

#[test]
fn unbracketed_ipv6_listen_address() {
    // Valid (one IPv6 address) but ambiguous: a warning.
    let (_d, p) = base_with(&[("\"[::]:179\"", "2001:db8::1:179")]);
    assert_eq!(warnings(&p), [at(&p, "2: warning: config.core.bgp_address: 2001:db8::1:179 is ambiguous: it is read as the IPv6 address 2001:db8::1:179 on port 179; for address 2001:db8::1 port 179 write [2001:db8::1]:179 (or [2001:db8::1:179] for that address)")]);
    // Invalid: the error says how to write it.
    let (_d, p) = base_with(&[("\"[::]:179\"", "2001:db8::1:10179")]);
    let e = errors(&p);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].ends_with("; an IPv6 address with a port is written in brackets: [2001:db8::1]:10179"),
        "{e:?}"
    );
    // Bracketed, or no port-like tail: nothing to say.
    for ok in [
        "\"[2001:db8::1]:179\"",
        "2001:db8::1",
        "\"[2001:db8::1:179]\"",
    ] {
        let (_d, p) = base_with(&[("\"[::]:179\"", ok)]);
        assert_eq!(warnings(&p), Vec::<String>::new(), "{ok}");
    }
}

#[test]
fn warnings_as_trans_and_no_listen_address() {
    let (_d, p) = base_with(&[("65010", "23456"), ("asn: 65001", "asn: 23456")]);
    let f = p.display().to_string();
    let w = warnings(&p);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].starts_with(&format!(
            "{f}:3: warning: config.core.bgp_asn: 23456 is AS_TRANS (RFC 6793)"
        )),
        "{w:?}"
    );
    assert!(
        w[1].starts_with(&format!(
            "{f}:9: warning: networks.br0.config.bgp.peers.r1.asn: 23456 is AS_TRANS"
        )),
        "{w:?}"
    );

    let (_d, p) = base_with(&[("  core.bgp_address: \"[::]:179\"\n", "")]);
    assert_eq!(
        warnings(&p),
        vec![format!(
            "{}:7: warning: networks.br0.config.bgp.peers.r1: peers are configured but config.core.bgp_address is unset: BGP is off, no session will be opened",
            p.display()
        )]
    );
    assert!(warnings(&setup(BASE, &[]).1).is_empty());
}

#[test]
fn warnings_for_files() {
    let (d, p) = setup(
        "# nothing yet\n",
        &[
            ("10-empty.yaml", ""),
            ("20-net.yml", "networks: {}\n"),
            (".hidden.yml", "x: 1\n"),
        ],
    );
    let confd = d.path().join("conf.d");
    assert_eq!(
        warnings(&p),
        vec![
            format!(
                "{}:1: warning: empty file: nothing is configured in it",
                p.display()
            ),
            format!(
                "{}:1: warning: empty file: nothing is configured in it",
                confd.join("10-empty.yaml").display()
            ),
            format!(
                "{}:1: warning: ignored: only conf.d/*.yaml files are read (rename it to .yaml)",
                confd.join("20-net.yml").display()
            ),
        ]
    );
}

#[test]
fn warnings_for_conf_d_overrides() {
    let (d, p) = setup(
        BASE,
        &[
            (
                "10-a.yaml",
                "config:\n  core.bgp_asn: 65011\nnetworks:\n  br0:\n    config:\n      bgp.peers.r2.address: 192.0.2.2\n      bgp.peers.r2.asn: 65002\n",
            ),
            ("20-b.yaml", "config: {core.bgp_asn: 65012}\n"),
            ("30-c.yaml", "networks:\n  br0:\n    config: {bgp.peers.r1.asn: 65003}\n"),
        ],
    );
    let f = p.display().to_string();
    let c = |n: &str| d.path().join("conf.d").join(n).display().to_string();
    let r = check(&p, "node1");
    assert!(r.errors.is_empty(), "{:?}", lines(&r.errors));
    assert_eq!(r.config.unwrap().server.asn, Some(65012));
    assert_eq!(
        lines(&r.warnings),
        vec![
            format!(
                "{}:2: warning: config.core.bgp_asn: overrides the value set in {f}:3",
                c("10-a.yaml")
            ),
            format!(
                "{}:1: warning: config.core.bgp_asn: overrides the value set in {}:2",
                c("20-b.yaml"),
                c("10-a.yaml")
            ),
            format!(
                "{}:3: warning: networks.br0.config.bgp.peers.r1.asn: overrides the value set in {f}:9",
                c("30-c.yaml")
            ),
        ]
    );
}

#[test]
fn syntax_and_read_errors_keep_their_form() {
    let (_d, p) = setup("config: [\n", &[]);
    let e = errors(&p);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(&format!("{}:2: invalid YAML", p.display()))
            || e[0].starts_with(&format!("{}:1: invalid YAML", p.display())),
        "{e:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.yaml");
    let r = check(&absent, "n");
    assert_eq!(r.errors.len(), 1);
    assert!(lines(&r.errors)[0].starts_with(&format!("{}: cannot read", absent.display())));
}

#[test]
fn member_overlay_errors_are_located() {
    let main = format!("{BASE}members:\n  node1:\n    config:\n      core.bgp_asn: 65099\n      core.bgp_adress: 192.0.2.1\n");
    assert_eq!(
        errors_of(&main),
        [
            "FILE:14: members.node1.config.core.bgp_adress: unknown key, did you mean core.bgp_address?",
            "FILE:13: members.node1.config.core.bgp_asn: global key, cannot be set per member",
        ]
    );
}

#[test]
fn example_config_has_no_warnings() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/hostbgp.yaml")).unwrap();
    assert_eq!(warnings_of(&text), Vec::<String>::new());
}

#[test]
fn overlap_across_files_names_both() {
    let nic = |n: &str, p: &str| {
        format!("instances:\n  {n}:\n    devices:\n      eth0:\n        type: nic\n        network: br0\n        host_name: v{n}\n        ipv4.routes.external: {p}\n")
    };
    let (d, p) = setup(
        &format!("{BASE}{}", nic("c1", "203.0.113.0/24")),
        &[("50-c2.yaml", &nic("c2", "203.0.113.8/29"))],
    );
    let f = p.display().to_string();
    let c2 = d.path().join("conf.d/50-c2.yaml").display().to_string();
    assert_eq!(
        errors(&p),
        vec![format!("{f}:17: instances.c1.devices.eth0.ipv4.routes.external: 203.0.113.0/24 overlaps instances.c2.devices.eth0.ipv4.routes.external (203.0.113.8/29); that one is at {c2}:8")]
    );
}

#[test]
fn errors_found_elsewhere_are_located() {
    let (_d, p) = setup(
        "lxd: {}\nnetworks:\n  br0:\n    config:\n      bgp.peers.r1.as: 65001\n",
        &[],
    );
    let f = p.display().to_string();
    let errs = vec![
        ConfigError {
            key: "networks.br0.config.bgp.peers.r1.as".into(),
            message: "unknown key".into(),
        },
        ConfigError {
            key: format!("{f}:3"),
            message: "invalid YAML: x".into(),
        },
    ];
    assert_eq!(
        lines(&locate_errors(&p, errs)),
        vec![
            format!("{f}:5: networks.br0.config.bgp.peers.r1.as: unknown key, did you mean asn?"),
            format!("{f}:3: invalid YAML: x"),
        ]
    );
    assert_eq!(suggest("lxdd").as_deref(), Some("lxd"));
}

#[test]
fn export_and_drain_time_keys() {
    assert_eq!(
        suggest("networks.br0.config.bgp.peers.r1.exprot").as_deref(),
        Some("export")
    );
    assert_eq!(
        suggest("config.hostbgp.drain_tme").as_deref(),
        Some("hostbgp.drain_time")
    );
    let (_d, p) = base_with(&[
        (
            "  core.bgp_asn: 65010\n",
            "  core.bgp_asn: 65010\n  hostbgp.drain_time: \"301\"\n",
        ),
        (
            "      bgp.peers.r1.asn: 65001\n",
            "      bgp.peers.r1.asn: 65001\n      bgp.peers.r1.export: networks\n",
        ),
    ]);
    let f = p.display().to_string();
    let e = errors(&p);
    assert!(
        e.contains(&format!(
            "{f}:4: config.hostbgp.drain_time: must be between 0 and 300, got 301"
        )),
        "{e:?}"
    );
    assert!(
        e.iter().any(|l| l.starts_with(&format!(
            "{f}:11: networks.br0.config.bgp.peers.r1.export: \"networks\" is not an export scope"
        ))),
        "{e:?}"
    );

    let (_d, p) = base_with(&[
        (
            "  core.bgp_asn: 65010\n",
            "  core.bgp_asn: 65010\n  hostbgp.drain_time: \"0\"\n",
        ),
        (
            "      bgp.peers.r1.asn: 65001\n",
            "      bgp.peers.r1.asn: 65001\n      bgp.peers.r1.export: network\n",
        ),
    ]);
    let c = check(&p, "node1").config.expect("valid");
    assert_eq!(c.agent.drain_time, std::time::Duration::ZERO);
    assert_eq!(c.peers()[0].export, Export::Network);
    let (_d, p) = setup(BASE, &[]);
    let c = check(&p, "node1").config.expect("valid");
    assert_eq!(c.agent.drain_time, DEFAULT_DRAIN_TIME);
    assert_eq!(c.peers()[0].export, Export::All);
}

#[test]
fn instance_address_keys() {
    let ok = format!(
        "{BASE}      ipv4.address: 192.0.2.254/24\n      bgp.ipv4.instances: \"true\"\n      bgp.ipv6.instances: \"false\"\ninstances:\n  c1:\n    devices:\n      eth0: {{type: nic, network: br0, host_name: vc1, hwaddr: \"00:16:3E:12:34:56\"}}\n"
    );
    let (_d, p) = setup(&ok, &[]);
    assert_eq!(warnings(&p), Vec::<String>::new());
    let c = check(&p, "node1").config.unwrap();
    assert!(c.networks["br0"].ipv4.instances && !c.networks["br0"].ipv6.instances);
    assert_eq!(
        c.instances["c1"].nics["eth0"]
            .hwaddr
            .map(|m| m.to_string())
            .as_deref(),
        Some("00:16:3e:12:34:56")
    );
    // A bad value, a typo, a bad MAC, and the key on a network that is not a bridge.
    let bad = ok
        .replace("bgp.ipv4.instances: \"true\"", "bgp.ipv4.instances: maybe")
        .replace("bgp.ipv6.instances", "bgp.ipv6.instance")
        .replace("00:16:3E:12:34:56", "00:16:3E:12:34")
        .replace(
            "instances:\n",
            "  up:\n    type: physical\n    config: {bgp.ipv4.instances: \"true\"}\ninstances:\n",
        );
    let got = errors_of(&bad);
    let want = [
        "FILE:11: networks.br0.config.bgp.ipv4.instances: expected a boolean",
        "FILE:12: networks.br0.config.bgp.ipv6.instance: unknown key for a bridge network, did you mean bgp.ipv6.instances?",
        "FILE:15: networks.up.config.bgp.ipv4.instances: unknown key for a physical network",
        "FILE:19: instances.c1.devices.eth0.hwaddr: must be a MAC address like 00:16:3e:12:34:56, got \"00:16:3E:12:34\"",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for w in want {
        assert!(got.iter().any(|g| g.starts_with(w)), "{w}\nnot in {got:#?}");
    }
}

#[test]
fn instance_address_warnings() {
    let file = format!(
        "{BASE}      bgp.ipv4.instances: \"true\"\n      bgp.ipv6.instances: \"true\"\ninstances:\n  c1:\n    devices:\n      eth0: {{type: nic, network: br0, host_name: vc1, ipv4.address: 192.0.2.10}}\n  c2:\n    devices:\n      eth0: {{type: nic, network: br0, hwaddr: \"00:16:3e:00:00:02\"}}\n  c3:\n    devices:\n      eth0: {{type: nic, network: br0, host_name: vc3, hwaddr: \"00:16:3e:00:00:03\"}}\n"
    );
    assert_eq!(
        warnings_of(&file),
        [
            "FILE:15: warning: instances.c1.devices.eth0: neither ipv6.address nor hwaddr is set: networks.br0.config.bgp.ipv6.instances cannot find its address",
            "FILE:18: warning: instances.c2.devices.eth0: host_name is unset: hostbgp cannot tell when the instance runs, so networks.br0.config.bgp.ipvN.instances never advertises its address",
        ]
    );
}
