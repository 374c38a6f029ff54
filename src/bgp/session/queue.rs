//! The queue from the agent to one session: bounded, with room kept for the commands
//! that must always get through.
//!
//! Route changes take the queue up to `ROUTE_CHANGES_QUEUED`; past that the session's
//! peer is reading far slower than routes change, and the agent resets the session
//! (Cease/Out of Resources) rather than let its memory grow without bound: the new
//! session starts from a full table, and a peer with graceful restart keeps our
//! routes meanwhile. Stop, BFD, a router heard and an inbound connection may use the
//! reserved room, so an overflowing session can always be told to stop (it stops
//! once what was queued before is written, or its write times out).
use tokio::sync::mpsc;

use super::SessionCmd;

/// Commands one session may have queued.
pub const QUEUE: usize = 4096;
/// Of those, the room only commands other than route changes may take.
const RESERVED: usize = 64;
/// How many route changes one session may have queued.
pub const ROUTE_CHANGES_QUEUED: usize = QUEUE - RESERVED;

/// Why a command was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the session's queue is full")]
    Full,
    #[error("the session has ended")]
    Closed,
}

/// The agent's (and the listener's) end of a session's queue.
#[derive(Clone, Debug)]
pub struct SessionSender(mpsc::Sender<SessionCmd>);

pub type SessionReceiver = mpsc::Receiver<SessionCmd>;

pub fn queue() -> (SessionSender, SessionReceiver) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (SessionSender(tx), rx)
}

impl SessionSender {
    /// Queues `cmd` without waiting: the agent never waits on a session.
    pub fn send(&self, cmd: SessionCmd) -> Result<(), QueueError> {
        let routes = matches!(
            cmd,
            SessionCmd::Changes { .. } | SessionCmd::EndOfRib { .. }
        );
        if routes && self.0.capacity() <= RESERVED {
            return Err(QueueError::Full);
        }
        self.0.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full,
            mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes() -> SessionCmd {
        SessionCmd::Changes {
            epoch: 1,
            changes: Default::default(),
        }
    }

    #[test]
    fn route_changes_leave_room_for_the_rest() {
        let (tx, mut rx) = queue();
        for _ in 0..ROUTE_CHANGES_QUEUED {
            tx.send(changes()).unwrap();
        }
        assert_eq!(tx.send(changes()), Err(QueueError::Full));
        let eor = SessionCmd::EndOfRib {
            epoch: 1,
            families: vec![],
        };
        assert_eq!(tx.send(eor), Err(QueueError::Full));
        // A stop still gets through, after what is queued.
        let (done, _) = tokio::sync::oneshot::channel();
        let stop = SessionCmd::Stop {
            notification: None,
            done,
        };
        tx.send(stop).unwrap();
        for _ in 0..RESERVED - 1 {
            tx.send(SessionCmd::BfdUp).unwrap();
        }
        assert_eq!(tx.send(SessionCmd::BfdDown), Err(QueueError::Full));
        // Reading frees room for route changes again.
        for _ in 0..=RESERVED {
            rx.try_recv().unwrap();
        }
        tx.send(changes()).unwrap();
        drop(rx);
        assert_eq!(tx.send(changes()), Err(QueueError::Closed));
    }
}
