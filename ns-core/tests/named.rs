//! Named namespaces side by side with iproute2's `ip netns` (run for real by
//! `cargo xtask test-root`), and `Namespace::create`.

mod support;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use ns_core::named::{self, NamedNamespaces};
use ns_core::{Error, Namespace, NsType};
use support::*;

/// A name of this process's own, so that concurrent runs do not meet.
fn name(tag: &str) -> String {
    format!("nsrs-{}-{tag}", std::process::id())
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The names `ip netns list` shows (each line is `NAME` or `NAME (id: N)`).
fn ip_netns_list() -> Vec<String> {
    ip(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The inode of the network namespace `ip netns exec NAME` puts a process in.
fn ino_under_ip_exec(name: &str) -> u64 {
    ip(&[
        "netns",
        "exec",
        name,
        "stat",
        "-L",
        "-c",
        "%i",
        "/proc/self/ns/net",
    ])
    .trim()
    .parse()
    .unwrap()
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_namespace_named_here_is_one_ip_netns_lists_and_enters() {
    require_root();
    let netns = named::netns();
    let n = name("here");
    let ns = netns.create(&n).unwrap();
    assert!(ip_netns_list().contains(&n), "{:?}", ip_netns_list());
    assert_eq!(ino_under_ip_exec(&n), ns.id().unwrap().ino());
    assert_ne!(
        ns.id().unwrap(),
        Namespace::current(NsType::NET).unwrap().id().unwrap()
    );
    // The directory is a shared mount point, as iproute2 leaves it.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some(named::NETNS_RUN_DIR))
        .expect("/run/netns is a mount point");
    assert!(line.contains("shared:"), "{line}");
    netns.delete(&n).unwrap();
    assert!(!ip_netns_list().contains(&n));
    assert!(!netns.dir().join(&n).exists());
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_namespace_named_by_ip_netns_add_opens_here() {
    require_root();
    let netns = named::netns();
    let n = name("ip");
    ip(&["netns", "add", &n]);
    let ns = netns.open(&n).unwrap();
    assert_eq!(ns.ns_type(), NsType::NET);
    assert_eq!(ns.id().unwrap().ino(), ino_under_ip_exec(&n));
    assert!(netns.list().unwrap().contains(&n));
    netns.delete(&n).unwrap();
    assert!(!ip_netns_list().contains(&n));
    // The handle still holds the namespace: a thread can still enter it.
    let ino = ns.id().unwrap().ino();
    let entered = std::thread::spawn(move || {
        ns_core::setns(
            format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&ns)),
            NsType::NET,
            false,
        )
        .unwrap();
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    })
    .join()
    .unwrap();
    assert_eq!(entered, ino);
}

/// The recipe of the guide: a named network namespace with one end of a veth pair in it.
#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn recipe_a_named_network_namespace_with_a_veth_pair() {
    require_root();
    let netns = named::netns();
    let n = name("veth");
    let pid = std::process::id() % 100_000;
    let (host, inner) = (format!("vh{pid}"), format!("vc{pid}"));
    netns.create(&n).unwrap();
    ip(&[
        "link", "add", &host, "type", "veth", "peer", "name", &inner, "netns", &n,
    ]);
    ip(&["addr", "add", "10.231.0.1/30", "dev", &host]);
    ip(&["link", "set", &host, "up"]);
    let inside = |args: &[&str]| {
        let mut all = vec!["netns", "exec", &n, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    };
    inside(&["addr", "add", "10.231.0.2/30", "dev", &inner]);
    inside(&["link", "set", &inner, "up"]);
    inside(&["link", "set", "lo", "up"]);
    let links = inside(&["-o", "link"]);
    assert!(links.contains(&inner), "{links}");
    assert!(!links.contains(&host), "{links}");
    // The host end is not inside, the inner end not outside.
    assert!(!ip(&["-o", "link"]).contains(&format!(" {inner}@")));
    netns.delete(&n).unwrap();
    // Deleting the last reference to the namespace destroys the pair with it.
    for _ in 0..200 {
        if !ip(&["-o", "link"]).contains(&format!(" {host}@")) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the host end outlived the namespace");
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn bad_names_and_clashes_are_typed_errors_and_leave_nothing() {
    require_root();
    // It compares the descriptor count of the whole process: nothing may run beside it.
    if !alone("bad_names_and_clashes_are_typed_errors_and_leave_nothing") {
        return;
    }
    // In a single-threaded child, so that the descriptor count is this test's alone.
    in_child(|| {
        let dir = tempfile::tempdir().unwrap();
        let names = NamedNamespaces::new(dir.path().join("netns"), NsType::NET);
        for bad in ["", ".", "..", "a/b", "a\0b", &"x".repeat(256)] {
            assert!(
                matches!(names.create(bad), Err(Error::Invalid { .. })),
                "{bad:?}"
            );
        }
        let fds = fd_count();
        let ns = names.create("one").unwrap();
        let err = names.create("one").unwrap_err();
        assert_eq!(std::io::Error::from(err).raw_os_error(), Some(libc::EEXIST));
        // A namespace of another type is refused before anything is made.
        let uts = Namespace::create(NsType::UTS).unwrap();
        assert!(matches!(
            names.add("uts", &uts),
            Err(Error::WrongType { .. })
        ));
        assert!(!names.dir().join("uts").exists());
        let err = names.open("missing").unwrap_err();
        assert_eq!(std::io::Error::from(err).raw_os_error(), Some(libc::ENOENT));
        // A stale file (a creator died half-way) is not listed, and delete removes it as
        // `ip netns delete` does; a FIFO is never opened (list would hang), a directory is
        // refused.
        std::fs::write(names.dir().join("stale"), "").unwrap();
        let fifo = std::ffi::CString::new(names.dir().join("fifo").as_os_str().as_encoded_bytes())
            .unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::fs::create_dir(names.dir().join("subdir")).unwrap();
        assert_eq!(names.list().unwrap(), ["one"]);
        names.delete("stale").unwrap();
        assert!(!names.dir().join("stale").exists());
        assert!(matches!(
            names.delete("subdir"),
            Err(Error::NotNamespace { .. })
        ));
        std::fs::remove_file(names.dir().join("fifo")).unwrap();
        std::fs::remove_dir(names.dir().join("subdir")).unwrap();
        assert_eq!(names.open("one").unwrap().id().unwrap(), ns.id().unwrap());
        names.delete("one").unwrap();
        assert!(names.list().unwrap().is_empty());
        drop((ns, uts));
        assert_eq!(fd_count(), fds, "descriptors leaked");
        // Unmount the directory's own bind mount, made on first use.
        let c = std::ffi::CString::new(names.dir().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
        Ok(())
    })
    .unwrap();
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn create_makes_a_new_namespace_and_leaves_the_caller_where_it_was() {
    require_root();
    let types = [
        NsType::NET,
        NsType::UTS,
        NsType::IPC,
        NsType::MNT,
        NsType::CGROUP,
        NsType::TIME,
    ];
    let before: Vec<_> = types
        .iter()
        .map(|t| Namespace::current(*t).unwrap().id().unwrap())
        .collect();
    for (t, own) in types.iter().zip(&before) {
        let ns = Namespace::create(*t).unwrap();
        assert_eq!(ns.ns_type(), *t);
        assert_ne!(ns.id().unwrap(), *own, "{t:?}");
    }
    let after: Vec<_> = types
        .iter()
        .map(|t| Namespace::current(*t).unwrap().id().unwrap())
        .collect();
    assert_eq!(before, after);
    for t in [NsType::USER, NsType::PID] {
        assert!(matches!(Namespace::create(t), Err(Error::Invalid { .. })));
    }
    assert!(matches!(
        Namespace::create(NsType::NET | NsType::UTS),
        Err(Error::NotOneType { .. })
    ));
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn mount_namespaces_are_named_again_and_again() {
    require_root();
    // Each new mount namespace is private: binding it into the shared directory cannot
    // reach itself (the kernel refuses such a loop), however many there are.
    let dir = tempfile::tempdir().unwrap();
    let names = NamedNamespaces::new(dir.path().join("mnt"), NsType::MNT);
    for n in ["m1", "m2", "m3"] {
        names.create(n).unwrap();
    }
    assert_eq!(names.list().unwrap(), ["m1", "m2", "m3"]);
    for n in ["m1", "m2", "m3"] {
        names.delete(n).unwrap();
    }
    let c = std::ffi::CString::new(names.dir().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
}
