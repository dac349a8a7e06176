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
//!   slots: a process uses only a board it made itself (by pid), and closes an inherited one;
//! - a spawn ends in doubt (a task of it may still exist unseen, and may still write its
//!   slot): its slot is never lent again;
//! - every slot is lent (a thousand spawns at once): the spawn makes a page of its own.
//!
//! Kept without a lock, as `crate::probes::probed` explains.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use libc::pid_t;

use crate::sys;

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
/// process `me` (the caller's pid); `None` when no slot is free or no board can be made.
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

    /// A duplicate of its descriptor when that number still names it.
    fn duplicate(&self) -> Option<OwnedFd> {
        sys::duplicate_if_same(self.fd, self.id)
    }
}

/// The process's board and a duplicate of its descriptor, made (and published) when there
/// is none of this process's own, or its descriptor no longer names it.
fn current(me: pid_t) -> Option<(&'static Board, OwnedFd)> {
    loop {
        let seen = BOARD.load(Ordering::Acquire);
        // SAFETY: a published Board is never freed.
        let old = unsafe { seen.as_ref() };
        if let Some(board) = old.filter(|b| b.pid == me) {
            if let Some(fd) = board.duplicate() {
                return Some((board, fd));
            }
        }
        let page = sys::page_memfd().ok()?;
        let id = sys::dev_ino(page.as_raw_fd()).ok()?;
        let fd = page.try_clone().ok()?;
        let board = Box::into_raw(Box::new(Board {
            fd: page.as_raw_fd(),
            id,
            pid: me,
            lent: std::array::from_fn(|_| AtomicU64::new(0)),
        }));
        match BOARD.compare_exchange(seen, board, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // The number is the process's now, for good.
                std::mem::forget(page);
                if let Some(inherited) = old.filter(|b| b.pid != me) {
                    // The board of the process this one was forked from: this process's copy
                    // of its descriptor is used no more. Closed by the one thread that
                    // replaced it, if the number still names it.
                    if sys::dev_ino(inherited.fd).ok() == Some(inherited.id) {
                        // SAFETY: closing this process's copy of the board's descriptor.
                        unsafe { libc::close(inherited.fd) };
                    }
                }
                // SAFETY: just published, never freed.
                return Some((unsafe { &*board }, fd));
            }
            Err(_) => {
                // Another thread published first: use that one.
                // SAFETY: `board` was never published.
                drop(unsafe { Box::from_raw(board) });
            }
        }
    }
}
