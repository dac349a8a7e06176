//! The caller's end of a child's status record: a fixed-size record (step, detail, errno)
//! on a pipe the child writes to until `execve` closes it, and how a wait status reads.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use libc::{c_int, c_void};

use crate::child;

pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: reading and setting the status flags of a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

pub(crate) fn read_record(r: &OwnedFd) -> io::Result<Option<child::Record>> {
    let mut rec: child::Record = [0; 5];
    let size = std::mem::size_of::<child::Record>();
    let mut got = 0;
    while got < size {
        // SAFETY: reading into the live record buffer, past what was already read.
        let n = unsafe {
            libc::read(
                r.as_raw_fd(),
                (rec.as_mut_ptr() as *mut u8).add(got) as *mut c_void,
                size - got,
            )
        };
        if n == 0 {
            return Ok(None);
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(Some(rec))
}

pub(crate) fn describe_status(status: c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else {
        format!("wait status {status:#x}")
    }
}
