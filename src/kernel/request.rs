//! Single route requests on a blocking socket of their own.
//!
//! The kernel handles a route request inside the `sendto` call and queues the ACK
//! before returning, so the reply can be read at once: two system calls. Through the
//! shared rtnetlink connection the same request takes a hop to its task, an epoll
//! round for the ACK and a hop back, which is most of the time an instance start
//! spends in hostbgp before its UPDATE goes out.
use std::io;
use std::time::Duration;

use netlink_packet_core::{Emitable, NetlinkMessage, NLMSG_ERROR};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::netlink::{messages, NLMSG_HDRLEN};

/// A reply that never comes (it cannot, short of a kernel bug) fails the request
/// instead of stopping the agent.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct RequestSocket {
    sock: Socket,
    /// Our port id: the kernel's notifications of our changes carry it.
    port: u32,
    seq: u32,
    sbuf: Vec<u8>,
    rbuf: Vec<u8>,
}

impl RequestSocket {
    pub(crate) fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        let port = sock.bind_auto()?.port_number();
        sock.connect(&SocketAddr::new(0, 0))?;
        // Short error messages (no copy of the request).
        let _ = sock.set_cap_ack(true);
        nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0),
        )
        .map_err(io::Error::from)?;
        Ok(RequestSocket {
            sock,
            port,
            seq: 0,
            sbuf: Vec::with_capacity(1024),
            // Room for an error that quotes the whole request (without CAP_ACK).
            rbuf: Vec::with_capacity(64 << 10),
        })
    }

    pub(crate) fn port(&self) -> u32 {
        self.port
    }

    /// Sends one request (NLM_F_ACK set by the caller) and returns the errno of its
    /// ACK (0 for success).
    pub(crate) fn request(
        &mut self,
        mut msg: NetlinkMessage<RouteNetlinkMessage>,
    ) -> io::Result<i32> {
        self.seq = self.seq.wrapping_add(1);
        msg.header.sequence_number = self.seq;
        msg.finalize();
        self.sbuf.clear();
        self.sbuf.resize(msg.buffer_len(), 0);
        msg.emit(&mut self.sbuf);
        self.sock.send(&self.sbuf, 0)?;
        loop {
            self.rbuf.clear();
            self.sock.recv(&mut self.rbuf, 0)?;
            // Anything else (a late reply to a request that timed out) is skipped.
            if let Some((_, code)) = acks(&self.rbuf).find(|(seq, _)| *seq == self.seq) {
                return Ok(code);
            }
        }
    }
}

/// The (sequence number, errno) of each ACK in a datagram of replies.
pub(crate) fn acks(buf: &[u8]) -> impl Iterator<Item = (u32, i32)> + '_ {
    messages(buf).filter_map(|m| {
        // struct nlmsgerr: the errno, then the request's header (seq at 8..12).
        if m.ty != NLMSG_ERROR || m.payload.len() < 4 + NLMSG_HDRLEN {
            return None;
        }
        let word = |at: usize| m.payload[at..at + 4].try_into().ok();
        let code = i32::from_ne_bytes(word(0)?).abs();
        let seq = u32::from_ne_bytes(word(12)?);
        Some((seq, code))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One netlink message: length, type, flags, seq, pid, then the payload.
    fn message(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m
    }

    /// An NLMSG_ERROR: the errno as the kernel sends it (negative), then the header of
    /// the request it answers.
    fn ack(errno: i32, seq: u32) -> Vec<u8> {
        let mut payload = (-errno).to_ne_bytes().to_vec();
        payload.extend_from_slice(&message(libc::RTM_NEWROUTE, seq, &[])[..NLMSG_HDRLEN]);
        message(NLMSG_ERROR, seq, &payload)
    }

    #[test]
    fn acks_in_a_datagram() {
        let mut d = ack(0, 7);
        d.extend(message(libc::RTM_NEWROUTE, 8, &[0; 12])); // not an ACK: skipped
        d.extend(ack(libc::EEXIST, 9));
        assert_eq!(
            acks(&d).collect::<Vec<_>>(),
            vec![(7, 0), (9, libc::EEXIST)]
        );
        // A truncated last message ends the datagram; what came before counts.
        let mut cut = ack(0, 1);
        cut.extend(&ack(0, 2)[..20]);
        assert_eq!(acks(&cut).collect::<Vec<_>>(), vec![(1, 0)]);
        // An error too short to name its request is no ACK.
        assert_eq!(acks(&message(NLMSG_ERROR, 3, &[0; 8])).count(), 0);
        assert_eq!(acks(&[]).count(), 0);
    }
}
