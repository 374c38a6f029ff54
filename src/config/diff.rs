//! What a new configuration changes for the BGP sessions (pure): which peers go,
//! which must start over, which only take their new settings, which are new.
//!
//! A peer's session starts over when anything about it differs except what is
//! listed in [`session_free`]: a field added to [`Peer`] or [`PeerSettings`] later
//! resets the session by default, which is the safe side (a missed reset would leave
//! a session running on settings the operator changed).
use std::collections::BTreeMap;

use super::{Config, Export, Peer, PeerSettings, Remote};

/// The sessions' part of a reload.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PeerChanges {
    /// Peers gone from the config.
    pub removed: Vec<Remote>,
    /// Peers whose session starts over with the new settings.
    pub reset: Vec<Peer>,
    /// Peers that keep their session and take the new settings (where declared, what
    /// they export: a resync sends the difference).
    pub updated: Vec<Peer>,
    pub added: Vec<Peer>,
}

/// The peers of `old` and `new`, compared. `server_changed` (ASN, router id, listen
/// address, graceful restart) resets every session.
pub fn peers(old: &Config, new: &Config, server_changed: bool) -> PeerChanges {
    let by_address = |c: &Config| -> BTreeMap<Remote, Peer> {
        c.peers()
            .into_iter()
            .map(|p| (p.remote.clone(), p))
            .collect()
    };
    let (old, mut new) = (by_address(old), by_address(new));
    let mut changes = PeerChanges::default();
    for (address, before) in old {
        match new.remove(&address) {
            None => changes.removed.push(address),
            Some(after) if server_changed || session_free(&before) != session_free(&after) => {
                changes.reset.push(after)
            }
            Some(after) => changes.updated.push(after),
        }
    }
    changes.added = new.into_values().collect();
    changes
}

/// `peer` without what a running session can take on: where it is declared, and its
/// export scope.
fn session_free(peer: &Peer) -> Peer {
    Peer {
        settings: PeerSettings {
            export: Export::All,
            ..peer.settings.clone()
        },
        declared_by: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_str, BfdSettings, Password};

    fn peer() -> Peer {
        Peer {
            settings: PeerSettings {
                remote: Remote::Address("192.0.2.1".parse().expect("address")),
                port: 179,
                asn: 65000,
                password: None,
                hold_time: 90,
                bfd: None,
                graceful_restart_time: None,
                export: Export::All,
            },
            declared_by: vec![("br0".into(), "r1".into())],
        }
    }

    /// `peer()` with `change` made to its settings.
    fn with(change: impl FnOnce(&mut PeerSettings)) -> Peer {
        let mut p = peer();
        change(&mut p.settings);
        p
    }

    #[test]
    fn what_resets_a_session() {
        let p = peer();
        let same = |a: &Peer, b: &Peer| session_free(a) == session_free(b);
        assert!(same(&p, &p.clone()));
        let on = with(|s| s.bfd = Some(BfdSettings::default()));
        assert!(!same(&p, &on), "BFD gates the session");
        let faster = with(|s| {
            s.bfd = Some(BfdSettings {
                min_interval_ms: 100,
                ..BfdSettings::default()
            })
        });
        assert!(!same(&on, &faster));
        for changed in [
            with(|s| s.port = 1179),
            with(|s| s.asn = 65001),
            with(|s| s.hold_time = 30),
            with(|s| s.password = Some(Password::new("s"))),
            // The OPEN offers another restart time.
            with(|s| s.graceful_restart_time = Some(3600)),
        ] {
            assert!(!same(&p, &changed), "{changed:?}");
        }
        let renamed = Peer {
            declared_by: vec![("br1".into(), "r1".into())],
            ..p.clone()
        };
        assert!(same(&p, &renamed), "where it is declared is not a setting");
        let scoped = with(|s| s.export = Export::Network);
        assert!(
            same(&p, &scoped),
            "an export change resyncs, it does not reset"
        );
    }

    fn config(peers: &str) -> Config {
        let yaml = format!(
            "config: {{core.bgp_asn: 65010}}\nnetworks:\n  br0:\n    type: bridge\n    config:\n{peers}"
        );
        parse_str(&yaml, "m").expect("valid")
    }

    #[test]
    fn peers_removed_reset_updated_added() {
        let old = config(
            "      bgp.peers.a.address: 192.0.2.1\n      bgp.peers.a.asn: 65000\n      bgp.peers.b.address: 192.0.2.2\n      bgp.peers.b.asn: 65000\n      bgp.peers.c.address: 192.0.2.3\n      bgp.peers.c.asn: 65000\n",
        );
        let new = config(
            "      bgp.peers.a.address: 192.0.2.1\n      bgp.peers.a.asn: 65001\n      bgp.peers.b.address: 192.0.2.2\n      bgp.peers.b.asn: 65000\n      bgp.peers.b.export: network\n      bgp.peers.d.address: 192.0.2.4\n      bgp.peers.d.asn: 65000\n",
        );
        let c = peers(&old, &new, false);
        let addresses = |v: &[Peer]| v.iter().map(|p| p.remote.to_string()).collect::<Vec<_>>();
        assert_eq!(
            c.removed,
            vec![Remote::Address("192.0.2.3".parse().expect("ip"))]
        );
        assert_eq!(addresses(&c.reset), ["192.0.2.1"]);
        assert_eq!(addresses(&c.updated), ["192.0.2.2"]);
        assert_eq!(addresses(&c.added), ["192.0.2.4"]);
        let all = peers(&old, &new, true);
        assert_eq!(addresses(&all.reset), ["192.0.2.1", "192.0.2.2"]);
        assert!(all.updated.is_empty());
    }
}
