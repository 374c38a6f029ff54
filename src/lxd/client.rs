//! GET requests to LXD's REST API over its unix socket (hyper, HTTP/1.1).
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use super::api::Envelope;
use super::error::LxdError;

/// LXD answers within milliseconds; a wedged daemon must not stall the source forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies bigger than this are refused (thousands of instances fit well within it).
const MAX_REPLY: usize = 64 << 20;

/// One keep-alive HTTP/1.1 connection, used for one fetch round.
pub struct Client {
    socket: PathBuf,
    sender: SendRequest<Empty<Bytes>>,
}

impl Client {
    pub async fn connect(socket: &Path) -> Result<Client, LxdError> {
        let connect_err = |source| LxdError::Connect {
            socket: socket.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(socket).await.map_err(connect_err)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_err(std::io::Error::other(e)))?;
        // The connection is driven by its own task; it ends when `sender` is dropped.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("LXD connection ended: {e}");
            }
        });
        Ok(Client {
            socket: socket.to_path_buf(),
            sender,
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET path`, the envelope checked, its `metadata` parsed as `T`.
    pub async fn get<T: DeserializeOwned>(&mut self, path: &str) -> Result<T, LxdError> {
        let secs = REQUEST_TIMEOUT.as_secs();
        let metadata = tokio::time::timeout(REQUEST_TIMEOUT, self.get_raw(path))
            .await
            .map_err(|_| LxdError::Timeout {
                path: path.to_string(),
                secs,
            })??;
        serde_json::from_value(metadata).map_err(|e| LxdError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    async fn get_raw(&mut self, path: &str) -> Result<serde_json::Value, LxdError> {
        let req = Request::get(path)
            .header(hyper::header::HOST, "lxd")
            .body(Empty::<Bytes>::new())
            .map_err(|e| LxdError::Request {
                path: path.to_string(),
                message: e.to_string(),
            })?;
        let http = |source| LxdError::Http {
            path: path.to_string(),
            source,
        };
        self.sender.ready().await.map_err(http)?;
        let resp = self.sender.send_request(req).await.map_err(http)?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|e| LxdError::Parse {
                path: path.to_string(),
                message: e.to_string(),
            })?
            .to_bytes();
        parse_envelope(path, status.as_u16(), &body)
    }
}

/// The `metadata` of a sync reply, or the error LXD gave (pure).
pub fn parse_envelope(path: &str, status: u16, body: &[u8]) -> Result<serde_json::Value, LxdError> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| {
        if status >= 400 {
            LxdError::Api {
                path: path.to_string(),
                code: status,
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            }
        } else {
            LxdError::Parse {
                path: path.to_string(),
                message: e.to_string(),
            }
        }
    })?;
    if env.kind == "error" || env.error_code >= 400 || status >= 400 {
        return Err(LxdError::Api {
            path: path.to_string(),
            code: if env.error_code != 0 {
                env.error_code
            } else {
                status
            },
            message: env.error,
        });
    }
    Ok(env.metadata)
}
