//! Stage 1b, mounts and root, in the child's new mount namespace: the propagation of `/`,
//! each prepared mount in order (mount points created where asked), then the new root
//! (`pivot_root` with the old root detached, or `chroot`).

use super::*;
use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};

/// A mount prepared by the caller: every string a `CString`, every flag computed.
#[derive(Clone, Copy)]
pub(crate) struct MountStep {
    /// `mount(2)`'s source (a path for a bind mount, the filesystem name otherwise).
    pub source: *const c_char,
    pub target: *const c_char,
    /// Filesystem type, or null for a bind mount or a remount.
    pub fstype: *const c_char,
    /// `MS_*` flags of the first `mount(2)` call.
    pub flags: libc::c_ulong,
    /// Filesystem options (`mode=755,size=64m`), or null.
    pub data: *const c_char,
    /// `MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC` to apply by a bind remount afterwards
    /// (a bind mount takes no flags of its own), or 0.
    pub remount: libc::c_ulong,
    /// Create the mount point first: 0 no, 1 a directory, 2 a file.
    pub create: u8,
    /// For the new mount API: `(key, value or null)` options for `fsconfig`.
    pub options: *const (*const c_char, *const c_char),
    pub options_len: usize,
    /// For the new mount API: `MOUNT_ATTR_*` for `fsmount` or `mount_setattr`.
    pub attr: u64,
    /// For the new mount API: a bind takes the tree below its source (`AT_RECURSIVE`).
    pub recursive: bool,
}

/// How the child changes its root.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RootChange {
    None,
    /// `pivot_root` into the directory (bind-mounted on itself first), old root detached.
    Pivot,
    /// `chroot` into it: for roots `pivot_root` cannot leave, such as an initramfs.
    Chroot,
}

pub(super) fn mounts_and_root(plan: &Plan<'_>) -> Result<(), Failure> {
    if plan.propagation != 0 {
        // SAFETY: mount(2) with a static path and no data.
        let r = unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | plan.propagation,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err((Step::Propagation, 0, errno()));
        }
    }
    if !plan.mounts.is_null() {
        // SAFETY: the caller prepared `mounts_len` steps at `mounts`.
        let mounts = unsafe { std::slice::from_raw_parts(plan.mounts, plan.mounts_len) };
        for (i, m) in mounts.iter().enumerate() {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            create_mount_point(m).map_err(|e| (Step::Mount, index, e))?;
            let made = if plan.new_mount_api {
                mount_new_api(m)
            } else {
                mount_classic(m)
            };
            made.map_err(|e| (Step::Mount, index, e))?;
        }
    }
    match plan.root_change {
        RootChange::None => Ok(()),
        RootChange::Pivot => pivot(plan.root).map_err(|e| (Step::Root, 0, e)),
        RootChange::Chroot => change_root(plan.root).map_err(|e| (Step::Root, 0, e)),
    }
}

fn create_mount_point(m: &MountStep) -> Result<(), c_int> {
    // SAFETY: the target is a prepared, NUL-terminated path.
    unsafe {
        match m.create {
            1 if libc::mkdir(m.target, 0o755) != 0 && errno() != libc::EEXIST => {
                return Err(errno());
            }
            2 => {
                // Read-only: an existing file needs no write permission to be a mount point.
                let fd = libc::open(
                    m.target,
                    libc::O_RDONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOCTTY,
                    0o644,
                );
                if fd < 0 {
                    return Err(errno());
                }
                libc::close(fd);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The new mount API (5.2, `mount_setattr` 5.12): a detached mount made whole (a filesystem
/// with `fsopen`/`fsconfig`/`fsmount`, a bind with `open_tree`, its attributes with
/// `mount_setattr`), then moved into place: nothing is visible half-made.
fn mount_new_api(m: &MountStep) -> Result<(), c_int> {
    let detached = if m.fstype.is_null() {
        bind_tree(m)
    } else {
        new_filesystem(m)
    };
    // SAFETY: the caller prepared a NUL-terminated target.
    let target = unsafe { CStr::from_ptr(m.target) };
    detached
        .and_then(|mnt| ns_sys::mount::move_mount(mnt.as_fd(), target))
        .map_err(|e| os_errno(&e))
}

/// A detached copy of the source tree with the asked attributes.
fn bind_tree(m: &MountStep) -> std::io::Result<OwnedFd> {
    use ns_sys::mount::{AT_RECURSIVE, OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE};
    let recursive = if m.recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: the caller prepared a NUL-terminated source.
    let source = unsafe { CStr::from_ptr(m.source) };
    let tree = ns_sys::mount::open_tree(source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursive)?;
    if m.attr != 0 {
        let attr = ns_sys::mount::mount_attr {
            attr_set: m.attr,
            ..Default::default()
        };
        ns_sys::mount::mount_setattr(tree.as_fd(), recursive, &attr)?;
    }
    Ok(tree)
}

/// A detached new filesystem with the asked options and attributes.
fn new_filesystem(m: &MountStep) -> std::io::Result<OwnedFd> {
    use ns_sys::mount::{
        fsconfig, FSCONFIG_CMD_CREATE, FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING, FSMOUNT_CLOEXEC,
        FSOPEN_CLOEXEC,
    };
    // SAFETY: the caller prepared a NUL-terminated filesystem type.
    let fs = ns_sys::mount::fsopen(unsafe { CStr::from_ptr(m.fstype) }, FSOPEN_CLOEXEC)?;
    let options = if m.options.is_null() {
        &[][..]
    } else {
        // SAFETY: the caller prepared `options_len` pairs at `options`.
        unsafe { std::slice::from_raw_parts(m.options, m.options_len) }
    };
    for (key, value) in options {
        // SAFETY: the caller prepared NUL-terminated keys, and values or nulls.
        let (key, value) = unsafe {
            (
                CStr::from_ptr(*key),
                (!value.is_null()).then(|| CStr::from_ptr(*value)),
            )
        };
        let cmd = if value.is_some() {
            FSCONFIG_SET_STRING
        } else {
            FSCONFIG_SET_FLAG
        };
        fsconfig(fs.as_fd(), cmd, Some(key), value)?;
    }
    fsconfig(fs.as_fd(), FSCONFIG_CMD_CREATE, None, None)?;
    ns_sys::mount::fsmount(fs.as_fd(), FSMOUNT_CLOEXEC, m.attr)
}

/// The classic `mount(2)`.
fn mount_classic(m: &MountStep) -> Result<(), c_int> {
    // SAFETY: every pointer was prepared by the caller (NUL-terminated, or null where the
    // system call takes null).
    unsafe {
        if libc::mount(
            m.source,
            m.target,
            m.fstype,
            m.flags,
            m.data as *const c_void,
        ) != 0
        {
            return Err(errno());
        }
        if m.remount != 0 {
            // A bind remount must keep the flags the kernel locks on the mount (nosuid,
            // nodev, ... inherited from a more privileged namespace): read them first.
            let mut st: libc::statvfs = std::mem::zeroed();
            if libc::statvfs(m.target, &mut st) != 0 {
                return Err(errno());
            }
            let keep = [
                (libc::ST_RDONLY, libc::MS_RDONLY),
                (libc::ST_NOSUID, libc::MS_NOSUID),
                (libc::ST_NODEV, libc::MS_NODEV),
                (libc::ST_NOEXEC, libc::MS_NOEXEC),
                (libc::ST_NOATIME, libc::MS_NOATIME),
                (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
                (libc::ST_RELATIME, libc::MS_RELATIME),
            ]
            .iter()
            .filter(|(st_flag, _)| st.f_flag & *st_flag != 0)
            .fold(0, |acc, (_, ms)| acc | ms);
            let flags = libc::MS_BIND | libc::MS_REMOUNT | keep | m.remount;
            if libc::mount(
                std::ptr::null(),
                m.target,
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                return Err(errno());
            }
        }
    }
    Ok(())
}

/// `pivot_root` into `root`: bind it on itself (it must be a mount point), enter it, pivot
/// with the old root on top of the new one, detach the old root, and start at `/`.
fn pivot(root: *const c_char) -> Result<(), c_int> {
    // SAFETY: system calls on the prepared, NUL-terminated path and static ones.
    unsafe {
        if libc::mount(
            root,
            root,
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ) != 0
            || libc::chdir(root) != 0
            || ns_sys::task::pivot_root(c".", c".").is_err()
            || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
            || libc::chdir(c"/".as_ptr()) != 0
        {
            return Err(errno());
        }
    }
    Ok(())
}

/// `chroot` into `root` and start at `/`.
fn change_root(root: *const c_char) -> Result<(), c_int> {
    // SAFETY: system calls on the prepared, NUL-terminated path and static ones.
    unsafe {
        if libc::chdir(root) != 0
            || libc::chroot(c".".as_ptr()) != 0
            || libc::chdir(c"/".as_ptr()) != 0
        {
            return Err(errno());
        }
    }
    Ok(())
}
