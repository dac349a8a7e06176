//! The fork board: one page of a memfd, kept for the process, whose 1024 four-byte slots are
//! lent one to each spawn in which the trampoline creates the program's process
//! (`Shape::image_forks`). The kernel writes that process's pid into the spawn's slot
//! (`CLONE_PARENT_SETTID` on the trampoline's shared mapping of the page), and the caller
//! reads it there. A page of its own per spawn cost the caller a memfd to make, size and
//! free (about 10 µs); a slot costs a duplicate of the board's descriptor, an `fstat` and a
//! write of four zero bytes.
//!
//! Who can reach it: only trampolines map the page, the library's own code running in the
//! caller's pid namespace, non-dumpable, out of any container's sight; the program's process
//! never has it (the trampoline marks its mapping `MADV_DONTFORK` and closes its descriptor
//! before creating that process). So a pid read from a slot is the kernel's word, as it was
//! from a page of the spawn's own.
//!
//! What can go wrong, and what then happens:
//! - the process closes the board's descriptor behind the library's back, and the number
//!   names another file: the duplicate is checked to be the board (device and inode) before
//!   each use, and a new board is made otherwise (the old number is left alone);
//! - a copy of the process made by `fork` shares the page but not the accounting of its
//!   slots: a process uses only a board it made itself (a mark in a page of its memory that
//!   a copy sees zeroed, `MADV_WIPEONFORK`; the pid where the kernel lacks that, before
//!   4.14), and a closure child closes its copy of the caller's descriptor;
//! - the board's number cannot be duplicated (out of descriptors): the spawn makes a page of
//!   its own, and the board stays;
//! - a spawn ends in doubt (a task of it may still exist unseen, and may still write its
//!   slot): its slot is never lent again;
//! - every slot is lent (a thousand spawns at once): the spawn makes a page of its own.
//!
//! Kept without a lock, as `crate::probes::probed` explains.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use libc::pid_t;

use crate::sys::{self, KeptFd};

/// Slots per board: one page of four-byte pids.
const SLOTS: usize = 1024;

/// A board: its descriptor, what that was when made (device, inode), the process that made
/// it, and which slots are lent.
struct Board {
    fd: RawFd,
    id: (u64, u64),
    pid: pid_t,
    lent: [AtomicU64; SLOTS / 64],
}

/// The process's board, published once made; a replaced one is never freed (a slot of it
/// may still be lent, and another thread may be reading it).
static BOARD: AtomicPtr<Board> = AtomicPtr::new(std::ptr::null_mut());

/// A slot lent to one spawn, given back when dropped (never, for a spawn in doubt: the
/// caller forgets it).
pub(super) struct Slot {
    board: &'static Board,
    index: usize,
}

impl Slot {
    /// The slot's byte offset in the page.
    pub(super) fn offset(&self) -> usize {
        self.index * 4
    }

    /// Its number, for the trampoline.
    pub(super) fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(word) = self.board.lent.get(self.index / 64) {
            word.fetch_and(!(1u64 << (self.index % 64)), Ordering::AcqRel);
        }
    }
}

/// A close-on-exec descriptor of the board and a cleared slot of it, for one spawn of the
/// process `me` (the caller's pid); `None` when no slot is free or the board cannot be used
/// (the spawn then makes a page of its own).
pub(super) fn lend(me: pid_t) -> Option<(OwnedFd, Slot)> {
    let (board, fd) = current(me)?;
    let slot = board.take()?;
    let zero = [0u8; 4];
    // SAFETY: writing four bytes from a live buffer at the slot's offset of our memfd.
    let n = unsafe {
        libc::pwrite(
            fd.as_raw_fd(),
            zero.as_ptr().cast(),
            zero.len(),
            slot.offset() as libc::off_t,
        )
    };
    (n == zero.len() as isize).then_some((fd, slot))
}

/// Makes the process's board now (`crate::prepare_spawning`), where the trampoline runs.
pub(crate) fn prepare() {
    if crate::trampoline::usable() {
        // SAFETY: getpid has no preconditions.
        let _ = current(unsafe { libc::getpid() });
    }
}

/// In a closure child (a copy of the caller that runs the caller's code in the container):
/// forgets the caller's board and closes this copy's descriptor of it, so that nothing in
/// the container holds the page the caller's spawns read their pids from. Async-signal-safe.
pub(crate) fn forget_after_fork() {
    let board = BOARD.swap(std::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: a published Board is never freed; this task is the copy's only one.
    if let Some(board) = unsafe { board.as_ref() } {
        // SAFETY: closing this copy's descriptor of the board, before any code of the
        // closure runs.
        unsafe { libc::close(board.fd) };
    }
}

impl Board {
    /// Lends a free slot.
    fn take(&'static self) -> Option<Slot> {
        for (w, word) in self.lent.iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != u64::MAX {
                let bit = (!bits).trailing_zeros() as usize;
                match word.compare_exchange_weak(
                    bits,
                    bits | (1u64 << bit),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        return Some(Slot {
                            board: self,
                            index: w * 64 + bit,
                        })
                    }
                    Err(now) => bits = now,
                }
            }
        }
        None
    }

    /// Whether this process made it: a copy made by `fork` sees the published board of the
    /// process it copies, with a pid number that may even be the same (in a new pid
    /// namespace), but its mark zeroed.
    fn ours(&self, me: pid_t) -> bool {
        self.pid == me && mark().is_none_or(|m| m.load(Ordering::Acquire) == 1)
    }
}

/// A word of a page of this process's memory that a copy made by `fork` (any new memory
/// made from it without `CLONE_VM`) sees zeroed (`MADV_WIPEONFORK`, Linux 4.14): 1 once this
/// process made a board. `None` where the kernel lacks the flag (the pid alone then tells).
fn mark() -> Option<&'static AtomicU64> {
    static MARK: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
    static REFUSED: AtomicBool = AtomicBool::new(false);
    let seen = MARK.load(Ordering::Acquire);
    // SAFETY: a published mark page is never unmapped.
    if let Some(m) = unsafe { seen.as_ref() } {
        return Some(m);
    }
    if REFUSED.load(Ordering::Relaxed) {
        return None;
    }
    let page = sys::anonymous_page(false).ok()?;
    // SAFETY: advising the page mapped above.
    if unsafe { libc::madvise(page, 4096, libc::MADV_WIPEONFORK) } != 0 {
        // SAFETY: unmapping the page mapped above, which nothing else saw.
        unsafe { libc::munmap(page, 4096) };
        REFUSED.store(true, Ordering::Relaxed);
        return None;
    }
    let word = page.cast::<AtomicU64>();
    match MARK.compare_exchange(seen, word, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: published, never unmapped.
        Ok(_) => Some(unsafe { &*word }),
        Err(other) => {
            // SAFETY: unmapping the page mapped above, which nothing else saw.
            unsafe { libc::munmap(page, 4096) };
            // SAFETY: published by another thread, never unmapped.
            unsafe { other.as_ref() }
        }
    }
}

/// The process's board and a duplicate of its descriptor, made (and published) when there
/// is none of this process's own, or its descriptor no longer names it.
fn current(me: pid_t) -> Option<(&'static Board, OwnedFd)> {
    loop {
        let seen = BOARD.load(Ordering::Acquire);
        // SAFETY: a published Board is never freed.
        if let Some(board) = unsafe { seen.as_ref() }.filter(|b| b.ours(me)) {
            match sys::duplicate_kept(board.fd, board.id) {
                KeptFd::Same(fd) => return Some((board, fd)),
                KeptFd::Gone => {}
                // The number may still be the board's: not replaced (that would leave it
                // open for good); the spawn makes a page of its own.
                KeptFd::Failed(_) => return None,
            }
        }
        // (A board inherited from the process this one copies is left to it: its number
        // here is close-on-exec, and a closure child closes it.)
        let page = sys::page_memfd().ok()?;
        let id = ns_sys::fd::dev_ino(page.as_fd()).ok()?;
        // The kept number at 3 or above (the page's own may be 0, 1 or 2 where stdio is
        // closed); the page's goes to the spawn, which places it above its child's numbers.
        let kept = page.try_clone().ok()?;
        if let Some(m) = mark() {
            m.store(1, Ordering::Release);
        }
        let board = Box::into_raw(Box::new(Board {
            fd: kept.as_raw_fd(),
            id,
            pid: me,
            lent: std::array::from_fn(|_| AtomicU64::new(0)),
        }));
        match BOARD.compare_exchange(seen, board, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // The number is the process's now, for good.
                std::mem::forget(kept);
                // SAFETY: just published, never freed.
                return Some((unsafe { &*board }, page));
            }
            Err(_) => {
                // Another thread published first: use that one.
                // SAFETY: `board` was never published.
                drop(unsafe { Box::from_raw(board) });
            }
        }
    }
}
