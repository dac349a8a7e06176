//! Mesos's `ns::pid::destroy`: kill every process of a PID namespace.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use ns_core::{Namespace, NsId, NsType};

use crate::error::{io_error, Error, Result};

/// Kills every process in the PID namespace `ns` (and in the PID namespaces below it, which
/// die with it) with `SIGKILL`, and waits until all of them are gone; returns how many it
/// signalled (the kernel kills the others itself once the namespace's init is dead, so the
/// number depends on timing).
///
/// Each process is pinned with a pidfd before it is signalled, and its membership checked
/// again after pinning, so a recycled PID can never make this kill a process elsewhere.
/// Once the namespace's init is killed the kernel forbids new processes in it and kills the
/// rest too; further passes catch anything created meanwhile, as Mesos does.
///
/// Processes of the namespace that are the caller's own children (a container's init, or
/// anything spawned into it with [`NsCommand`](crate::NsCommand) or [`clone`](crate::clone())
/// are all the caller's children) are reaped here, zombies included: the dying init cannot
/// finish until every task of its namespace has been reaped, and only their parent can do
/// that. A [`Child`](crate::Child) handle to such a process still reports its exit status
/// afterwards on Linux 6.15 and later (`PIDFD_INFO_EXIT`). Finding zombies that were already
/// dead before the call needs `NS_GET_PID_IN_PIDNS` (Linux 6.11); on older kernels wait for
/// your children before destroying their namespace.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // Skipped without privilege, except under `cargo xtask test-root` (NS_TEST_ROOT).
/// # if std::env::var_os("NS_TEST_ROOT").is_none() && !ns_core::caps::has_cap(None,
/// #     ns_core::caps::CapSet::Effective, ns_core::caps::Capability::CAP_SYS_ADMIN)
/// #     .unwrap_or(false) { return Ok(()); }
/// use ns_container::{destroy, NsCommand};
/// use ns_core::{Namespace, NsType};
///
/// let mut init = NsCommand::new("sleep").arg("60").unshare(NsType::PID).spawn()?;
/// let pidns = Namespace::of_pid(init.pid(), NsType::PID)?;
/// let killed = destroy(&pidns)?;
/// assert!(killed >= 1);
/// assert!(init.wait()?.code().is_none()); // killed by SIGKILL
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`Error::Invalid`] when `ns` is not a PID namespace, is the caller's own, or has no
/// visible parent (the initial PID namespace, or one outside the caller's view): those are
/// refused and nothing is signalled. [`Error::Io`] when a process may not be signalled.
pub fn destroy(ns: &Namespace) -> Result<usize> {
    let what = || {
        ns.id()
            .map(|id| format!("destroying pid namespace {id}"))
            .unwrap_or_else(|_| "destroying a pid namespace".to_owned())
    };
    let invalid = |reason: &str| Error::Invalid {
        what: what(),
        reason: reason.to_owned(),
    };
    if ns.ns_type() != NsType::PID {
        return Err(invalid("it is not a pid namespace"));
    }
    let target = ns.id()?;
    if Namespace::current(NsType::PID)?.id()? == target {
        return Err(invalid(
            "refusing to destroy the caller's own pid namespace",
        ));
    }
    if ns.parent()?.is_none() {
        return Err(invalid(
            "refusing to destroy the initial pid namespace (or one outside the caller's view)",
        ));
    }
    let mut killed = 0;
    // Rounds until a scan finds nobody left: each round pins, signals and waits.
    loop {
        let victims = pin_members(ns, target);
        if victims.is_empty() {
            return Ok(killed);
        }
        for v in victims.iter().filter(|v| v.alive) {
            match ns_sys::pidfd_send_signal(v.pidfd.as_fd(), libc::SIGKILL) {
                Ok(()) => killed += 1,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(io_error(what(), "killing a process of the namespace")(e)),
            }
        }
        wait_all(victims);
    }
}

/// A pinned process of the namespace.
struct Victim {
    pidfd: OwnedFd,
    /// It had not exited when it was pinned.
    alive: bool,
    /// The caller is its parent, so the caller must reap it.
    ours: bool,
}

/// Waits until every victim has exited, reaping those that are the caller's children.
fn wait_all(mut victims: Vec<Victim>) {
    while !victims.is_empty() {
        victims.retain(|v| {
            if v.ours {
                // Reap through the pidfd: never another process that reused the PID. Keep
                // waiting unless reaped now (or already reaped by someone else: an error).
                let options = libc::WEXITED | libc::WNOHANG | libc::__WALL;
                matches!(ns_sys::pidfd_wait(v.pidfd.as_fd(), options), Ok(None))
            } else {
                !has_exited(&v.pidfd, 0)
            }
        });
        if let Some(v) = victims.first() {
            // Sleep until the first one exits, or 50 ms pass, then look at all of them again.
            has_exited(&v.pidfd, 50);
        }
    }
}

/// The processes of the namespace (or below it) that are alive, or are zombies the caller
/// must reap, each pinned by a pidfd.
fn pin_members(ns: &Namespace, target: NsId) -> Vec<Victim> {
    let me = std::process::id() as libc::pid_t;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if !is_member(ns, target, pid) {
            continue;
        }
        let Ok(pidfd) = ns_sys::pidfd_open(pid, 0) else {
            continue;
        };
        // Pinned: check that the pinned process is the member.
        if !is_member(ns, target, pid) {
            continue;
        }
        let alive = !has_exited(&pidfd, 0);
        let ours = parent_of(pid) == Some(me);
        if alive || ours {
            out.push(Victim { pidfd, alive, ours });
        }
    }
    out
}

/// Whether `pid` lives in the PID namespace `ns` or below it.
fn is_member(ns: &Namespace, target: NsId, pid: libc::pid_t) -> bool {
    // NS_GET_PID_IN_PIDNS (6.11) also answers for zombies.
    match ns.pid_from_caller(pid) {
        Ok(found) => return found.is_some(),
        Err(ns_core::Error::Unsupported { .. }) => {}
        Err(_) => return false,
    }
    // Older kernels: walk the live process's pid namespace up towards the root.
    let Ok(mut current) = Namespace::of_pid(pid, NsType::PID) else {
        return false;
    };
    loop {
        if current.id().ok() == Some(target) {
            return true;
        }
        match current.parent() {
            Ok(Some(parent)) => current = parent,
            _ => return false,
        }
    }
}

/// Whether the process behind `pidfd` has exited, waiting up to `timeout_ms`.
fn has_exited(pidfd: &OwnedFd, timeout_ms: libc::c_int) -> bool {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one live pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    // A poll error other than EINTR means the descriptor is unusable: treat it as gone.
    r > 0 || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
}

fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
