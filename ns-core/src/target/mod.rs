//! [`Target`]: a pinned process whose namespaces can be entered without PID-reuse races.
//!
//! `mod.rs` holds the type and its accessors; the rest, in the order a caller meets it:
//!
//! | file | what it holds |
//! |---|---|
//! | `pin.rs` | pinning: pidfd first, then the namespace files, then the liveness check |
//! | `plan.rs` | the entry order ([`ENTRY_ORDER`], [`UserOrder`]) and [`EntryPlan`], the `setns` calls prepared as plain data that a forked child can carry out |
//! | `enter.rs` | [`Target::plan`] and entering: thread rules first, then the plan, and moving back when a per-namespace entry fails half-way |
//! | `pidfd.rs` | what the kernel's pidfds can do here: `setns` through one, the PID behind one |
//!
//! `plan.rs` and `pidfd.rs` know nothing of `Target` (a plan borrows plain descriptors), so
//! the arrows go from `pin.rs` and `enter.rs` down to them and to `mod.rs`, never back.

mod enter;
mod pidfd;
mod pin;
mod plan;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::error::{Context, Op, Subject};
use crate::namespace::Namespace;
use crate::ns_type::NsType;

pub use pidfd::{pidfd_pid, pidfd_setns_supported};
pub use plan::{EntryFailure, EntryPlan, EntryStep, EntryStrategy, UserOrder, ENTRY_ORDER};

/// A process pinned by a pidfd, with the namespace files it had when it was pinned.
///
/// Pinning opens a pidfd first, then the process's namespace files, and then checks that the
/// pidfd still refers to a live process. A PID cannot be reused while its process is alive or
/// a zombie, so if the check passes, the files belong to the process the pidfd refers to: a
/// recycled PID can never make this type enter a stranger's namespaces. Later,
/// [`EntryStrategy::Pidfd`] enters through the pidfd itself (the kernel refuses with `ESRCH`
/// once the process is gone), and [`EntryStrategy::PerNamespace`] enters through the files
/// opened at pin time, which keep those namespaces alive.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // Skipped without privilege, except under `cargo xtask test-root` (NS_TEST_ROOT).
/// # if std::env::var_os("NS_TEST_ROOT").is_none() && !ns_core::caps::has_cap(None,
/// #     ns_core::caps::CapSet::Effective, ns_core::caps::Capability::CAP_SYS_ADMIN)
/// #     .unwrap_or(false) { return Ok(()); }
/// use ns_core::{NsType, Target};
///
/// let mut sleeper = std::process::Command::new("sleep").arg("5").spawn()?;
/// // Pinned by pidfd: entering it later can never reach a process that reused the PID.
/// let target = Target::pin(sleeper.id() as libc::pid_t, NsType::NET | NsType::UTS)?;
/// assert!(target.is_alive());
/// std::thread::spawn(move || target.enter(NsType::NET | NsType::UTS)).join().unwrap()?;
/// sleeper.kill()?;
/// sleeper.wait()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Target {
    pid: libc::pid_t,
    /// Shared by every clone ([`Target::try_clone`]): nothing here changes once pinned.
    pinned: Arc<Pinned>,
    types: NsType,
}

/// What pinning opened: the pidfd and the namespaces.
#[derive(Debug)]
pub(super) struct Pinned {
    pub(super) pidfd: OwnedFd,
    pub(super) namespaces: Vec<Namespace>,
}

impl Target {
    /// The process's PID in the caller's PID namespace.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// The pidfd that pins the process.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pinned.pidfd.as_fd()
    }

    /// The namespace types that were opened when the process was pinned.
    pub fn types(&self) -> NsType {
        self.types
    }

    /// The pinned namespace of one type, if it was opened.
    pub fn namespace(&self, ns_type: NsType) -> Option<&Namespace> {
        self.pinned
            .namespaces
            .iter()
            .find(|n| n.ns_type() == ns_type)
    }

    /// The pinned namespaces, in [`NsType`]'s listing order.
    pub fn namespaces(&self) -> &[Namespace] {
        &self.pinned.namespaces
    }

    /// Whether the process still exists (it may be a zombie): `pidfd_send_signal(pidfd, 0)`.
    pub fn is_alive(&self) -> bool {
        ns_sys::pidfd_send_signal(self.pinned.pidfd.as_fd(), 0).is_ok()
    }

    fn context(&self, op: Op, types: NsType) -> Context {
        Context::new(op, types, Subject::Pid(self.pid))
    }
}
