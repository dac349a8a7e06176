//! The guide's recipes, run for real by `cargo xtask test-root` (the rootless container is
//! the `nested` example; the named network namespace with a veth pair is in ns-core's
//! `named` tests; waiting under tokio is the `tokio` test).

#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use ns_container::{NamespaceRunner, NsCommand, Stdio};
use ns_core::{Namespace, NsType, Target};
use support::*;

/// Joining every namespace of a Kubernetes-style pod by its pause process: the pod's
/// sandbox holds network, IPC and UTS namespaces (and with a shared process namespace, its
/// PID namespace); a new container of the pod is a process started in all of them.
#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn recipe_join_a_pod_by_its_pause_process() {
    require_root();
    let pod = NsType::NET | NsType::IPC | NsType::UTS | NsType::PID;
    // The pause process: new namespaces, a hostname, and nothing to do.
    let mut pause = NsCommand::new("sleep")
        .arg("60")
        .unshare(pod)
        .hostname("pod-a")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Pin it by pidfd, so that a PID reused by another process can never be entered.
    let target = Target::pin(pause.pid(), pod).unwrap();
    let out = NsCommand::new("sh")
        .args(["-c", "hostname; readlink /proc/self/ns/net; echo $$"])
        .enter(&target, pod)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "pod-a");
    let pod_net = target.namespace(NsType::NET).unwrap().id().unwrap();
    assert_eq!(lines[1], format!("net:[{}]", pod_net.ino()));
    // In the pod's PID namespace, where the pause process is 1.
    let pid: i32 = lines[2].parse().unwrap();
    assert!(pid > 1, "{text}");
    pause.kill().unwrap();
    pause.wait().unwrap();
}

/// Using the crate from async code: a `NamespaceRunner` call returns a `Pending`, which is
/// a future; a `Child` is waited for through its pidfd (`Child::wait_async`, feature
/// `tokio`, in the `tokio` test).
#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn recipe_a_runner_from_async_code() {
    require_root();
    let netns = Namespace::create(NsType::NET).unwrap();
    let expected = netns.id().unwrap();
    let runner = NamespaceRunner::new().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let seen = rt.block_on(async {
        let a = runner
            .run(&netns, || {
                Namespace::current(NsType::NET).and_then(|n| n.id())
            })
            .unwrap();
        let b = runner.run(&netns, std::process::id).unwrap();
        (a.await, b.await)
    });
    assert_eq!(seen.0.unwrap().unwrap(), expected);
    assert_eq!(seen.1.unwrap(), std::process::id());
}
