//! `nested`: a container inside a container, built with clone-after-setns.
//!
//! 1. Starts a "parent container": new pid, mount, uts, net and ipc namespaces (and, for a
//!    non-root user, a user namespace that maps the user to root), a root filesystem of its
//!    own assembled in a temporary directory from read-only bind mounts of the host's `/usr`
//!    and `/etc`, a fresh `/proc`, a `tmpfs` on `/tmp`, a hostname, a reduced capability
//!    set and `no_new_privs`.
//! 2. Spawns a "nested container" inside it: enters all of the parent container's namespaces,
//!    then creates its own pid, uts and mount namespaces, with its own root (assembled inside
//!    the parent's `/tmp` from the parent's `/usr` and `/etc`), its own `/proc`, fewer
//!    capabilities and `no_new_privs`.
//! 3. Prints each process's pid on the host, in the parent container and in the nested one,
//!    its namespace ids and its hostname; then, for each container, the processes its `/proc`
//!    shows, what its `/` holds, and its capabilities; and checks all of it.
//! 4. Tears everything down (the parent container's pid namespace with `destroy`) and exits 0.
//!
//! It works as root and as an unprivileged user (where the kernel allows user namespaces).
//! Neither container mounts `/sys`: the kernel allows a `sysfs` only to a user namespace that
//! owns the network namespace, and the example keeps one root filesystem recipe for both.
//!
//! ```text
//! cargo run -p ns-container --example nested
//! ```

use std::error::Error;
use std::process::ExitCode;

use ns_container::{destroy, Child, Mount, NsCommand};
use ns_core::caps::{CapSet, Capability};
use ns_core::{getns, Namespace, NsId, NsType, Target};

/// The parent container's capabilities: Docker's default set.
const PARENT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// The nested container's: fewer still.
const NESTED_CAPS: [Capability; 3] = [
    Capability::CAP_CHOWN,
    Capability::CAP_KILL,
    Capability::CAP_NET_BIND_SERVICE,
];

/// What every container's `/` holds.
const ROOT_ENTRIES: [&str; 8] = ["bin", "dev", "etc", "lib", "lib64", "proc", "tmp", "usr"];

fn mask(caps: &[Capability]) -> u64 {
    caps.iter().fold(0, |m, c| m | c.bitmask())
}

/// The mounts that make a root filesystem at `root` (a path as the child sees it before
/// its root changes) from `/usr` and `/etc`: read-only binds, `/bin`, `/lib` and `/lib64`
/// from `/usr`, `/dev/null`, a fresh `/proc`, a `tmpfs` on `/tmp`.
fn rootfs(command: &mut NsCommand, root: &std::path::Path) {
    command
        .mount(
            Mount::bind("/usr", root.join("usr"))
                .create_dir()
                .read_only(),
        )
        .mount(
            Mount::bind("/etc", root.join("etc"))
                .create_dir()
                .read_only(),
        );
    for (dir, from) in [
        ("bin", "/usr/bin"),
        ("lib", "/usr/lib"),
        ("lib64", "/usr/lib64"),
    ] {
        let from = if std::path::Path::new(&format!("/{dir}")).is_symlink() {
            from.to_owned()
        } else {
            format!("/{dir}")
        };
        if std::path::Path::new(&from).exists() {
            command.mount(Mount::bind(from, root.join(dir)).create_dir().read_only());
        } else {
            command.mount(Mount::tmpfs(root.join(dir)).create_dir().read_only());
        }
    }
    command
        .mount(
            Mount::tmpfs(root.join("dev"))
                .create_dir()
                .options("mode=755,size=64k"),
        )
        .mount(Mount::bind("/dev/null", root.join("dev/null")).create_file())
        .mount(Mount::proc(root.join("proc")).create_dir())
        .mount(
            Mount::tmpfs(root.join("tmp"))
                .create_dir()
                .options("mode=1777,size=16m"),
        )
        .root(root);
}

/// The namespace types the tree shows.
const SHOWN: [NsType; 5] = [
    NsType::PID,
    NsType::UTS,
    NsType::NET,
    NsType::MNT,
    NsType::USER,
];

struct Facts {
    name: &'static str,
    pid: libc::pid_t,
    nspid: Vec<libc::pid_t>,
    ids: Vec<(NsType, NsId)>,
    hostname: String,
}

const USAGE: &str = "Usage:
 nested

Start a container, a nested container inside it, show and check both, and tear them down.
Runs as root, or rootless as any other user where the kernel allows user namespaces.

Options:
 -h, --help     display this help";

fn main() -> ExitCode {
    let mut parser = lexopt::Parser::from_env();
    match parser.next() {
        Ok(None) => {}
        Ok(Some(lexopt::Arg::Short('h') | lexopt::Arg::Long("help"))) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Some(arg)) => {
            eprintln!(
                "nested: {}\nTry 'nested --help' for more information.",
                arg.unexpected()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("nested: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nested: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sleeper() -> NsCommand {
    let mut c = NsCommand::new("sleep");
    c.arg("600");
    c
}

fn run() -> Result<(), Box<dyn Error>> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let rootless = uid != 0;
    let mut parent_types = NsType::PID | NsType::MNT | NsType::UTS | NsType::NET | NsType::IPC;
    let root = tempfile::tempdir()?;
    let mut parent_cmd = sleeper();
    parent_cmd
        .hostname("parent-container")
        .capabilities(CapSet::Bounding, PARENT_CAPS)
        .capabilities(CapSet::Permitted, PARENT_CAPS)
        .capabilities(CapSet::Effective, PARENT_CAPS)
        .no_new_privs(true);
    rootfs(&mut parent_cmd, root.path());
    if rootless {
        parent_types |= NsType::USER;
        parent_cmd
            .uid_map(0, uid, 1)
            .gid_map(0, gid, 1)
            .setgroups_deny(true);
    }
    parent_cmd.unshare(parent_types);
    println!(
        "running as {}: parent container gets {}",
        if rootless {
            format!("uid {uid} (rootless)")
        } else {
            "root".to_owned()
        },
        parent_types
    );
    let mut parent = match parent_cmd.spawn() {
        Ok(p) => p,
        Err(e)
            if rootless
                && matches!(
                    e.raw_os_error(),
                    Some(libc::EPERM | libc::EACCES | libc::ENOSPC)
                ) =>
        {
            return Err(format!(
                "this system does not let unprivileged users create user namespaces \
                 (see kernel.unprivileged_userns_clone, user.max_user_namespaces or an LSM \
                 policy); run as root instead. The error was: {e}"
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    };

    let result = inside(&parent, parent_types, rootless);
    if let Err(e) = &result {
        eprintln!("nested: {e}");
    }
    // Tear down: the parent container's pid namespace takes the nested container with it.
    let pidns = Namespace::of_pid(parent.pid(), NsType::PID)?;
    let killed = destroy(&pidns)?;
    parent.wait()?;
    println!("destroyed the parent container's pid namespace ({killed} process(es) killed)");
    result?;
    println!("all checks passed");
    Ok(())
}

fn inside(parent: &Child, parent_types: NsType, rootless: bool) -> Result<(), Box<dyn Error>> {
    // clone-after-setns: enter every namespace of the parent container, then make new pid and
    // uts namespaces inside it.
    let target = Target::pin(parent.pid(), parent_types)?;
    let mut nested_cmd = sleeper();
    nested_cmd
        .enter(&target, parent_types)
        .unshare(NsType::PID | NsType::UTS | NsType::MNT)
        .hostname("nested-container")
        .capabilities(CapSet::Bounding, NESTED_CAPS)
        .capabilities(CapSet::Permitted, NESTED_CAPS)
        .capabilities(CapSet::Effective, NESTED_CAPS)
        .no_new_privs(true)
        // Its root is assembled inside the parent container's /tmp.
        .mount(Mount::tmpfs("/tmp/nested").create_dir().options("size=16m"));
    rootfs(&mut nested_cmd, std::path::Path::new("/tmp/nested"));
    let mut nested = nested_cmd.spawn()?;

    let shown = show_and_check(parent, &nested, rootless).and_then(|()| {
        let outer = view(
            "parent container",
            parent.pid(),
            parent_types,
            rootless,
            &PARENT_CAPS,
        )?;
        let inner = view(
            "nested container",
            nested.pid(),
            parent_types,
            rootless,
            &NESTED_CAPS,
        )?;
        outer.check()?;
        inner.check()?;
        println!("checks: own /proc, own root, reduced capabilities, no_new_privs: ok");
        Ok(())
    });
    nested.kill()?;
    nested.wait()?;
    shown
}

/// What a container sees from inside, and what its init holds.
struct View {
    name: &'static str,
    procs: Vec<String>,
    root: Vec<String>,
    cap_eff: u64,
    cap_bnd: u64,
    no_new_privs: bool,
    want_caps: u64,
}

/// Looks into the container whose init is `pid`: a probe entering all its namespaces lists
/// its `/proc` and `/`; the init's status gives its capabilities.
fn view(
    name: &'static str,
    pid: libc::pid_t,
    types: NsType,
    rootless: bool,
    caps: &[Capability],
) -> Result<View, Box<dyn Error>> {
    let mut types = types;
    if !rootless {
        types -= NsType::USER;
    }
    let target = Target::pin(pid, types)?;
    let out = NsCommand::new("sh")
        .args(["-c", "cd /proc && echo [0-9]*; echo ---; ls /"])
        .enter(&target, types)
        .output()?;
    if !out.status.success() {
        return Err(format!("probe in {name}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (procs, root) = text.split_once("---").ok_or("probe output")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hex = |key: &str| -> Result<u64, Box<dyn Error>> {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .ok_or("missing status line")?;
        Ok(u64::from_str_radix(v.trim(), 16)?)
    };
    let view = View {
        name,
        procs: procs.split_whitespace().map(str::to_owned).collect(),
        root: root.split_whitespace().map(str::to_owned).collect(),
        cap_eff: hex("CapEff:")?,
        cap_bnd: hex("CapBnd:")?,
        no_new_privs: status.lines().any(|l| l == "NoNewPrivs:\t1"),
        want_caps: mask(caps),
    };
    println!("{name}:");
    println!(
        "    its /proc shows pids {} (its own processes only: its init, a container inside \
         it, this probe)",
        view.procs.join(" ")
    );
    println!("    its / holds {}", view.root.join(" "));
    println!(
        "    its init: CapEff {:#x}, CapBnd {:#x}, NoNewPrivs {}",
        view.cap_eff, view.cap_bnd, view.no_new_privs
    );
    Ok(view)
}

impl View {
    fn check(&self) -> Result<(), Box<dyn Error>> {
        let name = self.name;
        if !self.procs.iter().any(|p| p == "1") || self.procs.len() > 3 {
            return Err(format!("{name}: its /proc shows {:?}", self.procs).into());
        }
        if self.root != ROOT_ENTRIES {
            return Err(format!("{name}: its / holds {:?}", self.root).into());
        }
        if self.cap_bnd != self.want_caps || self.cap_eff != self.want_caps {
            return Err(format!(
                "{name}: capabilities {:#x}/{:#x}, expected {:#x}",
                self.cap_eff, self.cap_bnd, self.want_caps
            )
            .into());
        }
        if !self.no_new_privs {
            return Err(format!("{name}: no_new_privs is not set").into());
        }
        Ok(())
    }
}

fn show_and_check(parent: &Child, nested: &Child, rootless: bool) -> Result<(), Box<dyn Error>> {
    let me = std::process::id() as libc::pid_t;
    let host = facts("host (this process)", me, rootless)?;
    let outer = facts("parent container", parent.pid(), rootless)?;
    let inner = facts("nested container", nested.pid(), rootless)?;
    print_tree(&[&host, &outer, &inner]);
    check(&host, &outer, &inner, nested.pid())
}

fn facts(name: &'static str, pid: libc::pid_t, rootless: bool) -> Result<Facts, Box<dyn Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .ok_or("no NSpid line")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<Vec<libc::pid_t>, _>>()?;
    let mut ids = Vec::new();
    for t in SHOWN {
        ids.push((t, getns(pid, t)?.ok_or("process vanished")?));
    }
    let hostname = if pid == std::process::id() as libc::pid_t {
        own_hostname()
    } else {
        hostname_of(name, pid, rootless)?
    };
    Ok(Facts {
        name,
        pid,
        nspid,
        ids,
        hostname,
    })
}

fn own_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its whole length.
    unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Reads the hostname from inside the process's uts namespace (and, rootless, its user
/// namespace, which owns that uts namespace and grants the right to enter it).
fn hostname_of(name: &str, pid: libc::pid_t, rootless: bool) -> Result<String, Box<dyn Error>> {
    let mut types = NsType::UTS;
    if rootless {
        types |= NsType::USER;
    }
    let target = Target::pin(pid, types)?;
    let out = NsCommand::new("hostname").enter(&target, types).output()?;
    if !out.status.success() {
        return Err(format!(
            "hostname in {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn print_tree(levels: &[&Facts]) {
    for (depth, f) in levels.iter().enumerate() {
        let indent = "    ".repeat(depth);
        let branch = if depth == 0 { "" } else { "└── " };
        let pids: Vec<String> = ["host", "parent", "nested"]
            .iter()
            .zip(&f.nspid)
            .map(|(level, pid)| format!("{pid} ({level})"))
            .collect();
        println!("{indent}{branch}{} — hostname {:?}", f.name, f.hostname);
        println!("{indent}      pid {} = {}", f.pid, pids.join(" / "));
        let ids: Vec<String> = f.ids.iter().map(|(_, id)| id.to_string()).collect();
        println!("{indent}      {}", ids.join("  "));
    }
}

fn id_of(f: &Facts, t: NsType) -> NsId {
    f.ids
        .iter()
        .find(|(k, _)| *k == t)
        .map(|(_, id)| *id)
        .expect("every shown type is recorded")
}

fn check(
    host: &Facts,
    outer: &Facts,
    inner: &Facts,
    nested_pid: libc::pid_t,
) -> Result<(), Box<dyn Error>> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    expect(
        outer.nspid.len() == host.nspid.len() + 1,
        format!("parent container pid levels {:?}", outer.nspid),
    );
    expect(
        outer.nspid.last() == Some(&1),
        "the parent container's init is not pid 1 there".into(),
    );
    expect(
        inner.nspid.len() == host.nspid.len() + 2,
        format!("nested container pid levels {:?}", inner.nspid),
    );
    expect(
        inner.nspid.last() == Some(&1),
        "the nested container's init is not pid 1 there".into(),
    );
    for t in [NsType::PID, NsType::UTS, NsType::MNT] {
        expect(
            id_of(inner, t) != id_of(outer, t),
            format!("nested and parent share their {t}"),
        );
        expect(
            id_of(outer, t) != id_of(host, t),
            format!("parent and host share their {t}"),
        );
    }
    for t in [NsType::NET, NsType::USER] {
        expect(
            id_of(inner, t) == id_of(outer, t),
            format!("nested is not in the parent's {t}"),
        );
    }
    expect(
        id_of(outer, NsType::NET) != id_of(host, NsType::NET),
        "parent and host share their net namespace".into(),
    );
    // The nested pid namespace hangs below the parent container's.
    let nested_pidns = Namespace::of_pid(nested_pid, NsType::PID)?;
    let parent_of_nested = nested_pidns
        .parent()?
        .ok_or("nested pid namespace has no visible parent")?;
    expect(
        parent_of_nested.id()? == id_of(outer, NsType::PID),
        "nested pid namespace is not below the parent's".into(),
    );
    expect(
        outer.hostname == "parent-container",
        format!("parent hostname {:?}", outer.hostname),
    );
    expect(
        inner.hostname == "nested-container",
        format!("nested hostname {:?}", inner.hostname),
    );
    expect(
        host.hostname != inner.hostname,
        "the host's hostname changed".into(),
    );
    if problems.is_empty() {
        println!("checks: pid levels, namespace sharing, pid namespace parent, hostnames: ok");
        Ok(())
    } else {
        Err(format!("checks failed: {}", problems.join("; ")).into())
    }
}
