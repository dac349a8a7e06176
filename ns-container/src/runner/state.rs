//! A runner thread's state: its original namespaces, root and working directory, and what
//! it must look like after each closure (namespaces, credentials, shared descriptor table);
//! moving into a closure's namespace and settling back afterwards.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ns_core::{Namespace, NsType, ThreadRule};

use super::credentials::Credentials;
use super::keys::{current_key, key_of, open_dir, RUNNABLE, STARTING};
use crate::error::{io_error, Error, Result};

/// What the runner's threads have done, for monitoring and tests.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// `setns` calls made to enter or leave a namespace.
    pub(super) switches: AtomicU64,
    /// Threads retired because they could not be brought back to a known state.
    pub(super) retired: AtomicU64,
}

/// The runner thread's own namespaces and where it is now.
pub(super) struct ThreadState {
    /// (type, handle to the thread's original namespace, its (dev, ino)).
    pub(super) home: Vec<(NsType, Namespace, (u64, u64))>,
    /// The namespace the thread is in now instead of its original one, if any.
    pub(super) entered: Option<(Namespace, (u64, u64))>,
    /// The thread's root and working directory at home.
    pub(super) home_fs: FsState,
    /// Root and working directory inside an entered mount namespace (its root, as `setns`
    /// leaves them).
    pub(super) entered_fs: Option<FsState>,
    /// The thread's credentials when it started; a closure that changed them cannot be
    /// undone (privilege, once dropped, is gone), so the thread is retired.
    pub(super) creds: Credentials,
    /// The `/proc` the thread started with, and its own namespace directory there.
    pub(super) proc: OwnedFd,
    pub(super) ns_dir: OwnedFd,
    /// The signal mask, alternate signal stack and umask the thread started with, put back
    /// after each closure.
    pub(super) sigmask: libc::sigset_t,
    pub(super) altstack: libc::stack_t,
    pub(super) umask: libc::mode_t,
    /// A thread known to share the process's descriptor table, to compare with (`kcmp`);
    /// `None` where `kcmp` cannot tell (no `CONFIG_KCMP`, or a seccomp profile that refuses
    /// it without `CAP_SYS_PTRACE`, as Docker's does).
    pub(super) files_peer: Option<libc::pid_t>,
    pub(super) stats: Arc<Stats>,
}

/// A thread's root directory and working directory, held open so they can be restored.
pub(super) struct FsState {
    pub(super) root: OwnedFd,
    pub(super) cwd: OwnedFd,
    pub(super) key: FsKey,
}

/// `(mount id, dev, ino)` of the root and of the working directory: the mount id tells a
/// bind mount from the directory it shows.
pub(super) type FsKey = [(u64, u64, u64); 2];

impl FsState {
    pub(super) fn capture() -> std::io::Result<FsState> {
        Ok(FsState {
            root: open_dir(c"/")?,
            cwd: open_dir(c".")?,
            key: fs_key()?,
        })
    }

    /// Puts the calling thread's root and working directory back (`fchdir` to the root,
    /// `chroot(".")`, `fchdir` to the working directory), if they changed.
    pub(super) fn restore(&self) -> bool {
        if fs_key().ok() == Some(self.key) {
            return true;
        }
        // SAFETY: fchdir/chroot on descriptors this state owns; they affect only this
        // thread, which does not share its filesystem state (unshare(CLONE_FS)).
        unsafe {
            if libc::fchdir(self.root.as_raw_fd()) != 0
                || libc::chroot(c".".as_ptr()) != 0
                || libc::fchdir(self.cwd.as_raw_fd()) != 0
            {
                return false;
            }
        }
        fs_key().ok() == Some(self.key)
    }
}

pub(super) fn fs_key() -> std::io::Result<FsKey> {
    Ok([statx_key(c"/")?, statx_key(c".")?])
}

pub(super) fn statx_key(path: &std::ffi::CStr) -> std::io::Result<(u64, u64, u64)> {
    // SAFETY: an all-zero statx is valid storage for the kernel to fill.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a live, writable statx.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            0,
            libc::STATX_INO | libc::STATX_MNT_ID,
            &mut st,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let dev = libc::makedev(st.stx_dev_major, st.stx_dev_minor);
    Ok((st.stx_mnt_id, dev, st.stx_ino))
}

impl ThreadState {
    pub(super) fn new(stats: Arc<Stats>, peer: libc::pid_t) -> Result<ThreadState> {
        // A private fs state, so that mount namespaces can be entered by this thread alone.
        // SAFETY: CLONE_FS splits only root, cwd and umask, which this thread owns from now on.
        unsafe { ns_sys::unshare(ns_sys::CLONE_FS) }
            .map_err(io_error(STARTING, "unshare(CLONE_FS)"))?;
        let proc = open_dir(c"/proc").map_err(io_error(STARTING, "opening /proc"))?;
        let ns_dir = open_dir(c"/proc/thread-self/ns")
            .map_err(io_error(STARTING, "opening its /proc namespace directory"))?;
        // SAFETY: all-zero structures are valid storage for the queries below, which write
        // only into them.
        let (sigmask, altstack, umask) = unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            let mut stack: libc::stack_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask);
            libc::sigaltstack(std::ptr::null(), &mut stack);
            // umask sets and returns: the old value goes straight back (no closure runs yet).
            let umask = libc::umask(0o022);
            libc::umask(umask);
            (mask, stack, umask)
        };
        let files_peer = shares_files(peer).then_some(peer);
        let mut home = Vec::new();
        for t in RUNNABLE {
            let ns = if t == NsType::PID {
                Namespace::for_children(t)?
            } else {
                Namespace::current(t)?
            };
            let key = key_of(&ns)?;
            home.push((t, ns, key));
        }
        Ok(ThreadState {
            home,
            entered: None,
            home_fs: FsState::capture().map_err(io_error(
                STARTING,
                "recording its root and working directory",
            ))?,
            entered_fs: None,
            creds: Credentials::current(&proc)
                .map_err(io_error(STARTING, "recording its credentials"))?,
            proc,
            ns_dir,
            sigmask,
            altstack,
            umask,
            files_peer,
            stats,
        })
    }

    /// Puts the thread in its original namespaces except `ns`, which it enters.
    pub(super) fn prepare(&mut self, ns: &Namespace) -> Result<()> {
        let t = ns.ns_type();
        if matches!(t, NsType::USER | NsType::TIME) {
            let threads = ns_core::thread_count().unwrap_or(0);
            let rule = if t == NsType::USER {
                ThreadRule::UserNeedsSingleThread { threads }
            } else {
                ThreadRule::TimeNeedsSingleThread { threads }
            };
            return Err(Error::Core(ns_core::Error::ThreadRule {
                context: ns_core::Context::new(ns_core::Op::Enter, t, ns.origin().clone()),
                rule,
            }));
        }
        let want = key_of(ns)?;
        if let Some((current, key)) = &self.entered {
            if current.ns_type() == t && *key == want {
                return Ok(());
            }
            let back = current.ns_type();
            self.go_home(back)?;
        }
        if self.home_key(t) == Some(want) {
            return Ok(());
        }
        self.stats.switches.fetch_add(1, Ordering::Relaxed);
        ns.enter()?;
        self.entered = Some((ns.try_clone()?, want));
        if t == NsType::MNT {
            // setns left root and working directory at the namespace's root.
            self.entered_fs = Some(FsState::capture().map_err(io_error(
                "running a closure in a mount namespace",
                "recording its root",
            ))?);
        }
        Ok(())
    }

    pub(super) fn home_key(&self, t: NsType) -> Option<(u64, u64)> {
        self.home
            .iter()
            .find(|(ht, _, _)| *ht == t)
            .map(|(_, _, k)| *k)
    }

    pub(super) fn go_home(&mut self, t: NsType) -> Result<()> {
        if let Some((_, ns, _)) = self.home.iter().find(|(ht, _, _)| *ht == t) {
            self.stats.switches.fetch_add(1, Ordering::Relaxed);
            ns.enter()?;
        }
        self.entered = None;
        self.entered_fs = None;
        // Moving back into the original mount namespace resets root and working directory.
        if t == NsType::MNT && !self.home_fs.restore() {
            return Err(Error::Invalid {
                what: "moving a runner thread back to its mount namespace".to_owned(),
                reason: "its root and working directory could not be restored".to_owned(),
            });
        }
        Ok(())
    }

    /// After a closure: checks every namespace of the thread against where it should be and
    /// moves it back where needed, then its root and working directory, then its
    /// credentials. Returns false when the thread cannot be brought back.
    pub(super) fn settle(&mut self) -> bool {
        // Root and working directory first (from held descriptors, no /proc needed), so that
        // the namespace check below reads the real /proc; again after it, since moving back
        // into a mount namespace resets both.
        let restored = |state: &ThreadState| {
            state
                .entered_fs
                .as_ref()
                .unwrap_or(&state.home_fs)
                .restore()
        };
        if !restored(self) || !self.settle_namespaces() || !restored(self) {
            return false;
        }
        // SAFETY: restoring this thread's own signal mask, alternate stack and umask (its
        // fs state is its own since unshare(CLONE_FS)) as they were.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.sigmask, std::ptr::null_mut());
            libc::sigaltstack(&self.altstack, std::ptr::null_mut());
            libc::umask(self.umask);
        }
        // A thread that unshared its descriptor table would make later closures' descriptors
        // mean other files in the rest of the process.
        if let Some(peer) = self.files_peer {
            if !shares_files(peer) {
                return false;
            }
        }
        Credentials::current(&self.proc).ok().as_ref() == Some(&self.creds)
    }

    pub(super) fn settle_namespaces(&mut self) -> bool {
        for (t, home_ns, home_key) in &self.home {
            let expected = match &self.entered {
                Some((ns, key)) if ns.ns_type() == *t => (ns, *key),
                _ => (home_ns, *home_key),
            };
            match current_key(&self.ns_dir, *t) {
                Ok(k) if k == expected.1 => continue,
                _ => {
                    self.stats.switches.fetch_add(1, Ordering::Relaxed);
                    if expected.0.enter().is_err()
                        || current_key(&self.ns_dir, *t).ok() != Some(expected.1)
                    {
                        return false;
                    }
                    if *t == NsType::MNT && self.entered.is_none() && !self.home_fs.restore() {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// Whether the calling thread shares its descriptor table with thread `peer` (`kcmp`).
pub(super) fn shares_files(peer: libc::pid_t) -> bool {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    matches!(
        ns_sys::ns::kcmp(peer, tid, ns_sys::ns::KCMP_FILES, 0, 0),
        Ok(0)
    )
}
