//! `struct clone_args` (`include/uapi/linux/sched.h`) and the sizes of its published
//! versions.
//!
//! Plain data: no system calls, nothing else of this crate but doc links.

/// Size of the first published `struct clone_args` (Linux 5.3): up to `tls`.
pub const CLONE_ARGS_SIZE_VER0: usize = 64;
/// Size with `set_tid` and `set_tid_size` (Linux 5.5).
pub const CLONE_ARGS_SIZE_VER1: usize = 80;
/// Size with `cgroup` (Linux 5.7), needed for [`CLONE_INTO_CGROUP`](crate::CLONE_INTO_CGROUP).
pub const CLONE_ARGS_SIZE_VER2: usize = 88;

/// Arguments of `clone3(2)`, `struct clone_args` up to and including `cgroup`.
///
/// Pointers travel as `u64` (`__aligned_u64` in the uapi header). Unused fields must be zero:
/// build the structure with [`Default`] and set what you need.
#[repr(C, align(8))]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct clone_args {
    /// `CLONE_*` flags, including the 64-bit clone3-only ones.
    pub flags: u64,
    /// With `CLONE_PIDFD`: address of an `int` that receives the child's pidfd.
    pub pidfd: u64,
    /// With `CLONE_CHILD_SETTID`/`CLONE_CHILD_CLEARTID`: address in the child's memory.
    pub child_tid: u64,
    /// With `CLONE_PARENT_SETTID`: address of a `pid_t` in the caller's memory that receives
    /// the child's id, as seen from the caller's PID namespace.
    pub parent_tid: u64,
    /// Signal sent to the parent when the child exits (usually `SIGCHLD`). Must be 0 with
    /// `CLONE_PARENT` or `CLONE_THREAD`: the child then inherits the caller's exit signal.
    pub exit_signal: u64,
    /// Lowest address of the child's stack, or 0 to keep running on (a copy of) the caller's.
    pub stack: u64,
    /// Size of the stack at `stack`.
    pub stack_size: u64,
    /// With `CLONE_SETTLS`: the child's thread pointer.
    pub tls: u64,
    /// Address of an array of PIDs to give the child, one per PID namespace level (5.5).
    pub set_tid: u64,
    /// Number of entries at `set_tid`.
    pub set_tid_size: u64,
    /// With `CLONE_INTO_CGROUP`: a file descriptor of the cgroup v2 directory to start in (5.7).
    pub cgroup: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn clone_args_matches_the_uapi_layout() {
        assert_eq!(size_of::<clone_args>(), CLONE_ARGS_SIZE_VER2);
        assert_eq!(align_of::<clone_args>(), 8);
        assert_eq!(offset_of!(clone_args, flags), 0);
        assert_eq!(offset_of!(clone_args, pidfd), 8);
        assert_eq!(offset_of!(clone_args, child_tid), 16);
        assert_eq!(offset_of!(clone_args, parent_tid), 24);
        assert_eq!(offset_of!(clone_args, exit_signal), 32);
        assert_eq!(offset_of!(clone_args, stack), 40);
        assert_eq!(offset_of!(clone_args, stack_size), 48);
        assert_eq!(offset_of!(clone_args, tls), 56);
        assert_eq!(offset_of!(clone_args, set_tid), CLONE_ARGS_SIZE_VER0);
        assert_eq!(offset_of!(clone_args, set_tid_size), 72);
        assert_eq!(offset_of!(clone_args, cgroup), CLONE_ARGS_SIZE_VER1);
    }
}
