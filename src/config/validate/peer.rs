//! `bgp.peers.NAME.FIELD`: one network's peers, gathered key by key, then checked
//! as wholes; and the peers that several networks declare, compared.
use std::collections::BTreeMap;
use std::net::IpAddr;

use super::keys::split_peer_key;
use super::Errors;
use crate::config::node::Node;
use crate::config::values;
use crate::config::{
    BfdSettings, Export, Network, Password, PeerSettings, Remote, DEFAULT_BFD_MIN_INTERVAL_MS,
    DEFAULT_BFD_MULTIPLIER, DEFAULT_BGP_PORT, DEFAULT_HOLD_TIME,
};

/// `graceful_restart.time` bounds: the capability has 12 bits for it (RFC 4724).
const GRACEFUL_RESTART_TIME: (u16, u16) = (0, 4095);
/// `bfd.min_interval` bounds, in ms: bird and FRR go no faster than 10 ms, and a
/// detection slower than a minute is what the hold timer is for.
const BFD_MIN_INTERVAL_MS: (u32, u32) = (10, 60_000);

#[derive(Default)]
struct RawPeer {
    address: Option<IpAddr>,
    address_set: bool,
    interface: Option<String>,
    interface_set: bool,
    asn: Option<u32>,
    asn_set: bool,
    password: Option<crate::config::Password>,
    hold_time: Option<u16>,
    bfd: bool,
    bfd_min_interval: Option<u32>,
    bfd_multiplier: Option<u8>,
    graceful_restart_time: Option<u16>,
    export: Export,
    valid: bool,
}

/// One network's `bgp.peers.` keys, by peer name.
#[derive(Default)]
pub(super) struct RawPeers(BTreeMap<String, RawPeer>);

impl RawPeers {
    /// The key `key` (`rest` is what follows `bgp.peers.`) with value `v`.
    pub(super) fn take(&mut self, e: &mut Errors, key: &str, rest: &str, v: &Node) {
        let Some((pname, field)) = split_peer_key(rest) else {
            e.push(key, "unknown key");
            return;
        };
        let p = self.0.entry(pname.to_string()).or_insert_with(|| RawPeer {
            valid: true,
            ..RawPeer::default()
        });
        let Some(val) = e.scalar(key, v) else {
            if matches!(v, Node::Map(_) | Node::Seq(_)) {
                p.valid = false;
            }
            return;
        };
        match field.key {
            "address" => {
                p.address_set = true;
                p.address = e.check(key, values::parse_ip(val));
                p.valid &= p.address.is_some();
            }
            "interface" => {
                p.interface_set = true;
                p.interface = e.check(key, values::check_ifname(val).map(|()| val.to_string()));
                p.valid &= p.interface.is_some();
            }
            "asn" => {
                p.asn_set = true;
                p.asn = e.check(key, values::parse_asn(val));
                p.valid &= p.asn.is_some();
            }
            "password" => {
                p.password = e.check(key, Password::parse(val));
                p.valid &= p.password.is_some();
            }
            "bfd" => {
                let on = e.check(key, values::parse_bool(val));
                p.bfd = on.unwrap_or(false);
                p.valid &= on.is_some();
            }
            "bfd.min_interval" => {
                let (min, max) = BFD_MIN_INTERVAL_MS;
                p.bfd_min_interval = e.check(key, values::parse_u32(val, min, max));
                p.valid &= p.bfd_min_interval.is_some();
            }
            "bfd.multiplier" => {
                p.bfd_multiplier = e
                    .check(key, values::parse_u16(val, 1, 255))
                    .and_then(|m| u8::try_from(m).ok());
                p.valid &= p.bfd_multiplier.is_some();
            }
            "graceful_restart.time" => {
                let (min, max) = GRACEFUL_RESTART_TIME;
                p.graceful_restart_time = e.check(key, values::parse_u16(val, min, max));
                p.valid &= p.graceful_restart_time.is_some();
            }
            "export" => {
                let export = e.check(key, values::parse_export(val));
                p.export = export.unwrap_or_default();
                p.valid &= export.is_some();
            }
            "holdtime" => {
                p.hold_time = e.check(key, values::parse_u16(val, 9, 65535));
                p.valid &= p.hold_time.is_some();
            }
            // A table field without its arm would be accepted and dropped: the
            // table's tests give each a bad value and expect an error.
            _ => {}
        }
    }

    /// The peers whose keys make a whole; an error for each that does not.
    pub(super) fn finish(self, e: &mut Errors, cbase: &str) -> BTreeMap<String, PeerSettings> {
        let mut peers = BTreeMap::new();
        for (pname, p) in self.0 {
            let pkey = format!("{cbase}.bgp.peers.{pname}");
            match (p.address_set, p.interface_set) {
                (false, false) => e.push(
                    format!("{pkey}.address"),
                    "required: a peer needs an address (or an interface, unnumbered) and an asn",
                ),
                (true, true) => {
                    e.push(
                        format!("{pkey}.interface"),
                        format!("{pkey}.address and {pkey}.interface exclude each other: a peer is either at an address or the router at the other end of an interface"),
                    );
                    continue;
                }
                _ => {}
            }
            if !p.asn_set {
                e.push(
                    format!("{pkey}.asn"),
                    "required: a peer needs an address (or an interface, unnumbered) and an asn",
                );
            }
            let bfd_tuned = p.bfd_min_interval.is_some() || p.bfd_multiplier.is_some();
            if bfd_tuned && !p.bfd {
                // Tuning without `bfd: "true"` would silently do nothing.
                e.push(
                    format!("{pkey}.bfd"),
                    "must be \"true\" when bfd.min_interval or bfd.multiplier is set",
                );
                continue;
            }
            let bfd = p.bfd.then(|| BfdSettings {
                min_interval_ms: p.bfd_min_interval.unwrap_or(DEFAULT_BFD_MIN_INTERVAL_MS),
                multiplier: p.bfd_multiplier.unwrap_or(DEFAULT_BFD_MULTIPLIER),
            });
            let remote = match (p.address, p.interface) {
                (Some(a), _) => Some(Remote::Address(a)),
                (None, Some(i)) => Some(Remote::Interface(i)),
                (None, None) => None,
            };
            if let (true, Some(remote), Some(asn)) = (p.valid, remote, p.asn) {
                peers.insert(
                    pname,
                    PeerSettings {
                        remote,
                        port: DEFAULT_BGP_PORT,
                        asn,
                        password: p.password,
                        hold_time: p.hold_time.unwrap_or(DEFAULT_HOLD_TIME),
                        bfd,
                        graceful_restart_time: p.graceful_restart_time,
                        export: p.export,
                    },
                );
            }
        }
        peers
    }
}

pub(super) fn check_peer_conflicts(e: &mut Errors, networks: &BTreeMap<String, Network>) {
    let mut by_addr: BTreeMap<&Remote, Vec<(&str, &str, &PeerSettings)>> = BTreeMap::new();
    for (nname, net) in networks {
        for (pname, p) in &net.peers {
            by_addr
                .entry(&p.remote)
                .or_default()
                .push((nname, pname, p));
        }
    }
    for (addr, decls) in by_addr {
        let Some(((n0, pn0, p0), rest)) = decls.split_first() else {
            continue;
        };
        let key =
            |n: &str, pname: &str, f: &str| format!("networks.{n}.config.bgp.peers.{pname}.{f}");
        for (n, pn, p) in rest {
            let diffs = [
                ("asn", p0.asn != p.asn),
                ("password", p0.password != p.password),
                ("holdtime", p0.hold_time != p.hold_time),
                ("bfd", p0.bfd != p.bfd),
                (
                    "graceful_restart.time",
                    p0.graceful_restart_time != p.graceful_restart_time,
                ),
            ];
            for (f, differ) in diffs {
                if differ {
                    e.push(
                        key(n0, pn0, f),
                        format!(
                            "conflicts with {} (same peer {})",
                            key(n, pn, f),
                            addr.described()
                        ),
                    );
                }
            }
        }
    }
}
