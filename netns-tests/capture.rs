//! Issue 18 item 4: the graceful restart capability as it is on the wire. tcpdump
//! captures the BGP handshake on the router's side of the link; the test reassembles
//! the TCP stream(s) from the host's address, splits BGP messages by the header's
//! length and decodes our OPEN with hostbgp's own codec: the per-peer restart time and
//! the N bit (RFC 8538) are there, and nothing is when graceful restart is off.
//!
//! The pcap reader is deliberately small: classic pcap (either byte order, µs or ns
//! timestamps), Ethernet / Linux cooked v1 / v2 link types, IPv4 or IPv6 (no extension
//! headers) and TCP. Retransmissions are dropped by sequence number.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;

use hostbgp::bgp::wire::{
    Capability, Codec, GracefulRestart, Message, Open, HEADER_LEN, MARKER, MSG_OPEN,
};
use nix::sys::signal::Signal;

use crate::bird::{Bird, BirdPeer};
use crate::hostbgp::Hostbgp;
use crate::lab::{self, wait_until, Lab, Topo, TIMEOUT};
use crate::speaker::config_yaml;

/// tcpdump inside a namespace writing a pcap file; stopped (SIGKILL) on Drop.
pub struct Tcpdump {
    child: Child,
    file: PathBuf,
    stderr: mpsc::Receiver<String>,
}

impl Tcpdump {
    /// Starts `tcpdump -i DEV -U -w FILE FILTER` in `ns` and returns once it reports
    /// listening, so nothing sent afterwards is missed.
    pub fn start(lab: &Lab, ns: &str, dev: &str, filter: &str, file: &Path) -> Tcpdump {
        let file_s = file.to_string_lossy().into_owned();
        // -Z root: writing the file in the lab's root-only temp dir after the drop of
        // privileges to the `tcpdump` user would fail.
        let mut cmd = lab.command(
            ns,
            &[
                "tcpdump",
                "-i",
                dev,
                "-n",
                "--immediate-mode",
                "-U",
                "-Z",
                "root",
                "-w",
                &file_s,
                filter,
            ],
        );
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start tcpdump (is it installed?)");
        let stderr = child.stderr.take().expect("tcpdump stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut t = Tcpdump {
            child,
            file: file.to_path_buf(),
            stderr: rx,
        };
        let mut seen = Vec::new();
        loop {
            match t.stderr.recv_timeout(TIMEOUT) {
                Ok(line) if line.contains("listening on") => break,
                Ok(line) => seen.push(line),
                Err(e) => {
                    let status = t.child.try_wait();
                    panic!("tcpdump never reported listening ({e}, exit {status:?}): {seen:?}");
                }
            }
        }
        t
    }

    /// What tcpdump has written so far (it writes each packet as it comes: `-U`).
    pub fn written(&self) -> Vec<u8> {
        std::fs::read(&self.file).unwrap_or_default()
    }

    /// Stops tcpdump (SIGINT: it flushes and closes the file) and returns the file.
    pub fn stop(mut self) -> Vec<u8> {
        lab::signal_child(&self.child, Signal::SIGINT).expect("SIGINT tcpdump");
        let status = self.child.wait().expect("wait tcpdump");
        let tail: Vec<String> = self.stderr.try_iter().collect();
        let bytes = std::fs::read(&self.file).unwrap_or_else(|e| {
            panic!(
                "read {}: {e} (tcpdump {status}: {tail:?})",
                self.file.display()
            )
        });
        eprintln!("tcpdump {status}: {}", tail.join("; "));
        bytes
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = lab::signal_child(&self.child, Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// One TCP segment of a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub seq: u32,
    pub syn: bool,
    pub payload: Vec<u8>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The TCP segments of a classic pcap file, in capture order.
pub fn pcap_segments(pcap: &[u8]) -> Result<Vec<Segment>, String> {
    let magic = pcap.get(..4).ok_or("pcap shorter than its magic")?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(format!("not a pcap file (magic {magic:02x?})")),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = pcap.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let linktype = u32_at(20).ok_or("truncated pcap global header")? & 0x0fff_ffff;
    let mut out = Vec::new();
    let mut at = 24;
    while at < pcap.len() {
        let incl = u32_at(at + 8).ok_or("truncated record header")? as usize;
        let orig = u32_at(at + 12).ok_or("truncated record header")? as usize;
        let frame = pcap
            .get(at + 16..at + 16 + incl)
            .ok_or("truncated record")?;
        if incl < orig {
            return Err(format!(
                "frame cut by the snapshot length ({incl} < {orig})"
            ));
        }
        at += 16 + incl;
        // (offset of the network header, ethertype)
        let (l3, ethertype) = match linktype {
            1 => (14, be16(frame, 12)),
            113 => (16, be16(frame, 14)),
            276 => (20, be16(frame, 0)),
            other => return Err(format!("link type {other} not handled")),
        };
        let ip = frame.get(l3..).ok_or("short frame")?;
        let (src, dst, proto, l4) = match ethertype {
            Some(0x0800) => {
                let ihl = usize::from(ip.first().ok_or("short IPv4")? & 0x0f) * 4;
                let total = usize::from(be16(ip, 2).ok_or("short IPv4")?);
                let a: [u8; 4] = ip.get(12..16).ok_or("short IPv4")?.try_into().unwrap();
                let b: [u8; 4] = ip.get(16..20).ok_or("short IPv4")?.try_into().unwrap();
                // Ethernet pads short frames: the IP total length bounds the packet.
                let l4 = ip.get(ihl..total).ok_or("IPv4 length beyond the frame")?;
                (IpAddr::from(a), IpAddr::from(b), ip[9], l4)
            }
            Some(0x86dd) => {
                let plen = usize::from(be16(ip, 4).ok_or("short IPv6")?);
                let a: [u8; 16] = ip.get(8..24).ok_or("short IPv6")?.try_into().unwrap();
                let b: [u8; 16] = ip.get(24..40).ok_or("short IPv6")?.try_into().unwrap();
                let l4 = ip
                    .get(40..40 + plen)
                    .ok_or("IPv6 length beyond the frame")?;
                (IpAddr::from(a), IpAddr::from(b), ip[6], l4)
            }
            _ => continue,
        };
        if proto != 6 {
            continue;
        }
        let off = usize::from(l4.get(12).ok_or("short TCP header")? >> 4) * 4;
        out.push(Segment {
            src,
            sport: be16(l4, 0).ok_or("short TCP header")?,
            dst,
            dport: be16(l4, 2).ok_or("short TCP header")?,
            seq: be32(l4, 4).ok_or("short TCP header")?,
            syn: l4.get(13).ok_or("short TCP header")? & 0x02 != 0,
            payload: l4
                .get(off..)
                .ok_or("TCP data offset beyond the segment")?
                .to_vec(),
        });
    }
    Ok(out)
}

/// One direction of a connection: the first data sequence number (SYN + 1) when the
/// SYN was captured, and the data segments (sequence number, payload).
type Conn<'a> = (Option<u32>, Vec<(u32, &'a [u8])>);

/// The byte streams sent by `src`, one per TCP connection (keyed by source port and
/// destination), in sequence order, retransmitted bytes counted once.
pub fn streams_from(segments: &[Segment], src: IpAddr) -> Vec<Vec<u8>> {
    let mut conns: BTreeMap<(u16, IpAddr, u16), Conn> = BTreeMap::new();
    for s in segments.iter().filter(|s| s.src == src) {
        let c = conns.entry((s.sport, s.dst, s.dport)).or_default();
        if s.syn {
            c.0 = Some(s.seq.wrapping_add(1));
        } else if !s.payload.is_empty() {
            c.1.push((s.seq, &s.payload));
        }
    }
    conns
        .into_values()
        .filter_map(|(isn, mut segs)| {
            let base = isn.or_else(|| segs.first().map(|s| s.0))?;
            segs.sort_by_key(|(seq, _)| seq.wrapping_sub(base));
            let mut stream: Vec<u8> = Vec::new();
            for (seq, data) in segs {
                let rel = seq.wrapping_sub(base) as usize;
                if rel > stream.len() {
                    break; // a hole: the capture missed bytes; keep what is contiguous
                }
                let new = (rel + data.len()).saturating_sub(stream.len());
                stream.extend_from_slice(&data[data.len() - new..]);
            }
            Some(stream)
        })
        .collect()
}

/// The whole BGP messages (header included) at the start of a stream.
pub fn bgp_messages(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= HEADER_LEN && rest[..16] == MARKER {
        let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
        if len < HEADER_LEN || len > rest.len() {
            break;
        }
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    out
}

/// Every OPEN `src` sent in the capture, decoded by hostbgp's codec.
pub fn opens_from(pcap: &[u8], src: IpAddr) -> Vec<Open> {
    let segments = pcap_segments(pcap).unwrap_or_else(|e| panic!("pcap: {e}"));
    streams_from(&segments, src)
        .iter()
        .flat_map(|s| bgp_messages(s))
        .filter(|m| m[18] == MSG_OPEN)
        .map(|m| match Message::decode(m, &Codec::default()) {
            Ok(Message::Open(o)) => o,
            other => panic!("OPEN from {src} does not decode: {other:?}\n{m:02x?}"),
        })
        .collect()
}

fn graceful_restart(open: &Open) -> Option<&GracefulRestart> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(gr) => Some(gr),
        _ => None,
    })
}

/// bird (graceful restart on, restart time 120) and hostbgp over IPv4 with the
/// handshake captured on the router's eth0; returns our OPENs and bird's.
fn capture_handshake(keys: &[(&str, &str)], server: &[(&str, &str)]) -> (Vec<Open>, Vec<Open>) {
    let topo = Topo::new(&[lab::BR_V4, lab::BR_V6]);
    let file = topo.lab.path("bgp.pcap");
    // Before bird and hostbgp: either may open the connection.
    let dump = Tcpdump::start(&topo.lab, &topo.r, "eth0", "tcp port 179", &file);
    let bp = BirdPeer::router("h1", lab::HOST_V4).graceful_restart(true);
    let router = Bird::router(&topo, vec![bp]);
    let mut y = config_yaml(lab::ROUTER_V4, keys, "");
    for (k, v) in server {
        y = y.replacen("config:\n", &format!("config:\n  {k}: \"{v}\"\n"), 1);
    }
    let hb = Hostbgp::ready(&topo.lab, &topo.h, &y);
    router.wait_established("h1");
    hb.wait_peer_state("r1", "Established");
    // Both OPENs are on the wire; wait until tcpdump has written them.
    let (host, rtr) = (
        lab::HOST_V4.parse().unwrap(),
        lab::ROUTER_V4.parse().unwrap(),
    );
    wait_until("both OPENs in the capture", TIMEOUT, || {
        let p = dump.written();
        pcap_segments(&p).is_ok()
            && !opens_from(&p, host).is_empty()
            && !opens_from(&p, rtr).is_empty()
    });
    let pcap = dump.stop();
    let ours = opens_from(&pcap, host);
    let birds = opens_from(&pcap, rtr);
    eprintln!("our OPENs: {ours:#?}\nbird's OPENs: {birds:#?}");
    assert!(
        !ours.is_empty(),
        "no OPEN from us in {} pcap bytes",
        pcap.len()
    );
    assert!(
        !birds.is_empty(),
        "no OPEN from bird in {} pcap bytes",
        pcap.len()
    );
    // bird's own OPEN decodes as bird is configured: the direction is right.
    for o in &birds {
        let gr = graceful_restart(o).unwrap_or_else(|| panic!("bird sends GR: {o:#?}"));
        assert_eq!(gr.restart_time, 120, "{o:#?}");
        assert_eq!(o.bgp_id.to_string(), lab::ROUTER_V4, "{o:#?}");
    }
    (ours, birds)
}

#[test]
fn open_on_the_wire_carries_restart_time_and_n_bit() {
    if !lab::require_root("capture::open_on_the_wire_carries_restart_time_and_n_bit") {
        return;
    }
    let (ours, _) = capture_handshake(&[("bgp.peers.r1.graceful_restart.time", "600")], &[]);
    for o in &ours {
        assert_eq!(o.bgp_id.to_string(), "198.51.100.1", "{o:#?}");
        assert_eq!(o.asn(), 65010, "{o:#?}");
        let gr = graceful_restart(o).unwrap_or_else(|| panic!("no GR capability: {o:#?}"));
        assert_eq!(gr.restart_time, 600, "{o:#?}");
        assert!(gr.notification, "N bit not set: {o:#?}");
        // A fresh start: nothing to report as restarting.
        assert!(!gr.restart_state, "{o:#?}");
    }
}

#[test]
fn open_on_the_wire_has_no_graceful_restart_when_off() {
    if !lab::require_root("capture::open_on_the_wire_has_no_graceful_restart_when_off") {
        return;
    }
    let (ours, _) = capture_handshake(
        &[("bgp.peers.r1.graceful_restart.time", "600")],
        &[("hostbgp.graceful_restart", "false")],
    );
    for o in &ours {
        assert_eq!(graceful_restart(o), None, "{o:#?}");
        assert!(
            !o.capabilities.iter().any(|c| u8::from(c.code()) == 64),
            "capability 64 present: {o:#?}"
        );
    }
}

/// The reader on a synthetic capture: an OPEN split over two segments, the second
/// sent twice, a KEEPALIVE after it, segments out of order, Ethernet padding.
#[test]
fn pcap_reassembly_of_a_split_open() {
    let open = Message::Open(Open {
        version: 4,
        my_as: 65010,
        hold_time: 90,
        bgp_id: "198.51.100.1".parse().unwrap(),
        capabilities: vec![
            Capability::FourOctetAs(65010),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: true,
                restart_time: 600,
                families: Vec::new(),
            }),
        ],
    });
    let mut bytes = Vec::new();
    open.encode(&Codec::default(), &mut bytes);
    Message::Keepalive.encode(&Codec::default(), &mut bytes);
    let (a, b) = bytes.split_at(20);

    let frame = |src: [u8; 4], dst: [u8; 4], seq: u32, flags: u8, data: &[u8]| {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + data.len()) as u16;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&179u16.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(data);
        while f.len() < 60 {
            f.push(0); // Ethernet padding, beyond the IP total length
        }
        f
    };
    let h = [198, 51, 100, 1];
    let r = [198, 51, 100, 2];
    let isn = u32::MAX - 5; // the sequence numbers wrap inside the stream
    let frames = [
        frame(h, r, isn, 0x02, &[]),
        frame(r, h, 7, 0x12, &[]),
        frame(h, r, isn.wrapping_add(1 + 20), 0x18, b),
        frame(h, r, isn.wrapping_add(1), 0x18, a),
        frame(h, r, isn.wrapping_add(1 + 20), 0x18, b),
    ];
    let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&262144u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes());
    for f in &frames {
        pcap.extend_from_slice(&[0; 8]);
        pcap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        pcap.extend_from_slice(f);
    }
    let streams = streams_from(&pcap_segments(&pcap).unwrap(), IpAddr::from(h));
    assert_eq!(streams, vec![bytes.clone()]);
    assert_eq!(bgp_messages(&streams[0]).len(), 2);
    let opens = opens_from(&pcap, IpAddr::from(h));
    assert_eq!(opens.len(), 1);
    assert_eq!(Message::Open(opens[0].clone()), open);
    assert!(opens_from(&pcap, IpAddr::from(r)).is_empty());
}
