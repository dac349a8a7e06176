//! What finishes a container in the child: session, limits, capabilities, `no_new_privs`,
//! umask (run for real by `cargo xtask test-root`).

mod common;
#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use std::os::fd::FromRawFd;
use std::os::unix::fs::OpenOptionsExt;

use common::{fd_count, field, sh, stdout_of};
use ns_container::{Error, Mount, MountApi, NsCommand, Propagation, RootMode, Stdio, Step};
use ns_core::caps::{CapSet, Capability};
use ns_core::NsType;
use support::*;

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_child_gets_its_session_limits_capabilities_and_umask() {
    require_root();
    let net_admin = [Capability::CAP_NET_ADMIN];
    let text = stdout_of(
        sh("cat /proc/self/status; echo Umask-sh: $(umask); \
            echo ShSid: $(ps -o sid= -p $$); echo ShPid: $$; \
            grep 'Max open files' /proc/self/limits")
        .unshare(NsType::UTS)
        .setsid(true)
        .rlimit(libc::RLIMIT_NOFILE as i32, 123, 456)
        .oom_score_adj(500)
        .uid(1000)
        .gid(1000)
        .capabilities(CapSet::Bounding, net_admin)
        .capabilities(CapSet::Permitted, net_admin)
        .capabilities(CapSet::Effective, net_admin)
        .capabilities(CapSet::Inheritable, net_admin)
        .capabilities(CapSet::Ambient, net_admin)
        .no_new_privs(true)
        .umask(0o027),
    );
    // sh is an ordinary program: what it holds after execve is what was ambient.
    let net_admin_mask = format!("{:016x}", 1u64 << 12);
    assert_eq!(field(&text, "CapEff:"), net_admin_mask, "{text}");
    assert_eq!(field(&text, "CapPrm:"), net_admin_mask);
    assert_eq!(field(&text, "CapBnd:"), net_admin_mask);
    assert_eq!(field(&text, "CapAmb:"), net_admin_mask);
    assert_eq!(field(&text, "NoNewPrivs:"), "1");
    assert_eq!(field(&text, "Uid:").split_whitespace().next(), Some("1000"));
    assert_eq!(field(&text, "Umask-sh:"), "0027");
    assert_eq!(
        field(&text, "ShSid:"),
        field(&text, "ShPid:"),
        "not a session leader"
    );
    let limits: Vec<&str> = field(&text, "Max open files").split_whitespace().collect();
    assert_eq!(limits[..2], ["123", "456"]);
    // oom_score_adj is not in status: check it on its own (raising it needs no privilege;
    // lowering it needs CAP_SYS_RESOURCE, which this machine's root lacks).
    let adj = stdout_of(sh("cat /proc/self/oom_score_adj").oom_score_adj(300));
    assert_eq!(adj.trim(), "300");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_childs_oom_score_adj_is_not_the_callers() {
    // A child that shares memory and is not a vfork child passes a new oom_score_adj to
    // every process sharing that memory: a uid map makes the child such a one.
    require_root();
    let own = || std::fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    let before = own();
    let adj = stdout_of(
        sh("cat /proc/self/oom_score_adj")
            .unshare(NsType::USER)
            .uid_map(0, 0, 1)
            .oom_score_adj(700),
    );
    assert_eq!(adj.trim(), "700");
    assert_eq!(own(), before, "the caller's oom_score_adj changed");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn securebits_apply_to_the_uid_change_and_a_permitted_set_alone_is_enough() {
    require_root();
    const SECBIT_NOROOT: i32 = 1;
    const SECBIT_NO_SETUID_FIXUP: i32 = 1 << 2;
    let bits = SECBIT_NOROOT | SECBIT_NO_SETUID_FIXUP;
    // With SECBIT_NO_SETUID_FIXUP set before the uid change, the effective set survives it
    // (set after it, as CAP_SETPCAP is gone, the call would fail); the child reports
    // securebits, and whether CAP_NET_ADMIN and CAP_SYS_ADMIN are effective, in its status.
    // SAFETY: the closure makes system calls only.
    let mut child = unsafe {
        NsCommand::new("securebits")
            .kill_on_drop(true)
            .uid(1000)
            .gid(1000)
            .securebits(bits as u32)
            .capabilities(CapSet::Permitted, [Capability::CAP_NET_ADMIN])
            .spawn_fn(|| {
                let got = libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0);
                let Ok(data) = ns_sys::cred::capget() else {
                    return 99;
                };
                let net_admin = data[0] >> 12 & 1;
                let sys_admin = data[0] >> 21 & 1;
                got & 0x1f | (net_admin << 5 | sys_admin << 6) as i32
            })
    }
    .unwrap();
    let code = child.wait().unwrap().code().unwrap();
    // SECBIT_KEEP_CAPS (1 << 4), added for the uid change, is gone again: exactly as asked.
    assert_eq!(code & 0x1f, bits, "securebits {code:#x}");
    assert_eq!(
        code >> 5,
        1,
        "effective set {code:#x}: want CAP_NET_ADMIN alone"
    );
    // SECBIT_NO_CAP_AMBIENT_RAISE does not stop the ambient capabilities asked for: it is
    // set after them (which needs CAP_SETPCAP in the effective set then).
    const SECBIT_NO_CAP_AMBIENT_RAISE: u32 = 1 << 6;
    let bind = [Capability::CAP_NET_BIND_SERVICE];
    let text = stdout_of(
        sh("grep -E '^Cap(Amb|Eff):' /proc/self/status")
            .uid(1000)
            .gid(1000)
            .securebits(SECBIT_NO_CAP_AMBIENT_RAISE)
            .capabilities(
                CapSet::Permitted,
                [Capability::CAP_NET_BIND_SERVICE, Capability::CAP_SETPCAP],
            )
            .capabilities(CapSet::Effective, [Capability::CAP_SETPCAP])
            .capabilities(CapSet::Inheritable, bind)
            .capabilities(CapSet::Ambient, bind),
    );
    assert_eq!(
        field(&text, "CapAmb:"),
        format!("{:016x}", 1u64 << 10),
        "{text}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn without_settings_the_child_keeps_the_callers_privileges() {
    require_root();
    let text = stdout_of(&mut sh("cat /proc/self/status"));
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    for key in ["CapEff:", "CapBnd:", "NoNewPrivs:"] {
        assert_eq!(field(&text, key), field(&own, key), "{key}");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn failing_privilege_steps_are_typed_errors_and_leave_nothing() {
    require_root();
    // It compares the descriptor count of the whole process: nothing may run beside it.
    if !alone("failing_privilege_steps_are_typed_errors_and_leave_nothing") {
        return;
    }
    in_child(|| {
        let fds = fd_count();
        // A soft limit above the hard one.
        let err = sh("true")
            .rlimit(libc::RLIMIT_NOFILE as i32, 100, 10)
            .spawn()
            .unwrap_err();
        if !matches!(
            err,
            Error::Step {
                step: Step::Rlimit,
                errno: libc::EINVAL,
                ..
            }
        ) {
            return Err(format!("{err:?}"));
        }
        // Ambient capabilities that are not permitted: refused when raised (detail is the
        // capability), the sets before them having been taken.
        let err = sh("true")
            .capabilities(CapSet::Permitted, [])
            .capabilities(CapSet::Ambient, [Capability::CAP_NET_ADMIN])
            .spawn()
            .unwrap_err();
        if !matches!(
            err,
            Error::Step {
                step: Step::Capabilities,
                detail: 12,
                ..
            }
        ) {
            return Err(format!("{err:?}"));
        }
        // Refused before anything starts.
        for c in [
            sh("true").setsid(true).process_group(0),
            sh("true").controlling_terminal(0),
            sh("true").setsid(true).controlling_terminal(9),
            sh("true").oom_score_adj(5000),
        ] {
            match c.spawn() {
                Err(Error::Invalid { .. }) => {}
                other => return Err(format!("{other:?}")),
            }
        }
        if fd_count() != fds {
            return Err("descriptors leaked".into());
        }
        Ok(())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_seccomp_filter_denies_the_listed_call_and_nothing_else() {
    require_root();
    let filter = ns_container::seccomp::deny(&[libc::SYS_uname], libc::EPERM).unwrap();
    let out = sh("uname; echo uname=$?; grep ^Seccomp: /proc/self/status; echo still=ok")
        .no_new_privs(true)
        .seccomp_filter(filter.clone())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("uname=1"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    assert!(text.contains("still=ok"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not permitted"),
        "{out:?}"
    );
    // Without no_new_privs the child installs it while still privileged, before its uid
    // changes (runc's order): a program run as another user is filtered all the same.
    let out = sh("uname; echo uname=$?; id -u")
        .uid(1000)
        .seccomp_filter(filter)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("uname=1") && text.contains("1000"), "{text}");
    // Filters the kernel would misread or refuse are typed errors before anything starts.
    use ns_container::seccomp::{deny, MAX_INSTRUCTIONS};
    for errno in [0, -1, 4096] {
        let err = deny(&[libc::SYS_uname], errno).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{errno}: {err:?}");
    }
    assert!(deny(&[-1], libc::EPERM).is_err());
    let many: Vec<libc::c_long> = (0..MAX_INSTRUCTIONS as libc::c_long).collect();
    assert!(deny(&many, libc::EPERM).is_err());
    assert!(deny(&many[..2000], libc::EPERM).is_ok());
    let allow = libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ALLOW,
    };
    for len in [0, MAX_INSTRUCTIONS + 1, 65536 + 1] {
        let err = sh("true")
            .seccomp_filter(vec![allow; len])
            .spawn()
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{len}: {err:?}");
    }
    // The last filter given is the one that counts.
    let out = sh("true")
        .seccomp_filter(vec![])
        .seccomp_filter(vec![allow])
        .no_new_privs(true)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn pre_exec_hooks_run_last_and_their_errors_are_typed() {
    require_root();
    let (r, w) = pipe();
    let w_raw = std::os::fd::AsRawFd::as_raw_fd(&w);
    let mut c = sh("cat /proc/self/status | grep ^Umask:");
    // SAFETY: the hooks only make async-signal-safe system calls on captured integers.
    unsafe {
        c.pre_exec(move || {
            // After umask(0o027) from the builder: the hook runs later and wins.
            libc::umask(0o077);
            libc::write(w_raw, b"hook".as_ptr() as *const libc::c_void, 4);
            Ok(())
        });
    }
    c.umask(0o027);
    let text = stdout_of(&mut c);
    assert_eq!(field(&text, "Umask:"), "0077");
    drop(c);
    drop(w);
    let mut said = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut said).unwrap();
    assert_eq!(said, "hook");
    let mut failing = sh("true");
    // SAFETY: the hook only returns an error.
    unsafe {
        failing.pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EPERM)));
    }
    let err = failing.spawn().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Step {
                step: Step::PreExec,
                errno: libc::EPERM,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A minimal root filesystem in `dir`: the host's `/usr` and `/etc` bound read-only, the
/// merged-usr links, `/dev/null`, and mount points for `/proc` and `/tmp`.
fn rootfs(dir: &std::path::Path) -> Vec<Mount> {
    for link in ["bin", "lib", "lib64", "sbin"] {
        if let Ok(to) = std::fs::read_link(format!("/{link}")) {
            std::os::unix::fs::symlink(to, dir.join(link)).unwrap();
        }
    }
    // Everything made here, so that a rootless child need not write into the directory.
    for sub in ["usr", "etc", "dev", "proc", "tmp"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("dev/null"), "").unwrap();
    vec![
        Mount::bind("/dev/null", dir.join("dev/null")).create_file(),
        Mount::bind("/usr", dir.join("usr"))
            .recursive(false)
            .read_only(),
        Mount::bind("/etc", dir.join("etc"))
            .recursive(false)
            .read_only(),
        Mount::proc(dir.join("proc")).create_dir(),
        Mount::tmpfs(dir.join("tmp"))
            .create_dir()
            .options("mode=1777,size=1m"),
    ]
}

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_fresh_proc_in_a_new_pid_namespace_shows_only_the_containers_processes() {
    require_root();
    let text = stdout_of(
        sh("echo /proc/[0-9]*")
            .unshare(NsType::MNT | NsType::PID)
            .mount(Mount::proc("/proc")),
    );
    let pids: Vec<&str> = text.split_whitespace().collect();
    assert!(pids.contains(&"/proc/1"), "{text}");
    assert!(
        pids.len() <= 3,
        "more than the container's processes: {text}"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn mounts_are_made_in_order_with_their_flags() {
    require_root();
    // It compares the mount table of its mount namespace: nothing may run beside it.
    if !alone("mounts_are_made_in_order_with_their_flags") {
        return;
    }
    for api in [MountApi::New, MountApi::Classic] {
        mounts_in_order(api);
    }
}

fn mounts_in_order(api: MountApi) {
    let before = mountinfo();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("src")).unwrap();
    std::fs::write(d.join("src/file"), "x\n").unwrap();
    let script = format!(
        "echo hi > {0}/t/new && cat {0}/t/new; \
         touch {0}/ro/other 2>/dev/null && echo writable || echo read-only; \
         cat {0}/ro/file; grep -c ' {0}/' /proc/self/mountinfo",
        d.display()
    );
    let text = stdout_of(
        sh(&script)
            .unshare(NsType::MNT)
            .mount_api(api)
            .propagation(Propagation::Slave)
            .mount(Mount::tmpfs(d.join("t")).create_dir().options("size=1m"))
            .mount(
                Mount::bind(d.join("src"), d.join("ro"))
                    .create_dir()
                    .recursive(api == MountApi::New)
                    .read_only()
                    .nosuid(),
            ),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..3], ["hi", "read-only", "x"], "{api:?}: {text}");
    assert_eq!(lines[3], "2", "{api:?}: {text}");
    // Nothing of it reached the caller's mount namespace.
    assert_eq!(mountinfo(), before);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_read_only_recursive_bind_is_read_only_all_the_way_down() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("src/sub")).unwrap();
    let command = |api: MountApi, last: Mount| {
        let mut c = sh(&format!(
            "touch {0}/ro/sub/x 2>/dev/null && echo sub-writable || echo sub-read-only; \
             touch {0}/ro/y 2>/dev/null && echo top-writable || echo top-read-only",
            d.display()
        ));
        c.unshare(NsType::MNT)
            .mount_api(api)
            .mount(Mount::tmpfs(d.join("src/sub")))
            .mount(Mount::bind(d.join("src"), d.join("ro")).create_dir())
            .mount(last);
        c
    };
    let text = stdout_of(&mut command(
        MountApi::New,
        Mount::remount_read_only(d.join("ro")),
    ));
    assert_eq!(text, "sub-read-only\ntop-read-only\n");
    // mount(2) would leave the tmpfs below writable: refused before anything starts.
    let err = command(MountApi::Classic, Mount::remount_read_only(d.join("ro")))
        .spawn()
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("mount 2"), "{err}");
    // Only the top mount, asked for as such, is what mount(2) can do: the bind of it alone
    // leaves the tmpfs below out.
    let text = stdout_of(&mut command(
        MountApi::Classic,
        Mount::remount_read_only(d.join("ro")).recursive(false),
    ));
    assert_eq!(text, "sub-read-only\ntop-read-only\n");
    // A recursive bind read-only on its top mount only (OCI's `ro` on an `rbind`): the
    // tmpfs below stays writable, with either API.
    for api in [MountApi::New, MountApi::Classic] {
        let mut c = sh(&format!(
            "touch {0}/top/sub/x 2>/dev/null && echo sub-writable || echo sub-read-only; \
             touch {0}/top/y 2>/dev/null && echo top-writable || echo top-read-only",
            d.display()
        ));
        c.unshare(NsType::MNT)
            .mount_api(api)
            .mount(Mount::tmpfs(d.join("src/sub")))
            .mount(
                Mount::bind(d.join("src"), d.join("top"))
                    .read_only()
                    .flags_on_top_only()
                    .create_dir(),
            );
        assert_eq!(
            stdout_of(&mut c),
            "sub-writable\ntop-read-only\n",
            "{api:?}"
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_bind_source_only_the_creator_can_reach_is_bound_in_a_new_user_namespace() {
    require_root();
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    let b = base.path();
    std::fs::set_permissions(b, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(b.join("locked/dir")).unwrap();
    std::fs::write(b.join("locked/dir/foo.txt"), "secret-ok\n").unwrap();
    std::fs::set_permissions(b.join("locked"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(b.join("mnt")).unwrap();
    // A source below an earlier mount's target names what that mount put there, as when
    // sources were opened one by one (not what lay below it before).
    std::fs::create_dir_all(b.join("a/sub")).unwrap();
    std::fs::write(b.join("a/sub/file"), "from-a\n").unwrap();
    std::fs::create_dir_all(b.join("data/sub")).unwrap();
    std::fs::write(b.join("data/sub/file"), "from-below\n").unwrap();
    std::fs::create_dir(b.join("other")).unwrap();
    let mut c = sh(&format!("cat {}/other/file", b.display()));
    c.unshare(NsType::USER | NsType::MNT)
        .uid_map(0, 100_000, 65_536)
        .gid_map(0, 100_000, 65_536)
        .mount_api(MountApi::New)
        .mount(Mount::bind(b.join("a"), b.join("data")))
        .mount(Mount::bind(b.join("data/sub"), b.join("other")));
    assert_eq!(stdout_of(&mut c), "from-a\n");
    // A source inside the new root is the image's: a link there to a directory only the
    // creator may read is followed with the namespace root's ids, and refused.
    let refused = |err: Error| {
        assert!(
            matches!(
                err,
                Error::Step {
                    step: Step::Mount,
                    errno: libc::EACCES,
                    ..
                }
            ),
            "{err:?}"
        );
    };
    let root = b.join("root");
    std::fs::create_dir_all(root.join("mnt")).unwrap();
    std::os::unix::fs::symlink(b.join("locked/dir"), root.join("lnk")).unwrap();
    let err = sh("true")
        .unshare(NsType::USER | NsType::MNT)
        .uid_map(0, 100_000, 65_536)
        .gid_map(0, 100_000, 65_536)
        .mount_api(MountApi::New)
        .mount(Mount::bind(root.join("lnk"), root.join("mnt")))
        .root(&root)
        .status()
        .unwrap_err();
    refused(err);
    for api in [MountApi::New, MountApi::Classic] {
        let mut c = sh(&format!("cat {}/mnt/foo.txt", b.display()));
        c.unshare(NsType::USER | NsType::MNT)
            .uid_map(0, 100_000, 65_536)
            .gid_map(0, 100_000, 65_536)
            .mount_api(api)
            .mount(Mount::bind(b.join("locked/dir"), b.join("mnt")));
        match api {
            // The source opened with the creator's ids, before the namespace's root's.
            MountApi::New => assert_eq!(stdout_of(&mut c), "secret-ok\n"),
            // mount(2) resolves the source as the namespace's root: refused, typed.
            _ => refused(c.output().unwrap_err()),
        }
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn mounts_go_to_a_shared_mount_namespace_only_when_asked() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    std::fs::create_dir(&target).unwrap();
    // In a forked copy of this test with a mount namespace of its own: the namespace the
    // child shares, where its mount must stay.
    in_child(|| {
        // SAFETY: unshare in this single-threaded (forked) process.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        private_mounts(false)?;
        let point = format!(" {} ", target.display());
        let mounted = || mountinfo().lines().any(|l| l.contains(&point));
        let refused = sh("true").mount(Mount::tmpfs(&target)).status();
        if !matches!(refused, Err(Error::Invalid { .. })) || mounted() {
            return Err(format!("without the option: {refused:?}"));
        }
        let status = sh("true")
            .mounts_in_shared_namespace(true)
            .mount(Mount::tmpfs(&target))
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() || !mounted() {
            return Err(format!(
                "with the option: {status:?}, mounted {}",
                mounted()
            ));
        }
        Ok(())
    })
    .unwrap();
    // This process's namespace never saw it.
    assert!(!mountinfo().contains(&format!(" {} ", target.display())));
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_mount_point_is_made_read_only_in_place() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for api in [MountApi::New, MountApi::Classic] {
        let mut c = sh(&format!(
            "grep -c ' {0}/t ' /proc/self/mountinfo; grep ' {0}/t ' /proc/self/mountinfo | cut -d' ' -f6; \
             touch {0}/t/x 2>/dev/null && echo writable || echo read-only",
            d.display()
        ));
        c.unshare(NsType::MNT)
            .mount_api(api)
            .mount(Mount::tmpfs(d.join("t")).nosuid().create_dir())
            .mount(
                Mount::remount_read_only(d.join("t"))
                    .recursive(false)
                    .in_place(),
            );
        let text = stdout_of(&mut c);
        // One mount, read-only, its nosuid kept.
        assert_eq!(text, "1\nro,nosuid,relatime\nread-only\n", "{api:?}");
        // A place that is no mount's root: refused, nothing else made read-only.
        std::fs::create_dir_all(d.join("plain")).unwrap();
        let err = sh("true")
            .unshare(NsType::MNT)
            .mount_api(api)
            .mount(
                Mount::remount_read_only(d.join("plain"))
                    .recursive(false)
                    .in_place(),
            )
            .status()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Step {
                    step: Step::Mount,
                    errno: libc::EINVAL,
                    ..
                }
            ),
            "{api:?}: {err:?}"
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_chroot_leaves_no_bare_procfs_for_a_user_namespace_inside() {
    require_root();
    // The container's /proc is masked in part (runc's defaults), so the kernel lets a user namespace inside
    // mount a new procfs only while a full one is left in the mount namespace (the host's,
    // below the chroot). The program must also be allowed its user namespace: the kernel
    // refuses one to a process whose root is not its namespace's.
    let dir = tempfile::tempdir().unwrap();
    let mut c = sh("unshare -Urmpf sh -c 'mount -t proc none /proc' 2>&1; echo status $?");
    c.unshare(NsType::MNT | NsType::PID)
        .root(dir.path())
        .root_mode(RootMode::Chroot);
    for m in rootfs(dir.path()) {
        c.mount(m);
    }
    for m in Mount::container_defaults(dir.path()) {
        c.mount(m);
    }
    let before = mountinfo();
    let text = stdout_of(&mut c);
    assert!(
        text.contains("permission denied") && !text.contains("status 0"),
        "the program mounted a procfs, or could not try: {text}"
    );
    assert!(!text.contains("unshare failed"), "{text}");
    // The host's /proc and /sys are where they were.
    assert_eq!(mountinfo(), before);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn pivot_root_and_chroot_give_the_child_a_root_of_its_own() {
    require_root();
    for mode in [RootMode::PivotRoot, RootMode::Chroot] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = sh(
            "ls /; echo ---; echo /proc/[0-9]*; echo ---; cat /etc/hostname >/dev/null && echo etc",
        );
        c.unshare(NsType::MNT | NsType::PID)
            .root(dir.path())
            .root_mode(mode);
        for m in rootfs(dir.path()) {
            c.mount(m);
        }
        let text = stdout_of(&mut c);
        let parts: Vec<&str> = text.split("---").map(str::trim).collect();
        let mut entries: Vec<&str> = parts[0].split_whitespace().collect();
        entries.sort();
        assert_eq!(
            entries,
            ["bin", "dev", "etc", "lib", "lib64", "proc", "sbin", "tmp", "usr"],
            "{mode:?}: {text}"
        );
        assert!(parts[1].split_whitespace().count() <= 4, "{mode:?}: {text}");
        assert_eq!(parts[2], "etc");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn failing_mounts_and_roots_are_typed_errors_and_leave_no_mount() {
    require_root();
    // It compares the descriptor count and the mount table of the whole process: nothing else
    // may run beside it.
    if !alone("failing_mounts_and_roots_are_typed_errors_and_leave_no_mount") {
        return;
    }
    in_child(|| {
        let before = mountinfo();
        let fds = fd_count();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let err = sh("true")
            .unshare(NsType::MNT)
            .mount(Mount::tmpfs(dir.path()))
            .mount(Mount::bind("/nonexistent/source", dir.path()))
            .spawn()
            .unwrap_err();
        if !matches!(
            err,
            Error::Step {
                step: Step::Mount,
                detail: 1,
                errno: libc::ENOENT,
                ..
            }
        ) {
            return Err(format!("{err:?}"));
        }
        let err = sh("true")
            .unshare(NsType::MNT)
            .root("/nonexistent/root")
            .spawn()
            .unwrap_err();
        if !matches!(
            err,
            Error::Step {
                step: Step::Root,
                errno: libc::ENOENT,
                ..
            }
        ) {
            return Err(format!("{err:?}"));
        }
        // Mounts without a new mount namespace, and a shared root to pivot from, are
        // refused before anything starts.
        let err = sh("true")
            .mount(Mount::tmpfs(dir.path()))
            .spawn()
            .unwrap_err();
        if !matches!(err, Error::Invalid { .. }) {
            return Err(format!("{err:?}"));
        }
        let err = sh("true")
            .unshare(NsType::MNT)
            .propagation(Propagation::Shared)
            .mount(Mount::tmpfs(dir.path()))
            .root(dir.path())
            .spawn()
            .unwrap_err();
        if !matches!(&err, Error::Invalid { reason, .. } if reason.contains("shared")) {
            return Err(format!("{err:?}"));
        }
        // Nor a chroot from a shared `/` in a new mount namespace: detaching the host's
        // /proc and moving the root would reach the caller's.
        let err = sh("true")
            .unshare(NsType::MNT)
            .propagation(Propagation::Shared)
            .root(dir.path())
            .root_mode(RootMode::Chroot)
            .spawn()
            .unwrap_err();
        if !matches!(&err, Error::Invalid { reason, .. } if reason.contains("Shared")) {
            return Err(format!("{err:?}"));
        }
        if mountinfo() != before {
            return Err("the caller's mounts changed".into());
        }
        if fd_count() != fds {
            return Err("descriptors leaked".into());
        }
        Ok(())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_closure_gets_the_same_setup_as_a_program() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("t/marker");
    let marker_c = std::ffi::CString::new(marker.to_str().unwrap()).unwrap();
    // SAFETY: the closure only makes system calls on data prepared before the clone.
    let mut child = unsafe {
        NsCommand::new("closure")
            .unshare(NsType::MNT | NsType::PID | NsType::UTS)
            .hostname("closure-box")
            .mount(Mount::tmpfs(dir.path().join("t")).create_dir())
            .no_new_privs(true)
            .capabilities(CapSet::Bounding, [Capability::CAP_SYS_CHROOT])
            .spawn_fn(move || {
                let mut name = [0u8; 64];
                libc::gethostname(name.as_mut_ptr() as *mut libc::c_char, name.len());
                let host_ok = name.starts_with(b"closure-box\0");
                let pid_ok = libc::syscall(libc::SYS_getpid) == 1;
                let nnp_ok = libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
                let bnd_ok =
                    libc::prctl(libc::PR_CAPBSET_READ, 21 /* CAP_SYS_ADMIN */, 0, 0, 0) == 0;
                // A file on the child's own tmpfs, invisible to the caller.
                let fd = libc::open(marker_c.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600);
                let tmpfs_ok = fd >= 0;
                [host_ok, pid_ok, nnp_ok, bnd_ok, tmpfs_ok]
                    .iter()
                    .enumerate()
                    .filter(|(_, ok)| !**ok)
                    .map(|(i, _)| 1 << i)
                    .sum()
            })
    }
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "failed checks (bit mask): {status:?}"
    );
    assert!(
        !marker.exists(),
        "the child's tmpfs leaked into the caller's view"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn every_setting_given_is_kept() {
    require_root();
    // What a std Command conversion used to drop: stdio, env_clear, uid, arg0.
    let out = NsCommand::new("sh")
        .arg0("renamed")
        .args([
            "-c",
            "echo \"$0 $(id -u) $(env | grep -v -e ^PWD= -e ^SHLVL= -e ^_= | wc -l) \
             $(readlink /proc/$$/fd/1)\" >&2; echo to-stdout",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_clear()
        .uid(65534)
        .gid(65534)
        .kill_on_drop(true)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "renamed 65534 0 /dev/null"
    );
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn an_unprivileged_user_finishes_a_rootless_container() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mounts = rootfs(dir.path());
    in_child(move || {
        // SAFETY: dropping to an unprivileged user in a single-threaded child; changing uid
        // makes the process non-dumpable, which an ordinary program is not.
        if unsafe { libc::setgroups(0, std::ptr::null()) } != 0
            || unsafe { libc::setgid(65534) } != 0
            || unsafe { libc::setuid(65534) } != 0
            || unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) } != 0
        {
            return Err("setuid".into());
        }
        for api in [MountApi::New, MountApi::Classic] {
            let mut c = sh("ls /; echo /proc/[0-9]*; id -u; cat /proc/self/status");
            c.unshare(NsType::USER | NsType::MNT | NsType::PID | NsType::UTS)
                .uid_map(0, 65534, 1)
                .gid_map(0, 65534, 1)
                .setgroups_deny(true)
                .hostname("rootless")
                .mount_api(api)
                .root(dir.path())
                .capabilities(CapSet::Bounding, [Capability::CAP_CHOWN])
                .capabilities(CapSet::Permitted, [Capability::CAP_CHOWN])
                .capabilities(CapSet::Effective, [Capability::CAP_CHOWN])
                .no_new_privs(true)
                .seccomp_filter(
                    ns_container::seccomp::deny(&[libc::SYS_uname], libc::EPERM).unwrap(),
                );
            for m in mounts.clone() {
                c.mount(m);
            }
            let out = c.output().map_err(|e| format!("{api:?}: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let ok = out.status.success()
                && text.contains("bin\ndev\netc\nlib\nlib64\nproc\nsbin\ntmp\nusr\n")
                && text
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some("/proc/1"))
                && text.lines().any(|l| l == "0")
                && field(&text, "CapEff:") == "0000000000000001"
                && field(&text, "NoNewPrivs:") == "1"
                && field(&text, "Seccomp:") == "2";
            if !ok {
                return Err(format!("{api:?}: {:?}\n{text}", out.status));
            }
        }
        Ok(())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_new_session_takes_a_terminal_as_its_controlling_one() {
    require_root();
    // SAFETY: opening a pseudo-terminal pair; the descriptors are owned below.
    let (master, slave_name) = unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(m))
            .to_string_lossy()
            .into_owned();
        (std::os::fd::OwnedFd::from_raw_fd(m), name)
    };
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&slave_name)
        .unwrap();
    let out = NsCommand::new("sh")
        .args(["-c", "ps -o tty= -p $$ >&2"])
        .stdin(slave)
        .stderr(Stdio::piped())
        .setsid(true)
        .controlling_terminal(0)
        .kill_on_drop(true)
        .output()
        .unwrap();
    drop(master);
    assert!(out.status.success(), "{out:?}");
    let tty = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(format!("/dev/{tty}"), slave_name);
}
