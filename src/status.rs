//! What `hostbgp status` reports, as typed structures: the agent serializes them, the
//! CLI reads them back (no field is looked up by a string key).
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub server: ServerStatus,
    pub peers: Vec<PeerStatusView>,
    /// Where the configuration comes from (the file, or the file over LXD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceView>,
}

/// The configuration's source: `kind` `file`, or `lxd`/`incus` with the live part.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceView {
    pub kind: String,
    pub path: String,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveSourceView>,
}

/// A live source's connection and what it last saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveSourceView {
    pub socket: String,
    pub connected: bool,
    pub connected_since_unix: Option<u64>,
    pub last_event: Option<SourceEventView>,
    pub last_resync_unix: Option<u64>,
    pub networks: usize,
    pub instances: usize,
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    /// LXD's own `core.bgp_address`, when its speaker is on (it competes with us).
    pub lxd_bgp_address: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceEventView {
    pub unix: Option<u64>,
    pub action: String,
    pub source: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub asn: Option<u32>,
    pub router_id: Option<String>,
    pub listen: Option<String>,
    pub member: String,
    #[serde(default)]
    pub overlay_keys: Vec<String>,
    pub started_unix: u64,
    /// Whether every path carries GRACEFUL_SHUTDOWN (`hostbgp drain`, RFC 8326).
    #[serde(default)]
    pub drained: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained_since_unix: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerStatusView {
    pub name: String,
    pub networks: Vec<String>,
    /// The configured address, or an unnumbered peer's link-local once heard (null
    /// until then).
    pub address: Option<String>,
    /// `interface`: an unnumbered peer's interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub port: u16,
    pub asn: u32,
    pub password_set: bool,
    /// The hold time configured for this peer.
    pub hold_time: u16,
    pub state: String,
    /// Set while an operator keeps the peer down (`hostbgp disable`): the message.
    #[serde(default)]
    pub admin_down: Option<String>,
    /// `bgp.peers.NAME.export`: "all", or "network" (the declaring networks' prefixes).
    #[serde(default)]
    pub export: String,
    pub uptime_secs: Option<u64>,
    pub up_since_unix: Option<u64>,
    pub down_since_unix: Option<u64>,
    /// Times the session reached Established since the agent started.
    pub established_transitions: u64,
    pub local_address: Option<String>,
    pub peer_router_id: Option<String>,
    pub families: Vec<String>,
    /// What was negotiated (null while not established).
    pub capabilities: Option<NegotiatedView>,
    pub capabilities_offered: Vec<String>,
    pub capabilities_received: Vec<String>,
    pub prefixes_sent: BTreeMap<String, usize>,
    /// Why a family is not sent to this peer.
    pub not_sent: BTreeMap<String, String>,
    pub updates_received: u64,
    pub prefixes_received: u64,
    pub malformed_updates_received: u64,
    pub messages_sent: MessageCounts,
    pub messages_received: MessageCounts,
    /// Why the last attempt or session ended (connect errors included).
    pub last_error: Option<String>,
    pub last_notification_sent: Option<NotificationView>,
    pub last_notification_received: Option<NotificationView>,
    /// The BFD session, when `bfd` is on for this peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdView>,
}

/// One BFD session as `status` shows it: states, what was negotiated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfdView {
    pub state: String,
    pub remote_state: String,
    /// Why our side last went down ("no diagnostic" while it never did).
    pub diagnostic: String,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// The negotiated interval between our packets, before jitter.
    pub transmit_interval_ms: u64,
    /// How long without a packet before the session goes down.
    pub detection_time_ms: u64,
    pub multiplier: u8,
}

/// One prefix in `hostbgp routes`: who owns it, what each peer is sent, what the
/// kernel holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    /// None for a configured item that has no prefix yet (`routes --all`).
    pub prefix: Option<String>,
    pub owner: Option<String>,
    #[serde(default)]
    pub owners: Vec<String>,
    pub advertised: bool,
    /// Why it is not advertised, or not installed (`routes --all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Peer name: the next hop it is sent.
    #[serde(default)]
    pub next_hops: BTreeMap<String, String>,
    /// What the peers are sent beside the next hop (the drain's community included).
    #[serde(default)]
    pub attributes: Option<PathAttributesView>,
    /// The kernel route wanted for it, if any, and what the kernel holds.
    pub kernel: Option<KernelRouteView>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelRouteView {
    /// `installed`, `installed (differs)`, `missing` or `error: ...`.
    pub state: String,
    pub next_hops: Vec<HopView>,
    /// What the kernel holds, when it holds ours.
    pub held: Option<Vec<HopView>>,
    /// When another route last took its place, and whose.
    pub displaced: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HopView {
    pub dev: Option<String>,
    pub via: Option<String>,
}

/// A prefix's added path attributes as `routes` shows them (communities as
/// `ASN:VALUE`, large ones as `GLOBAL:LOCAL1:LOCAL2`); empty lists and zero are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathAttributesView {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large_communities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub as_path_prepend: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl From<&crate::bgp::wire::ExtraAttrs> for PathAttributesView {
    fn from(a: &crate::bgp::wire::ExtraAttrs) -> Self {
        PathAttributesView {
            communities: a
                .communities
                .iter()
                .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                .collect(),
            large_communities: a
                .large_communities
                .iter()
                .map(|[g, l1, l2]| format!("{g}:{l1}:{l2}"))
                .collect(),
            med: a.med,
            as_path_prepend: a.as_path_prepend,
        }
    }
}

impl fmt::Display for PathAttributesView {
    /// One line for `hostbgp routes`: `communities 65010:100 65535:0; med 50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.communities.is_empty() {
            parts.push(format!("communities {}", self.communities.join(" ")));
        }
        if !self.large_communities.is_empty() {
            parts.push(format!("large {}", self.large_communities.join(" ")));
        }
        if let Some(med) = self.med {
            parts.push(format!("med {med}"));
        }
        if self.as_path_prepend > 0 {
            parts.push(format!("prepend {}", self.as_path_prepend));
        }
        write!(f, "{}", parts.join("; "))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NegotiatedView {
    pub four_octet_as: bool,
    pub extended_message: bool,
    pub extended_next_hop_ipv4: bool,
    pub route_refresh: bool,
    pub graceful_restart: bool,
    /// The negotiated hold time (the smaller of both sides' offers) and keepalive.
    pub hold_time: u16,
    pub keepalive_secs: Option<u64>,
    /// The graceful restart time we offered and the peer's (null: that side sent no
    /// graceful restart capability).
    #[serde(default)]
    pub graceful_restart_time_sent: Option<u16>,
    #[serde(default)]
    pub graceful_restart_time_received: Option<u16>,
    /// RFC 8538's N bit each way; with both, our resets go as Cease/Hard Reset.
    #[serde(default)]
    pub notification_bit_sent: bool,
    #[serde(default)]
    pub notification_bit_received: bool,
    #[serde(default)]
    pub hard_reset: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    pub open: u64,
    pub update: u64,
    pub notification: u64,
    pub keepalive: u64,
    pub route_refresh: u64,
}

impl MessageCounts {
    /// From counters indexed by BGP message type code (1 = OPEN ... 5 = ROUTE-REFRESH).
    pub fn from_by_type(by_type: [u64; 6]) -> MessageCounts {
        MessageCounts {
            open: by_type[1],
            update: by_type[2],
            notification: by_type[3],
            keepalive: by_type[4],
            route_refresh: by_type[5],
        }
    }

    /// (type name, count) pairs, as metrics label them.
    pub fn by_name(&self) -> [(&'static str, u64); 5] {
        [
            ("open", self.open),
            ("update", self.update),
            ("notification", self.notification),
            ("keepalive", self.keepalive),
            ("route_refresh", self.route_refresh),
        ]
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationView {
    pub code: u8,
    pub subcode: u8,
    /// e.g. "Cease/Administrative Shutdown".
    pub name: String,
    /// The RFC 8203 shutdown communication, when the peer (or we) sent one.
    pub message: Option<String>,
    pub unix: u64,
}

/// One peer's view: its configuration, and what its session task reports.
pub fn peer_view(
    peer: &crate::config::Peer,
    session: &crate::bgp::session::PeerStatus,
    offered: Vec<String>,
) -> PeerStatusView {
    use std::sync::atomic::Ordering::Relaxed;
    let counters = &session.received;
    let by_type = |c: &[std::sync::atomic::AtomicU64; 6]| {
        let mut out = [0u64; 6];
        for (o, c) in out.iter_mut().zip(c) {
            *o = c.load(Relaxed);
        }
        MessageCounts::from_by_type(out)
    };
    let notification =
        |slot: &std::sync::Mutex<Option<crate::bgp::session::NotificationRecord>>| {
            let record = slot.lock().ok()?.clone()?;
            let n = &record.notification;
            Some(NotificationView {
                code: n.code.into(),
                subcode: n.subcode,
                name: n.name(),
                message: n.shutdown_message().map(|m| m.to_string()),
                unix: unix(record.at),
            })
        };
    let networks: std::collections::BTreeSet<String> =
        peer.declared_by.iter().map(|(n, _)| n.clone()).collect();
    let negotiated = session.negotiated.as_ref();
    PeerStatusView {
        name: peer
            .declared_by
            .first()
            .map(|(_, n)| n.clone())
            .unwrap_or_default(),
        networks: networks.into_iter().collect(),
        address: session
            .neighbour
            .or(peer.remote.address())
            .map(|a| a.to_string()),
        interface: peer.remote.interface().map(str::to_string),
        port: peer.port,
        asn: peer.asn,
        password_set: peer.password.is_some(),
        hold_time: peer.hold_time,
        export: peer.export.name().to_string(),
        state: session.state.to_string(),
        uptime_secs: session.uptime.established_at.map(|t| t.elapsed().as_secs()),
        up_since_unix: session.uptime.up_since.map(unix),
        down_since_unix: session.uptime.down_since.map(unix),
        established_transitions: session.uptime.established_transitions,
        local_address: session.local_address.map(|a| a.to_string()),
        peer_router_id: negotiated.map(|n| n.peer_id.to_string()),
        families: negotiated
            .map(|n| n.families.iter().map(|f| f.name().to_string()).collect())
            .unwrap_or_default(),
        capabilities: negotiated.map(|n| NegotiatedView {
            four_octet_as: n.four_octet_as,
            extended_message: n.extended_message,
            extended_next_hop_ipv4: n.extended_next_hop_ipv4,
            route_refresh: n.route_refresh,
            graceful_restart: n.graceful_restart,
            hold_time: n.hold_time,
            keepalive_secs: n.keepalive_interval().map(|d| d.as_secs()),
            graceful_restart_time_sent: n.graceful.local.map(|g| g.restart_time),
            graceful_restart_time_received: n.graceful.peer.map(|g| g.restart_time),
            notification_bit_sent: n.graceful.local.is_some_and(|g| g.notification),
            notification_bit_received: n.graceful.peer.is_some_and(|g| g.notification),
            hard_reset: n.graceful.hard_reset(),
        }),
        capabilities_offered: offered,
        capabilities_received: session.capabilities_received.clone(),
        updates_received: counters.updates.load(Relaxed),
        prefixes_received: counters.prefixes.load(Relaxed),
        malformed_updates_received: counters.errors.load(Relaxed),
        messages_sent: by_type(&counters.messages_sent),
        messages_received: by_type(&counters.messages_received),
        last_error: session.last_error.clone(),
        last_notification_sent: notification(&counters.last_sent),
        last_notification_received: notification(&counters.last_received),
        ..Default::default()
    }
}

/// `graceful restart: sent 120 s (N bit), received 90 s (N bit); resets go as Hard Reset`
pub fn graceful_restart_line(n: &NegotiatedView) -> String {
    let side = |time: Option<u16>, n_bit: bool| match time {
        Some(t) if n_bit => format!("{t} s (N bit)"),
        Some(t) => format!("{t} s"),
        None => "none".into(),
    };
    let mut line = format!(
        "graceful restart: sent {}, received {}",
        side(n.graceful_restart_time_sent, n.notification_bit_sent),
        side(
            n.graceful_restart_time_received,
            n.notification_bit_received
        )
    );
    if n.hard_reset {
        line.push_str("; resets go as Hard Reset (RFC 8538)");
    }
    line
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A duration as people read it: `3h 2m 5s`, `42s`.
pub fn human(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// How long ago `unix` was, in human words, from `now`.
pub fn ago(unix_then: u64, now: SystemTime) -> String {
    human(unix(now).saturating_sub(unix_then))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_attributes_as_operators_write_them() {
        let a = crate::bgp::wire::ExtraAttrs {
            med: Some(50),
            communities: vec![65010 << 16 | 100, 0xFFFF_0000],
            large_communities: vec![[65010, 1, 2]],
            as_path_prepend: 2,
        };
        let view = PathAttributesView::from(&a);
        assert_eq!(view.communities, ["65010:100", "65535:0"]);
        assert_eq!(view.large_communities, ["65010:1:2"]);
        assert_eq!(
            view.to_string(),
            "communities 65010:100 65535:0; large 65010:1:2; med 50; prepend 2"
        );
        let none = PathAttributesView::from(&crate::bgp::wire::ExtraAttrs::default());
        assert_eq!(serde_json::to_string(&none).unwrap(), "{}");
        assert_eq!(none.to_string(), "");
    }

    #[test]
    fn round_trip_and_words() {
        let mut st = Status::default();
        st.peers.push(PeerStatusView {
            name: "r1".into(),
            state: "Established".into(),
            messages_sent: MessageCounts::from_by_type([0, 1, 7, 0, 3, 0]),
            last_notification_received: Some(NotificationView {
                code: 6,
                subcode: 2,
                name: "Cease/Administrative Shutdown".into(),
                message: Some("maintenance".into()),
                unix: 10,
            }),
            ..Default::default()
        });
        let text = serde_json::to_string(&st).unwrap();
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.peers[0].messages_sent.update, 7);
        assert_eq!(human(3725), "1h 2m 5s");
        let mut n = NegotiatedView {
            graceful_restart_time_sent: Some(3600),
            notification_bit_sent: true,
            ..Default::default()
        };
        assert_eq!(
            graceful_restart_line(&n),
            "graceful restart: sent 3600 s (N bit), received none"
        );
        n.graceful_restart_time_received = Some(90);
        n.notification_bit_received = true;
        n.hard_reset = true;
        assert_eq!(
            graceful_restart_line(&n),
            "graceful restart: sent 3600 s (N bit), received 90 s (N bit); resets go as Hard Reset (RFC 8538)"
        );
        assert_eq!(
            ago(100, SystemTime::UNIX_EPOCH + Duration::from_secs(142)),
            "42s"
        );
    }
}
