//! The one error type of this crate.
//!
//! Every message names the operation, the namespace, the target and the cause, for example
//! `entering net namespace of pid 4242: operation not permitted (EPERM; missing CAP_SYS_ADMIN)`.
//! The structured parts are public fields, so callers can match on them instead of on text.
//!
//! `mod.rs` holds the enum [`Error`] and its conversions; `context.rs` what an error is about
//! (the first half of a message), `cause.rs` the words for why it failed (the second half).
//! Neither of those two builds an `Error`, so the arrows go from here down to them only.

mod cause;
mod context;

use std::io;

use caps::Capability;

pub use cause::{describe_errno, ThreadRule};
pub use context::{Context, Op, Subject};

use crate::ns_type::NsType;
use cause::{describe_os, missing_caps, required_caps};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error of `ns-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string that names no namespace type.
    #[error(
        "parsing namespace type {input:?}: unknown name (expected one of mnt, uts, ipc, pid, \
         net, user, cgroup, time or a CLONE_NEW* flag name)"
    )]
    UnknownType {
        /// The word that was not understood.
        input: String,
    },

    /// A set of types holds bits that are no namespace type (see `NsType::unknown_bits`);
    /// nothing was done.
    #[error(
        "{context}: {bits:#x} is not a namespace type (only the eight CLONE_NEW* flags are; \
         other CLONE_* flags would change the calling process)"
    )]
    UnknownFlags {
        /// What was being done.
        context: Context,
        /// The offending bits.
        bits: libc::c_int,
    },

    /// An operation that takes exactly one type got none or several.
    #[error("{context}: expected exactly one namespace type, got {}", show_set(*types))]
    NotOneType {
        /// What was being done.
        context: Context,
        /// The set that was passed.
        types: NsType,
    },

    /// The running kernel lacks the namespace type or the operation.
    #[error("{context}: not supported by this kernel ({needs})")]
    Unsupported {
        /// What was being done.
        context: Context,
        /// What the operation needs, e.g. `NS_GET_PID_IN_PIDNS needs Linux 6.11`.
        needs: String,
    },

    /// `check_multithreaded` was set and the calling process has several threads.
    #[error(
        "{context}: refused because the calling process has {threads} threads \
         (check_multithreaded was set)"
    )]
    Multithreaded {
        /// What was being done.
        context: Context,
        /// Threads of the calling process.
        threads: usize,
    },

    /// A kernel thread rule forbids the entry (see [`ThreadRule`]).
    #[error("{context}: {rule}")]
    ThreadRule {
        /// What was being done.
        context: Context,
        /// The rule.
        rule: ThreadRule,
    },

    /// The Mesos-style `setns` was asked to enter a PID namespace.
    #[error(
        "{context}: setns(2) into a pid namespace moves only the caller's future children, \
         never the caller, so this function refuses it; use Namespace::enter or Target::enter \
         and fork, or ns_container::clone"
    )]
    PidNamespace {
        /// What was being done.
        context: Context,
    },

    /// The file is not a namespace file.
    #[error("{context}: not a namespace file (filesystem magic {fs_type:#x}, nsfs is 0x6e736673)")]
    NotNamespace {
        /// What was being done; its `ns` is the type that was expected, if any.
        context: Context,
        /// `f_type` of the file's filesystem.
        fs_type: i64,
    },

    /// The namespace file is of another type than the one asked for.
    #[error("{context}: the file is a {} namespace", show_set(*found))]
    WrongType {
        /// What was being done; its `ns` is the expected type.
        context: Context,
        /// The file's actual type.
        found: NsType,
    },

    /// The process does not exist any more (or never did), or it has exited and is a zombie
    /// whose namespaces are gone.
    #[error("{context}: the process does not exist or has exited")]
    ProcessGone {
        /// What was being done.
        context: Context,
    },

    /// The request makes no sense for this namespace or state.
    #[error("{context}: {reason}")]
    Invalid {
        /// What was being done.
        context: Context,
        /// Why it was refused.
        reason: String,
    },

    /// A system call failed. The message ends with the kernel's error, so it is not also
    /// reported as `source()` (which would print it twice in an error chain).
    #[error("{context}: {}", describe_os(cause, Some(missing_caps)))]
    Os {
        /// What was being done.
        context: Context,
        /// The kernel's error.
        cause: io::Error,
        /// For permission errors: capabilities the operation needs that the caller's effective
        /// set lacks (empty when it has them all, which means the namespace belongs to a user
        /// namespace where the caller holds none).
        missing_caps: Vec<Capability>,
    },

    /// Entering failed half-way and moving back failed too: the calling thread is now in a
    /// mix of namespaces and must not be reused for namespace-sensitive work.
    #[error("{context}: {error}; moving back failed too ({restore}), so the calling thread is left in unknown namespaces")]
    RestoreFailed {
        /// What was being done.
        context: Context,
        /// The error that stopped the entry.
        error: Box<Error>,
        /// The error of the attempt to move back.
        restore: Box<Error>,
    },
}

fn show_set(set: NsType) -> String {
    if set.is_empty() {
        "no type".to_owned()
    } else {
        set.to_string()
    }
}

impl Error {
    /// Builds [`Error::Os`] from an `io::Error`, working out which capabilities are missing
    /// when the kernel said `EPERM`.
    pub fn os(context: Context, cause: io::Error) -> Error {
        let missing_caps = if cause.raw_os_error() == Some(libc::EPERM) {
            missing_caps(required_caps(context.op, context.ns))
        } else {
            Vec::new()
        };
        Error::Os {
            context,
            cause,
            missing_caps,
        }
    }

    /// The error for a failed `setns` of `types` (from `subject`'s namespaces), as
    /// [`Namespace::enter`](crate::Namespace::enter) reports it: `ESRCH` becomes
    /// [`Error::ProcessGone`], `EINVAL` for a PID namespace [`Error::Invalid`], and `EPERM`
    /// lists the capabilities the caller lacks. For a failure in another process, such as a
    /// child that entered namespaces on the caller's behalf.
    pub fn entering(errno: i32, types: NsType, subject: Subject) -> Error {
        let context = Context::new(Op::Enter, types, subject);
        match errno {
            libc::ESRCH => Error::ProcessGone { context },
            libc::EINVAL if types == NsType::PID => Error::Invalid {
                context,
                reason: "the pid namespace is neither the caller's own nor a descendant of it \
                         (EINVAL)"
                    .to_owned(),
            },
            _ => Error::os(context, io::Error::from_raw_os_error(errno)),
        }
    }

    /// The context of the error, when it has one.
    pub fn context(&self) -> Option<&Context> {
        match self {
            Error::UnknownType { .. } => None,
            Error::UnknownFlags { context, .. } => Some(context),
            Error::NotOneType { context, .. }
            | Error::Unsupported { context, .. }
            | Error::Multithreaded { context, .. }
            | Error::ThreadRule { context, .. }
            | Error::PidNamespace { context }
            | Error::NotNamespace { context, .. }
            | Error::WrongType { context, .. }
            | Error::ProcessGone { context }
            | Error::Invalid { context, .. }
            | Error::Os { context, .. }
            | Error::RestoreFailed { context, .. } => Some(context),
        }
    }

    /// The `errno` behind the error, if a system call failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { cause, .. } => cause.raw_os_error(),
            Error::RestoreFailed { error, .. } => error.raw_os_error(),
            _ => None,
        }
    }
}

/// As an `io::Error`: an error from a system call becomes that `errno`
/// (`from_raw_os_error`: its `kind()` and `raw_os_error()` kept, the message is the system's),
/// any other keeps its message and gets the matching kind (`NotFound` for a process that is
/// gone, `Unsupported`, `InvalidInput` for a request that makes no sense).
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        if let Some(code) = e.raw_os_error() {
            return io::Error::from_raw_os_error(code);
        }
        let kind = match &e {
            Error::ProcessGone { .. } => io::ErrorKind::NotFound,
            Error::Unsupported { .. } => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_operation_namespace_target_and_cause() {
        let err = Error::Os {
            context: Context::new(Op::Enter, NsType::NET, Subject::Pid(4242)),
            cause: io::Error::from_raw_os_error(libc::EPERM),
            missing_caps: vec![Capability::CAP_SYS_ADMIN],
        };
        assert_eq!(
            err.to_string(),
            "entering net namespace of pid 4242: operation not permitted \
             (EPERM; missing CAP_SYS_ADMIN)"
        );
    }

    #[test]
    fn message_for_a_path_and_several_types() {
        let ctx = Context::new(
            Op::Open,
            NsType::NET | NsType::UTS,
            Subject::Path("/x".into()),
        );
        let err = Error::os(ctx, io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            err.to_string(),
            "opening uts, net namespaces at /x: no such file or directory (ENOENT)"
        );
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn permission_error_without_missing_caps_blames_the_owner() {
        let err = Error::Os {
            context: Context::new(Op::Enter, NsType::UTS, Subject::CallingThread),
            cause: io::Error::from_raw_os_error(libc::EPERM),
            missing_caps: vec![],
        };
        assert!(
            err.to_string()
                .contains("user namespace that owns the target"),
            "{err}"
        );
    }
}
