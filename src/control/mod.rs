//! The control socket: one JSON request per connection, one JSON reply.
//!
//! The CLI (`status`, `routes`, `reload`, `shutdown`) is its client. Only root (or
//! the agent's own user) may talk to it: the socket is mode 0600 and the peer's
//! credentials are checked as well.
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

pub const DEFAULT_SOCKET: &str = "/run/hostbgp/hostbgp.sock";
/// Requests are tiny; anything larger is refused unread.
pub const MAX_REQUEST_LEN: usize = 4096;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    Status,
    Routes,
    Reload,
    Shutdown,
    /// Sets the log filter (`level`: a level or an `EnvFilter` directive).
    LogLevel,
    /// Administrative shutdown of `peer`, with `message` (RFC 8203).
    Disable,
    /// Ends a `disable`.
    Enable,
    /// Advertise every path with GRACEFUL_SHUTDOWN (RFC 8326) until `undrain`.
    Drain,
    /// Ends a `drain`.
    Undrain,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub command: Command,
    /// `log-level`: the new filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// `disable`, `enable`: the peer's name or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// `disable`: the shutdown message sent to the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `routes`: also what is configured but not advertised, and why.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

impl Request {
    pub fn new(command: Command) -> Request {
        Request {
            command,
            level: None,
            peer: None,
            message: None,
            all: false,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn ok(result: Value) -> Reply {
        Reply {
            ok: true,
            result: Some(result),
            error: None,
        }
    }
    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }
}

/// A request handed to the agent, with the way back to the client.
pub struct Pending {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// Parses one request; the error names what was wrong.
pub fn parse_request(bytes: &[u8]) -> Result<Request, String> {
    if bytes.len() > MAX_REQUEST_LEN {
        return Err(format!(
            "request too large ({} bytes, at most {MAX_REQUEST_LEN})",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "request is not UTF-8".to_string())?;
    serde_json::from_str(text.trim()).map_err(|e| format!("bad request: {e}"))
}

/// Binds the socket (replacing a stale one), mode 0600.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use: is another hostbgp running?", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The connection `accept` yields; None after an error (out of descriptors and the
/// like), logged as `what`'s and waited out a little rather than spun on.
pub(crate) async fn accepted<S, A>(
    what: &str,
    accept: impl std::future::Future<Output = io::Result<(S, A)>>,
) -> Option<S> {
    match accept.await {
        Ok((stream, _)) => Some(stream),
        Err(e) => {
            tracing::warn!("{what}: accept: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// Accepts clients, forwarding their requests, until `shutdown`; then lets the
/// replies in flight (a `hostbgp shutdown`'s own) be written before it returns.
pub async fn serve(
    listener: UnixListener,
    requests: mpsc::Sender<Pending>,
    shutdown: CancellationToken,
) {
    let own_uid = nix::unistd::geteuid().as_raw();
    let mut clients = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            stream = accepted("control socket", listener.accept()) => {
                if let Some(stream) = stream {
                    clients.spawn(handle(stream, requests.clone(), own_uid));
                }
            }
        }
    }
    drop(listener);
    while clients.join_next().await.is_some() {}
}

async fn handle(mut stream: UnixStream, requests: mpsc::Sender<Pending>, own_uid: u32) {
    let allowed = stream
        .peer_cred()
        .map(|c| c.uid() == 0 || c.uid() == own_uid)
        .unwrap_or(false);
    let reply = if !allowed {
        Reply::error("permission denied: only root may use the hostbgp control socket")
    } else {
        // The request has a deadline; the agent's answer has none (a shutdown that
        // drains takes `hostbgp.drain_time`), and the agent always answers or drops.
        let request = timeout(IO_TIMEOUT * 2, read_request(&mut stream))
            .await
            .unwrap_or_else(|_| Err("request not received within 10s".into()));
        match request {
            Err(message) => Reply::error(message),
            Ok(request) => {
                let (tx, rx) = oneshot::channel();
                if requests.send(Pending { request, reply: tx }).await.is_err() {
                    Reply::error("the agent is stopping")
                } else {
                    rx.await
                        .unwrap_or_else(|_| Reply::error("the agent is stopping"))
                }
            }
        }
    };
    let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
    bytes.push(b'\n');
    let _ = timeout(IO_TIMEOUT, stream.write_all(&bytes)).await;
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match timeout(IO_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(format!("reading request: {e}")),
            Err(_) => return Err("request not received within 5s".into()),
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST_LEN {
            return Err(format!("request too large (over {MAX_REQUEST_LEN} bytes)"));
        }
        if n == 0 || buf.contains(&b'\n') {
            break;
        }
    }
    parse_request(&buf)
}

/// The CLI side: sends one request and returns the reply.
pub async fn call(path: &Path, request: Request) -> Result<Reply, String> {
    let command = request.command;
    let mut stream = UnixStream::connect(path).await.map_err(|e| {
        format!(
            "cannot reach hostbgp at {}: {e} (is `hostbgp run` running?)",
            path.display()
        )
    })?;
    let mut bytes = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let wait = if command == Command::Shutdown {
        // The drain, then a minute to withdraw and close.
        Duration::from_secs(u64::from(crate::config::MAX_DRAIN_TIME_SECS) + 60)
    } else {
        Duration::from_secs(30)
    };
    match timeout(wait, stream.read_to_end(&mut reply)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("reading reply: {e}")),
        Err(_) => return Err("no reply from hostbgp".into()),
    }
    serde_json::from_slice(&reply).map_err(|e| format!("bad reply from hostbgp: {e}"))
}

pub fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_commands() {
        assert_eq!(
            parse_request(br#"{"command":"status"}"#).unwrap().command,
            Command::Status
        );
        assert_eq!(
            parse_request(b"{\"command\":\"shutdown\"}\n")
                .unwrap()
                .command,
            Command::Shutdown
        );
        let r = parse_request(br#"{"command":"log-level","level":"debug"}"#).unwrap();
        assert_eq!(
            (r.command, r.level.as_deref()),
            (Command::LogLevel, Some("debug"))
        );
    }

    #[test]
    fn refuses_bad_requests_with_a_reason() {
        assert!(parse_request(b"").unwrap_err().starts_with("bad request"));
        assert!(parse_request(br#"{"command":"explode"}"#)
            .unwrap_err()
            .contains("unknown variant"));
        assert!(parse_request(br#"{"command":"status","x":1}"#)
            .unwrap_err()
            .contains("unknown field"));
        assert!(parse_request(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        let big = vec![b' '; MAX_REQUEST_LEN + 1];
        assert!(parse_request(&big).unwrap_err().contains("too large"));
    }

    #[tokio::test]
    async fn round_trip_over_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/hostbgp.sock");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (tx, mut rx) = mpsc::channel(4);
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, tx, stop.clone()));
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                let _ = p.reply.send(Reply::ok(
                    serde_json::json!({"got": format!("{:?}", p.request.command), "level": p.request.level}),
                ));
            }
        });
        let reply = call(&path, Request::new(Command::Routes)).await.unwrap();
        assert!(reply.ok);
        assert_eq!(reply.result.unwrap()["got"], "Routes");
        let mut level = Request::new(Command::LogLevel);
        level.level = Some("debug".into());
        let reply = call(&path, level).await.unwrap();
        assert_eq!(reply.result.unwrap()["level"], "debug");

        // Garbage gets an error reply, and the server keeps serving.
        let mut s = UnixStream::connect(&path).await.unwrap();
        s.write_all(b"{nonsense\n").await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let reply: Reply = serde_json::from_slice(&out).unwrap();
        assert!(!reply.ok && reply.error.unwrap().contains("bad request"));
        assert!(call(&path, Request::new(Command::Status)).await.unwrap().ok);

        // A second agent may not steal a live socket.
        assert!(bind(&path).is_err());

        // Cancelled, the server ends and takes no more clients.
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve ends on cancel")
            .expect("no panic");
        assert!(call(&path, Request::new(Command::Status)).await.is_err());
    }
}
