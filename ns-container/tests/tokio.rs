//! `Child::wait_async` under a tokio runtime (feature `tokio`; run for real by
//! `cargo xtask test-root`).

#[path = "../../ns-core/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use ns_container::NsCommand;
use ns_core::NsType;
use support::*;

/// Runs `f` on a single-threaded runtime in a thread of its own, failing if it does not
/// finish in time (a wait that blocked the runtime's only thread would never let it).
fn on_runtime<F, T>(f: F) -> T
where
    F: FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap();
        let _ = tx.send(rt.block_on(f()));
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the runtime's thread was blocked")
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn wait_async_leaves_the_runtime_free_while_the_child_runs() {
    require_root();
    let code = on_runtime(|| {
        Box::pin(async {
            // The child exits once a line arrives on its fd 3, which another task of the
            // same single-threaded runtime writes only after the wait has started.
            let (r, w) = pipe();
            let mut child = NsCommand::new("sh")
                .args(["-c", "read x <&3; exit 3"])
                .unshare(NsType::UTS | NsType::NET)
                .fd(3, r)
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let writer = async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::fs::File::from(w).write_all(b"go\n").unwrap();
            };
            // Both on this one thread: the writer runs only if the wait yields.
            let writer = tokio::spawn(writer);
            let status = child.wait_async().await.unwrap();
            writer.await.unwrap();
            status.code()
        })
    });
    assert_eq!(code, Some(3));
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn a_dropped_wait_async_leaves_the_child_to_be_waited_for_again() {
    require_root();
    let signal = on_runtime(|| {
        Box::pin(async {
            let mut child = NsCommand::new("sleep")
                .arg("30")
                .unshare(NsType::UTS)
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let first = tokio::time::timeout(Duration::from_millis(20), child.wait_async()).await;
            assert!(first.is_err(), "sleep 30 exited: {first:?}");
            child.kill().unwrap();
            let status = child.wait_async().await.unwrap();
            // Waited once more: the same status, from the handle.
            assert_eq!(child.wait_async().await.unwrap(), status);
            status.signal()
        })
    });
    assert_eq!(signal, Some(libc::SIGKILL));
}

#[test]
#[ignore = "needs root: cargo xtask test-root"]
fn wait_async_for_a_killed_containers_init_never_waits_on_the_caller() {
    require_root();
    let (init_signal, exec_signal) = on_runtime(|| {
        Box::pin(async {
            let mut init = NsCommand::new("sleep")
                .arg("60")
                .unshare(NsType::PID)
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let target = ns_core::Target::pin(init.pid(), NsType::PID).unwrap();
            // An exec into the container: the caller's child, which only the caller reaps.
            let mut exec = NsCommand::new("sleep")
                .arg("60")
                .enter(&target, NsType::PID)
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            init.kill().unwrap();
            let init_status = init.wait_async().await.unwrap();
            let exec_status = exec.wait_async().await.unwrap();
            (init_status.signal(), exec_status.signal())
        })
    });
    assert_eq!(init_signal, Some(libc::SIGKILL));
    assert_eq!(exec_signal, Some(libc::SIGKILL));
}
