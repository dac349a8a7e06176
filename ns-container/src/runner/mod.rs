//! [`NamespaceRunner`]: run closures on a dedicated thread inside a namespace.
//!
//! This file is the public face (the runner, submitting closures, shutting down);
//! `pending.rs` the handle to a result; `worker.rs` the supervisor and worker threads;
//! `state.rs` what a worker thread keeps and checks between closures, with
//! `credentials.rs`; `keys.rs` how namespaces are recognised. Arrows run down that list.

mod credentials;
mod keys;
mod pending;
mod state;
mod worker;

use std::any::Any;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use ns_core::{Namespace, NsType};

use crate::error::{io_error, Error, Result};
use keys::{Label, STARTING};
pub use pending::Pending;
use pending::{Completer, Shared};
use state::Stats;
use worker::{supervise, Control, Job, Message};

/// Runs closures on a dedicated thread (or a pool of them, [`NamespaceRunner::with_threads`]),
/// each inside a namespace you name: Mesos's `NamespaceRunner`, without its limits.
///
/// - Works for net, uts, ipc, cgroup and pid (the thread's future children) namespaces, and
///   for mount namespaces: the thread stops sharing its filesystem state with the rest of the
///   process when it starts (`unshare(CLONE_FS)`), as the kernel requires.
/// - Refuses user and time namespaces with [`ns_core::Error::ThreadRule`]: the kernel never
///   lets one thread of a multithreaded process enter them.
/// - Only this thread ever changes namespace; every other thread of the process stays where
///   it is.
/// - Before each closure the thread is in its original namespaces except the one named; a
///   closure for the namespace the thread is already in skips the `setns`.
/// - After each closure the thread's root and working directory are restored if they changed
///   (a closure's `chdir`/`chroot` is undone; moving back into the original mount namespace,
///   which resets both, restores them too), its namespaces are checked, then its credentials
///   and confinement (user and group ids, supplementary groups, all five capability sets,
///   securebits, `no_new_privs`, seccomp filters) and that it still shares the process's
///   descriptor table; its signal mask, alternate signal stack and umask are put back.
///   Not checked: LSM labels and Landlock domains, scheduling policy, CPU affinity,
///   personality; a closure that changes those must undo them itself. If the thread
///   cannot be brought back (it cannot leave a namespace, or a closure changed its
///   credentials, which cannot be undone once privilege is dropped), it is retired (it exits,
///   taking its state with it) and a fresh thread serves the next closures: a thread in an
///   unknown state is never reused.
/// - A panic in a closure becomes [`Error::Panicked`]; the runner keeps working.
/// - Dropping the runner lets queued closures finish, then joins its thread.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ns_container::NamespaceRunner;
/// use ns_core::{Namespace, NsType};
///
/// let runner = NamespaceRunner::new()?;
/// let net = Namespace::open("/run/netns/blue", NsType::NET)?;
/// let links = runner.run(&net, || std::fs::read_to_string("/proc/thread-self/net/dev"))?.wait()??;
/// # Ok(()) }
/// ```
pub struct NamespaceRunner {
    tx: Mutex<Sender<Message>>,
    control: Mutex<Sender<Control>>,
    supervisor: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
    /// Worker threads serving the queue (retired ones are replaced).
    threads: usize,
}

impl NamespaceRunner {
    /// Starts the runner with one worker thread, as Mesos's `NamespaceRunner` has: closures
    /// run one at a time, in the order they were given.
    ///
    /// # Errors
    /// [`Error::Io`] when the thread cannot be spawned.
    pub fn new() -> Result<NamespaceRunner> {
        NamespaceRunner::with_threads(1)
    }

    /// Starts the runner with `threads` worker threads (at least one) that take closures from
    /// one queue, so that a slow closure does not hold up the others. Every guarantee holds
    /// per thread: each closure starts in exactly the namespace asked for (and the thread's
    /// original ones for the other types), and a thread that cannot be brought back is
    /// retired and replaced. Closures may then run concurrently and out of order.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use ns_container::NamespaceRunner;
    /// use ns_core::{Namespace, NsType};
    ///
    /// let pool = NamespaceRunner::with_threads(4)?;
    /// let net = Namespace::open("/run/netns/blue", NsType::NET)?;
    /// let pending: Vec<_> = (0..8)
    ///     .map(|_| pool.run(&net, || std::fs::read_to_string("/proc/thread-self/net/dev")))
    ///     .collect::<Result<_, _>>()?;
    /// for p in pending {
    ///     p.wait()??;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] when a thread cannot be spawned.
    pub fn with_threads(threads: usize) -> Result<NamespaceRunner> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel();
        let (control_tx, control_rx) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let jobs = Arc::new(Mutex::new(rx));
        let (started_tx, started_rx) = mpsc::channel();
        let supervisor = {
            let stats = stats.clone();
            let control_tx = control_tx.clone();
            std::thread::Builder::new()
                .name("ns-runner-supervisor".to_owned())
                .spawn(move || supervise(jobs, control_rx, control_tx, stats, started_tx, threads))
                .map_err(io_error(STARTING, "spawning its supervisor thread"))?
        };
        // The first worker must exist before `new` returns.
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::Invalid {
                    what: "starting a namespace runner".to_owned(),
                    reason: "its supervisor thread ended".to_owned(),
                })
            }
        }
        Ok(NamespaceRunner {
            tx: Mutex::new(tx),
            control: Mutex::new(control_tx),
            supervisor: Some(supervisor),
            stats,
            threads,
        })
    }

    /// How many `setns` calls the runner has made so far (entering a namespace, or moving
    /// back to an original one). Consecutive closures for the same namespace add none.
    pub fn switches(&self) -> u64 {
        self.stats.switches.load(Ordering::Relaxed)
    }

    /// How many threads the runner has retired because a closure left them in namespaces
    /// they could not leave.
    pub fn retired(&self) -> u64 {
        self.stats.retired.load(Ordering::Relaxed)
    }

    /// Runs `f` on the runner's thread inside `ns` (the handle is duplicated). Returns at once;
    /// the result arrives through the [`Pending`], which is both a `Future` and has a blocking
    /// [`Pending::wait`].
    ///
    /// # Errors
    /// [`Error::Core`] when the handle cannot be duplicated. Errors of entering the namespace,
    /// and panics, arrive through the `Pending`.
    pub fn run<T, F>(&self, ns: &Namespace, f: F) -> Result<Pending<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ns = ns.try_clone()?;
        Ok(self.submit(ns, f))
    }

    /// Runs `f` inside the namespace file at `path`, which must be of type `ns_type`.
    ///
    /// # Errors
    /// Those of [`Namespace::open`].
    pub fn run_path<T, F>(
        &self,
        path: impl AsRef<Path>,
        ns_type: NsType,
        f: F,
    ) -> Result<Pending<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ns = Namespace::open(path, ns_type)?;
        Ok(self.submit(ns, f))
    }

    fn submit<T, F>(&self, ns: Namespace, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let shared = Arc::new(Shared::<T> {
            state: Mutex::new((None, None)),
            ready: Condvar::new(),
            done: std::sync::atomic::AtomicBool::new(false),
        });
        let label = Label::of(&ns);
        let completer = Completer {
            shared: Some(shared.clone()),
            label,
        };
        let task = Box::new(move |setup: Option<Error>| {
            let mut completer = completer;
            match setup {
                Some(e) => completer.complete(Err(e)),
                None => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                    Ok(v) => completer.complete(Ok(v)),
                    Err(p) => completer.complete(Err(Error::Panicked {
                        ns: label.to_string(),
                        message: panic_message(&p),
                    })),
                },
            }
        });
        let job = Job { ns, label, task };
        let sent = self.tx.lock().map(|tx| tx.send(Message::Job(job)));
        // If the thread is gone the job was dropped, and its completer reported RunnerGone.
        let _ = sent;
        Pending { shared }
    }
}

impl Drop for NamespaceRunner {
    fn drop(&mut self) {
        // Queued closures run first; then each worker sees a Stop and the supervisor joins
        // them.
        if let Ok(tx) = self.tx.lock() {
            for _ in 0..self.threads {
                let _ = tx.send(Message::Stop);
            }
        }
        if let Ok(control) = self.control.lock() {
            let _ = control.send(Control::Shutdown);
        }
        if let Some(s) = self.supervisor.take() {
            let _ = s.join();
        }
    }
}

fn panic_message(p: &Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

impl std::fmt::Debug for NamespaceRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceRunner").finish_non_exhaustive()
    }
}
