//! Raw Linux namespace bindings.
//!
//! This crate is the bottom layer of the `ns` workspace: the kernel's constants, `#[repr(C)]`
//! structures and thin wrappers around the namespace-related system calls, built on [`libc`].
//! It holds no policy: every wrapper makes exactly one system call and reports the kernel's
//! answer as [`std::io::Result`]. Typed handles, error messages and thread rules live in
//! `ns-core`; process spawning lives in `ns-container`.
//!
//! Where `libc` already defines an item, this crate re-exports it under the uapi name; the
//! rest is defined here with a comment naming the uapi header it mirrors.
//!
//! | module | what it holds |
//! |---|---|
//! | [`flags`] | `CLONE_*` flags, including `CLONE_NEWTIME` and the clone3-only ones |
//! | [`clone`] | `struct clone_args`, [`clone3()`](clone::clone3), `clone3_on_stack` and the legacy `clone_on_stack` (a child on its own stack), `clone3_usable` |
//! | [`nsfs`] | `ioctl_ns(2)` numbers and wrappers, `NSFS_MAGIC` |
//! | [`cred`] | `setuid`, `setgid`, `setgroups` for the calling task only (no glibc broadcast); `capget`, `capset` |
//! | [`pidfd`] | `pidfd_open`, `pidfd_send_signal`, `pidfd_wait` (`waitid(P_PIDFD)`), `struct pidfd_info`, `PIDFD_GET_INFO` |
//! | [`ns`] | `setns(2)`, `unshare(2)`, `kcmp(2)` |
//! | [`fd`] | `close_range(2)`, `getdents64(2)` |
//! | [`task`] | what a task does to itself on its way to a program: `execveat`, a seccomp filter, resource limits, `pivot_root`, a futex wait, the kernel's `getcwd` |
//! | [`path`] | `openat2(2)` with `RESOLVE_*` (resolving under a root), `readlinkat` of an `O_PATH` link |
//! | [`mount`] | the new mount API: `fsopen`, `fsconfig`, `fsmount`, `open_tree`, `mount_setattr`, `move_mount`, their constants, `struct mount_attr`, its probe |
//!
//! Every wrapper that returns a new file descriptor returns it as an [`OwnedFd`] with
//! `O_CLOEXEC` set (the kernel sets it for namespace and pidfd file descriptors).
//!
//! The wrappers only read `errno` on failure ([`std::io::Error::last_os_error`]), which neither
//! allocates nor locks, so they may be called between `fork` and `exec`.
//!
//! [`OwnedFd`]: std::os::fd::OwnedFd

#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![cfg(target_os = "linux")]

/// The examples of the crate's README, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use libc;

mod abi;
pub mod clone;
pub mod cred;
pub mod fd;
pub mod flags;
pub mod mount;
pub mod ns;
pub mod nsfs;
pub mod path;
pub mod pidfd;
pub mod task;

pub use abi::{ioc, IOC_NONE, IOC_READ, IOC_WRITE};
pub use clone::{clone3, clone3_usable, clone_args, clone_into_cgroup_usable};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub use clone::{clone3_accepts, clone3_on_stack, clone_on_stack};
pub use fd::{close_range, close_range_cloexec_usable};
pub use flags::*;
pub use ns::{setns, unshare};
pub use pidfd::{pidfd_info, pidfd_open, pidfd_send_signal, pidfd_wait};
