//! Once the listener and the control socket are bound, the agent needs only
//! CAP_NET_ADMIN (routes, netlink buffers, MD5 keys), CAP_NET_BIND_SERVICE (a
//! listener re-bound on reload) and CAP_NET_RAW (the ICMPv6 socket of an unnumbered
//! peer's interface, opened whenever a reload or a link event brings one). Everything else is dropped for good, so a bug in
//! packet handling cannot be turned into more than the agent's own job.
use caps::{CapSet, Capability, CapsHashSet};

pub const KEPT: [Capability; 3] = [
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_NET_RAW,
];

/// Drops every capability but [`KEPT`] from the bounding, permitted, effective,
/// inheritable and ambient sets. Returns what was kept, or what went wrong.
///
/// Capabilities are per thread: only the calling thread (and threads it starts later)
/// lose them. The agent calls this while it is the only thread; if it is not, the drop
/// still happens here and the error names the threads that kept theirs.
pub fn drop_all_but_network() -> Result<CapsHashSet, String> {
    let kept = drop_on_this_thread()?;
    match std::fs::read_dir("/proc/self/task").map(|d| d.count()) {
        Ok(threads) if threads > 1 => Err(format!(
            "dropped on this thread only: {} other thread(s) keep their capabilities",
            threads - 1
        )),
        _ => Ok(kept),
    }
}

fn drop_on_this_thread() -> Result<CapsHashSet, String> {
    let keep: CapsHashSet = KEPT.into_iter().collect();
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
    let kept: CapsHashSet = permitted.intersection(&keep).copied().collect();
    // The bounding set needs CAP_SETPCAP, so it goes first.
    if permitted.contains(&Capability::CAP_SETPCAP) {
        for cap in caps::all() {
            if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| format!("bounding set: {e}"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("ambient set: {e}"))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .map_err(|e| format!("inheritable set: {e}"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(|e| format!("effective set: {e}"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| format!("permitted set: {e}"))?;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `check` in a forked child, as root only: capability changes must not
    /// touch the test runner. Passes when the child reports true.
    fn check_in_child(name: &str, check: impl FnOnce() -> bool) {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped {name}: needs root");
            return;
        }
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let ok = check();
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }

    #[test]
    fn drops_everything_else_in_a_child() {
        check_in_child("drops_everything_else_in_a_child", || {
            drop_all_but_network().is_ok()
                && caps::read(None, CapSet::Effective)
                    .map(|s| s.len() <= KEPT.len())
                    .unwrap_or(false)
                && !caps::has_cap(None, CapSet::Bounding, Capability::CAP_SYS_ADMIN).unwrap_or(true)
                && caps::has_cap(None, CapSet::Effective, Capability::CAP_NET_ADMIN)
                    .unwrap_or(false)
        });
    }

    /// A second thread started before the drop keeps its capabilities: say so.
    #[test]
    fn names_threads_that_keep_their_capabilities() {
        check_in_child("names_threads_that_keep_their_capabilities", || {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let other = std::thread::spawn(move || {
                let _ = rx.recv();
            });
            let r = drop_all_but_network();
            let _ = tx.send(());
            let _ = other.join();
            matches!(&r, Err(e) if e.contains("1 other thread"))
        });
    }
}
