//! Spawning into Linux namespaces.
//!
//! `ns-container` is the top layer of the `ns` workspace. It starts processes inside an
//! existing container's namespaces, optionally in new nested namespaces, and hands back a
//! [`Child`] you can wait on, safely from a multithreaded program, without races, orphans or
//! leaked descriptors.
//!
//! | what | here | Mesos |
//! |---|---|---|
//! | run a closure in a target's namespaces and new ones | [`clone()`], [`clone_in`] | `ns::clone` |
//! | run a program the same way | [`NsCommand`] | — |
//! | run closures on a thread inside a namespace | [`NamespaceRunner`] | `ns::NamespaceRunner` |
//! | kill every process of a PID namespace | [`destroy`] | `ns::pid::destroy` |
//!
//! How a spawn is built (intermediate processes, `CLONE_PARENT`, `CLONE_VFORK`) is described
//! on [`NsCommand`] and in the guide's safety contract (`docs/guide.md`). Everything that
//! runs between `clone3` and `execve`/`_exit` lives in one module, written against a short
//! list of async-signal-safe system calls and prepared data.
//!
//! Supported architectures: x86_64 and aarch64 (tasks are started on their own stacks by a
//! small `clone3`/`clone` entry in assembly). The user-namespace trampoline, which spares a
//! spawn into a target's user namespace the copy of the caller's memory, is x86_64 only. Kernel: Linux 5.4 (pidfds, `waitid(P_PIDFD)`);
//! `clone3` (5.3) is used where it is allowed, the legacy `clone` where a kernel or a seccomp
//! filter refuses it; features that need more say so.

//!
//! # The crate's rooms
//!
//! From the public face down; a file imports only from rooms below it:
//!
//! | room | holds | must not |
//! |---|---|---|
//! | `clone.rs`, `destroy.rs` | Mesos's `clone` and `pid::destroy` | reach below `command` |
//! | `runner/` | [`NamespaceRunner`]: face, `pending`, `worker`, `state`, `credentials`, `keys` | spawn processes |
//! | `command/` | [`NsCommand`]: the struct (`settings`), one file per concern a caller sets, `launch` into a spec | make system calls of its own |
//! | `process.rs`, `pidns.rs` | [`Child`]: waiting, killing, output; the processes in foreign pid namespaces a wait for their init reaps | — |
//! | `mounts.rs`, `seccomp.rs` | the values of mounts and filters, prepared for the child | run after `clone` |
//! | `spawn/` | the caller's side of one spawn, one file per stage (see its `mod.rs`) | run after `clone` |
//! | `trampoline/` | the user-namespace trampoline: image, machine code, probe | know the shape of a spawn |
//! | `record.rs`, `probes.rs`, `sys.rs` | status records, kernel probes, stacks/pipes/signals | know about spawns |
//! | `child/` | everything between `clone` and `execve`/`_exit` (see its `mod.rs`) | allocate, lock, format, panic |
//! | `error.rs` | [`Error`], [`Step`], [`Process`] | — |

#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![cfg(target_os = "linux")]

/// The guide: choosing a layer, what each namespace type does, the Mesos name map, how a
/// spawn is built and the safety contract, finishing a container, and the kernel behaviour
/// this workspace rests on.
#[doc = include_str!("../guide.md")]
pub mod guide {}

/// The examples of the crate's README, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!(
    "ns-container starts tasks with ns_sys::clone3_on_stack, which exists for x86_64 and aarch64"
);

mod child;
mod clone;
mod command;
mod destroy;
mod error;
mod mounts;
mod pidns;
mod probes;
mod process;
mod record;
mod runner;
pub mod seccomp;
mod spawn;
mod sys;
mod trampoline;

pub use clone::{clone, clone_in};

/// Asks the kernel now, once per process, what spawns choose by (whether `clone3`, the new
/// mount API and the sealed trampoline work here: about 0.5 ms, mostly running the
/// trampoline once), which the first spawn would otherwise ask. Where the trampoline runs,
/// it also makes the two descriptors the process keeps for it (its sealed image, and the
/// page the pids it creates are written into), so that a leak check that counts from here
/// sees only what spawns leave. A short-lived program that spawns once (a runtime's command
/// line) calls it on a thread of its own while it reads its configuration, and joins that
/// thread before it spawns.
pub fn prepare_spawning() {
    probes::prepare();
}
pub use command::{receive_terminal, CgroupPlacement, Clock, IdMap, NsCommand, Stdio};

pub use destroy::destroy;
pub use error::{Error, Process, Result, Step};
pub use mounts::{
    mount_table, Mount, MountApi, MountEntry, Propagation, RootMode, MASKED_PATHS, READONLY_PATHS,
};
pub use process::Child;
pub use runner::{NamespaceRunner, Pending};

pub use ns_core;
