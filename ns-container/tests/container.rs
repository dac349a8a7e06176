//! What finishes a container in the child: session, limits, capabilities, `no_new_privs`,
//! umask (run for real by `cargo xtask test-root`).

#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use ns_container::{Error, NsCommand, Stdio, Step};
use ns_core::caps::{CapSet, Capability};
use ns_core::NsType;
use support::*;

fn sh(script: &str) -> NsCommand {
    let mut c = NsCommand::new("sh");
    c.args(["-c", script])
        .kill_on_drop(true)
        .stdout(Stdio::piped());
    c
}

fn stdout_of(c: &mut NsCommand) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the first line that starts with `key`.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

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
        // Ambient capabilities that are not permitted.
        let err = sh("true")
            .capabilities(CapSet::Permitted, [])
            .capabilities(CapSet::Ambient, [Capability::CAP_NET_ADMIN])
            .spawn()
            .unwrap_err();
        if !matches!(
            err,
            Error::Step {
                step: Step::Capabilities,
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
    let filter = ns_container::seccomp::deny(&[libc::SYS_uname], libc::EPERM);
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
    // Without no_new_privs an unprivileged child cannot install it: a typed error.
    let err = sh("true")
        .uid(1000)
        .seccomp_filter(filter)
        .spawn()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Step {
                step: Step::Seccomp,
                errno: libc::EACCES,
                ..
            }
        ),
        "{err:?}"
    );
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
