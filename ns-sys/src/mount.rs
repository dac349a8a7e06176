//! The new mount API (`fsopen`, `fsconfig`, `fsmount`, `move_mount`, `open_tree`,
//! `mount_setattr`; Linux 5.2, `mount_setattr` 5.12): its constants and `struct mount_attr`
//! (`include/uapi/linux/mount.h`), and thin wrappers of the calls. They allocate nothing
//! (an error is `io::Error::from_raw_os_error`), so a freshly cloned child may use them
//! between `clone` and `execve`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A new descriptor from a system call's return value.
fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = crate::abi::cvt(ret)?;
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fsopen(2)`: a filesystem context for `fstype` (pass [`FSOPEN_CLOEXEC`]).
pub fn fsopen(fstype: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name.
    owned(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), flags) })
}

/// `fsconfig(2)` with a flag or string option (`value` `None` for a flag or a command such
/// as [`FSCONFIG_CMD_CREATE`]).
pub fn fsconfig(
    fs: BorrowedFd<'_>,
    cmd: libc::c_uint,
    key: Option<&CStr>,
    value: Option<&CStr>,
) -> io::Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: NUL-terminated strings or nulls, as the command takes them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            ptr(key),
            ptr(value),
            0,
        )
    };
    crate::abi::cvt(ret).map(drop)
}

/// `fsmount(2)`: a detached mount of a created context, with `MOUNT_ATTR_*` attributes
/// (pass [`FSMOUNT_CLOEXEC`]).
pub fn fsmount(fs: BorrowedFd<'_>, flags: libc::c_uint, attr: u64) -> io::Result<OwnedFd> {
    // SAFETY: plain system call on a borrowed descriptor.
    owned(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), flags, attr) })
}

/// `open_tree(2)` of `path` (relative to the working directory): with [`OPEN_TREE_CLONE`],
/// a detached copy of the mount there ([`AT_RECURSIVE`] for the mounts below it too).
pub fn open_tree(path: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path.
    owned(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })
}

/// `open_tree(2)` of the place `at` refers to (`AT_EMPTY_PATH`): as [`open_tree`], for a
/// place resolved once, by descriptor.
pub fn open_tree_fd(at: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: an empty path with AT_EMPTY_PATH names the descriptor itself.
    owned(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            at.as_raw_fd(),
            c"".as_ptr(),
            flags | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    })
}

/// `mount_setattr(2)` on the mount `fd` refers to (`AT_EMPTY_PATH`, plus `flags` such as
/// [`AT_RECURSIVE`]).
pub fn mount_setattr(fd: BorrowedFd<'_>, flags: libc::c_uint, attr: &mount_attr) -> io::Result<()> {
    // SAFETY: an empty path with AT_EMPTY_PATH, and a live structure of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | flags,
            attr as *const mount_attr,
            std::mem::size_of::<mount_attr>(),
        )
    };
    crate::abi::cvt(ret).map(drop)
}

/// `move_mount(2)` of the detached mount `from` onto `target` (relative to the working
/// directory).
pub fn move_mount(from: BorrowedFd<'_>, target: &CStr) -> io::Result<()> {
    // SAFETY: an empty source path with MOVE_MOUNT_F_EMPTY_PATH and a NUL-terminated target.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    crate::abi::cvt(ret).map(drop)
}

/// `move_mount(2)` of the detached mount `from` onto the file or directory `to` refers to
/// (`MOVE_MOUNT_T_EMPTY_PATH`): a mount point resolved once, by descriptor, never by path.
pub fn move_mount_to(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: empty paths with both *_EMPTY_PATH flags name the two descriptors.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    crate::abi::cvt(ret).map(drop)
}

/// `fsopen` flag: the context descriptor is close-on-exec.
pub const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
/// `fsconfig` command: set a flag option (`ro`, `newinstance`, …).
pub const FSCONFIG_SET_FLAG: libc::c_uint = 0;
/// `fsconfig` command: set a string option (`mode=755`).
pub const FSCONFIG_SET_STRING: libc::c_uint = 1;
/// `fsconfig` command: create the superblock.
pub const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
/// `fsmount` flag: the mount descriptor is close-on-exec.
pub const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
/// `move_mount` flag: the source is the descriptor itself (empty path).
pub const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
/// `move_mount` flag: the target is the descriptor itself.
pub const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
/// `open_tree` flag: clone the tree into a new detached mount (a bind mount).
pub const OPEN_TREE_CLONE: libc::c_uint = 0x1;
/// `open_tree` flag: close-on-exec.
pub const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
/// `open_tree`/`mount_setattr` flag: the whole tree below.
pub const AT_RECURSIVE: libc::c_uint = 0x8000;
/// Mount attribute: read-only.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// Mount attribute: no set-user-ID.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// Mount attribute: no device files.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// Mount attribute: no execution.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `struct mount_attr` for `mount_setattr(2)` (size 32, `MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct mount_attr {
    /// `MOUNT_ATTR_*` to set.
    pub attr_set: u64,
    /// `MOUNT_ATTR_*` to clear.
    pub attr_clr: u64,
    /// `MS_PRIVATE`, `MS_SLAVE`, `MS_SHARED` or `MS_UNBINDABLE`, or 0.
    pub propagation: u64,
    /// With `MOUNT_ATTR_IDMAP`: a user namespace descriptor.
    pub userns_fd: u64,
}

/// Whether this kernel (and any seccomp filter in front of it) offers the new mount API:
/// `fsopen` and `mount_setattr` are asked with arguments they refuse before doing anything
/// (`EFAULT`/`EINVAL` where they exist, `ENOSYS` where not).
pub fn new_mount_api_usable() -> bool {
    let refused = |ret: libc::c_long| {
        ret == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
    };
    // SAFETY: a null name makes fsopen fail before it reads or creates anything; a null path
    // with size 0 makes mount_setattr fail before it reads anything.
    unsafe {
        refused(libc::syscall(
            libc::SYS_fsopen,
            std::ptr::null::<libc::c_char>(),
            0,
        )) && refused(libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            std::ptr::null::<libc::c_char>(),
            0,
            std::ptr::null::<mount_attr>(),
            0usize,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_attr_matches_the_uapi_layout() {
        assert_eq!(std::mem::size_of::<mount_attr>(), 32);
    }

    #[test]
    fn the_new_mount_api_is_there_on_a_current_kernel() {
        // Linux 5.12 and later have both calls; this machine's kernel is newer.
        assert!(new_mount_api_usable());
    }
}
