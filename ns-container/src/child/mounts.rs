//! Stage 3, mounts and root, in the child's new mount namespace: the propagation of `/`,
//! each prepared mount in order (mount points created where asked; a target under the new
//! root resolved and made inside it, see `paths.rs`), then the new root (`pivot_root` with
//! the old root detached, or `chroot`).

use super::paths::{fd_path, identity, make_in_root, open_in_root, symlink_in_root, Create, Held};
use super::*;
use std::ffi::CStr;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

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
    /// Change the mount at the target where it is (no bind of it on itself first).
    pub in_place: bool,
    /// The attributes reach every mount of the tree (`mount_setattr` with `AT_RECURSIVE`),
    /// not only its top one.
    pub attr_recursive: bool,
    /// The target as a path inside the new root (`in_root_len` bytes, no NUL), when it lies
    /// under it: then it is resolved inside the root (see `paths.rs`), never by `target`.
    /// Null otherwise.
    pub in_root: *const u8,
    pub in_root_len: usize,
    /// The source is the target itself (a read-only remount of a place): with `in_root`,
    /// the resolved target is the source too.
    pub source_is_target: bool,
    /// A mask: this step binds `/dev/null` over a file; over a directory, [`masked`] makes
    /// it an empty read-only tmpfs.
    pub mask: bool,
    /// Skip the step when the target does not exist.
    pub if_exists: bool,
    /// Refuse any link on the way to the target (procfs, sysfs and masks: nothing of the
    /// image may redirect them).
    pub no_links: bool,
    /// Not a mount: a symbolic link at the target holding `source` as its text.
    pub symlink: bool,
}

impl MountStep {
    fn in_root(&self) -> Option<&[u8]> {
        // SAFETY: the caller prepared `in_root_len` bytes at `in_root`, alive for the spawn.
        (!self.in_root.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(self.in_root, self.in_root_len) })
    }

    fn create(&self) -> Create {
        match self.create {
            1 => Create::Dir,
            2 => Create::File,
            _ => Create::Nothing,
        }
    }
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

/// Most bind sources opened ahead (see [`open_bind_sources`]); the rest are opened when
/// mounted.
pub(super) const MAX_TREES: usize = 64;

/// Detached copies of the bind mounts' sources (`open_tree` with `OPEN_TREE_CLONE`), made
/// before the child takes its user namespace's root ids: made with the creator's ids, a
/// source they may reach and the namespace's root may not (a host directory of mode 0700)
/// is still bound, as runc opens such sources before entering. A source that fails here is
/// opened again when mounted, which reports the failure. In a mount namespace of the
/// child's own, after the inherited descriptors are closed (the copies are the child's
/// only, and no path resolution of the image follows a magic link to them).
pub(super) fn open_bind_sources(plan: &Plan<'_>, trees: &mut [c_int; MAX_TREES]) {
    use ns_sys::mount::{OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE};
    if !plan.new_mount_api || plan.mounts.is_null() {
        return;
    }
    // SAFETY: the caller prepared `mounts_len` steps at `mounts`.
    let mounts = unsafe { std::slice::from_raw_parts(plan.mounts, plan.mounts_len) };
    for (i, (m, slot)) in mounts.iter().zip(trees.iter_mut()).enumerate() {
        let bind = m.fstype.is_null()
            && !m.symlink
            && !m.mask
            && !m.source_is_target
            && !m.in_place
            && !m.source.is_null();
        // A source below an earlier step's target names what that step puts there, and one
        // inside the new root is the image's (its links could name any host path): opened
        // when mounted, as without the early opening.
        // SAFETY: the caller prepared NUL-terminated sources, targets and root.
        let covered = bind
            && (mounts.iter().take(i).any(|earlier| unsafe {
                !earlier.target.is_null()
                    && path_under(CStr::from_ptr(m.source), CStr::from_ptr(earlier.target))
            }) || (!plan.root.is_null()
                && unsafe { path_under(CStr::from_ptr(m.source), CStr::from_ptr(plan.root)) }));
        if bind && !covered {
            // SAFETY: the caller prepared a NUL-terminated source.
            let source = unsafe { CStr::from_ptr(m.source) };
            let flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursive(m);
            if let Ok(tree) = ns_sys::mount::open_tree(source, flags) {
                *slot = std::os::fd::IntoRawFd::into_raw_fd(tree);
            }
        }
    }
}

/// Whether `path` is `dir` or below it (component-wise: `/a/bc` is not below `/a/b`).
fn path_under(path: &CStr, dir: &CStr) -> bool {
    let (p, d) = (path.to_bytes(), dir.to_bytes());
    let d = match d {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        _ => d,
    };
    p.starts_with(d) && matches!(p.get(d.len()), None | Some(b'/')) || d == b"/"
}

#[cfg(test)]
pub(crate) fn path_under_for_tests(path: &CStr, dir: &CStr) -> bool {
    path_under(path, dir)
}

/// The bind source opened ahead for mount `i`, taken (or none).
fn take_tree(trees: &mut [c_int; MAX_TREES], i: usize) -> Option<OwnedFd> {
    let slot = trees.get_mut(i)?;
    let fd = std::mem::replace(slot, -1);
    // SAFETY: a descriptor `open_bind_sources` opened and only this slot held.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn mounts_and_root(
    plan: &Plan<'_>,
    trees: &mut [c_int; MAX_TREES],
) -> Result<(), Failure> {
    let result = mounts_and_root_with(plan, trees);
    // What was not used (a step skipped or failed) is closed now, not at exec.
    for i in 0..MAX_TREES {
        drop(take_tree(trees, i));
    }
    result
}

/// The propagation of `/` and everything below it, before anything is mounted or cloned
/// (a bind source cloned ahead takes the propagation its mount has then).
pub(super) fn propagation(plan: &Plan<'_>) -> Result<(), Failure> {
    if plan.propagation != 0 {
        propagate_root(plan.propagation).map_err(|e| (Step::Propagation, 0, e))?;
    }
    Ok(())
}

fn mounts_and_root_with(plan: &Plan<'_>, trees: &mut [c_int; MAX_TREES]) -> Result<(), Failure> {
    if !plan.mounts.is_null() {
        // SAFETY: the caller prepared `mounts_len` steps at `mounts`.
        let mounts = unsafe { std::slice::from_raw_parts(plan.mounts, plan.mounts_len) };
        for (i, m) in mounts.iter().enumerate() {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            let made = match m.in_root() {
                Some(path) => mount_in_root(plan, m, path, take_tree(trees, i)),
                None => mount_at_path(plan, m, take_tree(trees, i)),
            };
            made.map_err(|e| (Step::Mount, index, e))?;
        }
    }
    match plan.root_change {
        RootChange::None => return Ok(()),
        RootChange::Pivot => pivot(plan.root).map_err(|e| (Step::Root, 0, e))?,
        RootChange::Chroot => {
            detach_outside_root(plan).map_err(|e| (Step::Root, 2, e))?;
            change_root(plan.root, plan.outside_root_len > 0 || plan.new_mount_ns)
                .map_err(|e| (Step::Root, 0, e))?
        }
    }
    if plan.read_only_root {
        remount_root_read_only().map_err(|e| (Step::Root, 1, e))?;
    }
    if plan.root_propagation != 0 {
        propagate_root(plan.root_propagation).map_err(|e| (Step::Propagation, 1, e))?;
    }
    Ok(())
}

/// Before a `chroot`: detaches every full procfs and sysfs mount outside the new root, or
/// covers it with an empty tmpfs where it may not be detached. A chroot leaves the rest of
/// the mount namespace in place, and while a full procfs stays anywhere in it the kernel
/// lets a user namespace inside the container mount a new, unmasked one (runc's
/// `--no-pivot` fix). Each is made a slave first, so that nothing propagates to the host.
fn detach_outside_root(plan: &Plan<'_>) -> Result<(), c_int> {
    for i in 0..plan.outside_root_len {
        // SAFETY: the plan holds `outside_root_len` NUL-terminated paths, alive for the spawn.
        let path = unsafe { *plan.outside_root.add(i) };
        // SAFETY: mount(2) and umount2(2) on a prepared path, with no data.
        unsafe {
            if libc::mount(
                std::ptr::null(),
                path,
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            {
                match errno() {
                    // Gone with a mount detached before it (one above it), or no longer a
                    // mount point.
                    libc::ENOENT | libc::EINVAL => continue,
                    e => return Err(e),
                }
            }
            if libc::umount2(path, libc::MNT_DETACH) != 0 {
                match errno() {
                    libc::EINVAL | libc::EPERM => {
                        if libc::mount(
                            c"tmpfs".as_ptr(),
                            path,
                            c"tmpfs".as_ptr(),
                            0,
                            std::ptr::null(),
                        ) != 0
                        {
                            return Err(errno());
                        }
                    }
                    e => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// Sets the propagation `flag` (`MS_PRIVATE`, ...) of `/` and everything below it.
fn propagate_root(flag: libc::c_ulong) -> Result<(), c_int> {
    // SAFETY: mount(2) with a static path and no data.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | flag,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Makes the new root's own mount read-only (a bind remount that keeps the flags it has,
/// which a user namespace may have locked), leaving the mounts below it as they are.
fn remount_root_read_only() -> Result<(), c_int> {
    bind_remount(c"/", libc::MS_RDONLY)
}

/// A step that changes the mount at `target` where it is (an open descriptor of the
/// resolved place): `mount_setattr`, or a remount through `/proc/self/fd`. The kernel
/// refuses both (`EINVAL`) unless the place is a mount's root.
fn change_in_place(plan: &Plan<'_>, m: &MountStep, target: c_int) -> Result<(), c_int> {
    if plan.new_mount_api {
        let attr = ns_sys::mount::mount_attr {
            attr_set: m.attr,
            ..Default::default()
        };
        // SAFETY: `target` stays open for the caller's whole step.
        let target = unsafe { BorrowedFd::borrow_raw(target) };
        return ns_sys::mount::mount_setattr(target, attr_reach(m), &attr)
            .map_err(|e| os_errno(&e));
    }
    let mut buf = [0u8; 32];
    let path = fd_path(target, &mut buf);
    bind_remount(path, m.remount)
}

/// How far a step's attributes reach: every mount of the tree, or only its top one.
fn attr_reach(m: &MountStep) -> libc::c_uint {
    if m.attr_recursive {
        ns_sys::mount::AT_RECURSIVE
    } else {
        0
    }
}

/// A symbolic link inside the root.
fn link_in_root(plan: &Plan<'_>, m: &MountStep, path: &[u8]) -> Result<(), c_int> {
    // SAFETY: the caller prepared a NUL-terminated root path.
    let root = unsafe {
        libc::open(
            plan.root,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if root < 0 {
        return Err(errno());
    }
    let root = Held(root);
    // SAFETY: the caller prepared a NUL-terminated link text.
    let text = unsafe { std::ffi::CStr::from_ptr(m.source) };
    symlink_in_root(root.0, path, text, plan.resolve_walk)
}

/// A mount whose target is taken as given (outside the new root, or without one).
fn mount_at_path(plan: &Plan<'_>, m: &MountStep, tree: Option<OwnedFd>) -> Result<(), c_int> {
    if m.symlink {
        // SAFETY: NUL-terminated strings prepared by the caller.
        if unsafe { libc::symlink(m.source, m.target) } != 0 && errno() != libc::EEXIST {
            return Err(errno());
        }
        return Ok(());
    }
    if m.in_place {
        // SAFETY: the caller prepared a NUL-terminated target.
        let fd = unsafe { libc::open(m.target, libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            let err = errno();
            return if err == libc::ENOENT && m.if_exists {
                Ok(())
            } else {
                Err(err)
            };
        }
        let fd = Held(fd);
        return change_in_place(plan, m, fd.0);
    }
    let mut step = *m;
    if m.if_exists || m.mask {
        // SAFETY: an all-zero stat is valid storage; the target is NUL-terminated.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::stat(m.target, &mut st) } != 0 {
            let err = errno();
            return if err == libc::ENOENT && m.if_exists && m.create == 0 {
                Ok(())
            } else {
                Err(err)
            };
        }
        if m.mask {
            step = masked(m, st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        }
    }
    create_mount_point(&step)?;
    if plan.new_mount_api {
        mount_new_api(&step, tree)
    } else {
        mount_classic(&step)
    }
}

/// The step a mask takes: as prepared (`/dev/null` bound) over a file or device, an empty
/// read-only tmpfs over a directory.
fn masked(m: &MountStep, dir: bool) -> MountStep {
    if !dir {
        return *m;
    }
    use ns_sys::mount::{
        MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
    };
    MountStep {
        source: c"tmpfs".as_ptr(),
        fstype: c"tmpfs".as_ptr(),
        flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: std::ptr::null(),
        remount: 0,
        options: std::ptr::null(),
        options_len: 0,
        attr: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        recursive: false,
        source_is_target: false,
        mask: false,
        ..*m
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

/// A mount whose target lies under the new root: the target resolved inside the root (and
/// made, where asked) as a descriptor, the mount attached to that descriptor: by
/// `move_mount` with the new API, by `mount(2)` on its `/proc/self/fd/N` otherwise.
fn mount_in_root(
    plan: &Plan<'_>,
    m: &MountStep,
    path: &[u8],
    tree: Option<OwnedFd>,
) -> Result<(), c_int> {
    if m.symlink {
        return link_in_root(plan, m, path);
    }
    // The root as this mount namespace has it now (an earlier mount may be on it).
    // SAFETY: the caller prepared a NUL-terminated root path.
    let root = unsafe {
        libc::open(
            plan.root,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if root < 0 {
        return Err(errno());
    }
    let root = Held(root);
    let target = match make_in_root(root.0, path, m.create(), plan.resolve_walk, m.no_links) {
        Err(libc::ENOENT) if m.if_exists && m.create() == Create::Nothing => return Ok(()),
        other => other?,
    };
    if m.in_place {
        return change_in_place(plan, m, target.0);
    }
    let step;
    let m = if m.mask {
        // SAFETY: an all-zero stat is valid storage; fstat writes only into it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above, on the descriptor just resolved.
        if unsafe { libc::fstat(target.0, &mut st) } != 0 {
            return Err(errno());
        }
        step = masked(m, st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        &step
    } else {
        m
    };
    if plan.new_mount_api {
        let detached = if m.source_is_target {
            bind_tree_at(m, target.0)
        } else if m.fstype.is_null() {
            match tree {
                Some(tree) => with_attributes(m, tree),
                None => bind_tree(m),
            }
        } else {
            new_filesystem(m)
        };
        // SAFETY: `target` stays open until the end of this function.
        let to = unsafe { BorrowedFd::borrow_raw(target.0) };
        return detached
            .and_then(|mnt| ns_sys::mount::move_mount_to(mnt.as_fd(), to))
            .map_err(|e| os_errno(&e));
    }
    // With flags to set by a remount, the new mount's root must be the source's: known
    // before, checked on the mount found again after (the image could redirect that second
    // resolution; it cannot make a mount of the source anywhere else in this namespace).
    let source_id = if m.remount == 0 {
        None
    } else if m.source_is_target {
        Some(identity(target.0)?)
    } else {
        Some(path_identity(m.source)?)
    };
    let mut target_buf = [0u8; 32];
    let target_path = fd_path(target.0, &mut target_buf);
    let mut source_buf = [0u8; 32];
    let source = if m.source_is_target {
        fd_path(target.0, &mut source_buf).as_ptr()
    } else {
        m.source
    };
    // SAFETY: prepared NUL-terminated strings, or nulls where mount(2) takes them.
    if unsafe {
        libc::mount(
            source,
            target_path.as_ptr(),
            m.fstype,
            m.flags,
            m.data as *const c_void,
        )
    } != 0
    {
        return Err(errno());
    }
    if let Some(source_id) = source_id {
        // The path now reaches the new mount (the old descriptor still names the place below
        // it); what it reaches must be the source's mount, or the image moved something.
        let mounted = open_in_root(root.0, path, plan.resolve_walk, m.no_links)?;
        if identity(mounted.0)? != source_id {
            return Err(libc::EXDEV);
        }
        let mut buf = [0u8; 32];
        bind_remount(fd_path(mounted.0, &mut buf), m.remount)?;
    }
    Ok(())
}

/// (device, inode) of a prepared path (the caller's), links followed as `mount(2)` follows
/// them.
fn path_identity(path: *const c_char) -> Result<(u64, u64), c_int> {
    // SAFETY: a NUL-terminated path; the descriptor is closed by `Held`.
    let fd = unsafe { libc::open(path, libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    identity(Held(fd).0)
}

/// A detached copy of the mount at the resolved place `at`, as [`bind_tree`].
fn bind_tree_at(m: &MountStep, at: c_int) -> std::io::Result<OwnedFd> {
    use ns_sys::mount::{OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE};
    // SAFETY: `at` stays open for the caller's whole step.
    let at = unsafe { BorrowedFd::borrow_raw(at) };
    let flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursive(m);
    with_attributes(m, ns_sys::mount::open_tree_fd(at, flags)?)
}

/// `AT_RECURSIVE` for a bind of the whole tree.
fn recursive(m: &MountStep) -> libc::c_uint {
    if m.recursive {
        ns_sys::mount::AT_RECURSIVE
    } else {
        0
    }
}

/// Sets the asked attributes on a detached bind (`mount_setattr`).
fn with_attributes(m: &MountStep, tree: OwnedFd) -> std::io::Result<OwnedFd> {
    if m.attr != 0 {
        let attr = ns_sys::mount::mount_attr {
            attr_set: m.attr,
            ..Default::default()
        };
        ns_sys::mount::mount_setattr(tree.as_fd(), attr_reach(m), &attr)?;
    }
    Ok(tree)
}

/// The new mount API (5.2, `mount_setattr` 5.12): a detached mount made whole (a filesystem
/// with `fsopen`/`fsconfig`/`fsmount`, a bind with `open_tree`, its attributes with
/// `mount_setattr`), then moved into place: nothing is visible half-made.
fn mount_new_api(m: &MountStep, tree: Option<OwnedFd>) -> Result<(), c_int> {
    let detached = if m.fstype.is_null() {
        match tree {
            Some(tree) if !m.mask => with_attributes(m, tree),
            _ => bind_tree(m),
        }
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
    use ns_sys::mount::{OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE};
    // SAFETY: the caller prepared a NUL-terminated source.
    let source = unsafe { CStr::from_ptr(m.source) };
    let flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursive(m);
    with_attributes(m, ns_sys::mount::open_tree(source, flags)?)
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
    }
    if m.remount != 0 {
        // SAFETY: the caller prepared a NUL-terminated target.
        bind_remount(unsafe { CStr::from_ptr(m.target) }, m.remount)?;
    }
    Ok(())
}

/// Sets `flags` on the bind mount at `target` by a remount that keeps the flags the kernel
/// locks on it (nosuid, nodev, ... inherited from a more privileged namespace), read first.
fn bind_remount(target: &CStr, flags: libc::c_ulong) -> Result<(), c_int> {
    // SAFETY: an all-zero statvfs is valid storage; the calls take a NUL-terminated path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(target.as_ptr(), &mut st) != 0 {
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
        let all = libc::MS_BIND | libc::MS_REMOUNT | keep | flags;
        if libc::mount(
            std::ptr::null(),
            target.as_ptr(),
            std::ptr::null(),
            all,
            std::ptr::null(),
        ) != 0
        {
            return Err(errno());
        }
    }
    Ok(())
}

/// `pivot_root` into `root`: bind it on itself (it must be a mount point), enter it, pivot
/// with the old root on top of the new one, detach the old root, and start at `/`.
fn pivot(root: *const c_char) -> Result<(), c_int> {
    bind_on_itself_and_enter(root)?;
    // SAFETY: system calls on static paths.
    unsafe {
        if ns_sys::task::pivot_root(c".", c".").is_err()
            || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
            || libc::chdir(c"/".as_ptr()) != 0
        {
            return Err(errno());
        }
    }
    Ok(())
}

/// Binds `root` on itself (so that it is a mount point of its own) and changes into it.
fn bind_on_itself_and_enter(root: *const c_char) -> Result<(), c_int> {
    // SAFETY: mount(2) and chdir(2) on the prepared, NUL-terminated path.
    let failed = unsafe {
        libc::mount(
            root,
            root,
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ) != 0
            || libc::chdir(root) != 0
    };
    if failed {
        Err(errno())
    } else {
        Ok(())
    }
}

/// `chroot` into `root` and start at `/`.
fn change_root(root: *const c_char, move_to_top: bool) -> Result<(), c_int> {
    // SAFETY: system calls on the prepared, NUL-terminated path and static ones.
    unsafe {
        if libc::chdir(root) != 0 {
            return Err(errno());
        }
        // In a mount namespace of the child's own, the root is moved onto `/` first (runc's
        // `--no-pivot`): the process's root is then its namespace's, so that the program may
        // make a user namespace (the kernel refuses one to a chrooted process), and no
        // `chroot` of its own climbs out to the host's tree left below. Any failure fails the
        // spawn: a plain chroot in a namespace rooted at the host's `/` would be escapable.
        if move_to_top {
            bind_on_itself_and_enter(root)?;
            if libc::mount(
                c".".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_MOVE,
                std::ptr::null(),
            ) != 0
            {
                return Err(errno());
            }
        }
        if libc::chroot(c".".as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
            return Err(errno());
        }
    }
    Ok(())
}
