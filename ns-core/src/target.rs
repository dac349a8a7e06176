//! [`Target`]: a pinned process whose namespaces can be entered without PID-reuse races.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use caps::{CapSet, Capability};

use crate::error::{Context, Error, Op, Result, Subject, ThreadRule};
use crate::namespace::{check_thread_rules, enter_error, fs_sharing, FsSharing};
use crate::{Namespace, NsType};

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

/// How [`Target::enter_with`] enters several namespaces.
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
    /// A namespace file descriptor or a pidfd, kept open by the [`Target`].
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

/// The `setns` calls that enter a set of a [`Target`]'s namespaces, prepared in advance.
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
    _target: PhantomData<&'t Target>,
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

    fn empty(types: NsType, via_pidfd: bool) -> EntryPlan<'t> {
        EntryPlan {
            steps: [EntryStep { fd: -1, nstype: 0 }; 8],
            len: 0,
            types,
            via_pidfd,
            _target: PhantomData,
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

    fn push(&mut self, fd: RawFd, nstype: libc::c_int) {
        if let Some(slot) = self.steps.get_mut(self.len) {
            *slot = EntryStep { fd, nstype };
            self.len += 1;
        }
    }

    /// Makes the `setns` calls in order and stops at the first failure.
    ///
    /// This function is async-signal-safe: it allocates nothing, takes no locks and cannot
    /// panic, so it may run between `fork`/`clone` and `execve`/`_exit`. It neither checks
    /// thread rules nor undoes earlier steps on failure; [`Target::enter`] does both.
    pub fn enter_raw(&self) -> std::result::Result<(), EntryFailure> {
        for (step, s) in self.steps().iter().enumerate() {
            // SAFETY: the descriptor belongs to the Target this plan borrows, which keeps it
            // open for the plan's lifetime (or, in a forked child, the copy of it).
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
    pidfd: OwnedFd,
    namespaces: Vec<Namespace>,
    types: NsType,
}

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
        crate::check_types(types, context)?;
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
        crate::check_types(types, context)?;
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
            pidfd,
            namespaces,
            types,
        })
    }

    /// A second handle to the same process and namespaces (every descriptor duplicated).
    ///
    /// # Errors
    /// [`Error::Os`] when the process is out of file descriptors.
    pub fn try_clone(&self) -> Result<Target> {
        let pidfd = self
            .pidfd
            .try_clone()
            .map_err(|e| Error::os(self.context(Op::Pin, self.types), e))?;
        let namespaces = self
            .namespaces
            .iter()
            .map(Namespace::try_clone)
            .collect::<Result<Vec<_>>>()?;
        Ok(Target {
            pid: self.pid,
            pidfd,
            namespaces,
            types: self.types,
        })
    }

    /// The process's PID in the caller's PID namespace.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// The pidfd that pins the process.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The namespace types that were opened when the process was pinned.
    pub fn types(&self) -> NsType {
        self.types
    }

    /// The pinned namespace of one type, if it was opened.
    pub fn namespace(&self, ns_type: NsType) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| n.ns_type() == ns_type)
    }

    /// The pinned namespaces, in [`NsType`]'s listing order.
    pub fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    /// Whether the process still exists (it may be a zombie): `pidfd_send_signal(pidfd, 0)`.
    pub fn is_alive(&self) -> bool {
        ns_sys::pidfd_send_signal(self.pidfd.as_fd(), 0).is_ok()
    }

    fn context(&self, op: Op, types: NsType) -> Context {
        Context::new(op, types, Subject::Pid(self.pid))
    }

    /// Prepares the `setns` calls that enter `types` of this target's namespaces.
    ///
    /// The user namespace is dropped from the set when the target shares the caller's (the
    /// kernel refuses to "enter" one's own user namespace). With
    /// [`EntryStrategy::PerNamespace`] the steps follow [`ENTRY_ORDER`] with the user
    /// namespace placed by [`UserOrder::for_caller`].
    ///
    /// # Errors
    /// [`Error::Invalid`] when `types` holds a type that was not pinned;
    /// [`Error::Unsupported`] for [`EntryStrategy::Pidfd`] before Linux 5.8.
    pub fn plan(&self, types: NsType, strategy: EntryStrategy) -> Result<EntryPlan<'_>> {
        crate::check_types(types, || self.context(Op::Enter, types))?;
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
            plan.push(self.pidfd.as_raw_fd(), types.bits());
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

/// [`ENTRY_ORDER`] with the user namespace first or last.
fn entry_order(user: UserOrder) -> impl Iterator<Item = NsType> {
    let first = (user == UserOrder::First).then_some(NsType::USER);
    let last = (user == UserOrder::Last).then_some(NsType::USER);
    first.into_iter().chain(ENTRY_ORDER).chain(last)
}

/// Whether `setns(2)` takes a pidfd here (Linux 5.8), asked once per process by trying it:
/// a short-lived thread enters its own UTS namespace through a pidfd of the caller, which
/// changes nothing. `EINVAL` (a pidfd is no namespace file) means no; success, or `EPERM`
/// for a caller without `CAP_SYS_ADMIN`, means yes.
pub fn pidfd_setns_supported() -> bool {
    // Cached without a lock (0 unknown, 1 yes, 2 no): a lock held by another thread at the
    // moment of a `fork` would stay held forever in the child. Threads that ask at once may
    // each probe; they get the same answer.
    static ANSWER: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    match ANSWER.load(std::sync::atomic::Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let yes = (|| {
        // A failure to ask (out of descriptors or threads) is not kept.
        let pidfd = ns_sys::pidfd_open(std::process::id() as libc::pid_t, 0).ok()?;
        let probe = move || match ns_sys::setns(pidfd.as_fd(), libc::CLONE_NEWUTS) {
            Ok(()) => true,
            Err(e) => e.raw_os_error() == Some(libc::EPERM),
        };
        // On a thread of its own: whatever the call does stays with that thread.
        std::thread::Builder::new()
            .name("ns-probe".to_owned())
            .spawn(probe)
            .ok()
            .and_then(|t| t.join().ok())
    })();
    match yes {
        Some(yes) => {
            ANSWER.store(
                if yes { 1 } else { 2 },
                std::sync::atomic::Ordering::Relaxed,
            );
            yes
        }
        None => false,
    }
}

/// Whether `/proc` shows the caller's own PID namespace (`/proc/self` names the caller).
fn proc_is_own() -> bool {
    std::fs::read_link("/proc/self")
        .map(|own| own.to_str() == Some(std::process::id().to_string().as_str()))
        .unwrap_or(false)
}

/// The PID behind a pidfd, as seen from the caller's PID namespace: -1 once the process has
/// been reaped, 0 when it lives outside the caller's PID namespace.
///
/// Asks the pidfd itself (`PIDFD_GET_INFO`, Linux 6.13), which answers in the caller's PID
/// namespace. Older kernels: the `Pid:` line of `/proc/self/fdinfo/FD` (Linux 5.3), which
/// answers in the PID namespace of the `/proc` mount; that is checked to be the caller's
/// (`/proc/self` must name the caller), else the error is `EXDEV`.
///
/// # Errors
/// `EBADF` when the descriptor is no pidfd; `EXDEV` as above; those of reading `/proc`.
pub fn pidfd_pid(pidfd: BorrowedFd<'_>) -> io::Result<libc::pid_t> {
    let mut info = ns_sys::pidfd_info {
        mask: ns_sys::pidfd::PIDFD_INFO_PID,
        ..Default::default()
    };
    match ns_sys::pidfd::pidfd_get_info(pidfd, &mut info) {
        Ok(()) if info.mask & ns_sys::pidfd::PIDFD_INFO_PID != 0 => return Ok(info.tgid as i32),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(-1),
        _ => {}
    }
    if !proc_is_own() {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
}
