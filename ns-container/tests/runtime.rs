//! Building blocks an OCI runtime needs from the spawning layer: a program held back until a
//! later process lets it go (create/start), and kernel parameters of the new namespaces.

mod common;
#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};

use common::{cmd, sh, stdout_of};
use ns_container::{Error, Mount, Step};
use ns_core::NsType;
use support::*;

fn listener(dir: &std::path::Path) -> (OwnedFd, std::path::PathBuf) {
    let path = dir.join("exec.sock");
    let l = UnixListener::bind(&path).unwrap();
    (OwnedFd::from(l), path)
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_held_program_starts_only_when_a_later_process_connects() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (sock, path) = listener(dir.path());
    let marker = dir.path().join("started");
    let mut c = sh(&format!("echo ran > {}", marker.display()));
    c.unshare(NsType::PID | NsType::MNT | NsType::UTS)
        .hold_before_exec(sock);
    let mut child = c.spawn().unwrap();
    // Set up and waiting: not executed yet (still a copy of this test program).
    let exe = std::fs::read_link(format!("/proc/{}/exe", child.pid())).unwrap();
    assert_eq!(exe, std::env::current_exe().unwrap());
    assert!(!marker.exists());
    assert!(child.try_wait().unwrap().is_none());
    UnixStream::connect(&path).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_caller_without_privilege_holds_a_program_in_its_own_user_namespace() {
    require_root();
    // A rootless runtime's create: the held child has memory of its own, not dumpable, and
    // the ids it asks for make its creator a copy too; the creator must still be able to
    // write its id maps (the /proc files of a non-dumpable task are the root's of its user
    // namespace, which has no id before the maps).
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(1000), Some(1000)).unwrap();
    let path = dir.path().join("exec.sock");
    let marker = dir.path().join("started");
    in_child(|| {
        // SAFETY: dropping to an unprivileged user in this single-threaded (forked) child.
        // Changing uid makes the process non-dumpable; an ordinary unprivileged program is
        // dumpable, so make this one so again.
        if unsafe { libc::setgid(1000) } != 0
            || unsafe { libc::setuid(1000) } != 0
            || unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) } != 0
        {
            return Err("setuid".into());
        }
        let sock = OwnedFd::from(UnixListener::bind(&path).map_err(|e| e.to_string())?);
        // (Not killed when its handle is dropped: the program outlives this caller.)
        let mut c = ns_container::NsCommand::new("sh");
        c.args(["-c", &format!("id -u > {}", marker.display())])
            .unshare(NsType::USER | NsType::MNT | NsType::PID)
            .uid_map(0, 1000, 1)
            .gid_map(0, 1000, 1)
            .setgroups_deny(true)
            .uid(0)
            .gid(0)
            .hold_before_exec(sock);
        c.spawn().map(drop).map_err(|e| e.to_string())
    })
    .unwrap();
    UnixStream::connect(&path).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&marker)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the held program did not run"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "0\n");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_held_program_in_a_new_root_outlives_its_caller() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exec.sock");
    let marker = dir.path().join("started");
    // The caller (a forked copy of this test) holds the program, then exits, as an OCI
    // runtime's `create` does; `start` comes from another process.
    in_child(|| {
        let sock = OwnedFd::from(UnixListener::bind(&path).map_err(|e| e.to_string())?);
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        for sub in ["usr", "proc", "tmp"] {
            std::fs::create_dir(root.path().join(sub)).map_err(|e| e.to_string())?;
        }
        for link in ["bin", "lib", "lib64"] {
            if let Ok(to) = std::fs::read_link(format!("/{link}")) {
                std::os::unix::fs::symlink(to, root.path().join(link))
                    .map_err(|e| e.to_string())?;
            }
        }
        // The root is kept: the held program starts after this process is gone.
        let root = root.keep();
        let out = std::fs::File::create(&marker).map_err(|e| e.to_string())?;
        let mut c = ns_container::NsCommand::new("sh");
        c.args(["-c", "echo ran; cat /proc/1/cmdline"])
            .unshare(NsType::PID | NsType::MNT)
            .mount(Mount::bind("/usr", root.join("usr")).read_only())
            .mount(Mount::proc(root.join("proc")))
            .root(&root)
            .stdout(out)
            .hold_before_exec(sock);
        c.spawn().map(drop).map_err(|e| e.to_string())
    })
    .unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "");
    UnixStream::connect(&path).unwrap();
    // The program is no child of ours: wait for its output.
    let mut text = String::new();
    for _ in 0..500 {
        text = std::fs::read_to_string(&marker).unwrap();
        if text.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ran"), "{text}");
    // The program is the init of its new pid namespace.
    assert!(lines.next().is_some_and(|l| l.starts_with("sh")), "{text}");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_failure_before_the_hold_is_the_spawns() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (sock, _) = listener(dir.path());
    let mut c = cmd("true", &[]);
    c.unshare(NsType::MNT)
        .mount(Mount::tmpfs("/no/such/place/for/a/mount"))
        .hold_before_exec(sock);
    match c.spawn() {
        Err(Error::Step {
            step: Step::Mount, ..
        }) => {}
        other => panic!("expected the mount's failure, got {other:?}"),
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn kernel_parameters_are_written_in_the_new_namespaces() {
    require_root();
    let mut c = sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/domainname");
    c.unshare(NsType::NET | NsType::MNT | NsType::PID | NsType::UTS)
        .mount(Mount::proc("/proc"))
        .sysctl("net.ipv4.ip_forward", "1")
        .sysctl("kernel/domainname", "ns-test");
    assert_eq!(stdout_of(&mut c), "1\nns-test\n");
    // The caller's own are untouched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        "ns-test\n"
    );
    for bad in ["../../etc/passwd", "net..ipv4", ""] {
        match cmd("true", &[]).sysctl(bad, "1").spawn() {
            Err(Error::Invalid { .. }) => {}
            other => panic!("{bad:?}: expected a refusal, got {other:?}"),
        }
    }
    match cmd("true", &[])
        .unshare(NsType::NET | NsType::MNT)
        .mount(Mount::proc("/proc"))
        .sysctl("net.no.such.parameter", "1")
        .spawn()
    {
        Err(Error::Step {
            step: Step::Sysctl,
            detail: 0,
            errno,
            ..
        }) => assert_eq!(errno, libc::ENOENT),
        other => panic!("expected the sysctl's ENOENT, got {other:?}"),
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_program_gets_a_terminal_of_the_containers_own() {
    require_root();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut c = sh("tty; test -t 0 && echo interactive; stty size; ps -o sid=,pid= -p $$");
    c.unshare(NsType::MNT | NsType::PID)
        .mount(Mount::proc("/proc"))
        .mount(Mount::devpts_for_container("/dev/pts"))
        .mount(Mount::bind("/dev/pts/ptmx", "/dev/ptmx").recursive(false))
        .terminal(OwnedFd::from(theirs), Some((33, 99)));
    let mut child = c.spawn().unwrap();
    let master = std::fs::File::from(ns_container::receive_terminal(&ours).unwrap());
    let mut text = String::new();
    // Read until the peer is gone (EIO once the program exited).
    let _ = std::io::Read::read_to_string(&mut &master, &mut text);
    assert!(child.wait().unwrap().success());
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // The container's own devpts numbers from 0; a terminal, of the size asked, leading its
    // session.
    assert_eq!(lines.first(), Some(&"/dev/pts/0"), "{text:?}");
    assert!(lines.contains(&"interactive"), "{text:?}");
    assert!(lines.contains(&"33 99"), "{text:?}");
    let sid_pid: Vec<&str> = lines.last().unwrap().split_whitespace().collect();
    assert_eq!(sid_pid.first(), sid_pid.get(1), "{text:?}");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_hold_on_anything_but_a_listening_socket_is_refused_before_anything_starts() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let file = OwnedFd::from(std::fs::File::create(dir.path().join("f")).unwrap());
    let (unix, _other) = UnixStream::pair().unwrap();
    for fd in [file, OwnedFd::from(unix)] {
        match cmd("true", &[]).hold_before_exec(fd).spawn() {
            Err(Error::Invalid { .. }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

/// A root of links to the host's programs, with `/usr` bound read-only.
fn small_root(dir: &std::path::Path) -> Vec<Mount> {
    for link in ["bin", "lib", "lib64", "sbin"] {
        if let Ok(to) = std::fs::read_link(format!("/{link}")) {
            std::os::unix::fs::symlink(to, dir.join(link)).unwrap();
        }
    }
    for sub in ["usr", "proc", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    vec![
        Mount::bind("/usr", dir.join("usr"))
            .recursive(false)
            .read_only(),
        Mount::proc(dir.join("proc")),
    ]
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn links_and_filesystems_of_any_type_are_made_in_the_mount_stage() {
    require_root();
    for api in [ns_container::MountApi::New, ns_container::MountApi::Classic] {
        let root = tempfile::tempdir().unwrap();
        // The image's `etc` is an absolute link to /tmp: the host's, were it followed
        // outside the root; the link made through it lands in the root's /tmp.
        std::os::unix::fs::symlink("/tmp", root.path().join("etc")).unwrap();
        let name = format!("ns-test-made-{}", std::process::id());
        let mut c = sh(&format!(
            "readlink /dev/fd /etc/{name}; grep ' /dev ' /proc/self/mounts | cut -d' ' -f1,3"
        ));
        c.unshare(NsType::MNT | NsType::PID).mount_api(api);
        for m in small_root(root.path()) {
            c.mount(m);
        }
        c.mount(Mount::filesystem("tmpfs", "ns-test-dev", root.path().join("dev")).create_dir())
            .mount(Mount::symlink(root.path().join("dev/fd"), "/proc/self/fd"))
            .mount(Mount::symlink(
                root.path().join("etc").join(&name),
                "target",
            ))
            .root(root.path());
        assert_eq!(
            stdout_of(&mut c),
            "/proc/self/fd\ntarget\nns-test-dev tmpfs\n",
            "{api:?}"
        );
        assert!(root.path().join("tmp").join(&name).is_symlink());
        assert!(
            std::fs::symlink_metadata(format!("/tmp/{name}")).is_err(),
            "a link was made on the host"
        );
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn the_new_root_can_be_read_only_and_take_a_propagation_of_its_own() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let mut c = sh(
        "touch /x 2>/tmp/err && echo wrote; touch /tmp/y && echo tmp; \
                    cut -d' ' -f5- /proc/self/mountinfo | grep '^/ '",
    );
    c.unshare(NsType::MNT | NsType::PID);
    for m in small_root(root.path()) {
        c.mount(m);
    }
    c.mount(Mount::tmpfs(root.path().join("tmp")))
        .root(root.path())
        .read_only_root(true)
        .root_propagation(ns_container::Propagation::Shared);
    let text = stdout_of(&mut c);
    assert!(text.starts_with("tmp\n"), "{text}");
    assert!(text.contains(" shared:"), "the root is not shared: {text}");
    assert!(!root.path().join("x").exists());
    // Without a new root neither means anything: refused.
    for f in [
        |c: &mut ns_container::NsCommand| {
            c.read_only_root(true);
        },
        |c: &mut ns_container::NsCommand| {
            c.root_propagation(ns_container::Propagation::Private);
        },
    ] {
        let mut c = cmd("true", &[]);
        c.unshare(NsType::MNT);
        f(&mut c);
        assert!(matches!(c.spawn(), Err(Error::Invalid { .. })));
    }
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_user_namespace_whose_root_is_not_the_callers_owns_what_its_mounts_make() {
    require_root();
    // Root 0 inside is 100000 outside: the child's own ids are unmapped there, and a mount
    // point it made before taking the namespace's root failed with EOVERFLOW.
    let mut c = sh("ls -ld /tmp/made | cut -d' ' -f3; id -u");
    c.unshare(NsType::USER | NsType::MNT | NsType::PID)
        .uid_map(0, 100_000, 65_536)
        .gid_map(0, 100_000, 65_536)
        .mount(Mount::tmpfs("/tmp"))
        .mount(Mount::tmpfs("/tmp/made").create_dir());
    assert_eq!(stdout_of(&mut c), "root\n0\n");
    // The caller's own memory stays dumpable (the child copied it to change ids).
    // SAFETY: a prctl query.
    assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 1);
}
