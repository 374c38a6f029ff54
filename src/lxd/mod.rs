//! LXD (or Incus) as a live configuration source.
//!
//! With `lxd:` (or `incus:`) in the file, hostbgp follows the daemon over its unix
//! socket: a task ([`source`]) subscribes to lifecycle events, reads the server,
//! managed networks and instances, and publishes a [`Snapshot`] after every change.
//! [`ConfigSource`] turns the latest snapshot and the file into one `Config`, the
//! file's own keys merged over LXD's ([`compose`]), so the agent applies it exactly as
//! it applies a reloaded file.
pub mod api;
pub mod client;
pub mod compose;
pub mod convert;
pub mod error;
pub mod events;
pub mod fetch;
pub mod ports;
pub mod socket;
pub mod source;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

pub use convert::Snapshot;
pub use error::LxdError;

use crate::config::{self, Config, ConfigError};
use crate::status::{LiveSourceView, SourceEventView, SourceView};
use compose::LiveSettings;

/// How long a start or a reload that begins following LXD waits for its state before
/// planning from the file alone.
pub const FIRST_SNAPSHOT_WAIT: Duration = Duration::from_secs(3);

/// Where the agent's config comes from: the file alone, or the file over LXD.
pub struct ConfigSource {
    path: PathBuf,
    member: String,
    live: Option<Live>,
}

struct Live {
    settings: LiveSettings,
    socket: PathBuf,
    snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    status: watch::Receiver<source::SourceStatus>,
    task: tokio::task::JoinHandle<()>,
}

impl Live {
    fn start(settings: LiveSettings) -> Live {
        let socket = socket::resolve(
            settings.flavor,
            settings.socket.as_deref(),
            |k| std::env::var(k).ok(),
            Path::exists,
        );
        let (publish, snapshots) = watch::channel(None);
        let (status_tx, status) = watch::channel(source::SourceStatus {
            flavor: Some(settings.flavor),
            socket: socket.clone(),
            ..Default::default()
        });
        let task = tokio::spawn(source::run(socket.clone(), publish, status_tx));
        tracing::info!(socket = %socket.display(), "following {} live", settings.flavor.name());
        Live {
            settings,
            socket,
            snapshots,
            status,
            task,
        }
    }

    /// Waits (at most `limit`) for the first snapshot.
    async fn first_snapshot(&mut self, limit: Duration) {
        let ready = self.snapshots.wait_for(Option::is_some);
        if tokio::time::timeout(limit, ready).await.is_err() {
            tracing::warn!(
                socket = %self.socket.display(),
                "{} not answering yet: starting from the file alone",
                self.settings.flavor.name()
            );
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConfigSource {
    /// Reads the file once to learn whether a live source is wanted, and starts it.
    pub fn start(path: &Path, member: &str) -> Result<ConfigSource, Vec<ConfigError>> {
        let tree = config::load_tree(path)?;
        Ok(ConfigSource {
            path: path.to_path_buf(),
            member: member.to_string(),
            live: compose::live_settings(&tree).map(Live::start),
        })
    }

    /// Waits (at most `limit`) for LXD's first snapshot, so a start with LXD running
    /// never plans from the file alone (that would remove the routes of running
    /// instances until LXD answered).
    pub async fn first_snapshot(&mut self, limit: Duration) {
        if let Some(live) = self.live.as_mut() {
            live.first_snapshot(limit).await;
        }
    }

    /// A reload: the file re-read over the latest snapshot, as [`Self::load`]; when
    /// its `lxd:` / `incus:` key was added, changed or removed, the live source is
    /// started, moved or stopped first. A new source's first snapshot is waited for
    /// (at most `limit`), so a reload never plans from the file alone while LXD runs;
    /// if the new config is refused, the source in use stays.
    pub async fn reload(&mut self, limit: Duration) -> Result<Config, Vec<ConfigError>> {
        let tree = config::load_tree(&self.path)?;
        let wanted = compose::live_settings(&tree);
        if wanted.as_ref() == self.live.as_ref().map(|l| &l.settings) {
            return self.load();
        }
        let mut candidate = wanted.map(Live::start);
        if let Some(live) = candidate.as_mut() {
            live.first_snapshot(limit).await;
        }
        let config = match &candidate {
            Some(live) => {
                compose_live(tree, &self.member, live).map_err(|e| locate(&self.path, e))?
            }
            None => config::load(&self.path, &self.member)?,
        };
        match &candidate {
            Some(live) => tracing::info!(
                "the file now names {}: following it",
                live.settings.flavor.name()
            ),
            None => {
                tracing::info!("the file no longer names LXD or Incus: following the file alone")
            }
        }
        self.live = candidate;
        Ok(config)
    }

    /// The current config: the file (re-read now) over the latest snapshot.
    /// Without a snapshot yet, the file alone; if that lacks what LXD would give
    /// (the ASN, network types), an empty config until LXD answers.
    pub fn load(&self) -> Result<Config, Vec<ConfigError>> {
        let Some(live) = &self.live else {
            return config::load(&self.path, &self.member);
        };
        let tree = config::load_tree(&self.path)?;
        if compose::live_settings(&tree).as_ref() != Some(&live.settings) {
            tracing::warn!("the lxd/incus key changed in the file: a reload follows it");
        }
        compose_live(tree, &self.member, live).map_err(|e| locate(&self.path, e))
    }

    /// Resolves when a new snapshot is published; never without a live source.
    pub async fn changed(&mut self) {
        match self.live.as_mut() {
            Some(live) => {
                if live.snapshots.changed().await.is_err() {
                    // The task is gone (it never ends on its own): stop listening.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }

    /// The `source` part of `hostbgp status`.
    pub fn status(&self) -> SourceView {
        let path = self.path.display().to_string();
        let Some(live) = &self.live else {
            return SourceView {
                kind: "file".into(),
                path,
                live: None,
            };
        };
        let s = live.status.borrow().clone();
        let unix = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        SourceView {
            kind: live.settings.flavor.name().into(),
            path,
            live: Some(LiveSourceView {
                socket: live.socket.display().to_string(),
                connected: s.connected_since.is_some(),
                connected_since_unix: unix(s.connected_since),
                last_event: s
                    .last_event
                    .as_ref()
                    .map(|(t, action, source)| SourceEventView {
                        unix: unix(Some(*t)),
                        action: action.clone(),
                        source: source.clone(),
                    }),
                last_resync_unix: unix(s.last_resync),
                networks: s.networks,
                instances: s.instances,
                server_name: s.server_name,
                server_version: s.server_version,
                lxd_bgp_address: s.lxd_speaker,
                last_error: s.last_error,
            }),
        }
    }
}

/// `errors` with the file and line of the keys the file sets (`FILE:LINE: KEY`), as
/// `hostbgp check` prints them; keys only LXD sets stay as they are.
fn locate(path: &Path, errors: Vec<ConfigError>) -> Vec<ConfigError> {
    config::locate_errors(path, errors)
        .iter()
        .map(config::Diagnostic::to_config_error)
        .collect()
}

/// The file's `tree` over `live`'s latest snapshot. Without a snapshot yet, the file
/// alone; if that lacks what LXD would give (the ASN, network types), an empty config
/// until LXD answers.
fn compose_live(
    tree: config::node::Node,
    member: &str,
    live: &Live,
) -> Result<Config, Vec<ConfigError>> {
    let snapshot = live.snapshots.borrow().clone();
    match snapshot {
        Some(snap) => {
            let mut dropped = Vec::new();
            let c = compose::compose(&tree, &snap, member, &mut dropped)?;
            for e in dropped {
                tracing::error!("instance left out: {e}");
            }
            Ok(c)
        }
        None => {
            let (errors, _expected) = compose::check_file(tree.clone(), member);
            if !errors.is_empty() {
                return Err(errors);
            }
            config::build(tree, member).or_else(|_| config::parse_str("", member))
        }
    }
}

/// `hostbgp check` for a file with `lxd:` / `incus:`: validates the file alone.
/// `None` when the file has no live source (check it as usual); else the errors, and
/// what is missing from the file but expected from LXD.
pub fn check(path: &Path, member: &str) -> Option<(Vec<ConfigError>, Vec<ConfigError>)> {
    let tree = match config::load_tree(path) {
        Ok(t) => t,
        Err(errors) => return Some((errors, Vec::new())),
    };
    compose::live_settings(&tree)?;
    Some(compose::check_file(tree, member))
}
