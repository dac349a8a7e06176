//! The memory the tasks of a spawn run on: their stacks and the shared report page they
//! write their progress and failures to, kept per thread between spawns, and the pointer
//! arrays into the spec's strings. Mapping only: no task is started here.

use std::ffi::CString;
use std::io;
use std::sync::atomic::Ordering;

use libc::{c_char, c_void};

use crate::child::{self, Report};
use crate::sys::Stacks;

// A report fits the one page mapped for it.
const _: () = assert!(std::mem::size_of::<Report>() <= 4096);

/// The `MAP_SHARED` page the tasks report to.
pub(super) struct ReportPage(pub(super) *mut Report);

impl ReportPage {
    pub(super) fn new() -> io::Result<ReportPage> {
        // Shared, so that a copy of the caller (a child with memory of its own) reports here.
        let page = ReportPage(crate::sys::anonymous_page(true)? as *mut Report);
        page.reset();
        Ok(page)
    }

    /// Zeroes the page and marks the descriptor slots empty and the tasks not started.
    pub(super) fn reset(&self) {
        // SAFETY: the page is mapped and no task of an earlier spawn uses it any more.
        unsafe { std::ptr::write_bytes(self.0 as *mut u8, 0, std::mem::size_of::<Report>()) };
        let report = self.get();
        for fd in [
            &report.intermediate_pidfd,
            &report.pid_stage_pidfd,
            &report.child_pidfd,
        ] {
            fd.store(-1, Ordering::Relaxed);
        }
        report
            .child_word
            .store(child::NOT_STARTED, Ordering::Relaxed);
        report
            .pid_stage_word
            .store(child::NOT_STARTED, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> &Report {
        // SAFETY: the page stays mapped for the lifetime of `self`.
        unsafe { &*self.0 }
    }
}

impl Drop for ReportPage {
    fn drop(&mut self) {
        // SAFETY: unmapping the page mapped in `new`; no task uses it any more.
        unsafe { libc::munmap(self.0 as *mut c_void, 4096) };
    }
}

/// Null-terminated array of pointers into `strings`.
pub(super) fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The stacks and the report page of a spawn, kept by each thread for its next spawn:
/// mapping, guarding and unmapping them every time costs page faults and, in a multithreaded
/// caller, a TLB shootdown on every core that ran the process. Nothing uses them once a
/// spawn has returned (every task is gone or off the caller's memory).
pub(super) struct Arena {
    pub(super) stacks: Stacks,
    pub(super) report: ReportPage,
    pub(super) child_stack: usize,
    /// A private page holding 1, which the kernel zeroes in any copy of this process
    /// (`MADV_WIPEONFORK`, Linux 4.14): a forked copy shares the report page (`MAP_SHARED`)
    /// with us and must map its own. Null where the kernel cannot mark it; then nothing is
    /// kept.
    pub(super) marker: *mut u8,
}

impl Drop for Arena {
    fn drop(&mut self) {
        if !self.marker.is_null() {
            // SAFETY: unmapping the marker page mapped in `Arena::new`.
            unsafe { libc::munmap(self.marker as *mut c_void, 4096) };
        }
    }
}

std::thread_local! {
    static ARENA: std::cell::Cell<Option<Arena>> = const { std::cell::Cell::new(None) };
}

impl Arena {
    pub(super) fn take(child_stack: usize) -> io::Result<Arena> {
        // A thread whose thread-locals are being torn down maps a fresh arena.
        let kept = ARENA.try_with(std::cell::Cell::take).ok().flatten();
        if let Some(arena) = kept {
            // SAFETY: the marker page stays mapped for the arena's lifetime.
            let ours = !arena.marker.is_null() && unsafe { *arena.marker } == 1;
            if ours && arena.child_stack == child_stack {
                arena.report.reset();
                return Ok(arena);
            }
            // Another size, or a forked copy's mappings: ours to drop only.
        }
        Arena::new(child_stack)
    }

    pub(super) fn new(child_stack: usize) -> io::Result<Arena> {
        // SAFETY: an anonymous private mapping of one page.
        let marker = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let marker = if marker == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else if unsafe {
            // SAFETY: advising on the page just mapped.
            libc::madvise(marker, 4096, libc::MADV_WIPEONFORK)
        } != 0
        {
            // SAFETY: unmapping the page just mapped.
            unsafe { libc::munmap(marker, 4096) };
            std::ptr::null_mut()
        } else {
            let marker = marker as *mut u8;
            // SAFETY: the page is mapped and writable.
            unsafe { *marker = 1 };
            marker
        };
        Ok(Arena {
            stacks: Stacks::new(&[64 << 10, 64 << 10, child_stack])?,
            report: ReportPage::new()?,
            child_stack,
            marker,
        })
    }

    pub(super) fn give_back(self) {
        if self.marker.is_null() {
            return;
        }
        // A thread whose thread-locals are being torn down just drops it.
        let _ = ARENA.try_with(|kept| kept.set(Some(self)));
    }
}
