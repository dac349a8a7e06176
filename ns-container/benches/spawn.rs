//! Spawn costs against std's `Command::spawn` and util-linux `nsenter`, with a small parent
//! and with a parent holding 2 GiB of touched memory: `cargo xtask bench` (as root).

use std::process::Command;
use std::time::{Duration, Instant};

use ns_container::{NamespaceRunner, NsCommand};
use ns_core::{Namespace, NsType, Target};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn bench(name: &str, iterations: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..(iterations / 10).max(1) {
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
    println!("{name:<60} {:>10.1} µs", m.as_secs_f64() * 1e6);
    m
}

fn run_std() {
    assert!(Command::new("/bin/true").status().unwrap().success());
}

fn ns(program: &str) -> NsCommand {
    NsCommand::new(Command::new(program))
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("spawn bench: run as root (cargo xtask bench)");
        std::process::exit(1);
    }
    let mut target = ns("sleep")
        .arg("600")
        .unshare(NsType::NET | NsType::UTS | NsType::IPC | NsType::PID | NsType::MNT | NsType::USER)
        .uid_map(0, 0, 65536)
        .gid_map(0, 0, 65536)
        .spawn()
        .unwrap();
    let pid = target.pid();
    let pinned = Target::pin(pid, NsType::all()).unwrap();
    let n = 300;

    println!("spawn + wait of /bin/true, median of {n} (small parent)");
    let std_small = bench("std Command::spawn", n, run_std);
    let ours_small = bench("NsCommand, nothing to enter", n, || {
        assert!(ns("/bin/true").status().unwrap().success());
    });
    bench("NsCommand, new uts+net namespaces", n, || {
        assert!(ns("/bin/true")
            .unshare(NsType::UTS | NsType::NET)
            .status()
            .unwrap()
            .success());
    });
    let enter_net = bench("NsCommand, enter target's net", n, || {
        assert!(ns("/bin/true")
            .enter(&pinned, NsType::NET)
            .status()
            .unwrap()
            .success());
    });
    bench("NsCommand, enter target's net+uts+ipc+pid+mnt", n, || {
        let t = NsType::NET | NsType::UTS | NsType::IPC | NsType::PID | NsType::MNT;
        assert!(ns("/bin/true")
            .enter(&pinned, t)
            .status()
            .unwrap()
            .success());
    });
    bench(
        "NsCommand, enter target's user+net (memory copied)",
        n,
        || {
            assert!(ns("/bin/true")
                .enter(&pinned, NsType::USER | NsType::NET)
                .status()
                .unwrap()
                .success());
        },
    );
    let nsenter = bench("util-linux nsenter -t PID -n /bin/true", n, || {
        let s = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "/bin/true"])
            .status()
            .unwrap();
        assert!(s.success());
    });
    // SAFETY: the closure returns at once.
    bench("ns_container::clone(target, net, || 0)", n, || {
        let mut c =
            unsafe { ns_container::clone_in(Some(&pinned), NsType::NET, || 0, NsType::empty()) }
                .unwrap();
        assert!(c.wait().unwrap().success());
    });

    println!(
        "ratios: NsCommand/std {:.2}, entering net/std {:.2}, nsenter/entering net {:.2}",
        ours_small.as_secs_f64() / std_small.as_secs_f64(),
        enter_net.as_secs_f64() / std_small.as_secs_f64(),
        nsenter.as_secs_f64() / enter_net.as_secs_f64()
    );

    // A parent with 2 GiB of touched memory: fork-class paths copy its page tables.
    let mut big = vec![0u8; 2 << 30];
    for page in big.chunks_mut(4096) {
        page[0] = 1;
    }
    let m = 40;
    println!("spawn + wait of /bin/true, median of {m} (parent with 2 GiB resident)");
    let std_big = bench("std Command::spawn", m, run_std);
    let ours_big = bench("NsCommand, nothing to enter", m, || {
        assert!(ns("/bin/true").status().unwrap().success());
    });
    let net_big = bench("NsCommand, enter target's net", m, || {
        assert!(ns("/bin/true")
            .enter(&pinned, NsType::NET)
            .status()
            .unwrap()
            .success());
    });
    bench(
        "NsCommand, enter target's user+net (memory copied)",
        m,
        || {
            assert!(ns("/bin/true")
                .enter(&pinned, NsType::USER | NsType::NET)
                .status()
                .unwrap()
                .success());
        },
    );
    bench("fork + _exit + waitpid (for reference)", m, || {
        // SAFETY: the child exits at once.
        let child = unsafe { libc::fork() };
        if child == 0 {
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(child, &mut status, 0) };
    });
    println!(
        "growth with 2 GiB: std {:.2}x, NsCommand {:.2}x, entering net {:.2}x",
        std_big.as_secs_f64() / std_small.as_secs_f64(),
        ours_big.as_secs_f64() / ours_small.as_secs_f64(),
        net_big.as_secs_f64() / enter_net.as_secs_f64()
    );
    std::hint::black_box(&big);
    drop(big);

    println!("NamespaceRunner, median of 20000");
    let runner = NamespaceRunner::new().unwrap();
    let net = Namespace::of_pid(pid, NsType::NET).unwrap();
    let uts = Namespace::of_pid(pid, NsType::UTS).unwrap();
    bench(
        "run in the same net namespace again (no setns)",
        20_000,
        || {
            runner.run(&net, || 0).unwrap().wait().unwrap();
        },
    );
    let mut flip = false;
    bench("run alternating net and uts namespaces", 20_000, || {
        flip = !flip;
        runner
            .run(if flip { &net } else { &uts }, || 0)
            .unwrap()
            .wait()
            .unwrap();
    });
    target.kill().unwrap();
    target.wait().unwrap();
}
