//! Entering a [`Target`]'s namespaces: [`Target::plan`], [`Target::enter`] and
//! [`Target::enter_with`].
//!
//! The thread rules are checked before anything moves; the pidfd strategy is one `setns`,
//! the per-namespace one takes the plan's steps in order and, if one fails, moves the thread
//! back through the namespaces it saved first.

use std::io;
use std::os::fd::AsRawFd;

use super::pidfd::pidfd_setns_supported;
use super::plan::{entry_order, EntryPlan, EntryStrategy, UserOrder};
use super::Target;
use crate::error::{Error, Op, Result, ThreadRule};
use crate::names::check_types;
use crate::namespace::Namespace;
use crate::ns_type::NsType;
use crate::thread_rules::{check_thread_rules, enter_error, fs_sharing, FsSharing};

impl Target {
    /// Prepares the `setns` calls that enter `types` of this target's namespaces.
    ///
    /// The user namespace is dropped from the set when the target shares the caller's (the
    /// kernel refuses to "enter" one's own user namespace). With
    /// [`EntryStrategy::PerNamespace`] the steps follow [`ENTRY_ORDER`](crate::ENTRY_ORDER)
    /// with the user namespace placed by [`UserOrder::for_caller`].
    ///
    /// # Errors
    /// [`Error::Invalid`] when `types` holds a type that was not pinned;
    /// [`Error::Unsupported`] for [`EntryStrategy::Pidfd`] before Linux 5.8.
    pub fn plan(&self, types: NsType, strategy: EntryStrategy) -> Result<EntryPlan<'_>> {
        check_types(types, || self.context(Op::Enter, types))?;
        if !self.types.contains(types) {
            return Err(Error::Invalid {
                context: self.context(Op::Enter, types),
                reason: format!(
                    "only {} were opened when the process was pinned",
                    self.types.describe()
                ),
            });
        }
        let mut types = types;
        if types.contains(NsType::USER) {
            let user = self
                .namespace(NsType::USER)
                .map(Namespace::is_current_user_ns);
            if let Some(shared) = user {
                if shared? {
                    types.remove(NsType::USER);
                }
            }
        }
        let via_pidfd = match strategy {
            EntryStrategy::Auto => pidfd_setns_supported(),
            EntryStrategy::PerNamespace => false,
            EntryStrategy::Pidfd if pidfd_setns_supported() => true,
            EntryStrategy::Pidfd => {
                return Err(Error::Unsupported {
                    context: self.context(Op::Enter, types),
                    needs: "setns(2) with a pidfd needs Linux 5.8".to_owned(),
                })
            }
        };
        let mut plan = EntryPlan::empty(types, via_pidfd);
        if types.is_empty() {
            return Ok(plan);
        }
        if via_pidfd {
            plan.push(self.pinned.pidfd.as_raw_fd(), types.bits());
            return Ok(plan);
        }
        for t in entry_order(UserOrder::for_caller()).filter(|t| types.contains(*t)) {
            if let Some(ns) = self.namespace(t) {
                plan.push(ns.as_raw_fd(), t.bits());
            }
        }
        Ok(plan)
    }

    /// Moves the calling thread into `types` of the target's namespaces, with
    /// [`EntryStrategy::Auto`].
    ///
    /// # Errors
    /// As [`Target::enter_with`].
    pub fn enter(&self, types: NsType) -> Result<()> {
        self.enter_with(types, EntryStrategy::Auto)
    }

    /// Moves the calling thread into `types` of the target's namespaces.
    ///
    /// What moves follows the per-type rules of [`Namespace::enter`]: a PID namespace is
    /// entered for the thread's future children only, so fork after this call to get a process
    /// inside it. On error the thread is back in the namespaces it started in, except as
    /// [`Error::RestoreFailed`] says.
    ///
    /// # Errors
    /// - [`Error::ThreadRule`] for user or time namespaces in a multithreaded process, and for
    ///   mnt from a thread that shares its filesystem state with other threads, all checked
    ///   before anything moves. (The kernel itself does not check the latter for
    ///   `setns(pidfd, CLONE_NEWNS | …)` and would move the root of every thread sharing it.)
    /// - [`Error::ProcessGone`] when the pidfd strategy finds the process gone.
    /// - [`Error::Os`] with the kernel's error, naming the namespace that failed.
    /// - [`Error::RestoreFailed`] when a per-namespace entry failed half-way and moving back
    ///   failed too (typically after the user namespace was entered, whose parent cannot be
    ///   re-entered without privilege there).
    pub fn enter_with(&self, types: NsType, strategy: EntryStrategy) -> Result<()> {
        let plan = self.plan(types, strategy)?;
        let types = plan.types();
        if types.is_empty() {
            return Ok(());
        }
        check_thread_rules(types, || self.context(Op::Enter, types))?;
        let mut via_pidfd = plan.uses_pidfd();
        if types.contains(NsType::MNT) {
            match fs_sharing().map_err(|e| Error::os(self.context(Op::Enter, types), e))? {
                FsSharing::Private => {}
                FsSharing::Shared(threads) => {
                    return Err(Error::ThreadRule {
                        context: self.context(Op::Enter, types),
                        rule: ThreadRule::MountNeedsUnsharedFs { threads },
                    })
                }
                // Without kcmp only the single-type setns(fd, CLONE_NEWNS) is checked by the
                // kernel, so take the per-namespace path.
                FsSharing::Unknown => via_pidfd = false,
            }
        }
        if via_pidfd {
            return plan.enter_raw().map_err(|f| {
                enter_error(
                    io::Error::from_raw_os_error(f.errno),
                    types,
                    self.context(Op::Enter, types),
                )
            });
        }
        self.enter_per_namespace(types)
    }

    fn enter_per_namespace(&self, types: NsType) -> Result<()> {
        let plan = self.plan(types, EntryStrategy::PerNamespace)?;
        // What to go back to if a step fails: the thread's current namespaces (for PID, the one
        // for its children), and its working directory, which entering mnt resets.
        let mut saved = Vec::with_capacity(plan.steps().len());
        for step in plan.steps() {
            let t = NsType::from_bits_truncate(step.nstype);
            saved.push(if t == NsType::PID {
                Namespace::for_children(t)?
            } else {
                Namespace::current(t)?
            });
        }
        let cwd = if types.contains(NsType::MNT) {
            std::fs::File::open(".").ok()
        } else {
            None
        };
        let Err(failure) = plan.enter_raw() else {
            return Ok(());
        };
        let failed = NsType::from_bits_truncate(failure.nstype);
        let error = enter_error(
            io::Error::from_raw_os_error(failure.errno),
            failed,
            self.context(Op::Enter, failed),
        );
        for ns in saved.iter().take(failure.step).rev() {
            if let Err(restore) = ns.enter() {
                return Err(Error::RestoreFailed {
                    context: self.context(Op::Enter, types),
                    error: Box::new(error),
                    restore: Box::new(restore),
                });
            }
        }
        if let Some(cwd) = cwd {
            // SAFETY: fchdir on a directory descriptor we own.
            unsafe { libc::fchdir(cwd.as_raw_fd()) };
        }
        Err(error)
    }
}
