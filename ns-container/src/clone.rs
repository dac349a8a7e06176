//! Mesos's `ns::clone`: run a closure in a new process inside a target's namespaces.

use ns_core::{NsType, Subject, Target};

use crate::command::NsCommand;
use crate::error::Result;
use crate::process::Child;

/// Mesos `ns::clone(target, nstypes, f, flags)`: enters the `nstypes` namespaces of process
/// `target`, then creates a process in new namespaces `flags` that runs `f` and exits with
/// its return value (`_exit(f())`; only the low 8 bits reach the parent).
///
/// The target is pinned first ([`Target::pin`]), so a recycled PID is never entered. With an
/// empty `nstypes` the target is ignored and no intermediate process is made. The returned
/// [`Child`] is the caller's own child, whatever namespaces it is in; its
/// [`pid`](Child::pid) is as seen from the caller's PID namespace.
///
/// Beyond Mesos: user namespaces can be entered (first when that grants privilege, last when
/// it drops it) and created, every type including time and cgroup works, there is no second
/// fork unless a target's PID namespace is entered *and* a new one created inside it, the
/// child is waitable and never an orphan, and failures in the child processes come back as
/// typed errors naming the step and errno.
///
/// Memory: the child running `f` always has its own copy of the caller's memory (as after
/// `fork`), since it runs arbitrary code. Entering a target's user namespace is done by an
/// intermediate with its own copy too, never by one sharing the caller's memory (the kernel
/// would allow it, but the container's root could then write into the caller through
/// `/proc/PID/mem`); that copy is made non-dumpable first, so the container's root cannot
/// read it either, and the child inherits that: call `prctl(PR_SET_DUMPABLE, 1)` in `f` if
/// it must be inspectable by the caller's user. Entering a time namespace also needs a copy
/// (the kernel refuses it to a process sharing its memory, `EUSERS`).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // Skipped without privilege, except under `cargo xtask test-root` (NS_TEST_ROOT).
/// # if std::env::var_os("NS_TEST_ROOT").is_none() && !ns_core::caps::has_cap(None,
/// #     ns_core::caps::CapSet::Effective, ns_core::caps::Capability::CAP_SYS_ADMIN)
/// #     .unwrap_or(false) { return Ok(()); }
/// use ns_container::clone;
/// use ns_core::NsType;
///
/// let target = std::process::id() as libc::pid_t;
/// // SAFETY: the closure makes one system call on data it owns.
/// let mut child = unsafe {
///     clone(target, NsType::UTS, || {
///         let name = b"in-clone";
///         libc::sethostname(name.as_ptr().cast(), name.len()) // a new UTS namespace: ours is untouched
///     }, NsType::UTS)
/// }?;
/// assert_eq!(child.wait()?.code(), Some(0));
/// # Ok(())
/// # }
/// ```
///
/// # Safety
/// `f` runs in a child process that is a copy of the caller made by `clone3`, like `fork`.
/// If the caller has other threads, the child is a copy of a multithreaded program with
/// only one thread in it: locks held by the other threads at the moment of the clone (the
/// allocator's with some allocators, stdout's, the environment's, any `Mutex`) stay locked
/// forever in the child. `f` must therefore only do what is allowed after `fork` in a
/// multithreaded program, as for `std::os::unix::process::CommandExt::pre_exec`: use
/// async-signal-safe functions (`signal-safety(7)`) and the data it captured, then return
/// or `exec`. When the caller is single-threaded, `f` may do anything a forked child may.
///
/// The child exits with `_exit` as soon as `f` returns: no destructor runs in it, not even
/// those of what `f` captured (`f` is called through a reference and then forgotten, which
/// is why it is `FnMut`), nor `atexit` handlers, nor std's stdout flush. Destructors free
/// memory and take locks that another thread of the caller may have held at the moment of
/// the clone, which would hang the child. Values `f` creates itself are dropped when they go
/// out of scope as usual: keep them to what is allowed after fork, or `mem::forget` them.
/// A panic in `f` never unwinds into the copied frames of the caller: it is caught and the
/// child exits with status 101 (unwinding and printing the panic message allocate and take
/// locks, see above, so do not rely on it in a multithreaded caller).
///
/// # Errors
/// As [`NsCommand::spawn`](crate::NsCommand::spawn), plus [`ns_core::Error`]s from pinning
/// the target ([`Error::Core`](crate::Error::Core)).
pub unsafe fn clone<F>(target: libc::pid_t, nstypes: NsType, f: F, flags: NsType) -> Result<Child>
where
    F: FnMut() -> i32,
{
    let context = |types| ns_core::Context::new(ns_core::Op::Enter, types, Subject::Pid(target));
    ns_core::check_types(nstypes, || context(nstypes))?;
    ns_core::check_types(flags, || {
        ns_core::Context::new(ns_core::Op::Create, flags, Subject::None)
    })?;
    if nstypes.is_empty() {
        // SAFETY: forwarded from the caller.
        return unsafe { clone_in(None, NsType::empty(), f, flags) };
    }
    let pinned = Target::pin(target, nstypes)?;
    // SAFETY: forwarded from the caller.
    unsafe { clone_in(Some(&pinned), nstypes, f, flags) }
}

/// [`clone()`] with an already pinned target (or none), for callers that hold a [`Target`].
///
/// # Safety
/// As for [`clone()`].
///
/// # Errors
/// As for [`clone()`].
pub unsafe fn clone_in<F>(
    target: Option<&Target>,
    nstypes: NsType,
    f: F,
    flags: NsType,
) -> Result<Child>
where
    F: FnMut() -> i32,
{
    ns_core::check_types(nstypes, || {
        ns_core::Context::new(ns_core::Op::Enter, nstypes, Subject::None)
    })?;
    let mut command = NsCommand::new("a closure");
    if let Some(t) = target.filter(|_| !nstypes.is_empty()) {
        command.enter(t, nstypes);
    }
    command.unshare(flags);
    // SAFETY: forwarded from the caller.
    unsafe { command.spawn_fn(f) }
}
