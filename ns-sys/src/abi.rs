//! The two conventions every wrapper of this crate shares: a system call's `-1`-and-`errno`
//! answer turned into an [`std::io::Result`] (`cvt`), and `ioctl` request numbers built the
//! way the kernel's `_IOC` macro builds them ([`ioc`]).
//!
//! The bottom of the crate: it uses no other file of it and makes no system call.

/// Turns the `-1`-and-`errno` convention of a system call into an [`std::io::Result`].
#[inline]
pub(crate) fn cvt(ret: libc::c_long) -> std::io::Result<libc::c_long> {
    if ret == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Builds an `ioctl` request number the way the kernel's `_IOC` macro does
/// (`include/uapi/asm-generic/ioctl.h`).
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: u32) -> u32 {
    (dir << 30) | (size << 16) | (ty << 8) | nr
}

/// `_IOC_NONE`: the request carries no data.
pub const IOC_NONE: u32 = 0;
/// `_IOC_WRITE`: userspace writes data to the kernel.
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`: the kernel writes data to userspace.
pub const IOC_READ: u32 = 2;
