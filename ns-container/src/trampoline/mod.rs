//! The trampoline: a program of under three kilobytes, built in memory and executed from a
//! sealed memfd, that does the part of a spawn no task on the caller's memory may do, then
//! executes the real program.
//!
//! Whatever a container can reach during a spawn into it (`/proc/PID/mem`, `/proc/PID/fd`,
//! `ptrace`, with `CAP_SYS_PTRACE` too) must be this image, never the caller: a task that
//! shares the caller's memory, or holds a copy of it, is a piece of the caller. The child of
//! a spawn (on the caller's memory, in the caller's pid namespace, with the caller's
//! credentials) prepares everything it can (descriptors, limits, `no_new_privs`, ...) and
//! executes this image instead of the program (`execveat` of a sealed memfd). In its own
//! small memory, non-dumpable from its first instruction, the trampoline:
//! 1. enters namespaces (`setns` of a list): the target's user namespace after the caller
//!    entered the rest (a privileged caller), or the whole entry, user namespace first (a
//!    caller without privilege, whom the user namespace gives the privilege);
//! 2. drops the bounding set, sets groups, gid and uid, the capability sets and the ambient
//!    set, as `child/credentials.rs` and `child/privileges.rs` would, and makes itself
//!    non-dumpable again (a change of credentials resets the flag to `fs.suid_dumpable`);
//! 3. with the fork argument, creates the program's process in the pid namespace entered
//!    for children (`clone3(CLONE_PARENT|CLONE_PIDFD|CLONE_PARENT_SETTID)`, the legacy
//!    `clone` where `clone3` is refused): the caller's child, whose pid the kernel writes
//!    into its slot of a page shared with the caller (`spawn/board.rs`) and kept out of that
//!    process (`MADV_DONTFORK`).
//!    It checks that the caller is still its parent (else it kills the process: the caller
//!    died half-way) and leaves. With a parent-death signal asked it first waits
//!    (`CLONE_VFORK`) until that process has exec'd or died, so that the check follows the
//!    signal's arming and the program never outlives a caller that dies during the spawn;
//!    without one, a caller that dies after the check leaves the program running, as a std
//!    child would. It never waits otherwise: woken on the CPU the program runs on, it could
//!    wait there until the program blocks, and the caller with it. That process never holds
//!    the caller's pidfd nor anything of the spawn but the status pipe;
//! 4. in the process that runs the program: starts the session and takes the terminal (with
//!    the fork argument), sets the parent-death signal, checks that the caller is alive
//!    (without the fork argument: the trampoline's parent is the caller's thread),
//!    changes directory and checks it is under the root (the kernel's `getcwd`), installs
//!    the seccomp filter, and executes the program along the PATH candidates as
//!    `child::exec` does.
//!
//! It reports a failure as one status-pipe record, the same record the child writes, and
//! marks the pipe close-on-exec so that end-of-file means the program runs (with the fork
//! argument the caller trusts the trampoline's exit and the shared page for the process and
//! its pid: see `spawn/forked.rs`). It also serves as the plain exec relay (no namespace, no
//! fork), so that `/proc/self/exe` during the program's `execve` is this sealed image, never
//! the caller's binary.
//!
//! It exists for x86_64; elsewhere, and wherever the kernel or a policy refuses to execute a
//! memfd (`vm.memfd_noexec`, a seccomp filter, an LSM), [`usable`] is false and such a spawn
//! takes the older routes (a copy of the caller for a user namespace; the caller's memory
//! made non-dumpable while a task on it is in the target's pid namespace). Whether it works
//! is asked once per process by running it: given a descriptor that is no namespace, it must
//! report exactly that. The image is made once per process and kept (one close-on-exec
//! descriptor, `memfd:ns-enter-user`, made by the probe); each spawn gets its own duplicate
//! ([`image`]), about a microsecond against 20–30 µs for writing, sealing and later freeing a
//! fresh memfd. Nothing can change it (sealed against writes, growing and shrinking, and
//! against new seals). Since a program may close descriptors it does not know (a daemon
//! closing every descriptor) and its number may then name another file, a duplicate is used
//! only when it is the same file as the one made (`fstat`: device and inode); otherwise a
//! new image is made and kept, and the old number, no longer the library's, is left alone.
//!
//! Its arguments, all prepared by the caller (numbers decimal, lists comma-separated; empty:
//! not asked): `argv[1]` the namespaces, `fd,nstype` pairs in order; `argv[2]` the status
//! pipe; `argv[3]` a pidfd of the caller (unused with the fork argument); `argv[4]` the
//! parent-death signal (0: none); `argv[5]` `=` and the working directory (`+` instead: tried
//! before the credentials change too, `NsCommand::chdir_before_credentials`); `argv[6]` the
//! supplementary groups (`-`: leave them; `!`: drop them, ignoring a refusal; else at most
//! [`MAX_GROUPS`]); `argv[7]` the gid; `argv[8]` the uid; `argv[9]` the fork argument, the
//! page's descriptor, the caller's pid and the pid's four-byte slot in that page; `argv[10]`
//! the seccomp filter, its instructions in lowercase hex; `argv[11]` the bounding set to
//! keep (a 64-bit mask); `argv[12]` the capability sets,
//! `which,eff_lo,eff_hi,perm_lo,perm_hi,inh_lo,inh_hi` (which: 1, 2, 4 for the sets asked, 8
//! to keep them across the uid change); `argv[13]` the ambient set,
//! `lo,hi`; `argv[14]` the session (`s`, or the terminal's descriptor); `argv[15]` the
//! number `n` of PATH candidates, `argv[16..16+n]` the candidates, then the program's own
//! `argv`; its environment is the program's.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | whether it is usable here, the image kept for every spawn |
//! | `args.rs` | the arguments the caller prepares for it |
//! | `image.rs` | the ELF around the machine code, in a sealed memfd |
//! | `x86_64.rs` | the machine code (one `asm!` block) |
//! | `probe.rs` | running it once to learn whether it works |
//!
//! Nothing here runs between `clone` and `execve` (that is `crate::child`, which executes
//! the image); nothing here knows the shape of a spawn (that is `crate::spawn`).

mod args;
mod image;
mod probe;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use crate::sys::KeptFd;
pub(crate) use args::{Args, Caps, Fork, Ids, MAX_GROUPS};
use image::create_image;
use probe::{transient, works};

/// The probe's answer: 0 unknown, 1 usable, 2 not.
static USABLE: AtomicU8 = AtomicU8::new(0);

/// Whether the trampoline runs here: tried once per process (again after a failure that
/// says nothing of the kernel, such as running out of descriptors). Kept without a lock, as
/// `crate::probes::probed` explains.
pub(crate) fn usable() -> bool {
    match USABLE.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let answer = match create_image() {
        Ok(fd) => {
            let works = works(&fd);
            if works == Some(true) {
                keep(&fd, std::ptr::null_mut());
            }
            works
        }
        Err(e) if transient(&e) => None,
        Err(_) => Some(false),
    };
    match answer {
        Some(yes) => {
            USABLE.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
        None => false,
    }
}

/// Records that executing the trampoline was refused (a policy set after the probe), so that
/// later spawns do not try it first.
pub(crate) fn refused() {
    USABLE.store(2, Ordering::Relaxed);
}

/// The kept image: its descriptor number and what it was when made (device, inode).
struct Kept {
    fd: RawFd,
    id: (u64, u64),
}

/// The process's image, published once made; a replaced one is never freed (another thread
/// may be reading it), a few bytes each time a program closed the library's descriptor.
/// Kept without a lock, as `crate::probes::probed` explains.
static KEPT: AtomicPtr<Kept> = AtomicPtr::new(std::ptr::null_mut());

/// A close-on-exec descriptor of the trampoline's image, for one spawn: a duplicate of the
/// kept image while it is still the file made, else a new image (kept for the next spawns).
pub(crate) fn image() -> std::io::Result<OwnedFd> {
    if !usable() {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
    }
    let kept = KEPT.load(Ordering::Acquire);
    // SAFETY: a published Kept is never freed.
    if let Some(k) = unsafe { kept.as_ref() } {
        match crate::sys::duplicate_kept(k.fd, k.id) {
            KeptFd::Same(fd) if sealed(&fd) => return Ok(fd),
            KeptFd::Same(_) | KeptFd::Gone => {}
            // The number may still be the image: not replaced (that would leave it open
            // for good), the spawn fails instead.
            KeptFd::Failed(e) => return Err(e),
        }
    }
    let fresh = create_image()?;
    keep(&fresh, kept);
    Ok(fresh)
}

/// Whether `fd` carries exactly the image's seals (a second check of its identity, beside
/// the inode number, which wraps after 2^32 memfds).
fn sealed(fd: &OwnedFd) -> bool {
    // SAFETY: reading the seals of a descriptor we own.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) == image::SEALS }
}

/// Keeps a copy of `image` for later spawns in place of `old` (what this thread found
/// published); when another thread published first, the copy is closed again.
fn keep(image: &OwnedFd, old: *mut Kept) {
    let Ok(id) = ns_sys::fd::dev_ino(image.as_fd()) else {
        return;
    };
    let Ok(copy) = image.try_clone() else {
        return;
    };
    let new = Box::into_raw(Box::new(Kept {
        fd: copy.as_raw_fd(),
        id,
    }));
    match KEPT.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
        // The number is the process's now, for good.
        Ok(_) => std::mem::forget(copy),
        Err(_) => {
            // SAFETY: `new` was never published.
            drop(unsafe { Box::from_raw(new) });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    #[cfg(target_arch = "x86_64")]
    use super::{image::elf, x86_64::code};

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_image_is_a_small_static_executable() {
        let code = code();
        assert!(
            !code.is_empty() && code.len() < 3072,
            "{} bytes",
            code.len()
        );
        let image = elf(code);
        assert_eq!(&image[..4], b"\x7fELF");
        assert_eq!(image.len(), 64 + 2 * 56 + code.len());
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_probe_runs_it_and_answers() {
        assert_eq!(works(&create_image().unwrap()), Some(true));
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn it_runs_here_and_reports_a_bad_descriptor() {
        assert!(usable());
        assert!(image().is_ok());
    }

    #[test]
    fn arguments_are_decimal_and_candidates_lose_their_null() {
        let ids = Ids {
            groups: Some(&[10, 20]),
            drop_groups: false,
            gid: Some(5),
            uid: None,
        };
        let a = Args::new(
            &[(17, libc::CLONE_NEWUSER)],
            18,
            19,
            libc::SIGKILL,
            Some(c"/tmp"),
            ids,
            1,
        );
        let cand = [c"/bin/true".as_ptr(), std::ptr::null()];
        let prog = [c"true".as_ptr(), std::ptr::null()];
        let argv = a.argv(&cand, &prog);
        let s = |i: usize| {
            unsafe { std::ffi::CStr::from_ptr(argv[i]) }
                .to_str()
                .unwrap()
        };
        assert_eq!(
            (0..18).map(s).collect::<Vec<_>>(),
            [
                "ns-enter-user",
                "17,268435456",
                "18",
                "19",
                "9",
                "=/tmp",
                "10,20",
                "5",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "1",
                "/bin/true",
                "true"
            ]
        );
        assert!(argv[18].is_null() && argv.len() == 19);
        let filter = [libc::sock_filter {
            code: 0x06,
            jt: 1,
            jf: 2,
            k: 0x7fff_0000,
        }];
        let forked = Args::new(&[(5, 0), (6, 0)], 2, 3, 0, None, Ids::default(), 0)
            .forking(Fork {
                page: 7,
                caller: 42,
                slot: 1023,
            })
            .filtered(&filter);
        assert_eq!(forked.strings[0].to_str().unwrap(), "5,0,6,0");
        assert_eq!(forked.strings[8].to_str().unwrap(), "7,42,1023");
        assert_eq!(forked.strings[9].to_str().unwrap(), "060001020000ff7f");
        let caps = Caps {
            bounding: Some(3),
            effective: Some(1 << 33 | 1),
            ambient: Some(1 << 40),
            keep: true,
            ..Caps::default()
        };
        let capped = Args::new(&[], 2, 3, 0, None, Ids::default(), 0)
            .capabilities(caps)
            .session(true, Some(4));
        let text = |i: usize| capped.strings[i].to_str().unwrap().to_owned();
        assert_eq!(text(10), "3");
        assert_eq!(text(11), "9,1,2,0,0,0,0");
        assert_eq!(text(12), "0,256");
        assert_eq!(text(13), "4");
        let none = Args::new(&[(1, 0)], 2, 3, 0, None, Ids::default(), 0);
        let empty = Ids {
            groups: Some(&[]),
            ..Ids::default()
        };
        let cleared = Args::new(&[(1, 0)], 2, 3, 0, None, empty, 0);
        assert_eq!(none.strings[5].to_str().unwrap(), "-");
        let drop = Ids {
            drop_groups: true,
            ..Ids::default()
        };
        let dropped = Args::new(&[(1, 0)], 2, 3, 0, None, drop, 0);
        assert_eq!(dropped.strings[5].to_str().unwrap(), "!");
        assert_eq!(cleared.strings[5].to_str().unwrap(), "");
    }
}
