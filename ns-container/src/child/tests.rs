//! Unit tests of the after-clone helpers.

use super::entry::fdinfo_pid;
use super::exec::send_fd;
use super::fds::{by_listing, Listed};
use super::*;
use std::os::fd::AsRawFd;

#[test]
fn format_int_writes_decimal_digits() {
    let mut out = [0u8; 24];
    let n = format_int(4_194_303, &mut out);
    assert_eq!(&out[..n], b"4194303");
    let n = format_int(0, &mut out);
    assert_eq!(&out[..n], b"0");
    let mut short = [0u8; 2];
    assert_eq!(format_int(12345, &mut short), 2);
}

#[test]
fn fdinfo_pid_reads_a_pidfd() {
    let proc_fd = unsafe {
        libc::open(
            c"/proc".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    assert!(proc_fd >= 0);
    let me = std::process::id() as pid_t;
    let pidfd = ns_sys::pidfd_open(me, 0).unwrap();
    assert_eq!(
        fdinfo_pid(proc_fd, std::os::fd::AsRawFd::as_raw_fd(&pidfd)),
        Ok(me)
    );
    let file = std::fs::File::open("/proc/self/status").unwrap();
    assert_eq!(
        fdinfo_pid(proc_fd, std::os::fd::AsRawFd::as_raw_fd(&file)),
        Err(libc::EIO)
    );
    unsafe { libc::close(proc_fd) };
}

#[test]
fn listing_fallback_closes_every_descriptor_from_3_but_the_kept() {
    // In a forked child: the walk closes every descriptor of the process but those kept.
    // SAFETY: the child only makes the calls below and _exits; nothing it touches is
    // shared with the test harness's other threads.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: plain calls on descriptors this child opens.
        let ok = unsafe {
            let proc_fd = libc::open(
                c"/proc".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            let a = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            let b = libc::dup2(a, 200);
            let c = libc::dup2(a, 201);
            let before = a >= 3 && b == 200 && c == 201;
            let walked = by_listing(proc_fd, &[proc_fd, 201], Listed::Close).is_ok();
            let after = libc::fcntl(a, libc::F_GETFD) < 0
                && libc::fcntl(b, libc::F_GETFD) < 0
                && libc::fcntl(c, libc::F_GETFD) >= 0
                && libc::fcntl(proc_fd, libc::F_GETFD) >= 0
                && libc::fcntl(0, libc::F_GETFD) >= 0;
            before && walked && after
        };
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{status:#x}"
    );
}

#[test]
fn step_numbers_round_trip() {
    for v in 1..=39 {
        assert_eq!(Step::from_u32(v).map(|s| s as u32), Some(v));
    }
    assert_eq!(Step::from_u32(0), None);
    assert_eq!(Step::from_u32(40), None);
}

/// The child's sender against the caller's receiver: a descriptor the kernel cannot install
/// (a full table) must come back as an error, never as a message without one.
#[test]
fn a_descriptor_that_finds_no_free_slot_is_an_error() {
    let (ours, theirs) = crate::sys::seqpacket_pair().unwrap();
    send_fd(theirs.as_raw_fd(), theirs.as_raw_fd()).unwrap();
    // In a forked copy (no other thread), fill every free slot below a low limit, then
    // receive: the kernel drops the descriptor and sets MSG_CTRUNC. Only raw calls and
    // no allocation after the fork.
    // SAFETY: the child makes async-signal-safe calls and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let limit = libc::rlimit {
            rlim_cur: 64,
            rlim_max: 64,
        };
        // SAFETY: plain system calls on this process.
        let code = unsafe {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                libc::_exit(3);
            }
            while libc::dup(0) >= 0 {}
            match crate::sys::receive_fd(&ours) {
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => 0,
                Err(_) => 1,
                Ok(_) => 2,
            }
        };
        // SAFETY: leaving the forked child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "receive_fd with a full table: 2 is Ok (the lie), 1 another error"
    );
    // With room, the same kind of message arrives.
    send_fd(theirs.as_raw_fd(), theirs.as_raw_fd()).unwrap();
    // The forked child consumed the first message; this is the second.
    assert!(crate::sys::receive_fd(&ours).unwrap().is_some());
}

#[test]
fn a_path_is_under_a_directory_by_whole_components() {
    use super::mounts::path_under_for_tests as under;
    assert!(under(c"/a/b", c"/a"));
    assert!(under(c"/a/b", c"/a/"));
    assert!(under(c"/a", c"/a"));
    assert!(under(c"/a/b/c", c"/"));
    assert!(!under(c"/a/bc", c"/a/b"));
    assert!(!under(c"/b", c"/a"));
}
