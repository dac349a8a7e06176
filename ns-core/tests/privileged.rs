//! Privileged behaviour of ns-core, run for real as root by `cargo xtask test-root`.

mod support;

use std::io::Write;
use std::thread;

use ns_core::{
    getns, setns, setns_pid, EntryStrategy, Error, Namespace, NsType, Target, ThreadRule,
};
use support::*;

/// Runs `f` on a fresh thread, so namespace changes die with the thread.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    thread::spawn(f).join().expect("test thread panicked")
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn setns_by_path_moves_the_thread_into_a_childs_uts_net_and_ipc() {
    require_root();
    let helper = Helper::spawn(NsType::UTS | NsType::NET | NsType::IPC, Some("ns-helper"));
    let pid = helper.pid;
    let want = [NsType::UTS, NsType::NET, NsType::IPC].map(|t| helper.id(t));
    let host_before = hostname();
    let links_before = interfaces();
    assert!(links_before.len() > 1 || links_before != ["lo"]);
    on_thread(move || {
        for t in [NsType::UTS, NsType::NET, NsType::IPC] {
            setns(format!("/proc/{pid}/ns/{}", t.name().unwrap()), t, false).unwrap();
        }
        assert_eq!(hostname(), "ns-helper");
        assert_eq!(interfaces(), ["lo"], "a new net namespace has only lo");
        assert_eq!([NsType::UTS, NsType::NET, NsType::IPC].map(my_id), want);
    });
    // Other threads did not move.
    assert_eq!(hostname(), host_before);
    assert_eq!(interfaces(), links_before);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn setns_by_pid_moves_the_thread_into_a_childs_namespaces() {
    require_root();
    let helper = Helper::spawn(NsType::UTS | NsType::NET, Some("by-pid"));
    let pid = helper.pid;
    let net = helper.id(NsType::NET);
    on_thread(move || {
        setns_pid(pid, NsType::UTS, false).unwrap();
        setns_pid(pid, NsType::NET, false).unwrap();
        assert_eq!(hostname(), "by-pid");
        assert_eq!(my_id(NsType::NET), net);
    });
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn setns_refuses_a_multithreaded_caller_when_asked_to_check() {
    require_root();
    let helper = Helper::spawn(NsType::UTS, Some("never"));
    let pid = helper.pid;
    let before = my_id(NsType::UTS);
    // The test harness runs this on a thread of a multithreaded process.
    let err = setns_pid(pid, NsType::UTS, true).unwrap_err();
    match &err {
        Error::Multithreaded { threads, .. } => assert!(*threads > 1),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("check_multithreaded"), "{err}");
    assert_eq!(my_id(NsType::UTS), before);
    // A single-threaded process passes the same check.
    in_child(move || {
        setns_pid(pid, NsType::UTS, true).map_err(|e| e.to_string())?;
        (hostname() == "never").then_some(()).ok_or_else(hostname)
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn setns_gives_typed_errors_for_the_kernels_thread_rules() {
    require_root();
    let helper = Helper::spawn(NsType::USER | NsType::MNT | NsType::TIME, None);
    let pid = helper.pid;
    let before = [NsType::USER, NsType::MNT, NsType::TIME].map(my_id);

    // User and time: never from a multithreaded process.
    let err = setns_pid(pid, NsType::USER, false).unwrap_err();
    assert!(
        matches!(err, Error::ThreadRule { rule: ThreadRule::UserNeedsSingleThread { threads }, .. } if threads > 1),
        "{err:?}"
    );
    let err = setns_pid(pid, NsType::TIME, false).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ThreadRule {
                rule: ThreadRule::TimeNeedsSingleThread { .. },
                ..
            }
        ),
        "{err:?}"
    );
    // Mount: not from a thread that shares its filesystem state...
    let err = on_thread(move || setns_pid(pid, NsType::MNT, false).unwrap_err());
    assert!(
        matches!(
            err,
            Error::ThreadRule {
                rule: ThreadRule::MountNeedsUnsharedFs { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("unshare(CLONE_FS)"), "{err}");
    // ...but after unshare(CLONE_FS) it works.
    let mnt = helper.id(NsType::MNT);
    let entered = on_thread(move || {
        // SAFETY: namespace flags and CLONE_FS only; no descriptor table is split.
        unsafe { ns_sys::unshare(ns_sys::CLONE_FS) }.unwrap();
        setns_pid(pid, NsType::MNT, false).unwrap();
        my_id(NsType::MNT)
    });
    assert_eq!(entered, mnt);
    assert_eq!([NsType::USER, NsType::MNT, NsType::TIME].map(my_id), before);

    // A single-threaded process may enter user and time namespaces.
    let (user, time) = (helper.id(NsType::USER), helper.id(NsType::TIME));
    in_child(move || {
        setns_pid(pid, NsType::TIME, false).map_err(|e| e.to_string())?;
        setns_pid(pid, NsType::USER, false).map_err(|e| e.to_string())?;
        if my_id(NsType::USER) != user || my_id(NsType::TIME) != time {
            return Err("not moved".into());
        }
        Ok(())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn wrong_type_and_non_namespace_files_are_refused_before_anything_moves() {
    require_root();
    // It compares the descriptor count of the whole process: nothing may run beside it.
    if !alone("wrong_type_and_non_namespace_files_are_refused_before_anything_moves") {
        return;
    }
    let helper = Helper::spawn(NsType::UTS | NsType::NET, Some("wrong"));
    let pid = helper.pid;
    // In a forked child, whose descriptor table no other test touches.
    in_child(move || {
        let fds = fd_count();
        let net = my_id(NsType::NET);
        let uts = my_id(NsType::UTS);
        let err = setns(format!("/proc/{pid}/ns/uts"), NsType::NET, false).unwrap_err();
        assert!(
            matches!(
                err,
                Error::WrongType {
                    found: NsType::UTS,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("the file is a CLONE_NEWUTS namespace"),
            "{err}"
        );
        let err = setns("/etc/hostname", NsType::UTS, false).unwrap_err();
        assert!(matches!(err, Error::NotNamespace { .. }), "{err:?}");
        let err = setns("/proc/self/status", NsType::NET, false).unwrap_err();
        assert!(matches!(err, Error::NotNamespace { .. }), "{err:?}");
        let err = setns("/nonexistent/ns", NsType::NET, false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
        assert!(
            err.to_string()
                .starts_with("opening net namespace at /nonexistent/ns"),
            "{err}"
        );
        assert_eq!(my_id(NsType::NET), net);
        assert_eq!(my_id(NsType::UTS), uts);
        assert_eq!(fd_count(), fds, "no descriptor may leak");
        Ok(())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn mesos_setns_refuses_pid_namespaces_and_points_elsewhere() {
    require_root();
    let helper = Helper::spawn(NsType::PID, None);
    let err = setns_pid(helper.pid, NsType::PID, false).unwrap_err();
    assert!(matches!(err, Error::PidNamespace { .. }), "{err:?}");
    assert!(err.to_string().contains("ns_container::clone"), "{err}");
    let err = setns_pid(helper.pid, NsType::NET | NsType::UTS, false).unwrap_err();
    assert!(matches!(err, Error::NotOneType { .. }), "{err:?}");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn getns_differs_in_new_namespaces_and_is_none_once_reaped() {
    require_root();
    let me = std::process::id() as libc::pid_t;
    let mut helper = Helper::spawn(NsType::NET | NsType::UTS, None);
    for t in [NsType::NET, NsType::UTS] {
        assert_ne!(getns(helper.pid, t).unwrap(), getns(me, t).unwrap(), "{t}");
    }
    for t in [
        NsType::MNT,
        NsType::IPC,
        NsType::PID,
        NsType::USER,
        NsType::CGROUP,
        NsType::TIME,
    ] {
        assert_eq!(getns(helper.pid, t).unwrap(), getns(me, t).unwrap(), "{t}");
    }
    let id = getns(me, NsType::NET).unwrap().unwrap();
    assert_eq!(
        id.ino(),
        std::fs::metadata("/proc/self/ns/net")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap()
    );
    assert_eq!(id.to_string(), format!("net:[{}]", id.ino()));
    // getns is one stat: no unique id, yet equal to the id read from a handle, which has it.
    assert_eq!(id.unique_id(), None);
    let from_handle = ns_core::Namespace::current(NsType::NET)
        .unwrap()
        .id()
        .unwrap();
    assert!(
        from_handle.unique_id().is_some(),
        "Linux 6.18 has NS_GET_ID"
    );
    assert_eq!(id, from_handle);
    assert!(id.same_namespace(&from_handle) && from_handle.same_namespace(&from_handle));
    let pid = helper.pid;
    helper.kill();
    assert_eq!(getns(pid, NsType::NET).unwrap(), None);
    assert!(matches!(
        getns(me, NsType::empty()),
        Err(Error::NotOneType { .. })
    ));
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn persist_round_trip_keeps_the_same_identity() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netns");
    let mut helper = Helper::spawn(NsType::NET | NsType::UTS, None);
    let want = helper.id(NsType::NET);
    let ns = Namespace::of_pid(helper.pid, NsType::NET).unwrap();
    ns.persist(&path).unwrap();
    drop(ns);
    helper.kill();
    // The bind mount alone keeps the namespace alive and reachable.
    let reopened = Namespace::open(&path, NsType::NET).unwrap();
    assert_eq!(reopened.id().unwrap(), want);
    // Persisting twice onto the same path is refused.
    let err = ns_core::persist(&reopened, &path).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    // A link to the persisted file is no persisted namespace: unpersisting it through the
    // link would detach the namespace at the link's target.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(ns_core::unpersist(&link).is_err());
    let still = Namespace::open(&path, NsType::NET).unwrap();
    assert_eq!(still.id().unwrap(), want, "unpersist followed the link");
    drop(still);
    std::fs::remove_file(&link).unwrap();
    drop(reopened);
    ns_core::unpersist(&path).unwrap();
    assert!(!path.exists());
    // Unpersisting something that is no namespace changes nothing.
    std::fs::write(&path, "plain").unwrap();
    let err = ns_core::unpersist(&path).unwrap_err();
    assert!(matches!(err, Error::NotNamespace { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "plain");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn introspection_finds_owner_parent_owner_uid_and_translates_pids() {
    require_root();
    let helper = Helper::spawn(NsType::USER | NsType::UTS | NsType::PID, None);
    // The new uts namespace is owned by the new user namespace.
    let uts = Namespace::of_pid(helper.pid, NsType::UTS).unwrap();
    let owner = uts.owner().unwrap().expect("owner is visible");
    assert_eq!(owner.id().unwrap(), helper.id(NsType::USER));
    assert_eq!(owner.ns_type(), NsType::USER);
    // The new user namespace's parent is ours; root created it.
    let user = Namespace::of_pid(helper.pid, NsType::USER).unwrap();
    assert_eq!(
        user.parent().unwrap().unwrap().id().unwrap(),
        my_id(NsType::USER)
    );
    assert_eq!(user.owner_uid().unwrap(), 0);
    // Our own user namespace's owner and parent are out of sight.
    let mine = Namespace::current(NsType::USER).unwrap();
    assert!(mine.parent().unwrap().is_none());
    // The nested pid namespace's parent is ours; the helper is pid 1 in it.
    let pidns = Namespace::of_pid(helper.pid, NsType::PID).unwrap();
    assert_eq!(
        pidns.parent().unwrap().unwrap().id().unwrap(),
        my_id(NsType::PID)
    );
    assert_eq!(pidns.pid_from_caller(helper.pid).unwrap(), Some(1));
    assert_eq!(pidns.pid_to_caller(1).unwrap(), Some(helper.pid));
    assert_eq!(pidns.tgid_to_caller(1).unwrap(), Some(helper.pid));
    assert_eq!(
        pidns.pid_from_caller(std::process::id() as i32).unwrap(),
        None
    );
    // Wrong types are typed errors.
    assert!(matches!(uts.parent(), Err(Error::Invalid { .. })));
    assert!(matches!(uts.owner_uid(), Err(Error::Invalid { .. })));
    assert!(matches!(uts.pid_to_caller(1), Err(Error::Invalid { .. })));
    // The owner uid is the creator's uid as the caller sees it.
    in_child(|| {
        // SAFETY: dropping to an unprivileged uid in a single-threaded child.
        if unsafe { libc::setgid(1000) } != 0 || unsafe { libc::setuid(1000) } != 0 {
            return Err("setuid".into());
        }
        // SAFETY: namespace flags and CLONE_FS only; no descriptor table is split.
        unsafe { ns_sys::unshare(ns_sys::CLONE_NEWUSER) }.map_err(|e| e.to_string())?;
        let uid = Namespace::current(NsType::USER)
            .and_then(|u| u.owner_uid())
            .map_err(|e| e.to_string())?;
        // Inside the new namespace our own uid is unmapped, but the owner's uid is reported
        // as seen from the caller, which now is the overflow uid.
        (uid == 65534)
            .then_some(())
            .ok_or(format!("owner uid {uid}"))
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn owner_uid_of_a_namespace_created_by_another_user() {
    require_root();
    // A child drops to uid 1000 and creates a user namespace; we read its owner uid.
    let (r, w) = pipe();
    let (release_r, release_w) = pipe();
    // SAFETY: the child makes async-signal-safe calls only, then blocks and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            let ok = libc::setgid(1000) == 0
                && libc::setuid(1000) == 0
                && libc::unshare(libc::CLONE_NEWUSER) == 0;
            let b = ok as u8;
            libc::write(
                std::os::fd::AsRawFd::as_raw_fd(&w),
                &b as *const u8 as *const _,
                1,
            );
            let mut x = 0u8;
            libc::read(
                std::os::fd::AsRawFd::as_raw_fd(&release_r),
                &mut x as *mut u8 as *mut _,
                1,
            );
            libc::_exit(0);
        }
    }
    drop(w);
    drop(release_r);
    let mut b = [0u8];
    std::io::Read::read_exact(&mut std::fs::File::from(r), &mut b).unwrap();
    let user = Namespace::of_pid(pid, NsType::USER);
    std::io::Write::write_all(&mut std::fs::File::from(release_w), b"x").unwrap();
    wait(pid);
    assert_eq!(b[0], 1, "child could not create its user namespace");
    assert_eq!(user.unwrap().owner_uid().unwrap(), 1000);
}

/// Checks, in the calling thread, that it is in every namespace of `helper_ids`.
fn check_in(ids: &[(NsType, ns_core::NsId)]) -> Result<(), String> {
    for (t, want) in ids {
        let got = if *t == NsType::PID {
            my_child_id(*t)
        } else {
            my_id(*t)
        };
        if got != *want {
            return Err(format!("{t}: in {got}, want {want}"));
        }
    }
    Ok(())
}

fn enters_every_namespace(strategy: EntryStrategy) {
    require_root();
    let all = NsType::all();
    let helper = Helper::spawn(all, Some("all-of-them"));
    let ids: Vec<_> = all.iter().map(|t| (t, helper.id(t))).collect();
    let target = Target::pin(helper.pid, all).unwrap();
    let plan = target.plan(all, strategy).unwrap();
    assert_eq!(plan.types(), all);
    match strategy {
        EntryStrategy::Pidfd => assert_eq!(plan.steps().len(), 1),
        EntryStrategy::PerNamespace => {
            assert_eq!(plan.steps().len(), 8);
            // As root we hold CAP_SYS_ADMIN: the user namespace goes last.
            assert_eq!(plan.steps()[7].nstype, libc::CLONE_NEWUSER);
        }
        EntryStrategy::Auto => {}
    }
    in_child(move || {
        target
            .enter_with(all, strategy)
            .map_err(|e| e.to_string())?;
        check_in(&ids)?;
        (hostname() == "all-of-them")
            .then_some(())
            .ok_or_else(hostname)
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn atomic_pidfd_entry_moves_a_child_into_all_of_a_targets_namespaces() {
    enters_every_namespace(EntryStrategy::Pidfd);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn forced_per_namespace_fallback_moves_a_child_into_all_of_a_targets_namespaces() {
    enters_every_namespace(EntryStrategy::PerNamespace);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn target_sharing_our_user_namespace_drops_the_user_flag() {
    require_root();
    let helper = Helper::spawn(NsType::NET, None);
    let target = Target::pin(helper.pid, NsType::NET | NsType::USER).unwrap();
    for strategy in [EntryStrategy::Pidfd, EntryStrategy::PerNamespace] {
        let plan = target.plan(NsType::NET | NsType::USER, strategy).unwrap();
        assert_eq!(plan.types(), NsType::NET);
    }
    let net = helper.id(NsType::NET);
    // Entering net (and the shared user namespace) works from a thread.
    let got = on_thread(move || {
        target.enter(NsType::NET | NsType::USER).unwrap();
        my_id(NsType::NET)
    });
    assert_eq!(got, net);
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn mount_entry_from_a_thread_sharing_fs_state_is_refused_on_both_paths() {
    require_root();
    let helper = Helper::spawn(NsType::NET | NsType::UTS | NsType::MNT, Some("shared-fs"));
    let target = Target::pin(helper.pid, NsType::NET | NsType::UTS | NsType::MNT).unwrap();
    let root_before = std::fs::read_link("/proc/self/root").unwrap();
    on_thread(move || {
        let before = [NsType::NET, NsType::UTS, NsType::MNT].map(my_id);
        for strategy in [
            EntryStrategy::Pidfd,
            EntryStrategy::PerNamespace,
            EntryStrategy::Auto,
        ] {
            let err = target
                .enter_with(NsType::NET | NsType::UTS | NsType::MNT, strategy)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::ThreadRule {
                        rule: ThreadRule::MountNeedsUnsharedFs { .. },
                        ..
                    }
                ),
                "{strategy:?}: {err:?}"
            );
            assert_eq!([NsType::NET, NsType::UTS, NsType::MNT].map(my_id), before);
        }
        // After unshare(CLONE_FS) the atomic path works, and only this thread moved.
        // SAFETY: namespace flags and CLONE_FS only; no descriptor table is split.
        unsafe { ns_sys::unshare(ns_sys::CLONE_FS) }.unwrap();
        target
            .enter_with(
                NsType::NET | NsType::UTS | NsType::MNT,
                EntryStrategy::Pidfd,
            )
            .unwrap();
        assert_eq!(hostname(), "shared-fs");
    });
    assert_eq!(std::fs::read_link("/proc/self/root").unwrap(), root_before);
    assert_ne!(hostname(), "shared-fs");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn failed_per_namespace_entry_moves_the_thread_back() {
    require_root();
    let helper = Helper::spawn(NsType::NET | NsType::UTS | NsType::MNT, Some("half-way"));
    let target = Target::pin(helper.pid, NsType::NET | NsType::UTS | NsType::MNT).unwrap();
    on_thread(move || {
        // A private fs state, and no CAP_SYS_CHROOT in this thread: uts and net can be entered
        // (CAP_SYS_ADMIN), mnt cannot.
        // SAFETY: namespace flags and CLONE_FS only; no descriptor table is split.
        unsafe { ns_sys::unshare(ns_sys::CLONE_FS) }.unwrap();
        caps::drop(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_CHROOT,
        )
        .unwrap();
        let before = [NsType::NET, NsType::UTS, NsType::MNT].map(my_id);
        let host = hostname();
        let cwd = std::env::current_dir().unwrap();
        let err = target
            .enter_with(
                NsType::NET | NsType::UTS | NsType::MNT,
                EntryStrategy::PerNamespace,
            )
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("entering mnt namespace of pid"), "{text}");
        assert!(text.contains("missing CAP_SYS_CHROOT"), "{text}");
        assert_eq!([NsType::NET, NsType::UTS, NsType::MNT].map(my_id), before);
        assert_eq!(hostname(), host);
        assert_eq!(std::env::current_dir().unwrap(), cwd);
        // The atomic path refuses without moving anything either.
        let err = target
            .enter_with(
                NsType::NET | NsType::UTS | NsType::MNT,
                EntryStrategy::Pidfd,
            )
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err:?}");
        assert_eq!([NsType::NET, NsType::UTS, NsType::MNT].map(my_id), before);
    });
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn dead_target_is_a_typed_error() {
    require_root();
    let mut helper = Helper::spawn(NsType::NET, None);
    let pid = helper.pid;
    let target = Target::pin(pid, NsType::NET).unwrap();
    assert!(target.is_alive());
    let pidfd = ns_sys::pidfd_open(pid, 0).unwrap();
    helper.kill();
    assert!(!target.is_alive());
    let err = on_thread(move || {
        target
            .enter_with(NsType::NET, EntryStrategy::Pidfd)
            .unwrap_err()
    });
    assert!(matches!(err, Error::ProcessGone { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("of pid {pid}")), "{err}");
    let err = Target::from_pidfd(pidfd, NsType::NET).unwrap_err();
    assert!(matches!(err, Error::ProcessGone { .. }), "{err:?}");
    let err = Target::pin(pid, NsType::NET).unwrap_err();
    assert!(matches!(err, Error::ProcessGone { .. }), "{err:?}");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_recycled_pid_is_never_entered() {
    require_root();
    // Inside a new pid namespace we can hand out a chosen pid with ns_last_pid.
    in_child(|| {
        // SAFETY: namespace flags and CLONE_FS only; no descriptor table is split.
        unsafe { ns_sys::unshare(ns_sys::CLONE_NEWPID | ns_sys::CLONE_NEWNS) }
            .map_err(|e| e.to_string())?;
        // SAFETY: forking from a single-threaded child.
        let init = unsafe { libc::fork() };
        if init == 0 {
            let r =
                std::panic::catch_unwind(recycle_scenario).unwrap_or_else(|_| Err("panic".into()));
            if let Err(e) = &r {
                eprintln!("recycle scenario: {e}");
            }
            // SAFETY: leaving the pid namespace's init.
            unsafe { libc::_exit(r.is_err() as i32) };
        }
        let status = wait(init);
        (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
            .then_some(())
            .ok_or(format!("init status {status:#x}"))
    })
    .unwrap();
}

/// Runs as pid 1 of a new pid namespace (with its own /proc mounted).
fn recycle_scenario() -> Result<(), String> {
    let e = |e: ns_core::Error| e.to_string();
    // A /proc for this pid namespace, in this private mount namespace.
    private_mounts(true)?;
    let mut victim = Helper::spawn(NsType::NET, None);
    let victim_net = victim.id(NsType::NET);
    let pid = victim.pid;
    let target = Target::pin(pid, NsType::NET).map_err(e)?;
    let pidfd = ns_sys::pidfd_open(pid, 0).map_err(|x| x.to_string())?;
    victim.kill();
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
        .map_err(|x| x.to_string())?;
    let stranger = Helper::spawn(NsType::NET | NsType::UTS, Some("stranger"));
    if stranger.pid != pid {
        return Err(format!("stranger got pid {}, wanted {pid}", stranger.pid));
    }
    let stranger_net = stranger.id(NsType::NET);
    // Through the pidfd: the pinned process is gone, whatever now has its pid.
    match target.enter_with(NsType::NET, EntryStrategy::Pidfd) {
        Err(Error::ProcessGone { .. }) => {}
        other => return Err(format!("pidfd entry: {other:?}")),
    }
    match Target::from_pidfd(pidfd, NsType::NET) {
        Err(Error::ProcessGone { .. }) => {}
        other => return Err(format!("from_pidfd: {other:?}")),
    }
    // Through the files opened at pin time: the victim's namespace, never the stranger's.
    target
        .enter_with(NsType::NET, EntryStrategy::PerNamespace)
        .map_err(e)?;
    let now = my_id(NsType::NET);
    if now == stranger_net || now != victim_net {
        return Err(format!(
            "entered {now}; victim {victim_net}, stranger {stranger_net}"
        ));
    }
    Ok(())
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn unprivileged_caller_enters_its_rootless_container_both_ways() {
    require_root();
    // An unprivileged caller entering its own rootless container. The pidfd call works in
    // one go (the kernel installs the user namespace first and checks uts with the
    // credentials it grants); the per-namespace plan must put the user namespace first,
    // since only inside it does the caller have the privilege to enter uts.
    in_child(|| {
        // SAFETY: dropping privileges in a single-threaded child; keep it dumpable so its
        // children's /proc files stay its own.
        unsafe {
            if libc::setgid(1000) != 0
                || libc::setuid(1000) != 0
                || libc::prctl(libc::PR_SET_DUMPABLE, 1) != 0
            {
                return Err("setuid".into());
            }
        }
        let (release_r, release_w) = pipe();
        let mut args = ns_sys::clone_args {
            flags: (libc::CLONE_NEWUSER | libc::CLONE_NEWUTS) as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        // SAFETY: fork-like clone from a single-threaded process; the child blocks, then exits.
        let pid = unsafe { ns_sys::clone3(&mut args) }.map_err(|e| e.to_string())?;
        if pid == 0 {
            let mut b = 0u8;
            // SAFETY: async-signal-safe calls only, then _exit.
            unsafe {
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(&release_r),
                    &mut b as *mut u8 as *mut _,
                    1,
                );
                libc::_exit(0);
            }
        }
        let write = |file: &str, text: &str| {
            std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(|e| format!("{file}: {e}"))
        };
        let result = (|| {
            write("uid_map", "0 1000 1")?;
            write("setgroups", "deny")?;
            write("gid_map", "0 1000 1")?;
            let types = NsType::USER | NsType::UTS;
            let target = Target::pin(pid, types).map_err(|e| e.to_string())?;
            let plan = target
                .plan(types, EntryStrategy::PerNamespace)
                .map_err(|e| e.to_string())?;
            if plan.steps().first().map(|s| s.nstype) != Some(libc::CLONE_NEWUSER) {
                return Err("unprivileged: the user namespace must come first".into());
            }
            let want = (
                target.namespace(NsType::USER).unwrap().id().unwrap(),
                target.namespace(NsType::UTS).unwrap().id().unwrap(),
            );
            // Each strategy in its own single-threaded child, since entering a user
            // namespace cannot be undone.
            for strategy in [EntryStrategy::Pidfd, EntryStrategy::PerNamespace] {
                in_child(|| {
                    target
                        .enter_with(types, strategy)
                        .map_err(|e| format!("{strategy:?}: {e}"))?;
                    if (my_id(NsType::USER), my_id(NsType::UTS)) != want {
                        return Err(format!("{strategy:?}: not moved"));
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })();
        let _ = std::fs::File::from(release_w).write_all(b"x");
        wait(pid);
        result
    })
    .unwrap();
}
