//! The sockets of single-hop BFD (RFC 5881), and nothing else: the receiving sockets
//! on port 3784 that report each datagram's TTL or hop limit, and a session's sending
//! socket with TTL 255 from a port in 49152..=65535.
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, SystemTime};

use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage,
};

use super::{CONTROL_PORT, SOURCE_PORTS, TTL};

/// One received datagram: its length in the buffer, sender, and TTL or hop limit
/// (None when the kernel gave none, which the caller must treat as not 255), and
/// when the kernel received it (`SO_TIMESTAMPNS`): a datagram read late still
/// restarts the detection timer from its arrival.
pub struct Datagram {
    pub len: usize,
    pub from: SocketAddr,
    pub ttl: Option<i32>,
    pub arrived: Option<SystemTime>,
}

fn udp_socket(family: AddressFamily) -> io::Result<OwnedFd> {
    socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

/// The receiving socket of one family on port 3784 (0.0.0.0 or [::], IPv6 only so
/// both can be bound), asking the kernel for each datagram's TTL or hop limit. No
/// SO_REUSEADDR: another BFD daemon on the port must be an error, not a silent
/// split of the peers' packets. Non-blocking and not registered with tokio: the task
/// decides when readiness may wake it (see `task`).
pub fn bind_control(v6: bool) -> io::Result<StdUdpSocket> {
    let fd = if v6 {
        let fd = udp_socket(AddressFamily::Inet6)?;
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
        setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true)?;
        let addr = SockaddrIn6::from(std::net::SocketAddrV6::new(
            Ipv6Addr::UNSPECIFIED,
            CONTROL_PORT,
            0,
            0,
        ));
        bind(fd.as_raw_fd(), &addr)?;
        fd
    } else {
        let fd = udp_socket(AddressFamily::Inet)?;
        setsockopt(&fd, sockopt::Ipv4RecvTtl, &true)?;
        let addr = SockaddrIn::from(std::net::SocketAddrV4::new(
            Ipv4Addr::UNSPECIFIED,
            CONTROL_PORT,
        ));
        bind(fd.as_raw_fd(), &addr)?;
        fd
    };
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
    Ok(StdUdpSocket::from(fd))
}

/// The next datagram waiting on a socket from `bind_control` (`WouldBlock` when
/// none), with its TTL or hop limit and arrival time.
pub fn recv_now(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<Datagram> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::c_int, libc::timespec);
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let mut ttl = None;
    let mut arrived = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => ttl = Some(t),
            ControlMessageOwned::ScmTimestampns(ts) => {
                let secs = u64::try_from(ts.tv_sec()).ok();
                let nanos = u32::try_from(ts.tv_nsec()).ok();
                if let (Some(secs), Some(nanos)) = (secs, nanos) {
                    arrived = SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
                }
            }
            _ => {}
        }
    }
    let from = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|s| SocketAddr::from(std::net::SocketAddrV4::from(*s)))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|s| SocketAddr::from(std::net::SocketAddrV6::from(*s)))
                })
        })
        .ok_or_else(|| io::Error::other("datagram without a sender address"))?;
    Ok(Datagram {
        len: msg.bytes,
        from,
        ttl,
        arrived,
    })
}

/// A session's sending socket: TTL (hop limit) 255, bound to a free port of
/// 49152..=65535 tried from `start`, kept for all of the session's packets.
pub fn bind_sender(peer: IpAddr, start: u16) -> io::Result<StdUdpSocket> {
    let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let offset = u32::from(start) % span;
    let mut last = io::Error::other("no source port free");
    for i in 0..span {
        let port = u16::try_from(u32::from(*SOURCE_PORTS.start()) + (offset + i) % span)
            .unwrap_or(*SOURCE_PORTS.start());
        let local: IpAddr = if peer.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        match StdUdpSocket::bind((local, port)) {
            Ok(s) => {
                if peer.is_ipv4() {
                    s.set_ttl(u32::from(TTL))?;
                } else {
                    setsockopt(&s, sockopt::Ipv6Ttl, &i32::from(TTL))?;
                }
                s.set_nonblocking(true)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}
