//! The kernel's rules about which thread may enter which namespace: checked before `setns`
//! ([`check_thread_rules`], [`fs_sharing`]) and read back from its errors ([`enter_error`]).
//!
//! Shared by [`Namespace::enter`](crate::Namespace::enter) and
//! [`Target`](crate::Target)'s entry; it works on namespace types and the calling process
//! only, never on a handle, and never enters anything itself.

use crate::error::{Context, Error, Result, ThreadRule};
use crate::ns_type::NsType;
use crate::sys;

/// Checks the rules that can be checked before calling `setns` for `types`.
pub(crate) fn check_thread_rules(types: NsType, context: impl Fn() -> Context) -> Result<()> {
    if !types.intersects(NsType::USER | NsType::TIME) {
        return Ok(());
    }
    let threads = sys::thread_count().map_err(|e| Error::os(context(), e))?;
    if threads > 1 {
        let rule = if types.contains(NsType::USER) {
            ThreadRule::UserNeedsSingleThread { threads }
        } else {
            ThreadRule::TimeNeedsSingleThread { threads }
        };
        return Err(Error::ThreadRule {
            context: context(),
            rule,
        });
    }
    Ok(())
}

/// Whether the calling thread shares its filesystem state (root, cwd) with another thread of
/// the process, which forbids entering a mount namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FsSharing {
    /// Not shared: mount namespaces may be entered.
    Private,
    /// Shared with at least one other thread; the process has this many threads.
    Shared(usize),
    /// Unknown: the kernel lacks `kcmp(2)` (`CONFIG_KCMP`).
    Unknown,
}

/// Finds out with `kcmp(KCMP_FS)` whether the calling thread shares its filesystem state.
///
/// This matters because `setns(pidfd, CLONE_NEWNS | …)` does not check it: the kernel works
/// on a private copy of the thread's fs state and then writes the new root and working
/// directory back into the *shared* one, moving the root of every thread that shares it. Only
/// `setns(fd, CLONE_NEWNS)` alone is refused with `EINVAL`.
pub(crate) fn fs_sharing() -> std::io::Result<FsSharing> {
    let threads = sys::thread_count()?;
    if threads <= 1 {
        return Ok(FsSharing::Private);
    }
    let me = sys::gettid();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if tid == me {
            continue;
        }
        match ns_sys::ns::kcmp(me, tid, ns_sys::ns::KCMP_FS, 0, 0) {
            Ok(0) => return Ok(FsSharing::Shared(threads)),
            Ok(_) => {}
            // The thread exited meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(_) => return Ok(FsSharing::Unknown),
        }
    }
    Ok(FsSharing::Private)
}

/// Turns a failed `setns` into the most precise error.
pub(crate) fn enter_error(e: std::io::Error, types: NsType, context: Context) -> Error {
    let threads = || sys::thread_count().unwrap_or(0);
    match e.raw_os_error() {
        Some(libc::ESRCH) => Error::ProcessGone { context },
        Some(libc::EUSERS) if types.contains(NsType::TIME) => Error::ThreadRule {
            context,
            rule: ThreadRule::TimeNeedsSingleThread { threads: threads() },
        },
        Some(libc::EINVAL) if types == NsType::USER => Error::ThreadRule {
            context,
            rule: ThreadRule::UserNeedsSingleThread { threads: threads() },
        },
        Some(libc::EINVAL) if types == NsType::MNT && threads() > 1 => Error::ThreadRule {
            context,
            rule: ThreadRule::MountNeedsUnsharedFs { threads: threads() },
        },
        Some(libc::EINVAL) if types == NsType::PID => Error::Invalid {
            context,
            reason: "the pid namespace is neither the caller's own nor a descendant of it \
                     (EINVAL)"
                .to_owned(),
        },
        _ => Error::os(context, e),
    }
}
