//! Recorded replies of LXD 5.0.2 (standalone and a one-member cluster) and Incus,
//! through the pure parts: envelope, conversion, merge with the file, events.
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::api::{Event, Instance, Network, Server};
use super::client::parse_envelope;
use super::compose::{self, live_settings};
use super::convert::{self, Snapshot};
use super::events::{classify, parse, Change};
use super::socket::{resolve, Flavor};
use crate::config::node::{parse_yaml, Node};
use crate::config::{Config, ConfigError, NetworkKind};

fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/lxd/fixtures")
        .join(name);
    let body = std::fs::read(&path).expect("fixture");
    let metadata = parse_envelope("/fixture", 200, &body).expect("envelope");
    serde_json::from_value(metadata).expect("metadata")
}

fn lxd_snapshot() -> Snapshot {
    Snapshot {
        server: fixture("lxd-5.0.2-server.json"),
        networks: fixture::<Vec<Network>>("lxd-5.0.2-networks.json"),
        instances: fixture("lxd-5.0.2-instances.json"),
        forwards: BTreeMap::new(),
    }
}

fn yaml(text: &str) -> Node {
    parse_yaml(text, "<test>").expect("yaml")
}

fn compose_ok(file: &str, snap: &Snapshot) -> Config {
    let mut dropped = Vec::new();
    let c = compose::compose(&yaml(file), snap, "host1", &mut dropped)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(dropped.is_empty(), "{dropped:?}");
    c
}

const FILE: &str =
    "lxd: {socket: /tmp/lxd/unix.socket}\nconfig:\n  core.bgp_address: \"[::]:179\"\n";

#[test]
fn envelope_errors_are_typed() {
    let body = br#"{"type":"error","error":"not found","error_code":404,"metadata":null}"#;
    let e = parse_envelope("/1.0/instances/c9", 404, body).unwrap_err();
    assert!(e.not_found());
    assert!(e.to_string().contains("/1.0/instances/c9"));
    let e = parse_envelope("/1.0", 200, b"<html>").unwrap_err();
    assert!(e.to_string().starts_with("GET /1.0: cannot read"));
    let e = parse_envelope("/1.0", 502, b"bad gateway").unwrap_err();
    assert!(matches!(e, super::LxdError::Api { code: 502, .. }));
}

#[test]
fn socket_search_order() {
    let none = |_: &str| None;
    let nothing = |_: &Path| false;
    let given = PathBuf::from("/x/unix.socket");
    assert_eq!(resolve(Flavor::Lxd, Some(&given), none, nothing), given);
    // With the environment `vars`, and sockets only below `present`.
    let found = |flavor, vars: &[(&str, &str)], present: Option<&str>| {
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        resolve(flavor, None, env, |p: &Path| {
            present.is_some_and(|d| p.starts_with(d))
        })
    };
    for (flavor, vars, present, want) in [
        (
            Flavor::Lxd,
            &[("LXD_DIR", "/d")][..],
            None,
            "/d/unix.socket",
        ),
        (
            Flavor::Lxd,
            &[("LXD_SOCKET", "/s"), ("LXD_DIR", "/d")],
            None,
            "/s",
        ),
        (
            Flavor::Lxd,
            &[],
            Some("/var/snap"),
            "/var/snap/lxd/common/lxd/unix.socket",
        ),
        // Nothing there yet: the Debian path, where it will appear.
        (Flavor::Lxd, &[], None, "/var/lib/lxd/unix.socket"),
        (
            Flavor::Incus,
            &[],
            Some("/run/incus"),
            "/run/incus/unix.socket",
        ),
        (Flavor::Incus, &[], None, "/var/lib/incus/unix.socket"),
        (Flavor::Incus, &[("INCUS_SOCKET", "/i")], None, "/i"),
    ] {
        assert_eq!(
            found(flavor, vars, present),
            PathBuf::from(want),
            "{flavor:?} {vars:?} {present:?}"
        );
    }
}

#[test]
fn live_settings_from_the_file() {
    let s = live_settings(&yaml(FILE)).expect("live");
    assert_eq!(s.flavor, Flavor::Lxd);
    assert_eq!(s.socket, Some(PathBuf::from("/tmp/lxd/unix.socket")));
    let s = live_settings(&yaml("incus: {}\n")).expect("live");
    assert_eq!((s.flavor, s.socket), (Flavor::Incus, None));
    assert!(live_settings(&yaml("config: {}\n")).is_none());
}

#[test]
fn lxd_502_standalone_becomes_the_config() {
    let c = compose_ok(FILE, &lxd_snapshot());
    assert_eq!(c.member, "host1");
    assert_eq!(c.server.asn, Some(65010));
    assert_eq!(c.server.router_id, Some(Ipv4Addr::new(198, 51, 100, 1)));
    assert_eq!(c.server.listen.map(|l| l.port()), Some(179));
    // Managed bridge and physical networks only; macvlan and unmanaged ones left out.
    let names: Vec<&str> = c.networks.keys().map(String::as_str).collect();
    assert_eq!(names, ["lxdbr0", "uplink"]);
    let br = &c.networks["lxdbr0"];
    assert_eq!(br.kind, NetworkKind::Bridge);
    assert!(!br.ipv4.nat && !br.ipv6.nat);
    assert_eq!(br.peers["r1"].asn, 65000);
    let up = &c.networks["uplink"];
    assert_eq!(up.kind, NetworkKind::Physical);
    assert!(up.ipv4.routes_anycast);
    assert_eq!(
        up.peers["r2"].remote.address().unwrap(),
        "198.51.100.254".parse::<IpAddr>().unwrap()
    );
    // c1 runs: its veth name comes from volatile; c2 is stopped and absent.
    let names: Vec<&str> = c.instances.keys().map(String::as_str).collect();
    assert_eq!(names, ["c1", "p2_web", "vm1"]);
    let nic = &c.instances["c1"].nics["eth0"];
    assert_eq!(nic.host_name.as_deref(), Some("vethbb08358e"));
    assert_eq!(nic.ipv4_address, Some(Ipv4Addr::new(203, 0, 113, 11)));
    // Its MAC, from volatile (bgp.ipvN.instances finds its addresses by it).
    assert_eq!(
        nic.hwaddr.map(|m| m.to_string()).as_deref(),
        Some("00:16:3e:13:bd:dd")
    );
    assert_eq!(
        nic.ipv4_routes_external,
        ["203.0.113.64/28".parse().unwrap()]
    );
    assert_eq!(c.instances["c1"].location.as_deref(), Some("host1"));
    // A legacy bridged NIC on a managed bridge; the macvlan NIC is not ours.
    let web = &c.instances["p2_web"];
    assert_eq!(web.nics.keys().collect::<Vec<_>>(), ["eth1"]);
    assert_eq!(web.nics["eth1"].network, "lxdbr0");
    assert_eq!(web.nics["eth1"].host_name.as_deref(), Some("vethfeed0001"));
    assert_eq!(
        c.instances["vm1"].nics["eth0"].host_name.as_deref(),
        Some("tap12345678")
    );
}

#[test]
fn the_file_merges_over_lxd_key_by_key() {
    // What LXD 5.0.2 refuses to store (a next hop, a hold time) comes from the file,
    // and the file's own values win over LXD's.
    let file = format!(
        "{FILE}networks:\n  lxdbr0:\n    config:\n      bgp.ipv4.nexthop: 198.51.100.7\n      bgp.peers.r1.holdtime: \"30\"\n      ipv4.nat: \"true\"\ninstances:\n  c1:\n    devices:\n      eth0: {{ipv6.routes.external: \"2001:db8:100:50::/64\"}}\n"
    );
    let c = compose_ok(&file, &lxd_snapshot());
    let br = &c.networks["lxdbr0"];
    assert_eq!(br.ipv4.nexthop, Some(Ipv4Addr::new(198, 51, 100, 7)));
    assert_eq!(br.peers["r1"].hold_time, 30);
    assert!(br.ipv4.nat);
    // LXD's keys the file did not name are still there.
    assert_eq!(br.peers["r1"].asn, 65000);
    let nic = &c.instances["c1"].nics["eth0"];
    assert_eq!(nic.ipv4_routes_external.len(), 1);
    assert_eq!(
        nic.ipv6_routes_external,
        ["2001:db8:100:50::/64".parse().unwrap()]
    );
    // The file's own ASN wins too.
    let c = compose_ok(
        &format!("{FILE}  core.bgp_asn: \"65099\"\n"),
        &lxd_snapshot(),
    );
    assert_eq!(c.server.asn, Some(65099));
}

#[test]
fn lxd_bgp_address_is_never_taken() {
    let mut snap = lxd_snapshot();
    snap.server
        .config
        .insert("core.bgp_address".into(), "[::]:179".into());
    let c = compose_ok("lxd: {}\n", &snap);
    assert_eq!(c.server.listen, None);
}

#[test]
fn unset_asn_zero_is_absent() {
    let mut snap = lxd_snapshot();
    snap.server.config.insert("core.bgp_asn".into(), "0".into());
    let c = compose_ok("lxd: {}\n", &snap);
    assert_eq!(c.server.asn, None);
}

#[test]
fn cluster_member_is_lxds_server_name() {
    let mut net: Network = fixture("lxd-cluster-network-target.json");
    net.managed = true;
    let snap = Snapshot {
        server: fixture("lxd-cluster-server.json"),
        networks: vec![net],
        instances: fixture("lxd-cluster-instances.json"),
        forwards: BTreeMap::new(),
    };
    let c = compose_ok(FILE, &snap);
    assert_eq!(c.member, "node1");
    assert_eq!(c.server.router_id, Some(Ipv4Addr::new(198, 51, 100, 11)));
    // Member keys read with ?target= carry the member's next hop.
    assert_eq!(
        c.networks["lxdbr0"].ipv4.nexthop,
        Some(Ipv4Addr::new(198, 51, 100, 11))
    );
    // Only this member's instances.
    assert_eq!(c.instances.keys().collect::<Vec<_>>(), ["here"]);
    assert_eq!(c.instances["here"].location.as_deref(), Some("node1"));
}

#[test]
fn incus_replies_and_keys() {
    let server: Server = fixture("incus-server.json");
    assert_eq!(server.environment.server, "incus");
    let networks: Vec<Network> = fixture("incus-networks.json");
    assert_eq!(networks[0].project.as_deref(), Some("default"));
    let snap = Snapshot {
        server,
        networks,
        instances: fixture("incus-instances.json"),
        forwards: BTreeMap::new(),
    };
    let conv = convert::to_tree(&snap, "host1");
    // Every key of the fixture is one hostbgp acts on.
    assert!(conv.ignored.is_empty(), "{:?}", conv.ignored);
    let c = compose_ok("incus: {}\n", &snap);
    let br = &c.networks["incusbr0"];
    // Incus's per-instance addresses pass through to the config.
    assert!(br.ipv4.instances && !br.ipv6.instances);
    assert_eq!(br.peers.keys().collect::<Vec<_>>(), ["r1", "u1"]);
    assert_eq!(br.peers["r1"].hold_time, 30);
    // Incus's unnumbered peer: its interface instead of an address.
    assert_eq!(
        br.peers["u1"].remote,
        crate::config::Remote::Interface("eth1".into())
    );
    assert_eq!(br.peers["u1"].asn, 65001);
    // A peer the file names must be complete, even if LXD has none of it.
    let file = "incus: {}\nnetworks:\n  incusbr0:\n    config: {bgp.peers.u2.password: x}\n";
    let mut dropped = Vec::new();
    let errors = compose::compose(&yaml(file), &snap, "host1", &mut dropped).expect_err("u2");
    assert!(errors
        .iter()
        .any(|e| e.key == "networks.incusbr0.config.bgp.peers.u2.address"));
}

#[test]
fn events_are_classified() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lxd/fixtures/events.jsonl"),
    )
    .expect("fixture");
    let got: Vec<Option<Change>> = text
        .lines()
        .map(|l| classify(&parse(l).expect("event")))
        .collect();
    let inst = |p: &str, n: &str| {
        Some(Change::Instance {
            project: p.into(),
            name: n.into(),
        })
    };
    let net = |n: &str| Some(Change::Network { name: n.into() });
    assert_eq!(
        got,
        [
            inst("default", "c1"),
            inst("p2", "web"),
            net("lxdbr0"),
            Some(Change::Everything),
            Some(Change::Server),
            None,
            net("lxdbr0"),
            inst("p3", "db"),
            None,
        ]
    );
    assert!(parse("{not json").is_none());
    let e: Event = serde_json::from_str(
        r#"{"type":"lifecycle","metadata":{"action":"instance-started","source":""}}"#,
    )
    .unwrap();
    assert_eq!(classify(&e), None);
}

#[test]
fn a_stopped_instance_is_left_out_unless_starting() {
    let mut snap = lxd_snapshot();
    for i in &mut snap.instances {
        if i.name == "c1" {
            i.status = "Stopped".into();
        }
    }
    // Starting: LXD wrote the veth name before the instance reads Running.
    let c = compose_ok(FILE, &snap);
    let nic = &c.instances["c1"].nics["eth0"];
    assert_eq!(nic.host_name.as_deref(), Some("vethbb08358e"));
    assert!(convert::knows_port(&snap, "vethbb08358e"));
    assert!(!convert::knows_port(&snap, "vethother"));
    // Stopped: LXD cleared it. (c2, stopped, claims c1's prefix: no overlap error.)
    for i in &mut snap.instances {
        if i.name == "c1" {
            i.config.remove("volatile.eth0.host_name");
        }
    }
    let c = compose_ok(FILE, &snap);
    assert!(!c.instances.contains_key("c1"));
}

#[test]
fn a_bad_instance_is_left_out_not_everything() {
    let mut snap = lxd_snapshot();
    let mut bad: Instance = snap.instances[0].clone();
    bad.name = "c9".into();
    bad.config
        .insert("volatile.eth0.host_name".into(), "vethc9".into());
    let dev = bad.expanded_devices.get_mut("eth0").unwrap();
    dev.insert("ipv4.routes.external".into(), "203.0.113.64/27".into());
    dev.insert("ipv4.address".into(), "203.0.113.19".into());
    snap.instances.push(bad);
    let mut dropped = Vec::new();
    let c = compose::compose(&yaml(FILE), &snap, "host1", &mut dropped).expect("config");
    // The overlap names both; both instances are left out, the rest stays.
    assert!(!dropped.is_empty());
    assert!(c.networks.contains_key("lxdbr0"));
    assert!(c.instances.contains_key("vm1"));
}

#[test]
fn check_says_what_is_expected_from_lxd() {
    let file = format!(
        "{FILE}networks:\n  lxdbr0:\n    config: {{bgp.ipv4.nexthop: 198.51.100.7}}\ninstances:\n  c1:\n    devices:\n      eth0: {{ipv6.routes.external: \"2001:db8:100:50::/64\"}}\nmembers:\n  host1:\n    networks:\n      lxdbr0: {{bgp.ipv6.nexthop: \"2001:db8::7\"}}\n"
    );
    let (errors, expected) = compose::check_file(yaml(&file), "host1");
    assert!(errors.is_empty(), "{errors:?}");
    let keys: Vec<&str> = expected.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"config.core.bgp_asn"), "{keys:?}");
    assert!(keys.contains(&"networks.lxdbr0.type"), "{keys:?}");
    assert!(keys.contains(&"instances.c1.devices.eth0.type"), "{keys:?}");
    // A real mistake stays an error.
    let (errors, _) = compose::check_file(yaml(&format!("{FILE}  core.bgp_asn: x\n")), "host1");
    assert_eq!(errors.len(), 1);
    let (errors, _) = compose::check_file(yaml("lxd: {socket: rel/path, port: 1}\n"), "host1");
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["lxd.port", "lxd.socket"]);
}

#[test]
fn host_name_is_required_only_without_lxd() {
    let nic = "networks:\n  br0: {type: bridge}\ninstances:\n  c1:\n    devices:\n      eth0: {type: nic, network: br0, ipv4.routes.external: 203.0.113.64/28}\n";
    let errs: Vec<ConfigError> = crate::config::parse_str(nic, "m").unwrap_err();
    assert_eq!(errs[0].key, "instances.c1.devices.eth0.host_name");
    let c = crate::config::parse_str(&format!("lxd: {{}}\n{nic}"), "m").expect("valid");
    assert_eq!(c.instances["c1"].nics["eth0"].host_name, None);
}

#[test]
fn unparsable_config_values_are_skipped_not_fatal() {
    let v: Server = serde_json::from_str(
        r#"{"config":{"core.bgp_asn":65010,"odd":{"x":1},"n":null},"environment":{}}"#,
    )
    .unwrap();
    let want: BTreeMap<String, String> = [("core.bgp_asn".to_string(), "65010".to_string())]
        .into_iter()
        .collect();
    assert_eq!(v.config, want);
}

#[tokio::test(flavor = "current_thread")]
async fn without_lxd_the_file_alone_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hostbgp.yaml");
    let socket = dir.path().join("no-lxd.socket");
    // The ASN is expected from LXD: until it answers, an empty config (BGP off).
    let yaml = format!(
        "lxd: {{socket: {}}}\nconfig:\n  core.bgp_address: \"[::]:179\"\n",
        socket.display()
    );
    std::fs::write(&path, yaml).expect("write");
    let mut source = super::ConfigSource::start(&path, "m").expect("start");
    source
        .first_snapshot(std::time::Duration::from_millis(50))
        .await;
    let c = source.load().expect("config");
    assert_eq!(c.server.listen, None);
    assert!(c.networks.is_empty());
    let st = source.status();
    assert_eq!(st.kind, "lxd");
    let live = st.live.expect("a live source");
    assert!(!live.connected);
    assert_eq!(live.socket, socket.display().to_string());
    // A file complete on its own is used as it is.
    let yaml = format!(
        "lxd: {{socket: {}}}\nconfig:\n  core.bgp_address: \"[::]:179\"\n  core.bgp_asn: \"65010\"\n",
        socket.display()
    );
    std::fs::write(&path, yaml).expect("write");
    let c = source.load().expect("config");
    assert_eq!(c.server.asn, Some(65010));
    // A real mistake in the file is refused, as a reload would be.
    std::fs::write(&path, "lxd: {}\nconfig:\n  core.bgp_asn: x\n").expect("write");
    let errors = source.load().expect_err("refused");
    // Located in the file, as `hostbgp check` says it.
    let at = format!("{}:3: config.core.bgp_asn", path.display());
    assert!(errors.iter().any(|e| e.key == at), "{errors:?}");
}

/// A reload starts, moves and stops the live source as the file's key says; a
/// refused file keeps the source in use.
#[tokio::test(flavor = "current_thread")]
async fn a_reload_follows_the_lxd_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hostbgp.yaml");
    let socket = dir.path().join("no-lxd.socket");
    let wait = std::time::Duration::from_millis(20);
    let file_alone = "config:\n  core.bgp_asn: \"65010\"\n";
    std::fs::write(&path, file_alone).expect("write");
    let mut source = super::ConfigSource::start(&path, "m").expect("start");
    assert_eq!(source.status().kind, "file");

    let live = format!("lxd: {{socket: {}}}\n{file_alone}", socket.display());
    std::fs::write(&path, &live).expect("write");
    let c = source.reload(wait).await.expect("config");
    assert_eq!(c.server.asn, Some(65010));
    let st = source.status();
    assert_eq!(st.kind, "lxd", "{st:?}");
    assert_eq!(
        st.live.map(|l| l.socket),
        Some(socket.display().to_string())
    );

    let moved = dir.path().join("other.socket");
    std::fs::write(
        &path,
        format!("incus: {{socket: {}}}\n{file_alone}", moved.display()),
    )
    .expect("write");
    source.reload(wait).await.expect("config");
    let st = source.status();
    assert_eq!(st.kind, "incus", "{st:?}");
    assert_eq!(st.live.map(|l| l.socket), Some(moved.display().to_string()));

    std::fs::write(&path, "lxd: {}\nconfig: {core.bgp_asn: x}\n").expect("write");
    assert!(source.reload(wait).await.is_err());
    assert_eq!(
        source.status().kind,
        "incus",
        "a refused reload moved the source"
    );

    std::fs::write(&path, file_alone).expect("write");
    source.reload(wait).await.expect("config");
    assert_eq!(source.status().kind, "file");
}

#[test]
fn forwards_are_advertised_as_lxd_does() {
    // LXD 5.0.2 announces a bridge forward's listen address as /32 or /128, next hop
    // self (seen at a bird router); hostbgp does the same, with the network's override.
    let mut snap = lxd_snapshot();
    let forwards: Vec<super::api::Forward> = fixture("lxd-5.0.2-forwards.json");
    snap.forwards.insert("lxdbr0".into(), forwards);
    let file =
        format!("{FILE}networks:\n  lxdbr0:\n    config: {{bgp.ipv4.nexthop: 198.51.100.7}}\n");
    let c = compose_ok(&file, &snap);
    let want: Vec<IpAddr> = vec![
        "192.0.2.5".parse().unwrap(),
        "2001:db8:300::5".parse().unwrap(),
    ];
    assert_eq!(c.networks["lxdbr0"].forwards, want);
    let intent = crate::plan::plan(&c, &crate::kernel::KernelView::default());
    let v4 = intent
        .adverts
        .get(&"192.0.2.5/32".parse().unwrap())
        .expect("v4 forward");
    assert_eq!(
        v4.next_hop,
        crate::plan::NextHopRule::Host(Some("198.51.100.7".parse().unwrap()))
    );
    let v6 = intent
        .adverts
        .get(&"2001:db8:300::5/128".parse().unwrap())
        .expect("v6 forward");
    assert_eq!(v6.next_hop, crate::plan::NextHopRule::Host(None));
    // Another member's forward is not ours.
    snap.forwards.get_mut("lxdbr0").unwrap()[0].location = "node2".into();
    let c = compose_ok(FILE, &snap);
    assert_eq!(c.networks["lxdbr0"].forwards.len(), 1);
}

#[test]
fn forwards_in_the_file() {
    let yaml = "networks:\n  br0:\n    type: bridge\n    forwards: [192.0.2.5, \"2001:db8::5\", 192.0.2.5]\n";
    let c = crate::config::parse_str(yaml, "m").expect("valid");
    assert_eq!(c.networks["br0"].forwards.len(), 2);
    let errs =
        crate::config::parse_str("networks:\n  br0: {type: bridge, forwards: [nope]}\n", "m")
            .unwrap_err();
    assert_eq!(errs[0].key, "networks.br0.forwards");
}

/// A port whose peer carries a NIC's hwaddr names that NIC before LXD writes
/// the veth's name; other MACs match nothing.
#[test]
fn a_port_is_matched_to_its_nic_by_mac() {
    let mut snap = crate::lxd::Snapshot::default();
    let mut inst = crate::lxd::api::Instance {
        name: "c1".into(),
        status: "Stopped".into(),
        ..Default::default()
    };
    inst.config
        .insert("volatile.eth0.hwaddr".into(), "00:16:3E:DA:B2:7A".into());
    snap.instances.push(inst);
    assert!(!crate::lxd::convert::knows_port(&snap, "vethc2e34bcf"));
    let next = crate::lxd::convert::assume_port(&snap, "vethc2e34bcf", "00:16:3e:da:b2:7a")
        .expect("matched");
    assert!(crate::lxd::convert::knows_port(&next, "vethc2e34bcf"));
    assert_eq!(
        next.instances[0]
            .config
            .get("volatile.eth0.host_name")
            .map(String::as_str),
        Some("vethc2e34bcf")
    );
    assert!(crate::lxd::convert::assume_port(&snap, "veth0", "00:16:3e:00:00:01").is_none());
}
