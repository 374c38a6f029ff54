//! Ports joining a bridge, seen on netlink: an instance's veth is enslaved to its
//! bridge well before LXD says `instance-started` (160-190 ms on 5.0.2), and LXD has
//! written `volatile.DEV.host_name` by then. A port hostbgp cannot place makes the
//! source read the instances at once instead of waiting for the event.
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::time::Duration;

use netlink_packet_core::Parseable;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::AddressFamily;
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};

const RTMGRP_LINK: u32 = 0x1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortEvent {
    /// `name` is (still) a port of the bridge with index `master`. `peer_mac`: the MAC
    /// address of its veth peer while that is still in this namespace; LXD gives the
    /// peer the NIC's `volatile.DEV.hwaddr` before it enslaves the host side, so this
    /// names the NIC before LXD has written the veth's name.
    Enslaved {
        name: String,
        master: u32,
        peer_mac: Option<String>,
    },
    /// `name` is gone, or no longer a port.
    Gone { name: String },
}

/// One link message, as far as ports are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSeen {
    index: u32,
    name: String,
    master: Option<u32>,
    /// IFLA_LINK: a veth's peer.
    peer: Option<u32>,
    mac: Option<String>,
    deleted: bool,
}

/// The MAC addresses of this namespace's links, so an enslaved veth's peer can be
/// looked up (pure: fed link messages in order).
#[derive(Debug, Default)]
pub struct PortTable {
    macs: BTreeMap<u32, String>,
}

impl PortTable {
    pub fn apply(&mut self, seen: Vec<LinkSeen>) -> Vec<PortEvent> {
        let mut out = Vec::new();
        for l in seen {
            if l.deleted {
                self.macs.remove(&l.index);
                out.push(PortEvent::Gone { name: l.name });
                continue;
            }
            if let Some(mac) = &l.mac {
                self.macs.insert(l.index, mac.clone());
            }
            out.push(match l.master {
                Some(master) => PortEvent::Enslaved {
                    name: l.name,
                    master,
                    peer_mac: l.peer.and_then(|p| self.macs.get(&p).cloned()),
                },
                None => PortEvent::Gone { name: l.name },
            });
        }
        out
    }
}

pub struct Ports {
    sock: TokioSocket,
    buf: Vec<u8>,
    table: PortTable,
}

impl Ports {
    pub fn open() -> io::Result<Ports> {
        let mut sock = TokioSocket::new(NETLINK_ROUTE)?;
        sock.socket_mut().bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        Ok(Ports {
            sock,
            buf: Vec::with_capacity(1 << 16),
            table: PortTable::default(),
        })
    }

    /// The next datagram's port events (possibly none). An overrun (ENOBUFS) only
    /// loses a shortcut: LXD's own event still comes.
    pub async fn next(&mut self) -> io::Result<Vec<PortEvent>> {
        self.buf.clear();
        match self.sock.recv(&mut self.buf).await {
            Ok(()) => Ok(self.table.apply(parse(&self.buf))),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// The link messages of one rtnetlink datagram (pure). AF_BRIDGE copies are skipped.
pub fn parse(buf: &[u8]) -> Vec<LinkSeen> {
    crate::kernel::messages(buf)
        .filter_map(|m| {
            let deleted = match m.ty {
                RTM_NEWLINK => false,
                RTM_DELLINK => true,
                _ => return None,
            };
            event(&LinkMessage::parse(m.payload).ok()?, deleted)
        })
        .collect()
}

fn event(l: &LinkMessage, deleted: bool) -> Option<LinkSeen> {
    if l.header.interface_family != AddressFamily::Unspec {
        return None;
    }
    let mut seen = LinkSeen {
        index: l.header.index,
        name: String::new(),
        master: None,
        peer: None,
        mac: None,
        deleted,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => seen.name = n.clone(),
            LinkAttribute::Controller(m) if *m != 0 => seen.master = Some(*m),
            LinkAttribute::Link(p) if *p != 0 => seen.peer = Some(*p),
            LinkAttribute::Address(mac) if mac.len() == 6 => {
                let hex: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
                seen.mac = Some(hex.join(":"));
            }
            _ => {}
        }
    }
    (!seen.name.is_empty()).then_some(seen)
}

/// Reads of the instance list for a port hostbgp cannot place, spaced by these
/// delays (LXD writes the veth's name right after enslaving it); after the last, the
/// port is taken as not an instance's (LXD's `instance-started` still says if it is).
pub const PORT_RETRIES: &[Duration] = &[
    Duration::ZERO,
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(40),
    Duration::from_millis(80),
];

/// Which unknown ports still deserve a read of the instance list (pure).
#[derive(Debug, Default)]
pub struct PortChase {
    /// Port -> reads it has had.
    chasing: BTreeMap<String, usize>,
    /// Ports of other bridges (not LXD's instances): not chased again until they go.
    given_up: BTreeSet<String>,
}

impl PortChase {
    /// A port is on a bridge; true when the instance list should be read now.
    pub fn enslaved(&mut self, name: &str, known: bool) -> bool {
        if known || self.chasing.contains_key(name) || self.given_up.contains(name) {
            return false;
        }
        self.chasing.insert(name.to_string(), 0);
        true
    }

    pub fn gone(&mut self, name: &str) {
        self.chasing.remove(name);
        self.given_up.remove(name);
    }

    /// After a read of the instance list: when to read again, if a port is still unknown.
    pub fn after_read(&mut self, known: impl Fn(&str) -> bool) -> Option<Duration> {
        let given_up = &mut self.given_up;
        self.chasing.retain(|name, reads| {
            *reads += 1;
            if known(name) {
                return false;
            }
            if *reads >= PORT_RETRIES.len() {
                given_up.insert(name.clone());
                return false;
            }
            true
        });
        self.chasing.values().min().map(|r| PORT_RETRIES[*r])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::RouteNetlinkMessage;

    fn datagram(msgs: Vec<RouteNetlinkMessage>) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(m));
            nl.finalize();
            let mut buf = vec![0u8; nl.buffer_len()];
            nl.emit(&mut buf);
            out.extend_from_slice(&buf);
        }
        out
    }

    fn link(family: AddressFamily, name: &str, master: Option<u32>) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.interface_family = family;
        m.header.index = 7;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        if let Some(ma) = master {
            m.attributes.push(LinkAttribute::Controller(ma));
        }
        m
    }

    #[test]
    fn unknown_ports_are_chased_a_few_times_then_left() {
        let mut c = PortChase::default();
        assert!(!c.enslaved("vethknown", true));
        assert!(c.enslaved("veth1", false));
        // Repeated link messages for the same port do not start another chase.
        assert!(!c.enslaved("veth1", false));
        let mut delays = Vec::new();
        while let Some(d) = c.after_read(|_| false) {
            delays.push(d);
        }
        assert_eq!(delays, PORT_RETRIES[1..]);
        // Given up: ignored until it goes away.
        assert!(!c.enslaved("veth1", false));
        c.gone("veth1");
        assert!(c.enslaved("veth1", false));
        // Found on the first read: done.
        assert_eq!(c.after_read(|n| n == "veth1"), None);
    }

    #[test]
    fn ports_from_link_messages() {
        let buf = datagram(vec![
            RouteNetlinkMessage::NewLink(link(AddressFamily::Unspec, "veth1234", Some(3))),
            RouteNetlinkMessage::NewLink(link(AddressFamily::Bridge, "veth1234", Some(3))),
            RouteNetlinkMessage::NewLink(link(AddressFamily::Unspec, "veth5678", None)),
            RouteNetlinkMessage::DelLink(link(AddressFamily::Unspec, "veth1234", Some(3))),
        ]);
        assert_eq!(
            PortTable::default().apply(parse(&buf)),
            [
                PortEvent::Enslaved {
                    name: "veth1234".into(),
                    master: 3,
                    peer_mac: None,
                },
                PortEvent::Gone {
                    name: "veth5678".into()
                },
                PortEvent::Gone {
                    name: "veth1234".into()
                },
            ]
        );
        // Truncated or garbage input yields nothing rather than failing.
        assert!(parse(&buf[..10]).is_empty());
        assert!(parse(&[0xff; 40]).is_empty());
    }

    /// LXD's order, as `ip monitor link` showed it on 5.0.2: the veth pair appears,
    /// the peer gets the NIC's hwaddr, then the host side joins the bridge.
    #[test]
    fn an_enslaved_veth_names_its_peers_mac() {
        let mut peer = link(AddressFamily::Unspec, "veth6d622a8a", None);
        peer.header.index = 4;
        peer.attributes.push(LinkAttribute::Link(5));
        peer.attributes.push(LinkAttribute::Address(vec![
            0x00, 0x16, 0x3e, 0xda, 0xb2, 0x7a,
        ]));
        let mut host = link(AddressFamily::Unspec, "vethc2e34bcf", Some(3));
        host.header.index = 5;
        host.attributes.push(LinkAttribute::Link(4));
        let mut table = PortTable::default();
        let events = table.apply(parse(&datagram(vec![
            RouteNetlinkMessage::NewLink(peer),
            RouteNetlinkMessage::NewLink(host),
        ])));
        assert_eq!(
            events.last(),
            Some(&PortEvent::Enslaved {
                name: "vethc2e34bcf".into(),
                master: 3,
                peer_mac: Some("00:16:3e:da:b2:7a".into()),
            })
        );
    }
}
