//! Kernel features are asked of the kernel, not read from its version: each probe says yes
//! here (Linux 6.18) and no where a seccomp filter answers as an older kernel would (run for
//! real by `cargo xtask test-root`). The one test of this binary: the probes' answers are
//! kept per process, so the filtered ones run first, in forked children.

mod common;
#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use common::deny;
use support::*;

fn check(what: &str, got: bool, want: bool) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got}, want {want}"))
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn probes_follow_what_the_kernel_answers() {
    require_root();
    // clone3 refused as under Docker's default profile.
    in_child(|| {
        deny(libc::SYS_clone3, libc::ENOSYS)?;
        check("clone3_usable", ns_sys::clone3_usable(), false)?;
        check(
            "clone_into_cgroup_usable",
            ns_sys::clone_into_cgroup_usable(),
            false,
        )?;
        check(
            "clone3_accepts(CLONE_CLEAR_SIGHAND)",
            ns_sys::clone3_accepts(ns_sys::CLONE_CLEAR_SIGHAND),
            false,
        )
    })
    .unwrap();
    // close_range without CLOSE_RANGE_CLOEXEC (5.9, 5.10) and without close_range at all.
    for errno in [libc::EINVAL, libc::ENOSYS] {
        in_child(move || {
            deny(libc::SYS_close_range, errno)?;
            check(
                "close_range_cloexec_usable",
                ns_sys::close_range_cloexec_usable(),
                false,
            )
        })
        .unwrap();
    }
    // setns that takes no pidfd (before 5.8: a pidfd is no namespace file, EINVAL).
    in_child(|| {
        deny(libc::SYS_setns, libc::EINVAL)?;
        check(
            "pidfd_setns_supported",
            ns_core::pidfd_setns_supported(),
            false,
        )
    })
    .unwrap();
    // A policy that refuses to execute the user-namespace trampoline (here execveat, as
    // vm.memfd_noexec or an LSM would refuse the memfd): root still enters a user namespace,
    // with the intermediate's copy of memory; and with the trampoline where it runs.
    for (nr, errno) in [
        (libc::SYS_execveat, libc::ENOSYS),
        (libc::SYS_memfd_create, libc::EPERM),
    ] {
        in_child(move || {
            let helper = Helper::spawn(ns_core::NsType::USER | ns_core::NsType::NET, None);
            let types = ns_core::NsType::USER | ns_core::NsType::NET;
            let target = ns_core::Target::pin(helper.pid, types).map_err(|e| e.to_string())?;
            deny(nr, errno)?;
            let mut c = ns_container::NsCommand::new("/bin/sh");
            c.args(["-c", "readlink /proc/self/ns/user"])
                .enter(&target, types)
                .stdout(ns_container::Stdio::piped());
            let out = c.output().map_err(|e| e.to_string())?;
            let want = std::fs::read_link(format!("/proc/{}/ns/user", helper.pid))
                .map_err(|e| e.to_string())?;
            check(
                "entering a user namespace without the trampoline",
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).trim() == want.to_string_lossy(),
                true,
            )
        })
        .unwrap();
    }
    // This kernel has all of them.
    assert!(ns_sys::clone3_usable());
    assert!(ns_sys::clone_into_cgroup_usable());
    assert!(ns_sys::clone3_accepts(ns_sys::CLONE_CLEAR_SIGHAND));
    assert!(ns_sys::close_range_cloexec_usable());
    assert!(ns_core::pidfd_setns_supported());
    // A flag clone3 does not know is refused, and no task is left behind.
    assert!(!ns_sys::clone3_accepts(1 << 40));
    // Flags that would make the probe's task a thread of this process (whose exit would end
    // the process) or another's child are not tried.
    for flags in [
        (libc::CLONE_THREAD | libc::CLONE_SIGHAND | libc::CLONE_VM) as u64,
        libc::CLONE_PARENT as u64,
        libc::CLONE_SETTLS as u64,
    ] {
        assert!(!ns_sys::clone3_accepts(flags), "{flags:#x}");
    }
}
