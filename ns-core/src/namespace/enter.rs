//! [`Namespace::enter`]: `setns(2)` of the calling thread into one namespace.
//!
//! The thread rules are checked before the call and read back from its errors by
//! `thread_rules.rs`; nothing here enters more than one namespace (that is
//! [`Target`](crate::Target)'s job).

use std::os::fd::AsFd;

use super::Namespace;
use crate::error::{Op, Result};
use crate::ns_type::NsType;
use crate::thread_rules::{check_thread_rules, enter_error};

impl Namespace {
    /// Moves the calling thread into this namespace with `setns(2)`.
    ///
    /// What moves depends on the type (see the guide's table): for net, uts, ipc, cgroup and
    /// mnt only the calling thread; for PID only the thread's future children
    /// (`pid_for_children`); for user and time the whole (necessarily single-threaded)
    /// process. Entering the user namespace the caller is already in does nothing (the kernel
    /// would refuse it with `EINVAL`). Entering a mount namespace sets the thread's root and
    /// working directory to that namespace's root.
    ///
    /// # Errors
    /// - [`Error::ThreadRule`] when the kernel's thread rules forbid it: a user or time
    ///   namespace from a multithreaded process, a mount namespace from a thread that shares
    ///   its filesystem state with other threads.
    /// - [`Error::Invalid`] for a PID namespace that is neither the caller's own nor below it.
    /// - [`Error::Os`] otherwise; `EPERM` lists the capabilities the caller lacks
    ///   (`CAP_SYS_ADMIN`, plus `CAP_SYS_CHROOT` for mnt).
    ///
    /// On error the thread's namespaces are unchanged.
    ///
    /// [`Error::ThreadRule`]: crate::Error::ThreadRule
    /// [`Error::Invalid`]: crate::Error::Invalid
    /// [`Error::Os`]: crate::Error::Os
    pub fn enter(&self) -> Result<()> {
        check_thread_rules(self.ns_type, || self.context(Op::Enter))?;
        if self.ns_type == NsType::USER && self.is_current_user_ns()? {
            return Ok(());
        }
        ns_sys::setns(self.as_fd(), self.ns_type.bits())
            .map_err(|e| enter_error(e, self.ns_type, self.context(Op::Enter)))
    }
}
