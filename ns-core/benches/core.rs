//! Costs of ns-core's operations: `cargo xtask bench` (as root).

use std::time::{Duration, Instant};

use ns_core::{getns, Namespace, NsType, Target};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn bench(name: &str, iterations: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..iterations / 10 {
        f();
    }
    let samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    let m = median(samples);
    println!("{name:<52} {:>10.2} µs", m.as_secs_f64() * 1e6);
    m
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("core bench: run as root (cargo xtask bench)");
        std::process::exit(1);
    }
    println!("ns-core, median of many runs");
    let me = std::process::id() as libc::pid_t;
    // A process in its own net namespace to move into and out of.
    let mut child = std::process::Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid = child.id() as libc::pid_t;
    let target_net = Namespace::of_pid(pid, NsType::NET).unwrap();
    let home = Namespace::current(NsType::NET).unwrap();

    bench("Namespace::open(/proc/self/ns/net)", 20_000, || {
        Namespace::open("/proc/self/ns/net", NsType::NET).unwrap();
    });
    bench("getns(pid, net)", 20_000, || {
        getns(me, NsType::NET).unwrap();
    });
    bench("Namespace::enter (net) and back", 20_000, || {
        target_net.enter().unwrap();
        home.enter().unwrap();
    });
    bench("raw setns(fd, CLONE_NEWNET) and back", 20_000, || {
        ns_sys::setns(std::os::fd::AsFd::as_fd(&target_net), libc::CLONE_NEWNET).unwrap();
        ns_sys::setns(std::os::fd::AsFd::as_fd(&home), libc::CLONE_NEWNET).unwrap();
    });
    bench("Target::pin(pid, net|uts|ipc)", 10_000, || {
        Target::pin(pid, NsType::NET | NsType::UTS | NsType::IPC).unwrap();
    });
    let target = Target::pin(pid, NsType::NET).unwrap();
    bench("Target::enter(net) via pidfd, and back", 20_000, || {
        target.enter(NsType::NET).unwrap();
        home.enter().unwrap();
    });
    child.kill().unwrap();
    child.wait().unwrap();
}
