//! Mesos's `ns::setns`, by path and by PID.

use std::path::Path;

use crate::error::{Context, Error, Op, Result, Subject};
use crate::kernel::single_supported;
use crate::namespace::Namespace;
use crate::ns_type::NsType;
use crate::sys;

/// Mesos `ns::setns(path, ns, checkMultithreaded)`: moves the calling thread into the
/// namespace file at `path`, which must be a namespace of type `ns_type`.
///
/// Goes further than Mesos: the file is opened and checked (nsfs, and of type `ns_type`)
/// before anything moves, and the kernel's thread rules come back as
/// [`Error::ThreadRule`] instead of a bare `EINVAL`/`EUSERS`.
///
/// With `check_multithreaded`, a process with more than one thread is refused, as Mesos
/// does, because its threads would end up in different namespaces. Without it, a thread of a
/// multithreaded process may enter net, uts, ipc and cgroup namespaces (and mnt, after
/// `unshare(CLONE_FS)`); user and time namespaces are refused by the kernel.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // Skipped without privilege, except under `cargo xtask test-root` (NS_TEST_ROOT).
/// # if std::env::var_os("NS_TEST_ROOT").is_none() && !ns_core::caps::has_cap(None,
/// #     ns_core::caps::CapSet::Effective, ns_core::caps::Capability::CAP_SYS_ADMIN)
/// #     .unwrap_or(false) { return Ok(()); }
/// use ns_core::{setns, NsType};
///
/// // setns moves the calling thread only: here a thread of its own, which joins the UTS
/// // namespace of this process's first thread (its own, so nothing changes).
/// let path = format!("/proc/{}/ns/uts", std::process::id());
/// std::thread::spawn(move || setns(path, NsType::UTS, false)).join().unwrap()?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// - [`Error::NotOneType`] unless `ns_type` is exactly one type.
/// - [`Error::Unsupported`] when the kernel lacks the type.
/// - [`Error::PidNamespace`] for a PID namespace: `setns` would move only the caller's future
///   children, which is what [`Namespace::enter`] and [`crate::Target::enter`] are for.
/// - [`Error::Multithreaded`] when `check_multithreaded` is set and the process has several
///   threads.
/// - Those of [`Namespace::open`] and [`Namespace::enter`].
///
/// On error the caller's namespaces are unchanged.
pub fn setns(path: impl AsRef<Path>, ns_type: NsType, check_multithreaded: bool) -> Result<()> {
    let path = path.as_ref();
    precheck(ns_type, check_multithreaded, Subject::Path(path.to_owned()))?;
    Namespace::open(path, ns_type)?.enter()
}

/// Mesos `ns::setns(pid, ns, checkMultithreaded)`: moves the calling thread into the
/// `ns_type` namespace of process `pid`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // Skipped without privilege, except under `cargo xtask test-root` (NS_TEST_ROOT).
/// # if std::env::var_os("NS_TEST_ROOT").is_none() && !ns_core::caps::has_cap(None,
/// #     ns_core::caps::CapSet::Effective, ns_core::caps::Capability::CAP_SYS_ADMIN)
/// #     .unwrap_or(false) { return Ok(()); }
/// use ns_core::{setns_pid, NsType};
///
/// let pid = std::process::id() as libc::pid_t;
/// std::thread::spawn(move || setns_pid(pid, NsType::NET, false))
///     .join()
///     .unwrap()?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As [`setns`], plus [`Error::ProcessGone`] when there is no process `pid` or it has
/// exited.
pub fn setns_pid(pid: libc::pid_t, ns_type: NsType, check_multithreaded: bool) -> Result<()> {
    precheck(ns_type, check_multithreaded, Subject::Pid(pid))?;
    Namespace::of_pid(pid, ns_type)?.enter()
}

fn precheck(ns_type: NsType, check_multithreaded: bool, subject: Subject) -> Result<()> {
    let context = || Context::new(Op::Enter, ns_type, subject.clone());
    single_supported(ns_type, context)?;
    if ns_type == NsType::PID {
        return Err(Error::PidNamespace { context: context() });
    }
    if check_multithreaded {
        let threads = sys::thread_count().map_err(|e| Error::os(context(), e))?;
        if threads > 1 {
            return Err(Error::Multithreaded {
                context: context(),
                threads,
            });
        }
    }
    Ok(())
}
