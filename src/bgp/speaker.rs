//! The BGP listener: accepts connections on `core.bgp_address` and hands each to the
//! session of the peer it comes from. Connections from anyone else are closed before
//! a single byte is sent.
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use super::md5;
use super::session::{SessionCmd, SessionSender};
use crate::config::Password;

/// Whose connection it is, as the listener tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A peer at this address.
    Address(IpAddr),
    /// The unnumbered peer of this interface: any link-local address on it.
    Link(u32),
}

/// Where the listener finds each peer's session. The agent is its only writer; each
/// listener reads it through a [`DirectoryView`].
pub type PeerDirectory = watch::Sender<HashMap<Caller, SessionSender>>;
pub type DirectoryView = watch::Receiver<HashMap<Caller, SessionSender>>;

/// A TCP MD5 key the listener holds for connections from `.0`.
pub type ListenKey = (IpAddr, Password);

pub struct Listener {
    socket: Arc<TcpListener>,
    is_v6: bool,
    keyed: BTreeSet<IpAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Binds `addr` with every peer's MD5 key set before listen (accepted sockets inherit them).
    pub fn bind(
        addr: SocketAddr,
        keys: &[ListenKey],
        directory: DirectoryView,
    ) -> io::Result<Listener> {
        let is_v6 = addr.is_ipv6();
        let socket = if is_v6 {
            TcpSocket::new_v6()?
        } else {
            TcpSocket::new_v4()?
        };
        socket.set_reuseaddr(true)?;
        let mut keyed = BTreeSet::new();
        for (address, password) in keys {
            let address = *address;
            if is_v6 || address.is_ipv4() {
                md5::set_key(&socket, address, password.as_bytes(), is_v6)?;
                keyed.insert(address);
            }
        }
        socket.bind(addr).map_err(|e| {
            io::Error::new(e.kind(), format!("binding core.bgp_address {addr}: {e}"))
        })?;
        let socket = Arc::new(socket.listen(128)?);
        let task = tokio::spawn(accept_loop(socket.clone(), directory));
        Ok(Listener {
            socket,
            is_v6,
            keyed,
            task,
        })
    }

    /// Brings the listener's MD5 keys in line with `keys`.
    pub fn set_keys(&mut self, keys: &[ListenKey]) -> io::Result<()> {
        let mut wanted = BTreeSet::new();
        for (address, password) in keys {
            let address = *address;
            if self.is_v6 || address.is_ipv4() {
                md5::set_key(
                    self.socket.as_ref(),
                    address,
                    password.as_bytes(),
                    self.is_v6,
                )?;
                wanted.insert(address);
            }
        }
        for gone in self.keyed.difference(&wanted) {
            md5::set_key(self.socket.as_ref(), *gone, &[], self.is_v6)?;
        }
        self.keyed = wanted;
        Ok(())
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl Listener {
    /// Closes the socket before returning, so the address can be bound again at
    /// once. Dropping only aborts the accept task, which holds the socket until the
    /// runtime next polls it: a rebind on the same thread found it still in use.
    pub async fn close(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: Arc<TcpListener>, directory: DirectoryView) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let from = md5::unmap(remote.ip());
        let link = match remote {
            SocketAddr::V6(r) if r.ip().is_unicast_link_local() && r.scope_id() != 0 => {
                Some(Caller::Link(r.scope_id()))
            }
            _ => None,
        };
        let session = {
            let d = directory.borrow();
            link.and_then(|l| d.get(&l))
                .or_else(|| d.get(&Caller::Address(from)))
                .cloned()
        };
        match session {
            Some(tx) => {
                // A session too far behind to take it is being reset: the peer retries.
                if let Err(e) = tx.send(SessionCmd::Inbound(stream)) {
                    tracing::debug!(%remote, "closed a connection from a peer: {e}");
                }
            }
            None => {
                tracing::debug!(%remote, "closed a connection from an address that is not a configured peer");
                drop(stream);
            }
        }
    }
}
