//! What can go wrong talking to LXD; every variant names the socket or the path.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LxdError {
    #[error("connecting to {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("GET {path}: {source}")]
    Http { path: String, source: hyper::Error },
    #[error("GET {path}: invalid request: {message}")]
    Request { path: String, message: String },
    #[error("GET {path}: no answer within {secs} s")]
    Timeout { path: String, secs: u64 },
    #[error("GET {path}: LXD answered {code}: {message}")]
    Api {
        path: String,
        code: u16,
        message: String,
    },
    #[error("GET {path}: cannot read the reply: {message}")]
    Parse { path: String, message: String },
    #[error("event stream: {0}")]
    Events(String),
}

impl LxdError {
    /// A 404: the object named by an event is gone (deleted since).
    pub fn not_found(&self) -> bool {
        matches!(self, LxdError::Api { code: 404, .. })
    }
}
