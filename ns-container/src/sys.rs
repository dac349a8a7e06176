//! Low-level pieces of the spawner: the stacks its tasks start on, and small helpers.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use libc::{c_int, c_void};

/// Memory for the stacks of the tasks of one spawn, each above a guard page.
pub(crate) struct Stacks {
    base: *mut c_void,
    len: usize,
    regions: Vec<(u64, u64)>,
}

impl Stacks {
    /// Maps one region per size in `sizes` (rounded up to pages), each with a guard page below
    /// it. The memory is reserved lazily (`MAP_NORESERVE`): untouched pages cost nothing.
    pub(crate) fn new(sizes: &[usize]) -> io::Result<Stacks> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let round = |n: usize| n.div_ceil(page) * page;
        let len: usize = sizes.iter().map(|s| page + round(*s)).sum();
        // SAFETY: an anonymous private mapping; nothing else is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut stacks = Stacks {
            base,
            len,
            regions: Vec::with_capacity(sizes.len()),
        };
        let mut offset = 0;
        for size in sizes {
            let guard = base as usize + offset;
            // SAFETY: the guard page lies inside the mapping made above.
            if unsafe { libc::mprotect(guard as *mut c_void, page, libc::PROT_NONE) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let size = round(*size);
            stacks.regions.push(((guard + page) as u64, size as u64));
            offset += page + size;
        }
        Ok(stacks)
    }

    /// `(lowest address, size)` of stack `i`, as `clone_args` wants them.
    pub(crate) fn region(&self, i: usize) -> (u64, u64) {
        self.regions.get(i).copied().unwrap_or((0, 0))
    }
}

impl Drop for Stacks {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`, which no task uses any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// A pipe whose ends are close-on-exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new descriptors that nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A memfd named `name` with `flags` and, where the kernel knows them, `newer` flags too
/// (an older kernel refuses unknown ones with `EINVAL`: asked again without them).
pub(crate) fn memfd(
    name: &std::ffi::CStr,
    flags: libc::c_uint,
    newer: libc::c_uint,
) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and flags.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | newer) };
    if fd < 0 && newer != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A zeroed anonymous page, read-write: `MAP_SHARED` (a copy of the process made by `fork`
/// writes where the process reads) or `MAP_PRIVATE`.
pub(crate) fn anonymous_page(shared: bool) -> io::Result<*mut c_void> {
    let sharing = if shared {
        libc::MAP_SHARED
    } else {
        libc::MAP_PRIVATE
    };
    // SAFETY: a new anonymous mapping of one page; nothing else is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            sharing | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p)
}

/// What a number the library keeps for the process names now.
pub(crate) enum KeptFd {
    /// The file kept: a close-on-exec duplicate of it, at 3 or above.
    Same(OwnedFd),
    /// No longer it: the process closed the number behind the library's back, and it is
    /// free or names another file.
    Gone,
    /// Not known (out of descriptors): the number may still be the library's.
    Failed(io::Error),
}

/// Duplicates `fd`, a descriptor the library keeps for the process, and tells whether it
/// still names the file whose `(st_dev, st_ino)` is `id`.
pub(crate) fn duplicate_kept(fd: RawFd, id: (u64, u64)) -> KeptFd {
    // SAFETY: duplicating a number; what it names is checked below before any use.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EBADF) {
            KeptFd::Gone
        } else {
            KeptFd::Failed(e)
        };
    }
    // SAFETY: fcntl returned a new descriptor that nobody else owns.
    let dup = unsafe { OwnedFd::from_raw_fd(new) };
    match ns_sys::fd::dev_ino(dup.as_fd()) {
        Ok(now) if now == id => KeptFd::Same(dup),
        Ok(_) => KeptFd::Gone,
        Err(e) => KeptFd::Failed(e),
    }
}

/// A close-on-exec memfd of one zeroed page, never executable (`MFD_NOEXEC_SEAL` where the
/// kernel has it, Linux 6.3, so that `vm.memfd_noexec=2` allows it).
pub(crate) fn page_memfd() -> io::Result<OwnedFd> {
    const MFD_NOEXEC_SEAL: libc::c_uint = 0x8;
    let fd = memfd(c"ns-fork-page", libc::MFD_CLOEXEC, MFD_NOEXEC_SEAL)?;
    // SAFETY: sizing a memfd we own.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), 4096) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A connected pair of close-on-exec `SOCK_SEQPACKET` Unix sockets.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair returned two new descriptors that nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Receives one descriptor sent with `SCM_RIGHTS` on `socket`, without waiting: `Ok(None)`
/// when no message is queued or it carries no descriptor. The descriptor is close-on-exec.
/// A descriptor the kernel could not install (a full descriptor table: the message comes
/// back with `MSG_CTRUNC`) is an error (`EMFILE`), never a message without one.
pub(crate) fn receive_fd(socket: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    use std::os::fd::AsFd;
    receive_fd_on(socket.as_fd(), false)
}

/// [`receive_fd`], waiting for the message when `wait` (interrupted waits resumed).
pub(crate) fn receive_fd_on(
    socket: std::os::fd::BorrowedFd<'_>,
    wait: bool,
) -> io::Result<Option<OwnedFd>> {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: &mut byte as *mut u8 as *mut c_void,
        iov_len: 1,
    };
    // Room for one control message holding one descriptor, aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; the fields set below point to live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let flags = libc::MSG_CMSG_CLOEXEC | if wait { 0 } else { libc::MSG_DONTWAIT };
    loop {
        // SAFETY: receiving into the buffers described by `msg`.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, flags) };
        if n >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) if wait => continue,
            Some(libc::EAGAIN) if !wait => return Ok(None),
            _ => return Err(e),
        }
    }
    let truncated = msg.msg_flags & libc::MSG_CTRUNC != 0;
    let mut received = None;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<c_int>();
                let fds = libc::CMSG_DATA(cmsg) as *const c_int;
                for i in 0..count {
                    let fd = OwnedFd::from_raw_fd(std::ptr::read_unaligned(fds.add(i)));
                    // The first is the one expected; any others are closed.
                    if received.is_none() {
                        received = Some(fd);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if truncated {
        // What did arrive is closed with `received`.
        return Err(io::Error::from_raw_os_error(libc::EMFILE));
    }
    Ok(received)
}

/// Blocks every signal in the calling thread and restores the previous mask when dropped.
pub(crate) struct SignalsBlocked {
    pub(crate) old: libc::sigset_t,
}

impl SignalsBlocked {
    pub(crate) fn new() -> SignalsBlocked {
        // SAFETY: sigfillset and pthread_sigmask write only to the sets passed.
        unsafe {
            let mut all = std::mem::zeroed::<libc::sigset_t>();
            let mut old = std::mem::zeroed::<libc::sigset_t>();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            SignalsBlocked { old }
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restoring the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// The `waitpid`-style status word for what `waitid` reported (as `ExitStatus::from_raw`
/// and the `WIF*` macros read it).
pub(crate) fn wait_status(info: &libc::siginfo_t) -> libc::c_int {
    // SAFETY: waitid filled `info` for a child; si_status is valid for SIGCHLD information.
    let status = unsafe { info.si_status() };
    match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        libc::CLD_STOPPED | libc::CLD_TRAPPED => ((status & 0xff) << 8) | 0x7f,
        libc::CLD_CONTINUED => 0xffff,
        _ => status,
    }
}

/// `open(2)` with `O_CLOEXEC` added, into an owned descriptor.
pub(crate) fn open_cloexec(path: &std::ffi::CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a new descriptor that nobody else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub(crate) fn cap_last() -> u32 {
    // Cached without a lock (0 unknown, else the number + 1), like `probes::probed`.
    static LAST: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    match LAST.load(std::sync::atomic::Ordering::Relaxed) {
        0 => {
            let read = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            match read {
                Some(last) => {
                    let last = last.min(63);
                    LAST.store(last + 1, std::sync::atomic::Ordering::Relaxed);
                    last
                }
                // Not kept: a failure to read says nothing of the kernel.
                None => 40,
            }
        }
        known => known - 1,
    }
}

/// Waits until `a` or `b` is readable or at its end (a pidfd: its process ended), resuming
/// interrupted waits; returns which of them are.
pub(crate) fn wait_either(a: RawFd, b: RawFd) -> io::Result<(bool, bool)> {
    let mut fds = [a, b].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: polling two live pollfd structures.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } >= 0 {
            return Ok((fds[0].revents != 0, fds[1].revents != 0));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}
