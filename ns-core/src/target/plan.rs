//! The order of entry ([`ENTRY_ORDER`], [`UserOrder`], [`EntryStrategy`]) and
//! [`EntryPlan`]: the `setns` calls that enter several namespaces, prepared in advance as
//! plain data.
//!
//! [`EntryPlan::enter_raw`] may run between `fork`/`clone` and `execve`/`_exit`, so it
//! allocates nothing, takes no locks and cannot panic. A plan borrows descriptors, not a
//! [`Target`](crate::Target): this file does not know that type.

use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use caps::{CapSet, Capability};

use crate::error::{Error, Op, Result};
use crate::namespace::Namespace;
use crate::ns_type::NsType;

/// The order in which per-namespace entry moves the caller, after or before the user
/// namespace (see [`UserOrder`]). It is util-linux `nsenter`'s order: mnt comes late because
/// it changes the root and working directory, time last because it moves the whole process.
pub const ENTRY_ORDER: [NsType; 7] = [
    NsType::CGROUP,
    NsType::IPC,
    NsType::UTS,
    NsType::NET,
    NsType::PID,
    NsType::MNT,
    NsType::TIME,
];

/// How [`Target::enter_with`](crate::Target::enter_with) enters several namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EntryStrategy {
    /// [`EntryStrategy::Pidfd`] where the kernel has it (Linux 5.8), else
    /// [`EntryStrategy::PerNamespace`]. The kernel's pidfd entry installs the user namespace
    /// first and checks the other types against the credentials it grants, so it needs no
    /// ordering of its own (a rootless caller entering its container, and root entering a
    /// user namespace together with namespaces owned by the initial one, both work).
    #[default]
    Auto,
    /// One `setns(pidfd, flags)` (Linux 5.8): all namespaces or none.
    Pidfd,
    /// One `setns(fd, type)` per namespace file opened when the target was pinned, in the
    /// order of [`ENTRY_ORDER`], with the user namespace placed by [`UserOrder`]. If a step
    /// fails, the steps already taken are undone in reverse order. This is the path for
    /// kernels before 5.8; forcing it lets tests cover it on newer kernels.
    PerNamespace,
}

/// Where per-namespace entry puts the user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserOrder {
    /// First: the caller lacks `CAP_SYS_ADMIN`, and entering the user namespace is what
    /// grants it the privilege to enter the others (a rootless container).
    First,
    /// Last: the caller has `CAP_SYS_ADMIN` in its own user namespace, which covers every
    /// namespace below it; entering the user namespace first would drop that privilege.
    Last,
}

impl UserOrder {
    /// The order for the calling thread, from its effective capabilities.
    pub fn for_caller() -> UserOrder {
        if caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).unwrap_or(false) {
            UserOrder::Last
        } else {
            UserOrder::First
        }
    }
}

/// One `setns` call of an [`EntryPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryStep {
    /// A namespace file descriptor or a pidfd, kept open by the [`Target`](crate::Target).
    pub fd: RawFd,
    /// The `nstype` argument: one `CLONE_NEW*` flag, or several for a pidfd.
    pub nstype: libc::c_int,
}

/// Why [`EntryPlan::enter_raw`] stopped: which step, and the kernel's `errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFailure {
    /// Index of the failed step; steps before it succeeded.
    pub step: usize,
    /// The failed step's `nstype`.
    pub nstype: libc::c_int,
    /// The kernel's `errno`.
    pub errno: i32,
}

/// The `setns` calls that enter a set of a [`Target`](crate::Target)'s namespaces, prepared
/// in advance.
///
/// A plan is plain data (at most eight steps, no heap) that borrows the target's file
/// descriptors, so it can be made before `fork`/`clone` and carried out in the child with
/// [`EntryPlan::enter_raw`], which only makes `setns` system calls.
#[derive(Debug, Clone, Copy)]
pub struct EntryPlan<'t> {
    steps: [EntryStep; 8],
    len: usize,
    types: NsType,
    via_pidfd: bool,
    _fds: PhantomData<BorrowedFd<'t>>,
}

impl<'t> EntryPlan<'t> {
    /// Prepares the `setns` calls that enter each of `namespaces`, in [`ENTRY_ORDER`] with the
    /// user namespace placed by [`UserOrder::for_caller`]. A user namespace that is the
    /// caller's own is left out.
    ///
    /// # Errors
    /// [`Error::Invalid`] when two handles have the same type.
    pub fn from_namespaces(namespaces: &[&'t Namespace]) -> Result<EntryPlan<'t>> {
        let mut types = NsType::empty();
        for ns in namespaces {
            if types.contains(ns.ns_type()) {
                return Err(Error::Invalid {
                    context: ns.context(Op::Enter),
                    reason: "two namespaces of the same type were given".to_owned(),
                });
            }
            types |= ns.ns_type();
        }
        if let Some(user) = namespaces.iter().find(|n| n.ns_type() == NsType::USER) {
            if user.is_current_user_ns()? {
                types.remove(NsType::USER);
            }
        }
        let mut plan = EntryPlan::empty(types, false);
        for t in entry_order(UserOrder::for_caller()) {
            if !types.contains(t) {
                continue;
            }
            if let Some(ns) = namespaces.iter().find(|n| n.ns_type() == t) {
                plan.push(ns.as_raw_fd(), t.bits());
            }
        }
        Ok(plan)
    }

    pub(super) fn empty(types: NsType, via_pidfd: bool) -> EntryPlan<'t> {
        EntryPlan {
            steps: [EntryStep { fd: -1, nstype: 0 }; 8],
            len: 0,
            types,
            via_pidfd,
            _fds: PhantomData,
        }
    }

    /// The calls, in order.
    pub fn steps(&self) -> &[EntryStep] {
        // `len` never exceeds the array's length (see `push`).
        self.steps.get(..self.len).unwrap_or(&[])
    }

    /// The namespace types the plan enters. The user namespace is left out when the target
    /// shares the caller's.
    pub fn types(&self) -> NsType {
        self.types
    }

    /// Whether the plan is one `setns(pidfd, flags)` call.
    pub fn uses_pidfd(&self) -> bool {
        self.via_pidfd
    }

    pub(super) fn push(&mut self, fd: RawFd, nstype: libc::c_int) {
        if let Some(slot) = self.steps.get_mut(self.len) {
            *slot = EntryStep { fd, nstype };
            self.len += 1;
        }
    }

    /// Makes the `setns` calls in order and stops at the first failure.
    ///
    /// This function is async-signal-safe: it allocates nothing, takes no locks and cannot
    /// panic, so it may run between `fork`/`clone` and `execve`/`_exit`. It neither checks
    /// thread rules nor undoes earlier steps on failure; [`Target::enter`](crate::Target::enter)
    /// does both.
    pub fn enter_raw(&self) -> std::result::Result<(), EntryFailure> {
        for (step, s) in self.steps().iter().enumerate() {
            // SAFETY: the descriptor belongs to the Target (or the handles) this plan borrows,
            // which keeps it open for the plan's lifetime (or, in a forked child, the copy of it).
            let fd = unsafe { BorrowedFd::borrow_raw(s.fd) };
            if let Err(e) = ns_sys::setns(fd, s.nstype) {
                return Err(EntryFailure {
                    step,
                    nstype: s.nstype,
                    errno: e.raw_os_error().unwrap_or(libc::EINVAL),
                });
            }
        }
        Ok(())
    }
}

/// [`ENTRY_ORDER`] with the user namespace first or last.
pub(super) fn entry_order(user: UserOrder) -> impl Iterator<Item = NsType> {
    let first = (user == UserOrder::First).then_some(NsType::USER);
    let last = (user == UserOrder::Last).then_some(NsType::USER);
    first.into_iter().chain(ENTRY_ORDER).chain(last)
}
