//! Where LXD's or Incus' unix socket is, in the order their own clients look.
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Lxd,
    Incus,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Lxd => "lxd",
            Flavor::Incus => "incus",
        }
    }
}

/// The socket to use: the file's `socket:`, else the environment, else the first
/// default that exists (else the last default: it may appear once the daemon starts).
/// `env` and `exists` are parameters so the order is testable.
pub fn resolve(
    flavor: Flavor,
    configured: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> bool,
) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    let (socket_var, dir_var, defaults): (&str, &str, &[&str]) = match flavor {
        Flavor::Lxd => (
            "LXD_SOCKET",
            "LXD_DIR",
            &[
                "/var/snap/lxd/common/lxd/unix.socket",
                "/var/lib/lxd/unix.socket",
            ],
        ),
        Flavor::Incus => (
            "INCUS_SOCKET",
            "INCUS_DIR",
            &["/run/incus/unix.socket", "/var/lib/incus/unix.socket"],
        ),
    };
    if let Some(s) = env(socket_var).filter(|s| !s.is_empty()) {
        return PathBuf::from(s);
    }
    if let Some(d) = env(dir_var).filter(|s| !s.is_empty()) {
        return Path::new(&d).join("unix.socket");
    }
    let last = defaults[defaults.len() - 1];
    defaults
        .iter()
        .map(Path::new)
        .find(|p| exists(p))
        .unwrap_or(Path::new(last))
        .to_path_buf()
}
