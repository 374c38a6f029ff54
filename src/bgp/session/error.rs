//! Why a connection to the peer failed or ended, typed; `Display` is what logs and
//! `hostbgp status` (`last_error`) show.
use std::io;
use std::net::SocketAddr;

use super::super::wire::Notification;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("socket: {0}")]
    Socket(io::Error),
    #[error("{0}")]
    Md5Key(io::Error),
    #[error("bind {from}: {source}")]
    Bind { from: SocketAddr, source: io::Error },
    /// `hint` says what the kernel's MD5 counters suggest (may be empty).
    #[error("connect to {target}: {source}{hint}")]
    Connect {
        target: SocketAddr,
        source: io::Error,
        hint: Md5Hint,
    },
    #[error("connect to {target}: timed out{hint}")]
    ConnectTimeout { target: SocketAddr, hint: Md5Hint },
    #[error("local address: {0}")]
    LocalAddress(io::Error),
    #[error("sending OPEN: {0}")]
    SendOpen(io::Error),
    #[error("bad message from peer: {0}")]
    BadMessage(String),
    #[error("no OPEN from the peer within {0}s")]
    NoOpen(u64),
    #[error("waiting for OPEN: {0}")]
    WaitOpen(io::Error),
    #[error("peer sent NOTIFICATION {0}")]
    PeerNotification(Notification),
    #[error("peer sent a message other than OPEN first")]
    NotOpenFirst,
    #[error("refused the peer's OPEN: {0}")]
    RefusedOpen(Notification),
    #[error("sending KEEPALIVE: {0}")]
    SendKeepalive(io::Error),
    #[error("write failed: {0}")]
    Write(io::Error),
    #[error("peer has not read for {0}s")]
    NotReading(u64),
    #[error("handshake task failed: {0}")]
    Task(String),
}

/// A TCP MD5 mismatch is silent on the wire: the kernel's counters are the only clue.
#[derive(Debug, Default)]
pub enum Md5Hint {
    #[default]
    None,
    /// The kernel's MD5 failure counters grew during the attempt.
    Mismatch(String),
    /// No counter moved, but a key is configured.
    Configured,
}

impl std::fmt::Display for Md5Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Md5Hint::None => Ok(()),
            Md5Hint::Mismatch(g) => write!(
                f,
                "; probable TCP MD5 password mismatch (kernel counters: {g})"
            ),
            Md5Hint::Configured => f.write_str(
                "; TCP MD5 is configured: a password mismatch makes the peer drop our SYNs silently",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::wire::codes::OpenSubcode;

    /// Operators read these in `status`; the netns tests match on some of them.
    #[test]
    fn messages_read_as_before() {
        let target: SocketAddr = "192.0.2.1:179".parse().expect("address");
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
        let e = ConnError::Connect {
            target,
            source: refused(),
            hint: Md5Hint::None,
        };
        assert_eq!(
            e.to_string(),
            format!("connect to 192.0.2.1:179: {}", refused())
        );
        let e = ConnError::ConnectTimeout {
            target,
            hint: Md5Hint::Configured,
        };
        assert_eq!(
            e.to_string(),
            "connect to 192.0.2.1:179: timed out; TCP MD5 is configured: a password mismatch makes the peer drop our SYNs silently"
        );
        let e = ConnError::ConnectTimeout {
            target,
            hint: Md5Hint::Mismatch("TCPMD5Unexpected +1".into()),
        };
        assert!(e.to_string().ends_with(
            "; probable TCP MD5 password mismatch (kernel counters: TCPMD5Unexpected +1)"
        ));
        assert_eq!(
            ConnError::NoOpen(30).to_string(),
            "no OPEN from the peer within 30s"
        );
        let bad_peer_as = Notification::error(OpenSubcode::BadPeerAs, vec![]);
        assert_eq!(
            ConnError::RefusedOpen(bad_peer_as).to_string(),
            "refused the peer's OPEN: OPEN Message Error/Bad Peer AS"
        );
    }
}
