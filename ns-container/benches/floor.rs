//! The raw floors of an entry, written without the library: what the kernel charges for the
//! shape of a spawn, with no check, no report and no error path.
//!
//! - *bare*: a `clone3(CLONE_VM|CLONE_VFORK)` task enters the namespaces and makes a
//!   `CLONE_VM|CLONE_VFORK|CLONE_PARENT` task that executes the program (the shape of the
//!   library's unprotected entry);
//! - *sealed*: the same task enters the namespaces and executes a tiny static image from a
//!   memfd, which forks the process that executes the program (`CLONE_VFORK`), waits for it
//!   and exits: the shape of the protected entry, where no task on the caller's memory is in
//!   the target's pid namespace.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use libc::{c_char, c_int, c_void};
use ns_core::NsType;
use ns_sys::{clone3_on_stack, clone_args};

const STACK: usize = 64 << 10;

/// One floor, prepared once: namespace descriptors, stacks, strings, and the image.
pub struct Floor {
    ns: Vec<OwnedFd>,
    raw: Vec<RawFd>,
    image: Option<OwnedFd>,
    image_fd: RawFd,
    stacks: *mut u8,
    program: CString,
    argv: [*const c_char; 2],
    image_argv: [*const c_char; 3],
    envp: [*const c_char; 1],
    grandchild: AtomicI32,
}

impl Floor {
    /// Entering `types` of `pid` (the user namespace first when `user_first`).
    pub fn new(pid: libc::pid_t, types: NsType, user_first: bool, sealed: bool) -> Box<Floor> {
        let mut order: Vec<(&str, NsType)> = vec![
            ("cgroup", NsType::CGROUP),
            ("ipc", NsType::IPC),
            ("uts", NsType::UTS),
            ("net", NsType::NET),
            ("pid", NsType::PID),
            ("mnt", NsType::MNT),
        ];
        if user_first {
            order.insert(0, ("user", NsType::USER));
        } else {
            order.push(("user", NsType::USER));
        }
        let ns: Vec<OwnedFd> = order
            .iter()
            .filter(|(_, t)| types.contains(*t))
            .map(|(name, _)| {
                std::fs::File::open(format!("/proc/{pid}/ns/{name}"))
                    .unwrap()
                    .into()
            })
            .collect();
        let raw = ns.iter().map(AsRawFd::as_raw_fd).collect();
        let image = sealed.then(image);
        let image_fd = image.as_ref().map(AsRawFd::as_raw_fd).unwrap_or(-1);
        // SAFETY: an anonymous private mapping for two stacks.
        let stacks = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(stacks, libc::MAP_FAILED);
        let program = CString::new("/bin/true").unwrap();
        let mut f = Box::new(Floor {
            ns,
            raw,
            image,
            image_fd,
            stacks: stacks.cast(),
            argv: [std::ptr::null(); 2],
            image_argv: [std::ptr::null(); 3],
            envp: [std::ptr::null()],
            program,
            grandchild: AtomicI32::new(0),
        });
        f.argv = [f.program.as_ptr(), std::ptr::null()];
        f.image_argv = [c"floor".as_ptr(), f.program.as_ptr(), std::ptr::null()];
        f
    }

    /// One spawn of `/bin/true` and its wait.
    pub fn run(&self) {
        let arg = self as *const Floor as *mut c_void;
        let mut args = clone_args {
            flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64,
            exit_signal: libc::SIGCHLD as u64,
            stack: self.stacks as u64,
            stack_size: STACK as u64,
            ..Default::default()
        };
        // SAFETY: the child runs raw system calls on its own stack until it execs or exits;
        // the caller is suspended meanwhile (CLONE_VFORK).
        let child = unsafe { clone3_on_stack(&mut args, child_main, arg) }.unwrap();
        let mut status = 0;
        // SAFETY: reaping our own children.
        unsafe {
            libc::waitpid(child, &mut status, libc::__WALL);
            if self.image.is_none() {
                let gc = self.grandchild.swap(0, Ordering::AcqRel);
                libc::waitpid(gc, &mut status, libc::__WALL);
            }
        }
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        // SAFETY: the stacks mapped in `new`, no task runs on them any more.
        unsafe { libc::munmap(self.stacks.cast(), 2 * STACK) };
        self.ns.clear();
    }
}

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: the caller's Floor, alive while it is suspended.
    let f = unsafe { &*(arg as *const Floor) };
    for fd in &f.raw {
        // SAFETY: setns with a descriptor of the Floor.
        unsafe { libc::syscall(libc::SYS_setns, *fd, 0) };
    }
    if f.image_fd >= 0 {
        // SAFETY: executing the image with prepared arrays; leaving on failure.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                f.image_fd,
                c"".as_ptr(),
                f.image_argv.as_ptr(),
                f.envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            libc::_exit(127)
        }
    }
    let mut args = clone_args {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PARENT | libc::CLONE_PARENT_SETTID)
            as u64,
        parent_tid: f.grandchild.as_ptr() as u64,
        exit_signal: 0,
        // SAFETY: the second stack of the Floor's mapping.
        stack: unsafe { f.stacks.add(STACK) } as u64,
        stack_size: STACK as u64,
        ..Default::default()
    };
    // SAFETY: as for the child.
    let _ = unsafe { clone3_on_stack(&mut args, grandchild_main, arg) };
    // SAFETY: leaving the task.
    unsafe { libc::_exit(0) }
}

extern "C" fn grandchild_main(arg: *mut c_void) -> c_int {
    // SAFETY: the caller's Floor, alive while it is suspended.
    let f = unsafe { &*(arg as *const Floor) };
    // SAFETY: prepared arrays; leaving on failure.
    unsafe {
        libc::execve(f.program.as_ptr(), f.argv.as_ptr(), f.envp.as_ptr());
        libc::_exit(127)
    }
}

/// The image's machine code: fork (`CLONE_VFORK`), the child executes `argv[1]` with
/// `argv[1..]` and the environment; the parent waits for it and exits 0.
fn code() -> &'static [u8] {
    #[inline(never)]
    fn bounds() -> (usize, usize) {
        let (begin, end): (usize, usize);
        // SAFETY: only two addresses are computed; the code between is jumped over.
        unsafe {
            core::arch::asm!(
                "lea {begin}, [rip + 20f]",
                "lea {end}, [rip + 29f]",
                "jmp 29f",
                "20:",
                "mov rbx, rsp",
                "mov edi, {flags}",
                "xor esi, esi",
                "xor edx, edx",
                "xor r10d, r10d",
                "xor r8d, r8d",
                "mov eax, {sys_clone}",
                "syscall",
                "test rax, rax",
                "jnz 22f",
                "mov rdi, [rbx + 16]",
                "lea rsi, [rbx + 16]",
                "mov rcx, [rbx]",
                "lea rdx, [rbx + rcx*8 + 16]",
                "mov eax, {sys_execve}",
                "syscall",
                "mov edi, 127",
                "mov eax, {sys_exit_group}",
                "syscall",
                "22:",
                "mov rdi, -1",
                "xor esi, esi",
                "xor edx, edx",
                "xor r10d, r10d",
                "mov eax, {sys_wait4}",
                "syscall",
                "xor edi, edi",
                "mov eax, {sys_exit_group}",
                "syscall",
                "29:",
                begin = out(reg) begin,
                end = out(reg) end,
                flags = const libc::CLONE_VFORK | libc::SIGCHLD,
                sys_clone = const libc::SYS_clone,
                sys_execve = const libc::SYS_execve,
                sys_wait4 = const libc::SYS_wait4,
                sys_exit_group = const libc::SYS_exit_group,
                options(pure, nomem, nostack),
            );
        }
        (begin, end)
    }
    let (begin, end) = bounds();
    // SAFETY: the bytes between the labels are this program's text.
    unsafe { std::slice::from_raw_parts(begin as *const u8, end - begin) }
}

/// A memfd holding a static ELF executable around [`code`].
fn image() -> OwnedFd {
    const BASE: u64 = 0x40_0000;
    let code = code();
    let headers = 64 + 56;
    let size = (headers + code.len()) as u64;
    let mut f = Vec::new();
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&62u16.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&(BASE + headers as u64).to_le_bytes());
    f.extend_from_slice(&64u64.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&64u16.to_le_bytes());
    f.extend_from_slice(&56u16.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&5u32.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&BASE.to_le_bytes());
    f.extend_from_slice(&BASE.to_le_bytes());
    f.extend_from_slice(&size.to_le_bytes());
    f.extend_from_slice(&size.to_le_bytes());
    f.extend_from_slice(&0x1000u64.to_le_bytes());
    f.extend_from_slice(code);
    // SAFETY: a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"floor".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, &f).unwrap();
    file.into()
}
