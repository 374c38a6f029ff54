//! TCP MD5 signatures (RFC 2385) for `bgp.peers.NAME.password`.
//!
//! Neither nix nor socket2 wraps TCP_MD5SIG, so the kernel struct is declared here.
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

const TCP_MD5SIG_MAXKEYLEN: usize = 80;

/// `struct tcp_md5sig` from linux/tcp.h.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; TCP_MD5SIG_MAXKEYLEN],
}

const _: () = assert!(std::mem::size_of::<TcpMd5Sig>() == 216);

/// Longest key the kernel accepts.
pub const MAX_KEY_LEN: usize = TCP_MD5SIG_MAXKEYLEN;

/// Sets (or with an empty key, removes) the MD5 key used with `peer` on `socket`.
///
/// An IPv4 peer on an IPv6 socket must be given as `::ffff:a.b.c.d`, which is what a
/// dual-stack listener sees, so `socket_is_v6` selects the form.
pub fn set_key(
    socket: &impl AsRawFd,
    peer: IpAddr,
    key: &[u8],
    socket_is_v6: bool,
) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP MD5 key is {} bytes, the kernel accepts at most {MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    // SAFETY: all-zero is a valid value for this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    write_sockaddr(&mut sig.addr, peer, socket_is_v6);
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: the pointer and length describe `sig`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let err = io::Error::last_os_error();
        Err(io::Error::new(
            err.kind(),
            format!("setting the TCP MD5 key for {peer}: {err}"),
        ))
    }
}

fn write_sockaddr(storage: &mut libc::sockaddr_storage, peer: IpAddr, socket_is_v6: bool) {
    let peer = match (peer, socket_is_v6) {
        (IpAddr::V4(v4), true) => IpAddr::V6(v4.to_ipv6_mapped()),
        (other, _) => other,
    };
    match peer {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above.
            let sin6 = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.octets();
        }
    }
}

/// The kernel's per-namespace counters of MD5 failures (`/proc/net/netstat`, TcpExt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Md5Counters {
    pub failure: u64,
    pub not_found: u64,
    pub unexpected: u64,
}

impl Md5Counters {
    pub fn read() -> Md5Counters {
        std::fs::read_to_string("/proc/net/netstat")
            .map(|text| Md5Counters::parse(&text))
            .unwrap_or_default()
    }

    /// Parses the two-line "TcpExt:" header/value block of /proc/net/netstat.
    pub fn parse(text: &str) -> Md5Counters {
        let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return Md5Counters::default();
        };
        let mut counters = Md5Counters::default();
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            let value = value.parse().unwrap_or(0);
            match name {
                "TCPMD5Failure" => counters.failure = value,
                "TCPMD5NotFound" => counters.not_found = value,
                "TCPMD5Unexpected" => counters.unexpected = value,
                _ => {}
            }
        }
        counters
    }

    /// Describes what grew since `before`, if anything did.
    pub fn growth_since(&self, before: &Md5Counters) -> Option<String> {
        let mut parts = Vec::new();
        for (name, now, then) in [
            ("TCPMD5Failure", self.failure, before.failure),
            ("TCPMD5NotFound", self.not_found, before.not_found),
            ("TCPMD5Unexpected", self.unexpected, before.unexpected),
        ] {
            if now > then {
                parts.push(format!("{name} +{}", now - then));
            }
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for.
pub fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcpext_counters() {
        let text = "TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure\n\
                    TcpExt: 0 3 1 7\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        let c = Md5Counters::parse(text);
        assert_eq!(
            c,
            Md5Counters {
                failure: 7,
                not_found: 3,
                unexpected: 1
            }
        );
        let before = Md5Counters {
            failure: 5,
            not_found: 3,
            unexpected: 0,
        };
        assert_eq!(
            c.growth_since(&before).as_deref(),
            Some("TCPMD5Failure +2, TCPMD5Unexpected +1")
        );
        assert_eq!(c.growth_since(&c), None);
    }

    #[test]
    fn garbage_netstat_gives_zero() {
        assert_eq!(Md5Counters::parse("nonsense"), Md5Counters::default());
        assert_eq!(Md5Counters::parse("TcpExt: A B\n"), Md5Counters::default());
    }

    #[test]
    fn unmaps_v4_mapped() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(unmap(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(unmap(v6), v6);
    }

    #[test]
    fn sets_key_on_real_socket() {
        let sock = std::net::TcpListener::bind("[::1]:0").unwrap();
        set_key(&sock, "192.0.2.1".parse().unwrap(), b"s3cret", true).unwrap();
        set_key(&sock, "2001:db8::1".parse().unwrap(), b"s3cret", true).unwrap();
        let long = [b'x'; 81];
        assert!(set_key(&sock, "2001:db8::1".parse().unwrap(), &long, true).is_err());
    }
}
