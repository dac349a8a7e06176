//! Paths of the container, resolved inside its root: a mount target (or the working
//! directory's equivalent for mounts) is reached from a descriptor of the new root, with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` (5.6), or before 5.6 a walk of one
//! component at a time with `O_NOFOLLOW` in which every link's text is resolved in its place
//! (an absolute one from the root) and `..` never climbs above the root. So an image's links
//! (`etc -> /etc`, `run -> /proc/self/fd/N`, `../../..` chains) lead to places inside the root;
//! a missing component is made (`mkdir -p`, inside the root) where asked, a loop is `ELOOP`.
//! One limit of the walk, which `openat2` does not have: a directory renamed out of the root
//! (by someone who can write outside it) while the walk stands inside it is not noticed, and
//! a `..` from there climbs outside. With `no_links`, any link in the path is refused
//! (`ELOOP`): for procfs and sysfs, and what masks them, nothing of the image may redirect.
//! Every resolved place is held by an `O_PATH` descriptor, so swapping a link after the
//! resolution changes nothing. No allocation: paths are built in stack
//! buffers.

use super::*;
use std::ffi::CStr;

/// The longest path resolved (the kernel's `PATH_MAX`).
const PATH_MAX: usize = 4096;
/// How often a resolution raced by a rename or mount elsewhere is asked again.
const MAX_RETRIES: u32 = 256;
/// The most links followed in one resolution (the kernel's `MAXSYMLINKS`).
const MAX_LINKS: u32 = 40;

/// What to make when a path is missing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Create {
    Nothing,
    Dir,
    File,
}

/// An `O_PATH` descriptor this stage opened, closed when dropped.
pub(super) struct Held(pub(super) c_int);

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: closing a descriptor this stage opened and nobody else holds.
        unsafe { libc::close(self.0) };
    }
}

/// `bytes` with a NUL after it, in `buf`.
fn c_path<'b>(bytes: &[u8], buf: &'b mut [u8; PATH_MAX]) -> Result<&'b CStr, c_int> {
    let dst = buf.get_mut(..bytes.len()).ok_or(libc::ENAMETOOLONG)?;
    dst.copy_from_slice(bytes);
    *buf.get_mut(bytes.len()).ok_or(libc::ENAMETOOLONG)? = 0;
    let with_nul = buf.get(..=bytes.len()).ok_or(libc::ENAMETOOLONG)?;
    CStr::from_bytes_with_nul(with_nul).map_err(|_| libc::EINVAL)
}

/// Opens `path` (relative to `root`; a leading `/` is the root too) inside the root, as an
/// `O_PATH` descriptor. `walk` forces the walk used before Linux 5.6.
pub(super) fn open_in_root(
    root: c_int,
    path: &[u8],
    walk: bool,
    no_links: bool,
) -> Result<Held, c_int> {
    if !walk {
        let mut buf = [0u8; PATH_MAX];
        let c = c_path(path, &mut buf)?;
        // SAFETY: `root` stays open for the whole stage.
        let dir = unsafe { BorrowedFd::borrow_raw(root) };
        let mut resolve = ns_sys::path::RESOLVE_IN_ROOT | ns_sys::path::RESOLVE_NO_MAGICLINKS;
        if no_links {
            resolve |= ns_sys::path::RESOLVE_NO_SYMLINKS;
        }
        // EAGAIN: a rename or mount anywhere on the machine raced a `..` and the kernel could
        // not prove it stayed inside; asking again is the documented answer.
        let mut tries: u32 = 0;
        loop {
            match ns_sys::path::openat2(dir, c, libc::O_PATH | libc::O_CLOEXEC, 0, resolve) {
                Ok(fd) => return Ok(Held(std::os::fd::IntoRawFd::into_raw_fd(fd))),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < MAX_RETRIES => {
                    tries = tries.saturating_add(1);
                }
                // Before 5.6, or a seccomp profile that does not know it (older ones answer
                // EPERM for every call they do not list).
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => break,
                Err(e) => return Err(os_errno(&e)),
            }
        }
    }
    walk_in_root(root, path, no_links)
}

/// Opens `path` inside the root as [`open_in_root`] does, making what is missing of it
/// first: directories, and with [`Create::File`] an empty file as the last component. Each
/// is made in its parent as resolved inside the root (`mkdirat`, `openat` with
/// `O_NOFOLLOW`), so nothing is ever made outside it.
pub(super) fn make_in_root(
    root: c_int,
    path: &[u8],
    create: Create,
    walk: bool,
    no_links: bool,
) -> Result<Held, c_int> {
    match open_in_root(root, path, walk, no_links) {
        Err(libc::ENOENT) if create != Create::Nothing => {}
        done => return done,
    }
    // SAFETY: duplicating the root descriptor, which stays open for the whole stage.
    let mut parent = Held(dup_cloexec(root)?);
    let mut end: usize = 0;
    while end < path.len() {
        let start = path
            .get(end..)
            .and_then(|r| r.iter().position(|b| *b != b'/'))
            .map_or(path.len(), |p| end.saturating_add(p));
        end = path
            .get(start..)
            .and_then(|r| r.iter().position(|b| *b == b'/'))
            .map_or(path.len(), |p| start.saturating_add(p));
        let name = path.get(start..end).unwrap_or(&[]);
        if name.is_empty() {
            break;
        }
        let prefix = path.get(..end).unwrap_or(&[]);
        parent = match open_in_root(root, prefix, walk, no_links) {
            Ok(next) => next,
            Err(libc::ENOENT) => {
                let last = end >= path.len();
                make_one(parent.0, name, last && create == Create::File)?;
                open_in_root(root, prefix, walk, no_links)?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(parent)
}

/// Makes `name` in `parent`: a directory, or an empty file (anything already there, a link
/// included, is left as it is, never opened, and resolved by the caller).
fn make_one(parent: c_int, name: &[u8], file: bool) -> Result<(), c_int> {
    let mut buf = [0u8; PATH_MAX];
    let c = c_path(name, &mut buf)?;
    // SAFETY: a NUL-terminated single component relative to a live directory descriptor.
    unsafe {
        if file {
            // O_EXCL: an existing name (a FIFO, a device, a link) is never opened here.
            let fd = libc::openat(
                parent,
                c.as_ptr(),
                libc::O_RDONLY
                    | libc::O_CREAT
                    | libc::O_EXCL
                    | libc::O_NOFOLLOW
                    | libc::O_NONBLOCK
                    | libc::O_CLOEXEC
                    | libc::O_NOCTTY,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
                return Ok(());
            }
        } else if libc::mkdirat(parent, c.as_ptr(), 0o755) == 0 {
            return Ok(());
        }
    }
    match errno() {
        libc::EEXIST | libc::ELOOP => Ok(()),
        e => Err(e),
    }
}

/// Makes a symbolic link at `path` inside the root, holding `text`: its parent resolved (and
/// made) inside the root, the link made in it (`symlinkat`); a name already there is left as
/// it is.
pub(super) fn symlink_in_root(
    root: c_int,
    path: &[u8],
    text: &CStr,
    walk: bool,
) -> Result<(), c_int> {
    let trimmed = match path.iter().rposition(|b| *b != b'/') {
        Some(last) => path.get(..=last).unwrap_or(&[]),
        None => return Err(libc::EINVAL),
    };
    let (parent, name) = match trimmed.iter().rposition(|b| *b == b'/') {
        Some(slash) => (
            trimmed.get(..slash).unwrap_or(&[]),
            trimmed.get(slash.saturating_add(1)..).unwrap_or(&[]),
        ),
        None => (&[][..], trimmed),
    };
    let dir = if parent.is_empty() {
        Held(dup_cloexec(root)?)
    } else {
        make_in_root(root, parent, Create::Dir, walk, false)?
    };
    let mut buf = [0u8; PATH_MAX];
    let c = c_path(name, &mut buf)?;
    // SAFETY: NUL-terminated strings; the link is made in the parent resolved in the root
    // (an O_PATH directory serves as the *at() base).
    if unsafe { libc::symlinkat(text.as_ptr(), dir.0, c.as_ptr()) } != 0 {
        let e = errno();
        if e != libc::EEXIST {
            return Err(e);
        }
    }
    Ok(())
}

fn dup_cloexec(fd: c_int) -> Result<c_int, c_int> {
    // SAFETY: duplicating a live descriptor.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        Err(errno())
    } else {
        Ok(new)
    }
}

/// (device, inode) of a descriptor.
pub(super) fn identity(fd: c_int) -> Result<(u64, u64), c_int> {
    // SAFETY: a descriptor this task holds open for the call.
    ns_sys::fd::dev_ino(unsafe { BorrowedFd::borrow_raw(fd) }).map_err(|e| os_errno(&e))
}

/// The resolution before Linux 5.6: `rest` holds what is left to resolve; each step takes
/// its first component. A link's text is put in front of the rest (an absolute one restarts
/// at the root); `..` at the root stays there. Magic links are read as text like any link,
/// so they too resolve inside the root.
fn walk_in_root(root: c_int, path: &[u8], no_links: bool) -> Result<Held, c_int> {
    let mut rest = [0u8; PATH_MAX];
    let mut len = path.len();
    rest.get_mut(..len)
        .ok_or(libc::ENAMETOOLONG)?
        .copy_from_slice(path);
    let root_id = identity(root)?;
    let mut cur = Held(dup_cloexec(root)?);
    let mut links: u32 = 0;
    loop {
        let text = rest.get(..len).unwrap_or(&[]);
        let Some(start) = text.iter().position(|b| *b != b'/') else {
            return Ok(cur);
        };
        let end = text
            .get(start..)
            .and_then(|r| r.iter().position(|b| *b == b'/'))
            .map_or(len, |p| start.saturating_add(p));
        let mut name_buf = [0u8; PATH_MAX];
        let name = c_path(text.get(start..end).unwrap_or(&[]), &mut name_buf)?;
        rest.copy_within(end..len, 0);
        len = len.saturating_sub(end);
        match name.to_bytes() {
            b"." => continue,
            b".." => {
                if identity(cur.0)? != root_id {
                    // SAFETY: opening the parent of a live directory descriptor.
                    let up = unsafe {
                        libc::openat(cur.0, c"..".as_ptr(), libc::O_PATH | libc::O_CLOEXEC)
                    };
                    if up < 0 {
                        return Err(errno());
                    }
                    cur = Held(up);
                }
                continue;
            }
            _ => {}
        }
        // SAFETY: a NUL-terminated component relative to a live descriptor.
        let next = unsafe {
            libc::openat(
                cur.0,
                name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if next < 0 {
            return Err(errno());
        }
        let next = Held(next);
        // SAFETY: an all-zero stat is valid storage; fstat writes only into it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(next.0, &mut st) } != 0 {
            return Err(errno());
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            cur = next;
            continue;
        }
        links = links.saturating_add(1);
        if links > MAX_LINKS || no_links {
            return Err(libc::ELOOP);
        }
        let mut target = [0u8; PATH_MAX];
        // SAFETY: `next` stays open until the end of this iteration.
        let n = ns_sys::path::readlink_fd(unsafe { BorrowedFd::borrow_raw(next.0) }, &mut target)
            .map_err(|e| os_errno(&e))?;
        // The link's text, a '/', then the rest.
        let total = n.checked_add(1).and_then(|t| t.checked_add(len));
        let total = total.filter(|t| *t <= PATH_MAX).ok_or(libc::ENAMETOOLONG)?;
        rest.copy_within(0..len, n.saturating_add(1));
        rest.get_mut(..n)
            .ok_or(libc::ENAMETOOLONG)?
            .copy_from_slice(target.get(..n).unwrap_or(&[]));
        *rest.get_mut(n).ok_or(libc::ENAMETOOLONG)? = b'/';
        len = total;
        if target.first() == Some(&b'/') {
            cur = Held(dup_cloexec(root)?);
        }
    }
}

/// `/proc/self/fd/N` for `fd`, for `mount(2)`, which takes paths only.
pub(super) fn fd_path(fd: c_int, buf: &mut [u8; 32]) -> &CStr {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    let mut n = 0usize;
    for (slot, b) in buf.iter_mut().zip(PREFIX) {
        *slot = *b;
        n = n.saturating_add(1);
    }
    let digits = format_int(i64::from(fd), buf.get_mut(n..).unwrap_or(&mut []));
    n = n.saturating_add(digits);
    if let Some(nul) = buf.get_mut(n) {
        *nul = 0;
    }
    CStr::from_bytes_until_nul(buf.as_slice()).unwrap_or(c"/proc/self/fd/-1")
}
