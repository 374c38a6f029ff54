//! The multicast socket and the task turning its datagrams into events.
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex};

use libc::{
    RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK,
    RTMGRP_NEIGH,
};
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use nix::sys::socket::{setsockopt, sockopt};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::netlink::{events_from_datagram, RouteTracker};
use super::KernelEvent;

/// Receive buffer of the watch socket (RcvBufForce ignores net.core.rmem_max).
pub(crate) const WATCH_RCVBUF: usize = 32 << 20;

/// Sets the receive buffer: SO_RCVBUFFORCE, or SO_RCVBUF when that is refused.
pub(crate) fn set_rcvbuf(fd: BorrowedFd<'_>, size: usize, force: bool) -> io::Result<()> {
    if force {
        match setsockopt(&fd, sockopt::RcvBufForce, &size) {
            Ok(()) => return Ok(()),
            Err(e) => tracing::warn!("SO_RCVBUFFORCE({size}) failed: {e}; using SO_RCVBUF"),
        }
    }
    setsockopt(&fd, sockopt::RcvBuf, &size).map_err(io::Error::from)
}

/// Opens the multicast socket (links, addresses, neighbours, routes of both families).
pub(crate) fn open(rcvbuf: usize, force: bool) -> io::Result<TokioSocket> {
    let mut sock = TokioSocket::new(NETLINK_ROUTE)?;
    let groups = RTMGRP_LINK
        | RTMGRP_NEIGH
        | RTMGRP_IPV4_IFADDR
        | RTMGRP_IPV4_ROUTE
        | RTMGRP_IPV6_IFADDR
        | RTMGRP_IPV6_ROUTE;
    // libc's group bits are `c_int`s, all positive: the mask fits `u32` unchanged.
    sock.socket_mut().bind(&SocketAddr::new(0, groups as u32))?;
    set_rcvbuf(sock.socket_ref().as_fd(), rcvbuf, force)?;
    Ok(sock)
}

/// The longest the watch waits for the agent to act on a link or address event.
const HANDOVER_WAIT: Duration = Duration::from_millis(2);
/// Past this much queued in the watch socket (~60 link messages, each about 4 KB of
/// receive memory), events are read without waiting for the agent.
const HANDOVER_BACKLOG: usize = 256 << 10;

/// The agent's end of the watch: the events in order, and word back of how many it
/// has acted on.
pub struct KernelEvents {
    rx: mpsc::UnboundedReceiver<KernelEvent>,
    acted_on: watch::Sender<u64>,
}

impl KernelEvents {
    pub async fn recv(&mut self) -> Option<KernelEvent> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Result<KernelEvent, mpsc::error::TryRecvError> {
        self.rx.try_recv()
    }

    /// Says that `n` more events were acted on: their routes requested, their
    /// UPDATEs handed to the sessions.
    pub fn acted_on(&self, n: usize) {
        self.acted_on.send_modify(|count| *count += n as u64);
    }
}

/// The channel between `run` and the agent.
pub(crate) fn channel() -> (Handover, KernelEvents) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (acted_on, acted_rx) = watch::channel(0);
    (
        Handover {
            tx,
            acted_on: acted_rx,
            sent: 0,
        },
        KernelEvents { rx, acted_on },
    )
}

/// The watch's end of the channel.
pub(crate) struct Handover {
    tx: mpsc::UnboundedSender<KernelEvent>,
    acted_on: watch::Receiver<u64>,
    sent: u64,
}

impl Handover {
    /// Sends a datagram's events; false once the agent is gone. `queued` tells how
    /// many bytes still wait in the socket.
    ///
    /// An instance starting or stopping sends a few datagrams after the one that
    /// matters (its port's enslave or release). When that one carries a link or
    /// address event and the agent is idle, this waits (2 ms at most) until the agent
    /// has acted on it, so that the UPDATE is written before the rest are read and
    /// parsed. Route floods, everything while the agent is busy, and mass link changes
    /// (a backlog over `HANDOVER_BACKLOG`) go through unhindered, so waiting can never
    /// let the socket overflow.
    async fn send(
        &mut self,
        events: &mut Vec<KernelEvent>,
        queued: impl FnOnce() -> Option<usize>,
    ) -> bool {
        let idle = *self.acted_on.borrow() >= self.sent;
        let urgent = events.iter().any(KernelEvent::is_interface_event);
        for ev in events.drain(..) {
            if self.tx.send(ev).is_err() {
                return false;
            }
            self.sent += 1;
        }
        if !(urgent && idle) {
            return true;
        }
        // The agent is queued ahead of this task: it usually acts, and the session
        // writes, within this yield, with nothing else on that path (a timer armed
        // first cost an eventfd write before the UPDATE went out).
        tokio::task::yield_now().await;
        let sent = self.sent;
        if *self.acted_on.borrow() < sent && queued().is_some_and(|q| q < HANDOVER_BACKLOG) {
            let acted = self.acted_on.wait_for(|n| *n >= sent);
            let _ = tokio::time::timeout(HANDOVER_WAIT, acted).await;
        }
        true
    }
}

/// Receive memory in use on a socket (SO_MEMINFO's SK_MEMINFO_RMEM_ALLOC), None when
/// the kernel does not say.
fn queued_bytes(fd: BorrowedFd<'_>) -> Option<usize> {
    // libc lacks it: 55 on every architecture but sparc and parisc.
    #[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
    return None;
    const SO_MEMINFO: libc::c_int = 55;
    const SK_MEMINFO_VARS: usize = 9;
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` and `len` describe a writable buffer alive for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| info[libc::SK_MEMINFO_RMEM_ALLOC as usize] as usize)
}

/// Reads datagrams until the receiver is dropped. ENOBUFS becomes `Overrun`.
pub(crate) async fn run(sock: TokioSocket, mut out: Handover, tracker: Arc<Mutex<RouteTracker>>) {
    // Larger than any rtnetlink datagram (the kernel caps them well below this).
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut events = Vec::new();
    loop {
        buf.clear();
        tokio::select! {
            r = sock.recv(&mut buf) => {
                match r {
                    Ok(()) => {
                        {
                            let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
                            events_from_datagram(&buf, &mut t, &mut events);
                        }
                        let fd = sock.socket_ref().as_fd();
                        if !out.send(&mut events, || queued_bytes(fd)).await {
                            return;
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        // The kernel reports ENOBUFS before the datagrams still queued,
                        // which are older than the re-dump the agent is about to do:
                        // applied after it they would make the view stale. Drop them.
                        let dropped = drain_queued(&sock, &mut buf);
                        tracing::warn!(dropped, "netlink watch overrun (ENOBUFS): events were lost");
                        // Its memory may be stale now; the agent re-dumps anyway.
                        tracker.lock().unwrap_or_else(|p| p.into_inner()).clear();
                        if !out.send(&mut vec![KernelEvent::Overrun], || None).await {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::error!("netlink watch socket failed: {e}");
                        // Tell the agent its view can no longer be trusted.
                        let _ = out.send(&mut vec![KernelEvent::Overrun], || None).await;
                        return;
                    }
                }
            }
            _ = out.tx.closed() => return,
        }
    }
}

/// Discards every datagram queued on the socket right now; returns how many.
fn drain_queued(sock: &TokioSocket, buf: &mut Vec<u8>) -> usize {
    let capacity = buf.capacity().max(1 << 16);
    let mut dropped = 0;
    // What was queued at the overrun fits in the receive buffer; anything past that
    // arrived later and is consistent with the re-dump, so a flood cannot keep us here.
    let mut budget = 2 * WATCH_RCVBUF;
    loop {
        buf.clear();
        buf.reserve(capacity);
        match sock.socket_ref().recv(buf, libc::MSG_DONTWAIT) {
            Ok(n) => {
                dropped += 1;
                budget = budget.saturating_sub(n.max(1));
                if budget == 0 {
                    return dropped;
                }
            }
            // Another overrun while draining: keep going, the queue is still stale.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EINTR)) => {}
            Err(_) => return dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// Polls `f` up to `max` times: how many polls it took, None if still pending.
    async fn polls(f: impl std::future::Future<Output = bool>, max: usize) -> Option<usize> {
        tokio::pin!(f);
        for n in 1..=max {
            if let Poll::Ready(sent) = futures::poll!(f.as_mut()) {
                assert!(sent);
                return Some(n);
            }
        }
        None
    }

    #[test]
    fn waits_for_an_idle_agent_on_interface_events_only() {
        runtime().block_on(async {
            let (mut out, events) = channel();
            let route_gone = KernelEvent::RouteRemoved("192.0.2.0/24".parse().unwrap());
            assert_eq!(
                polls(out.send(&mut vec![route_gone], || Some(0)), 3).await,
                Some(1)
            );
            // The agent is behind (1 sent, none acted on): no wait.
            let mut link = vec![KernelEvent::LinkRemoved(3)];
            assert_eq!(polls(out.send(&mut link, || Some(0)), 3).await, Some(1));
            events.acted_on(2);
            // Idle agent: one yield, and it acts within it.
            let mut link = vec![KernelEvent::LinkRemoved(4)];
            {
                let send = out.send(&mut link, || Some(0));
                tokio::pin!(send);
                assert!(matches!(futures::poll!(send.as_mut()), Poll::Pending));
                events.acted_on(1);
                assert!(matches!(futures::poll!(send.as_mut()), Poll::Ready(true)));
            }
            // Idle agent that has not acted after the yield: the watch waits for it.
            let mut link = vec![KernelEvent::LinkRemoved(5)];
            {
                let send = out.send(&mut link, || Some(0));
                tokio::pin!(send);
                for _ in 0..3 {
                    assert!(matches!(futures::poll!(send.as_mut()), Poll::Pending));
                }
                events.acted_on(1);
                assert!(matches!(futures::poll!(send.as_mut()), Poll::Ready(true)));
            }
            // But never behind a backlog (a mass change), nor when its size is unknown.
            for queued in [Some(HANDOVER_BACKLOG), None] {
                let mut link = vec![KernelEvent::LinkRemoved(6)];
                assert_eq!(polls(out.send(&mut link, || queued), 3).await, Some(2));
                events.acted_on(1);
            }
        });
    }

    #[test]
    fn a_stuck_agent_holds_the_watch_back_only_briefly() {
        runtime().block_on(async {
            let (mut out, _events) = channel();
            let mut link = vec![KernelEvent::LinkRemoved(4)];
            assert!(out.send(&mut link, || Some(0)).await);
        });
    }

    #[test]
    fn agent_gone() {
        runtime().block_on(async {
            let (mut out, events) = channel();
            drop(events);
            let mut link = vec![KernelEvent::LinkRemoved(4)];
            assert!(!out.send(&mut link, || Some(0)).await);
        });
    }
}
