//! The trampoline's image: its machine code wrapped in a minimal static ELF executable,
//! written into a sealed, close-on-exec memfd (made once per process and kept: `mod.rs`).

use std::os::fd::{AsRawFd, OwnedFd};

use super::args::NAME;

#[cfg(target_arch = "x86_64")]
use super::x86_64::code;

/// No trampoline for this architecture: spawns take the copy path.
#[cfg(not(target_arch = "x86_64"))]
fn code() -> &'static [u8] {
    &[]
}

/// A static ELF executable around [`code`]: the ELF header, a loadable segment holding the
/// whole file (read and execute) and a non-executable stack.
pub(super) fn elf(code: &[u8]) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let headers = EHDR + 2 * PHDR;
    let size = (headers + code.len()) as u64;
    let mut f = Vec::with_capacity(headers + code.len());
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI.
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    f.extend_from_slice(&62u16.to_le_bytes()); // e_machine: EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&(BASE + headers as u64).to_le_bytes()); // e_entry
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    f.extend_from_slice(&(EHDR as u16).to_le_bytes()); // e_ehsize
    f.extend_from_slice(&(PHDR as u16).to_le_bytes()); // e_phentsize
    f.extend_from_slice(&2u16.to_le_bytes()); // e_phnum
    f.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    let phdr = |f: &mut Vec<u8>, p_type: u32, flags: u32, vaddr: u64, size: u64, align: u64| {
        f.extend_from_slice(&p_type.to_le_bytes());
        f.extend_from_slice(&flags.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // p_offset
        f.extend_from_slice(&vaddr.to_le_bytes()); // p_vaddr
        f.extend_from_slice(&vaddr.to_le_bytes()); // p_paddr
        f.extend_from_slice(&size.to_le_bytes()); // p_filesz
        f.extend_from_slice(&size.to_le_bytes()); // p_memsz
        f.extend_from_slice(&align.to_le_bytes());
    };
    // PT_LOAD, read + execute.
    phdr(&mut f, 1, 5, BASE, size, 0x1000);
    // PT_GNU_STACK, read + write: the stack is not executable.
    phdr(&mut f, 0x6474_e551, 6, 0, 0, 16);
    f.extend_from_slice(code);
    f
}

/// The image's seals: nothing can write, grow, shrink or reseal it.
pub(super) const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// A sealed, close-on-exec memfd holding the executable.
pub(super) fn create_image() -> std::io::Result<OwnedFd> {
    let code = code();
    if code.is_empty() {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
    }
    let image = elf(code);
    // MFD_EXEC (Linux 6.3) asks for an executable memfd where vm.memfd_noexec would
    // otherwise seal it non-executable; older kernels refuse the unknown flag.
    const MFD_EXEC: libc::c_uint = 0x10;
    let fd = crate::sys::memfd(NAME, libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING, MFD_EXEC)?;
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, &image)?;
    let fd = OwnedFd::from(file);
    // SAFETY: adding seals to a memfd we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}
