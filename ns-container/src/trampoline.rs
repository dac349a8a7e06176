//! The user-namespace trampoline: a program of under a kilobyte, built in memory, that
//! enters a user namespace and then executes the real program.
//!
//! A task that enters a target's user namespace must not share the caller's memory (the
//! container's root could write into the caller through `/proc/PID/mem`, guide section 8),
//! and the only memory a fresh task can have besides the caller's is a copy of it, whose cost
//! grows with the caller (about 60 ms for a caller holding 2 GiB here). A task that executes
//! a program gets memory of its own without any copy. So when the caller may enter every
//! other namespace itself (it has `CAP_SYS_ADMIN`, and the user namespace goes last), keeps
//! that capability across `execve` (`command::sys_admin_survives_exec`), and
//! nothing but the program runs with the container's credentials, the child shares the
//! caller's memory like any root spawn, with the caller's credentials, and instead of the
//! program it executes this trampoline (`execveat` of a sealed memfd). In its own small
//! memory the trampoline makes itself non-dumpable, enters the user namespace, sets
//! supplementary groups, gid and uid, sets the parent-death signal again (a change of
//! credentials may clear it), checks the caller is alive, changes directory, and executes
//! the program along the PATH candidates as `child::exec` does. It reports a failure as one status-pipe record, the same record the
//! child writes, and marks the pipe close-on-exec so that end-of-file means the program runs.
//!
//! It exists for x86_64; elsewhere, and wherever the kernel or a policy refuses to execute a
//! memfd (`vm.memfd_noexec`, a seccomp filter, an LSM), [`usable`] is false and such a spawn
//! copies the caller's memory as before. Whether it works is asked once per process by
//! running it: given a descriptor that is no namespace, it must report exactly that. Each
//! spawn gets a fresh memfd ([`image`], about 10 µs), closed when the spawn returns: a
//! descriptor kept for the life of the process could be closed behind the library's back
//! (a daemon closing every descriptor) and its number reused by another file, which the
//! next spawn would then execute.
//!
//! Its arguments, all prepared by the caller: `argv[1]` the user namespace descriptor,
//! `argv[2]` the status pipe, `argv[3]` a pidfd of the caller, `argv[4]` the parent-death
//! signal (0: none), `argv[5]` `=` and the working directory (empty: none), `argv[6]` the
//! supplementary groups (`-`: leave them; `!`: drop them, ignoring a refusal; else
//! comma-separated, at most [`MAX_GROUPS`]),
//! `argv[7]` the gid and `argv[8]` the uid (empty: leave it), `argv[9]` the number `n` of
//! PATH candidates, `argv[10..10+n]` the candidates, then the program's own `argv`; its
//! environment is the program's. Numbers are decimal. After the user namespace it sets
//! groups, gid and uid in the order and with the rule of `child/credentials.rs`, then the
//! parent-death signal (which a change of uid clears too).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::child::{Record, RECORD_FAILED};
use crate::error::Step;

/// `argv[0]` of the trampoline.
pub(crate) const NAME: &std::ffi::CStr = c"ns-enter-user";

/// The probe's answer: 0 unknown, 1 usable, 2 not.
static USABLE: AtomicU8 = AtomicU8::new(0);

/// Whether the trampoline runs here: tried once per process (again after a failure that
/// says nothing of the kernel, such as running out of descriptors). Kept without a lock, as
/// `spawn::probed` explains.
pub(crate) fn usable() -> bool {
    match USABLE.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let answer = match create_image() {
        Ok(fd) => works(&fd),
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

/// A failure that says nothing of what the kernel allows.
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::EINTR)
    )
}

/// A fresh memfd holding the trampoline, for one spawn.
pub(crate) fn image() -> std::io::Result<OwnedFd> {
    if !usable() {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
    }
    create_image()
}

/// The most supplementary groups the trampoline sets (more go the copy path).
pub(crate) const MAX_GROUPS: usize = 64;

/// The trampoline's arguments before the PATH candidates and the program's `argv`.
pub(crate) struct Args {
    pub strings: [CString; 9],
}

/// The credentials the trampoline sets after entering the user namespace.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ids<'a> {
    pub groups: Option<&'a [libc::gid_t]>,
    /// Without `groups`: drop the supplementary groups, ignoring a refusal.
    pub drop_groups: bool,
    pub gid: Option<libc::gid_t>,
    pub uid: Option<libc::uid_t>,
}

impl Args {
    /// `user_ns`, `status` and `caller` are descriptor numbers in the child.
    pub(crate) fn new(
        user_ns: RawFd,
        status: RawFd,
        caller: RawFd,
        pdeathsig: libc::c_int,
        cwd: Option<&std::ffi::CStr>,
        ids: Ids<'_>,
        candidates: usize,
    ) -> Args {
        let text = |s: String| CString::new(s).unwrap_or_default();
        let groups = match ids.groups {
            None if ids.drop_groups => "!".to_owned(),
            None => "-".to_owned(),
            Some(g) => g
                .iter()
                .take(MAX_GROUPS)
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        };
        Args {
            strings: [
                text(user_ns.to_string()),
                text(status.to_string()),
                text(caller.to_string()),
                text(pdeathsig.max(0).to_string()),
                // "=" and the directory, or nothing: an empty directory is refused by
                // chdir, as on the other paths, not taken for none.
                cwd.map(|d| {
                    let mut v = b"=".to_vec();
                    v.extend_from_slice(d.to_bytes());
                    CString::new(v).unwrap_or_default()
                })
                .unwrap_or_default(),
                text(groups),
                text(ids.gid.map(|g| g.to_string()).unwrap_or_default()),
                text(ids.uid.map(|u| u.to_string()).unwrap_or_default()),
                text(candidates.to_string()),
            ],
        }
    }

    /// The complete, NULL-terminated `argv` of the trampoline.
    pub(crate) fn argv(
        &self,
        candidates: &[*const libc::c_char],
        program_argv: &[*const libc::c_char],
    ) -> Vec<*const libc::c_char> {
        let mut v =
            Vec::with_capacity(1 + self.strings.len() + candidates.len() + program_argv.len());
        v.push(NAME.as_ptr());
        v.extend(self.strings.iter().map(|s| s.as_ptr()));
        // Both arrays end with their NULL; only the program's is kept.
        v.extend(candidates.iter().copied().take_while(|p| !p.is_null()));
        v.extend(program_argv.iter().copied());
        v
    }
}

/// The trampoline's machine code: position-independent, with no reference outside itself.
#[cfg(target_arch = "x86_64")]
fn code() -> &'static [u8] {
    #[inline(never)]
    fn bounds() -> (usize, usize) {
        let (begin, end): (usize, usize);
        // SAFETY: the block only computes two addresses inside itself (the code between the
        // labels is jumped over, never run here).
        unsafe {
            core::arch::asm!(
                "lea {begin}, [rip + 20f]",
                "lea {end}, [rip + 29f]",
                "jmp 29f",
                "20:",
                // rbx: the initial stack (argc, argv..., NULL, envp...).
                "mov rbx, rsp",
                "and rsp, -16",
                // [rsp]: a record; [rsp+32]: a pollfd; [rsp+40]: errno so far;
                // [rsp+44]: EACCES seen; [rsp+48]: the program's argv; [rsp+64]: up to
                // 64 supplementary groups.
                "sub rsp, 320",
                "lea r12, [rbx + 8]",
                "mov rax, [rbx]",
                "lea r15, [r12 + rax*8 + 8]",
                "mov rdi, [r12 + 16]",
                "call 90f",
                "mov r14, rax",
                // Non-dumpable before taking the container's credentials.
                "mov edi, {pr_set_dumpable}",
                "xor esi, esi",
                "xor edx, edx",
                "xor r10d, r10d",
                "xor r8d, r8d",
                "mov eax, {sys_prctl}",
                "syscall",
                "test rax, rax",
                "jns 21f",
                "mov esi, {step_enter}",
                "mov edx, {clone_newuser}",
                "jmp 80f",
                "21:",
                "mov rdi, [r12 + 8]",
                "call 90f",
                "mov r13, rax",
                "mov rdi, r13",
                "mov esi, {clone_newuser}",
                "mov eax, {sys_setns}",
                "syscall",
                "test rax, rax",
                "jns 22f",
                "mov esi, {step_enter}",
                "mov edx, {clone_newuser}",
                "jmp 80f",
                "22:",
                "mov rdi, r13",
                "mov eax, {sys_close}",
                "syscall",
                // Groups, gid, uid, as child/credentials.rs sets them. Groups: "-" leave
                // them, "!" drop them ignoring a refusal (root setting a uid, as std does),
                // else the list.
                "mov rdi, [r12 + 48]",
                "cmp byte ptr [rdi], 45",
                "je 40f",
                "cmp byte ptr [rdi], 33",
                "jne 44f",
                "xor edi, edi",
                "xor esi, esi",
                "mov eax, {sys_setgroups}",
                "syscall",
                "jmp 40f",
                "44:",
                "lea rsi, [rsp + 64]",
                "call 95f",
                "mov rdi, rax",
                "lea rsi, [rsp + 64]",
                "mov eax, {sys_setgroups}",
                "syscall",
                "test rax, rax",
                "jns 40f",
                "mov esi, {step_groups}",
                "xor edx, edx",
                "jmp 80f",
                "40:",
                "mov rdi, [r12 + 56]",
                "cmp byte ptr [rdi], 0",
                "je 41f",
                "call 90f",
                "mov rbp, rax",
                "mov rdi, rax",
                "mov eax, {sys_setgid}",
                "syscall",
                "test rax, rax",
                "jns 41f",
                "mov esi, {step_gid}",
                "mov edx, ebp",
                "jmp 80f",
                "41:",
                "mov rdi, [r12 + 64]",
                "cmp byte ptr [rdi], 0",
                "je 43f",
                "call 90f",
                "mov rbp, rax",
                "mov rdi, rbp",
                "mov eax, {sys_setuid}",
                "syscall",
                "test rax, rax",
                "jns 43f",
                "mov esi, {step_uid}",
                "mov edx, ebp",
                "jmp 80f",
                "43:",
                // The parent-death signal, which the change of credentials may have cleared.
                "mov rdi, [r12 + 32]",
                "call 90f",
                "test rax, rax",
                "jz 23f",
                "mov rbp, rax",
                "mov edi, {pr_set_pdeathsig}",
                "mov rsi, rbp",
                "xor edx, edx",
                "xor r10d, r10d",
                "xor r8d, r8d",
                "mov eax, {sys_prctl}",
                "syscall",
                "test rax, rax",
                "jns 23f",
                "mov esi, {step_pdeathsig}",
                "mov edx, ebp",
                "jmp 80f",
                "23:",
                // Nothing starts for a caller that died: poll its pidfd.
                "mov rdi, [r12 + 24]",
                "call 90f",
                "mov rbp, rax",
                "mov dword ptr [rsp + 32], ebp",
                "mov dword ptr [rsp + 36], {pollin}",
                "lea rdi, [rsp + 32]",
                "mov esi, 1",
                "xor edx, edx",
                "mov eax, {sys_poll}",
                "syscall",
                "test rax, rax",
                "jle 24f",
                "mov esi, {step_caller_died}",
                "xor edx, edx",
                "mov rax, -{esrch}",
                "jmp 80f",
                "24:",
                "mov rdi, rbp",
                "mov eax, {sys_close}",
                "syscall",
                // The working directory, with the container's credentials.
                "mov rdi, [r12 + 40]",
                "cmp byte ptr [rdi], 0",
                "je 25f",
                "inc rdi",
                "mov eax, {sys_chdir}",
                "syscall",
                "test rax, rax",
                "jns 25f",
                "mov esi, {step_chdir}",
                "xor edx, edx",
                "jmp 80f",
                "25:",
                // The status pipe closes at exec: end-of-file says the program runs.
                "mov rdi, r14",
                "mov esi, {f_setfd}",
                "mov edx, {fd_cloexec}",
                "mov eax, {sys_fcntl}",
                "syscall",
                "test rax, rax",
                "jns 46f",
                "mov esi, {step_exec}",
                "mov edx, {exec_trampoline}",
                "jmp 80f",
                "46:",
                // execve each candidate as execvp does.
                "mov rdi, [r12 + 72]",
                "call 90f",
                "mov rbp, rax",
                "lea r13, [r12 + 80]",
                "lea rax, [r13 + rbp*8]",
                "mov [rsp + 48], rax",
                "mov dword ptr [rsp + 40], {enoent}",
                "mov dword ptr [rsp + 44], 0",
                "26:",
                "test rbp, rbp",
                "jz 27f",
                "mov rdi, [r13]",
                "mov rsi, [rsp + 48]",
                "mov rdx, r15",
                "mov eax, {sys_execve}",
                "syscall",
                "neg eax",
                "mov [rsp + 40], eax",
                "cmp eax, {eacces}",
                "jne 28f",
                "mov dword ptr [rsp + 44], 1",
                "jmp 30f",
                "28:",
                "cmp eax, {enoent}",
                "je 30f",
                "cmp eax, {enotdir}",
                "je 30f",
                "cmp eax, {estale}",
                "je 30f",
                "cmp eax, {enodev}",
                "je 30f",
                "cmp eax, {etimedout}",
                "je 30f",
                "jmp 31f",
                "30:",
                "add r13, 8",
                "dec rbp",
                "jmp 26b",
                "27:",
                "mov eax, [rsp + 40]",
                "cmp dword ptr [rsp + 44], 0",
                "je 31f",
                "mov eax, {eacces}",
                "31:",
                "neg eax",
                "mov esi, {step_exec}",
                "xor edx, edx",
                // A failure: esi the step, edx the detail, eax minus the errno. One record on
                // the status pipe, then exit 127, as the child does.
                "80:",
                "neg eax",
                "mov dword ptr [rsp], {record_failed}",
                "mov dword ptr [rsp + 4], {task_child}",
                "mov [rsp + 8], esi",
                "mov [rsp + 12], edx",
                "mov [rsp + 16], eax",
                "mov rdi, r14",
                "mov rsi, rsp",
                "mov edx, {record_size}",
                "mov eax, {sys_write}",
                "syscall",
                "mov edi, 127",
                "mov eax, {sys_exit_group}",
                "syscall",
                "ud2",
                // rdi: a decimal number's digits, NUL-terminated; returns it in rax.
                "90:",
                "xor eax, eax",
                "92:",
                "movzx ecx, byte ptr [rdi]",
                "test ecx, ecx",
                "jz 93f",
                "sub ecx, 48",
                "imul rax, rax, 10",
                "add rax, rcx",
                "inc rdi",
                "jmp 92b",
                "93:",
                "ret",
                // rdi: decimal numbers separated by commas (maybe none), NUL-terminated; rsi:
                // where to store them as 32-bit words; returns how many in rax.
                "95:",
                "xor r8d, r8d",
                "cmp byte ptr [rdi], 0",
                "je 99f",
                "96:",
                "xor eax, eax",
                "97:",
                "movzx ecx, byte ptr [rdi]",
                "test ecx, ecx",
                "jz 98f",
                "cmp ecx, 44",
                "je 98f",
                "sub ecx, 48",
                "imul rax, rax, 10",
                "add rax, rcx",
                "inc rdi",
                "jmp 97b",
                "98:",
                "mov [rsi + r8*4], eax",
                "inc r8",
                "test ecx, ecx",
                "jz 99f",
                "inc rdi",
                "jmp 96b",
                "99:",
                "mov rax, r8",
                "ret",
                "29:",
                begin = out(reg) begin,
                end = out(reg) end,
                pr_set_dumpable = const libc::PR_SET_DUMPABLE,
                pr_set_pdeathsig = const libc::PR_SET_PDEATHSIG,
                sys_prctl = const libc::SYS_prctl,
                sys_setns = const libc::SYS_setns,
                sys_close = const libc::SYS_close,
                sys_poll = const libc::SYS_poll,
                sys_chdir = const libc::SYS_chdir,
                sys_fcntl = const libc::SYS_fcntl,
                sys_execve = const libc::SYS_execve,
                sys_write = const libc::SYS_write,
                sys_setgroups = const libc::SYS_setgroups,
                sys_setgid = const libc::SYS_setgid,
                sys_setuid = const libc::SYS_setuid,
                sys_exit_group = const libc::SYS_exit_group,
                clone_newuser = const libc::CLONE_NEWUSER,
                pollin = const libc::POLLIN,
                f_setfd = const libc::F_SETFD,
                fd_cloexec = const libc::FD_CLOEXEC,
                esrch = const libc::ESRCH,
                enoent = const libc::ENOENT,
                eacces = const libc::EACCES,
                enotdir = const libc::ENOTDIR,
                estale = const libc::ESTALE,
                enodev = const libc::ENODEV,
                etimedout = const libc::ETIMEDOUT,
                step_enter = const Step::EnterNamespaces as u32,
                step_pdeathsig = const Step::ParentDeathSignal as u32,
                step_caller_died = const Step::CallerDied as u32,
                step_chdir = const Step::Chdir as u32,
                step_exec = const Step::Exec as u32,
                exec_trampoline = const crate::child::EXEC_TRAMPOLINE,
                step_groups = const Step::Groups as u32,
                step_gid = const Step::Gid as u32,
                step_uid = const Step::Uid as u32,
                record_failed = const RECORD_FAILED,
                task_child = const crate::child::Task::Child as u32,
                record_size = const std::mem::size_of::<Record>(),
                options(pure, nomem, nostack),
            );
        }
        (begin, end)
    }
    let (begin, end) = bounds();
    // SAFETY: the bytes between the two labels are part of this program's text, mapped and
    // never written for the life of the process.
    unsafe { std::slice::from_raw_parts(begin as *const u8, end.saturating_sub(begin)) }
}

#[cfg(not(target_arch = "x86_64"))]
fn code() -> &'static [u8] {
    &[]
}

/// A static ELF executable around [`code`]: the ELF header, a loadable segment holding the
/// whole file (read and execute) and a non-executable stack.
fn elf(code: &[u8]) -> Vec<u8> {
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

/// A sealed, close-on-exec memfd holding the executable.
fn create_image() -> std::io::Result<OwnedFd> {
    let code = code();
    if code.is_empty() {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
    }
    let image = elf(code);
    // MFD_EXEC (Linux 6.3) asks for an executable memfd where vm.memfd_noexec would
    // otherwise seal it non-executable; older kernels refuse the unknown flag.
    const MFD_EXEC: libc::c_uint = 0x10;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: a NUL-terminated name and flags; the kernel returns a new descriptor.
    let mut fd = unsafe { libc::memfd_create(NAME.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(NAME.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor that nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, &image)?;
    let fd = OwnedFd::from(file);
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: adding seals to a memfd we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Runs the trampoline once with a descriptor that is no namespace: it must report exactly
/// that failure of entering the user namespace on the status pipe.
fn works(image: &OwnedFd) -> Option<bool> {
    let known = |e: std::io::Error| if transient(&e) { None } else { Some(false) };
    let (r, w) = match crate::sys::pipe() {
        Ok(pair) => pair,
        Err(e) => return known(e).map(|_| false),
    };
    let args = Args::new(
        i32::MAX,
        w.as_raw_fd(),
        i32::MAX,
        0,
        None,
        Ids::default(),
        0,
    );
    let argv = args.argv(&[std::ptr::null()], &[std::ptr::null()]);
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let started = crate::sys::spawn_fd(image.as_raw_fd(), &argv, &envp, &[w.as_raw_fd()]);
    drop(w);
    let pidfd = match started {
        Ok(pidfd) => pidfd,
        Err(e) => return known(e),
    };
    // Wait for the task to end (the trampoline writes its record and exits at once), not
    // for end-of-file: another thread's fork may hold a copy of the write end.
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one live pollfd.
    while unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let _ = ns_sys::pidfd_wait(pidfd.as_fd(), libc::WEXITED | libc::__WALL);
    // The record, written before the task ended, is in the pipe whole (writes below
    // PIPE_BUF are atomic) or not at all.
    let rec = crate::spawn::set_nonblocking(&r).and_then(|()| crate::spawn::read_record(&r));
    let expected: Record = [
        RECORD_FAILED,
        crate::child::Task::Child as u32,
        Step::EnterNamespaces as u32,
        libc::CLONE_NEWUSER as u32,
        libc::EBADF as u32,
    ];
    Some(matches!(rec, Ok(Some(rec)) if rec == expected))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_image_is_a_small_static_executable() {
        let code = code();
        assert!(
            !code.is_empty() && code.len() < 1024,
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
        let a = Args::new(17, 18, 19, libc::SIGKILL, Some(c"/tmp"), ids, 1);
        let cand = [c"/bin/true".as_ptr(), std::ptr::null()];
        let prog = [c"true".as_ptr(), std::ptr::null()];
        let argv = a.argv(&cand, &prog);
        let s = |i: usize| {
            unsafe { std::ffi::CStr::from_ptr(argv[i]) }
                .to_str()
                .unwrap()
        };
        assert_eq!(
            (0..12).map(s).collect::<Vec<_>>(),
            [
                "ns-enter-user",
                "17",
                "18",
                "19",
                "9",
                "=/tmp",
                "10,20",
                "5",
                "",
                "1",
                "/bin/true",
                "true"
            ]
        );
        assert!(argv[12].is_null() && argv.len() == 13);
        let none = Args::new(1, 2, 3, 0, None, Ids::default(), 0);
        let empty = Ids {
            groups: Some(&[]),
            ..Ids::default()
        };
        let cleared = Args::new(1, 2, 3, 0, None, empty, 0);
        assert_eq!(none.strings[5].to_str().unwrap(), "-");
        let drop = Ids {
            drop_groups: true,
            ..Ids::default()
        };
        let dropped = Args::new(1, 2, 3, 0, None, drop, 0);
        assert_eq!(dropped.strings[5].to_str().unwrap(), "!");
        assert_eq!(cleared.strings[5].to_str().unwrap(), "");
    }
}
