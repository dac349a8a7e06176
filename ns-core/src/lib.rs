//! Typed Linux namespaces.
//!
//! `ns-core` is the middle layer of the `ns` workspace. It lets you name, find, compare,
//! inspect, pin, enter and persist namespaces without touching a raw file descriptor or
//! `errno`, and it carries the whole surface of Apache Mesos's `ns` namespace
//! (`src/linux/ns.hpp`) under the same names:
//!
//! | Mesos | here |
//! |---|---|
//! | `ns::nstype(name)` | [`nstype`] → [`NsType`] |
//! | `ns::nsname(type)` | [`nsname`] |
//! | `ns::nstypes()` | [`nstypes`] |
//! | `ns::supported(types)` | [`supported`] |
//! | `ns::setns(path, type, checkMultithreaded)` | [`setns`] |
//! | `ns::setns(pid, type, checkMultithreaded)` | [`setns_pid`] |
//! | `ns::getns(pid, type)` | [`getns`] → [`NsId`] |
//! | `ns::stringify(types)` | [`stringify()`], `Display for NsType` |
//!
//! Beyond Mesos: [`Namespace`] handles with introspection (`ioctl_ns`: owner, parent, owner
//! UID, PID translation), [`Target`] for entering a process's namespaces without PID-reuse
//! races (one atomic `setns(pidfd, flags)`, or an ordered per-namespace fallback), and
//! [`persist()`]/[`unpersist()`].
//!
//! Spawning processes into namespaces (`clone`, a `Command` builder, `NamespaceRunner`) lives
//! one layer up, in `ns-container`.
//!
//! # Threads
//! Namespaces belong to threads, and the kernel has rules about which thread may enter what.
//! Every entering function here checks them first and reports them as
//! [`Error::ThreadRule`]; the guide (`docs/` in the repository) has the per-type table.
//!
//! # Kernel versions
//! Each function's documentation names the kernel version it needs. On an older kernel it
//! returns [`Error::Unsupported`] rather than a bare `ENOSYS`/`ENOTTY`.

#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![cfg(target_os = "linux")]

/// The examples of the crate's README, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// From the public face down: each file uses only files below it in this list.
mod error;
mod id;
mod kernel;
pub mod named;
mod names;
mod namespace;
mod ns_type;
mod persist;
mod setns;
mod sys;
mod target;
mod thread_rules;

/// The `caps` crate, whose `Capability` and `CapSet` appear in this workspace's API.
pub use caps;
pub use error::{describe_errno, Context, Error, Op, Result, Subject, ThreadRule};
pub use id::{getns, NsId};
pub use kernel::{nstypes, supported, KernelVersion};
pub use names::{check_types, nsname, nstype, stringify};
pub use namespace::Namespace;
pub use ns_type::NsType;
pub use persist::{persist, unpersist};
pub use setns::{setns, setns_pid};
pub use target::{
    pidfd_pid, pidfd_setns_supported, EntryFailure, EntryPlan, EntryStep, EntryStrategy, Target,
    UserOrder, ENTRY_ORDER,
};

/// The number of threads of the calling process, as the thread checks count them
/// (`/proc/self/stat`).
///
/// # Errors
/// [`Error::Os`] when `/proc` cannot be read.
pub fn thread_count() -> Result<usize> {
    sys::thread_count().map_err(|e| {
        Error::os(
            Context::new(Op::Detect, NsType::empty(), Subject::CallingThread),
            e,
        )
    })
}
