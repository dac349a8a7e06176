//! `cargo xtask two-copies`: a program that links two semver-incompatible copies of
//! `ns-sys` (the workspace's, and the same source renamed to another major version), as a
//! dependency graph may, and starts a task through each copy's `clone3_on_stack`, built
//! unoptimised and optimised. Both copies carry the assembly task entry; it must not clash at
//! link time, and a call that an optimised build inlines must still find it.

use std::path::Path;

use crate::{cargo, run, workspace_root};

const MAIN: &str = r#"
use std::ffi::c_void;

extern "C" fn entry(arg: *mut c_void) -> i32 {
    arg as usize as i32
}

fn start(code: usize, f: unsafe fn(&mut ns_a::clone_args, extern "C" fn(*mut c_void) -> i32, *mut c_void) -> std::io::Result<i32>) -> i32 {
    let stack = vec![0u8; 64 << 10].leak();
    let mut args = ns_a::clone_args {
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.as_mut_ptr() as u64,
        stack_size: stack.len() as u64,
        ..Default::default()
    };
    // SAFETY: the task runs `entry` on its own leaked stack and exits with its argument.
    let pid = unsafe { f(&mut args, entry, code as *mut c_void) }.expect("clone3");
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    libc::WEXITSTATUS(status)
}

fn main() {
    let a = start(11, |args, e, arg| unsafe { ns_a::clone3_on_stack(args, e, arg) });
    let b = start(22, |args, e, arg| unsafe {
        // The same layout in the other copy.
        let args = &mut *(args as *mut ns_a::clone_args as *mut ns_b::clone_args);
        ns_b::clone3_on_stack(args, e, arg)
    });
    assert_eq!((a, b), (11, 22));
    assert_eq!(inlined::direct(33), 33);
    println!("two copies of ns-sys linked; tasks exited {a}, {b} and 33");
}

/// In a module of its own, which an optimised build may compile in a codegen unit of its own.
mod inlined {
    use std::ffi::c_void;

    use super::entry;

    /// A plain call, which an optimised build may inline.
    pub fn direct(code: usize) -> i32 {
        let stack = vec![0u8; 64 << 10].leak();
        let mut args = ns_b::clone_args {
            exit_signal: libc::SIGCHLD as u64,
            stack: stack.as_mut_ptr() as u64,
            stack_size: stack.len() as u64,
            ..Default::default()
        };
        // SAFETY: as in `start`.
        let pid = unsafe { ns_b::clone3_on_stack(&mut args, entry, code as *mut c_void) }
            .expect("clone3");
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        libc::WEXITSTATUS(status)
    }
}
"#;

pub fn two_copies() -> Result<(), String> {
    let root = workspace_root();
    let dir = root.join("target/two-copies");
    let copy = dir.join("ns-sys-copy");
    let _ = std::fs::remove_dir_all(&copy);
    copy_dir(&root.join("ns-sys"), &copy).map_err(|e| format!("copying ns-sys: {e}"))?;
    // The copy: the same code under another major version, with its manifest made standalone.
    let manifest = std::fs::read_to_string(copy.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let manifest: String = manifest
        .lines()
        .filter(|l| !l.contains(".workspace = true") && !l.starts_with("readme"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace(
            "[package]\n",
            "[package]\nversion = \"99.0.0\"\nedition = \"2021\"\n",
        )
        .replace("[dependencies]\n", "[dependencies]\nlibc = \"0.2.170\"\n");
    std::fs::write(copy.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    let app = dir.join("app");
    std::fs::create_dir_all(app.join("src")).map_err(|e| e.to_string())?;
    std::fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"two-copies\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[workspace]\n\n[dependencies]\nlibc = \"0.2.170\"\n\
             ns_a = {{ package = \"ns-sys\", path = {:?} }}\n\
             ns_b = {{ package = \"ns-sys\", path = {:?} }}\n",
            root.join("ns-sys"),
            copy
        ),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(app.join("src/main.rs"), MAIN).map_err(|e| e.to_string())?;
    // Unoptimised, and optimised (where cross-crate inlining and ThinLTO rename symbols).
    for profile in [&[][..], &["--release"][..]] {
        run(
            "two copies of ns-sys in one program",
            cargo()
                .args(["run", "--quiet"])
                .args(profile)
                .arg("--manifest-path")
                .arg(app.join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", dir.join("target")),
        )?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&entry.path(), &target)?;
            }
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
