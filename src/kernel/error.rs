//! What went wrong talking to the kernel, typed; `Display` is what logs and
//! `hostbgp routes` show (e.g. "install route 203.0.113.0/24: Network is
//! unreachable (os error 101)").
use std::io;

use ipnet::IpNet;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel answered `what` with an error number.
    #[error("{what}: {}", io::Error::from_raw_os_error(*.errno))]
    Refused { what: String, errno: i32 },
    /// netlink itself failed while doing `what` (socket, send, reading answers).
    #[error("{what}: {source}")]
    Transport { what: String, source: io::Error },
    #[error("netlink: {0}")]
    Io(#[from] io::Error),
    /// A route the kernel cannot hold.
    #[error("install route {0}: no next hop")]
    NoNextHop(IpNet),
    /// A dump kept being interrupted by changes.
    #[error("kernel dump: interrupted {0} times in a row")]
    Interrupted(u32),
    /// Part of a batch failed; `example` is one of the failures.
    #[error("{failed} of {total} route {op}s failed; e.g. {example}")]
    Partial {
        op: String,
        failed: usize,
        total: usize,
        example: Box<KernelError>,
    },
}

impl KernelError {
    /// The kernel's error number, when it refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            KernelError::Refused { errno, .. } => Some(*errno),
            KernelError::Partial { example, .. } => example.errno(),
            _ => None,
        }
    }
}

/// A dump's outcome short of success.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DumpError {
    /// The kernel changed the table while it was being dumped (NLM_F_DUMP_INTR): the
    /// answers may miss or repeat entries, so the dump is taken again.
    #[error("kernel dump interrupted by a concurrent change")]
    Interrupted,
    #[error(transparent)]
    Failed(#[from] KernelError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_request_and_the_errno() {
        let refused = KernelError::Refused {
            what: "install route 203.0.113.0/24".into(),
            errno: libc::ENETUNREACH,
        };
        assert_eq!(
            refused.to_string(),
            format!(
                "install route 203.0.113.0/24: {}",
                io::Error::from_raw_os_error(libc::ENETUNREACH)
            )
        );
        let partial = KernelError::Partial {
            op: "install".into(),
            failed: 2,
            total: 10,
            example: Box::new(refused),
        };
        assert!(partial
            .to_string()
            .starts_with("2 of 10 route installs failed; e.g. install route 203.0.113.0/24: "));
        assert_eq!(partial.errno(), Some(libc::ENETUNREACH));
    }
}
