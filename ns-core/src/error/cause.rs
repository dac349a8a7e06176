//! Why something failed, in words: the kernel rules about threads ([`ThreadRule`]), the
//! text and symbolic name of an `errno`, and the capabilities an operation needs that the
//! caller lacks.
//!
//! The second half of every message. The only thing it asks the system is the calling
//! thread's effective capabilities; it never builds an [`Error`](super::Error).

use std::fmt;
use std::io;

use caps::{CapSet, Capability};

use super::context::Op;
use crate::ns_type::NsType;

/// A kernel rule about threads that forbids the requested entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThreadRule {
    /// `setns(2)` into a user namespace needs a single-threaded process that shares neither
    /// its memory nor its filesystem state (`CLONE_VM`, `CLONE_FS`) with another process.
    UserNeedsSingleThread {
        /// Threads of the calling process.
        threads: usize,
    },
    /// `setns(2)` into a mount namespace needs a thread that does not share its filesystem
    /// state (root, cwd, umask) with other threads: call `unshare(CLONE_FS)` in it first.
    MountNeedsUnsharedFs {
        /// Threads of the calling process.
        threads: usize,
    },
    /// `setns(2)` into a time namespace needs a single-threaded process that shares its
    /// memory with no other process.
    TimeNeedsSingleThread {
        /// Threads of the calling process.
        threads: usize,
    },
}

impl fmt::Display for ThreadRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadRule::UserNeedsSingleThread { threads } => write!(
                f,
                "the kernel lets only a single-threaded process that shares no memory or \
                 filesystem state enter a user namespace (EINVAL), and this process has \
                 {threads} thread(s); enter it from a forked child (ns_container::clone)"
            ),
            ThreadRule::MountNeedsUnsharedFs { threads } => write!(
                f,
                "the kernel lets a thread enter a mount namespace only when it shares no \
                 filesystem state (root, cwd) with other threads (EINVAL), and this process has \
                 {threads} thread(s); call unshare(CLONE_FS) in the thread first or use \
                 ns_container::NamespaceRunner"
            ),
            ThreadRule::TimeNeedsSingleThread { threads } => write!(
                f,
                "the kernel lets only a single-threaded process that shares no memory enter a \
                 time namespace (EUSERS), and this process has {threads} thread(s); enter it \
                 from a forked child (ns_container::clone)"
            ),
        }
    }
}

/// The capabilities an operation on namespaces of these types needs in the caller's user
/// namespace (and in the namespace's owner).
pub(super) fn required_caps(op: Op, ns: NsType) -> Vec<Capability> {
    match op {
        Op::Enter | Op::Restore => {
            let mut caps = vec![Capability::CAP_SYS_ADMIN];
            if ns.contains(NsType::MNT) {
                caps.push(Capability::CAP_SYS_CHROOT);
            }
            caps
        }
        Op::Persist | Op::Unpersist => vec![Capability::CAP_SYS_ADMIN],
        Op::Open | Op::Identify | Op::Pin => vec![Capability::CAP_SYS_PTRACE],
        _ => Vec::new(),
    }
}

/// Those of `wanted` that the calling thread's effective set lacks.
pub(super) fn missing_caps(wanted: Vec<Capability>) -> Vec<Capability> {
    wanted
        .into_iter()
        .filter(|c| !caps::has_cap(None, CapSet::Effective, *c).unwrap_or(false))
        .collect()
}

/// `operation not permitted (EPERM; missing CAP_SYS_ADMIN)`.
pub(super) fn describe_os(source: &io::Error, missing: Option<&[Capability]>) -> String {
    let Some(errno) = source.raw_os_error() else {
        return source.to_string();
    };
    let mut text = errno_text(errno);
    let name = errno_name(errno);
    let mut note = String::new();
    if let Some(missing) = missing.filter(|_| errno == libc::EPERM || errno == libc::EACCES) {
        if missing.is_empty() {
            if errno == libc::EPERM {
                note = "; the caller has the needed capabilities in its own user namespace, \
                        but not in the user namespace that owns the target"
                    .to_owned();
            }
        } else {
            let names: Vec<String> = missing.iter().map(|c| c.to_string()).collect();
            note = format!("; missing {}", names.join(", "));
        }
    }
    text.push_str(&format!(" ({name}{note})"));
    text
}

/// Describes an `errno` the way this crate's messages do: `operation not permitted (EPERM)`.
pub fn describe_errno(errno: i32) -> String {
    describe_os(&io::Error::from_raw_os_error(errno), None)
}

/// `strerror` text, first letter in lower case.
fn errno_text(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    // io::Error renders as "Operation not permitted (os error 1)".
    let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// The symbolic name of the errno values namespace calls return.
fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::EUSERS => "EUSERS",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno {errno}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_caps_for_mount_entry_include_chroot() {
        assert_eq!(
            required_caps(Op::Enter, NsType::MNT),
            [Capability::CAP_SYS_ADMIN, Capability::CAP_SYS_CHROOT]
        );
        assert_eq!(
            required_caps(Op::Enter, NsType::NET),
            [Capability::CAP_SYS_ADMIN]
        );
    }
}
