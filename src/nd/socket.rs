//! The raw ICMPv6 socket of one interface, and nothing else: bound to the device,
//! filtered to RS and RA, hop limit 255 both ways (RFC 4861 section 6.1), member of
//! all-routers so that solicitations reach it, and reporting each message's hop
//! limit. Opening it needs CAP_NET_RAW.
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn6,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::wire::{ROUTER_ADVERT, ROUTER_SOLICIT};

/// RFC 4861 section 6.1: RS and RA are sent, and must arrive, with hop limit 255.
pub const HOP_LIMIT: i32 = 255;
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// `ICMP6_FILTER` (linux/icmpv6.h `ICMPV6_FILTER`), which the libc crate lacks. In
/// Linux's filter a set bit blocks the type.
const ICMPV6_FILTER: libc::c_int = 1;

/// One received message: its length in the buffer, sender (scope id = interface)
/// and hop limit (None when the kernel gave none, which must count as not 255).
pub struct Received {
    pub len: usize,
    pub from: SocketAddrV6,
    pub hop_limit: Option<i32>,
}

pub struct NdSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: u32,
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    setsockopt_raw(fd, level, name, &value)
}

fn setsockopt_raw<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::other("socket option too large"))?;
    // SAFETY: `value` points to a live `T` of `len` bytes for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The filter that passes only RS and RA.
fn rs_ra_filter() -> [u32; 8] {
    let mut filter = [u32::MAX; 8];
    for t in [ROUTER_SOLICIT, ROUTER_ADVERT] {
        filter[usize::from(t >> 5)] &= !(1u32 << (t & 31));
    }
    filter
}

fn with_context(what: &str, ifname: &str, e: impl Into<io::Error>) -> io::Error {
    let e: io::Error = e.into();
    io::Error::new(e.kind(), format!("{what} on {ifname}: {e}"))
}

impl NdSocket {
    /// Opens the socket of interface `ifname` (index `ifindex`). Must be called
    /// inside a tokio runtime.
    pub fn open(ifname: &str, ifindex: u32) -> io::Result<NdSocket> {
        let fd = socket(
            AddressFamily::Inet6,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::IcmpV6,
        )
        .map_err(|e| with_context("raw ICMPv6 socket (needs CAP_NET_RAW)", ifname, e))?;
        setsockopt(
            &fd,
            sockopt::BindToDevice,
            &std::ffi::OsString::from(ifname),
        )
        .map_err(|e| with_context("SO_BINDTODEVICE", ifname, e))?;
        setsockopt_raw(&fd, libc::IPPROTO_ICMPV6, ICMPV6_FILTER, &rs_ra_filter())
            .map_err(|e| with_context("ICMP6_FILTER", ifname, e))?;
        set_int(
            &fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_HOPS,
            HOP_LIMIT,
        )
        .map_err(|e| with_context("IPV6_MULTICAST_HOPS", ifname, e))?;
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, HOP_LIMIT)
            .map_err(|e| with_context("IPV6_UNICAST_HOPS", ifname, e))?;
        // Our own multicasts would come back to this socket.
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, 0)
            .map_err(|e| with_context("IPV6_MULTICAST_LOOP", ifname, e))?;
        let index = libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::other(format!("interface index {ifindex} out of range")))?;
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, index)
            .map_err(|e| with_context("IPV6_MULTICAST_IF", ifname, e))?;
        setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true)
            .map_err(|e| with_context("IPV6_RECVHOPLIMIT", ifname, e))?;
        // Solicitations go to all-routers, which a host (forwarding off) has not joined.
        let mreq = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: ALL_ROUTERS.octets(),
            },
            ipv6mr_interface: ifindex,
        };
        setsockopt_raw(&fd, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| with_context("joining ff02::2", ifname, e))?;
        // SAFETY: an OwnedFd is a valid open descriptor that stays the same until the
        // AsyncFd that owns it is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(NdSocket { fd, ifindex })
    }

    /// Sends `msg` to `dst` on the interface, from `source` when given (else the
    /// kernel's choice of our addresses). Never waits: a full buffer is an error.
    pub fn send(&self, msg: &[u8], dst: Ipv6Addr, source: Option<Ipv6Addr>) -> io::Result<()> {
        let to = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, self.ifindex));
        let iov = [IoSlice::new(msg)];
        let info = source.map(|src| libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: self.ifindex,
        });
        let cmsgs: Vec<ControlMessage<'_>> =
            info.iter().map(ControlMessage::Ipv6PacketInfo).collect();
        let sent = sendmsg(
            self.fd.get_ref().as_fd().as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::empty(),
            Some(&to),
        )
        .map_err(io::Error::from)?;
        if sent == msg.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "sent {sent} of {} bytes",
                msg.len()
            )))
        }
    }

    /// The next message on the socket.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_now(fd.get_ref().as_raw_fd(), buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

fn recv_now(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    let msg = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let mut hop_limit = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::Ipv6HopLimit(h) = c {
            hop_limit = Some(h);
        }
    }
    let from = msg
        .address
        .map(SocketAddrV6::from)
        .ok_or_else(|| io::Error::other("message without a sender address"))?;
    Ok(Received {
        len: msg.bytes,
        from,
        hop_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_passes_only_rs_and_ra() {
        let f = rs_ra_filter();
        let passes = |t: u8| f[usize::from(t >> 5)] & (1 << (t & 31)) == 0;
        assert!(passes(133) && passes(134));
        assert_eq!((0..=255u8).filter(|&t| passes(t)).count(), 2);
    }
}
