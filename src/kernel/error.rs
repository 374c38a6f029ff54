//! Why a kernel dump did not complete: interrupted (try again) or failed.
use std::io;

/// A dump's outcome short of success.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DumpError {
    /// The kernel changed the table while it was being dumped (NLM_F_DUMP_INTR): the
    /// answers may miss or repeat entries, so the dump is taken again.
    #[error("kernel dump interrupted by a concurrent change")]
    Interrupted,
    #[error(transparent)]
    Failed(#[from] io::Error),
}
