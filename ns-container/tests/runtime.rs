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
    // Set up and waiting: nothing of the program ran.
    assert!(!marker.exists());
    assert!(child.try_wait().unwrap().is_none());
    UnixStream::connect(&path).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
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

/// Receives one descriptor sent with `SCM_RIGHTS` on `socket`.
fn receive_fd(socket: &UnixStream) -> OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut byte = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: byte.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr pointing to live buffers; the control message is read only
    // when the kernel filled one in.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        assert!(libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) > 0);
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null() && (*cmsg).cmsg_type == libc::SCM_RIGHTS);
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32))
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
    let master = std::fs::File::from(receive_fd(&ours));
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
