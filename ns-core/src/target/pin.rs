//! Pinning a process: [`Target::pin`], [`Target::from_pidfd`] and [`Target::try_clone`].
//!
//! The pidfd is opened first, then the namespace files, then the pidfd is asked whether the
//! process still lives; only then do the files surely belong to it. Nothing here enters a
//! namespace.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::pidfd::{pidfd_pid, proc_is_own};
use std::sync::Arc;

use super::{Pinned, Target};
use crate::error::{Context, Error, Op, Result, Subject};
use crate::names::check_types;
use crate::namespace::Namespace;
use crate::ns_type::NsType;

impl Target {
    /// Pins process `pid` and opens its `types` namespaces.
    ///
    /// # Errors
    /// - [`Error::UnknownFlags`] when `types` holds bits that are no namespace type.
    /// - [`Error::ProcessGone`] when there is no such process, or it exits before the check.
    /// - [`Error::Unsupported`] when the kernel lacks `pidfd_open` (Linux 5.3) or a type.
    /// - [`Error::Os`] otherwise (`EACCES`/`EPERM` for a process the caller may not inspect).
    pub fn pin(pid: libc::pid_t, types: NsType) -> Result<Target> {
        let context = || Context::new(Op::Pin, types, Subject::Pid(pid));
        check_types(types, context)?;
        if pid <= 0 {
            return Err(Error::Invalid {
                context: context(),
                reason: format!("{pid} is not a process id"),
            });
        }
        let pidfd = ns_sys::pidfd_open(pid, 0).map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => Error::ProcessGone { context: context() },
            Some(libc::ENOSYS) => Error::Unsupported {
                context: context(),
                needs: "pidfd_open needs Linux 5.3".to_owned(),
            },
            _ => Error::os(context(), e),
        })?;
        Target::pin_open(pid, pidfd, types)
    }

    /// Pins the process behind an existing pidfd and opens its `types` namespaces.
    ///
    /// This is the race-free way in when the caller already holds a pidfd (from
    /// `CLONE_PIDFD` or `pidfd_open`): its PID is read from `/proc/self/fdinfo`.
    ///
    /// # Errors
    /// [`Error::ProcessGone`] when the process has been reaped; [`Error::Invalid`] when it
    /// lives outside the caller's PID namespace or `pidfd` is no pidfd; as [`Target::pin`].
    pub fn from_pidfd(pidfd: OwnedFd, types: NsType) -> Result<Target> {
        let context = || Context::new(Op::Pin, types, Subject::Fd(pidfd.as_raw_fd()));
        check_types(types, context)?;
        let pid = pidfd_pid(pidfd.as_fd()).map_err(|e| Error::os(context(), e))?;
        match pid {
            -1 => Err(Error::ProcessGone { context: context() }),
            0 => Err(Error::Invalid {
                context: context(),
                reason: "the process lives outside the caller's pid namespace".to_owned(),
            }),
            pid => Target::pin_open(pid, pidfd, types),
        }
    }

    fn pin_open(pid: libc::pid_t, pidfd: OwnedFd, types: NsType) -> Result<Target> {
        let context = || Context::new(Op::Pin, types, Subject::Pid(pid));
        if !types.is_empty() && !proc_is_own() {
            return Err(Error::Invalid {
                context: context(),
                reason: "the /proc mounted here belongs to another pid namespace, so \
                         /proc/PID would name another process; mount a /proc of the \
                         caller's pid namespace"
                    .to_owned(),
            });
        }
        let mut namespaces = Vec::with_capacity(types.iter().count());
        for t in types.iter() {
            namespaces.push(Namespace::of_pid(pid, t)?);
        }
        // The files are the pinned process's only if it is still alive now.
        ns_sys::pidfd_send_signal(pidfd.as_fd(), 0).map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => Error::ProcessGone { context: context() },
            _ => Error::os(context(), e),
        })?;
        Ok(Target {
            pid,
            pinned: Arc::new(Pinned { pidfd, namespaces }),
            types,
        })
    }

    /// A second handle to the same process and namespaces. The pinned descriptors are
    /// shared, not duplicated (they never change once pinned): no system call, and the
    /// clone keeps them open as long as it lives.
    ///
    /// # Errors
    /// None today; the `Result` is kept for handles that may one day need to reopen.
    pub fn try_clone(&self) -> Result<Target> {
        Ok(Target {
            pid: self.pid,
            pinned: Arc::clone(&self.pinned),
            types: self.types,
        })
    }
}
