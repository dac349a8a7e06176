//! The runner's threads: the supervisor that starts workers and replaces retired ones, the
//! worker loop (prepare, run the closure, settle, or retire), and the messages between them.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ns_core::Namespace;

use super::keys::{Label, STARTING};
use super::state::{Stats, ThreadState};
use crate::error::{io_error, Error, Result};

/// Messages to the supervisor, a thread that never runs closures or changes namespace and
/// starts every worker thread, so that each worker begins in the runner's original
/// namespaces with the original credentials (a thread inherits both from its creator).
pub(super) enum Control {
    /// A worker retired: start a replacement.
    Retired,
    /// The runner is being dropped.
    Shutdown,
}

pub(super) enum Message {
    Job(Job),
    Stop,
}

pub(super) struct Job {
    pub(super) ns: Namespace,
    pub(super) label: Label,
    /// Runs the closure (or reports why it cannot run) and completes the pending result.
    pub(super) task: Box<dyn FnOnce(Option<Error>) + Send>,
}

pub(super) fn supervise(
    jobs: Arc<Mutex<Receiver<Message>>>,
    control: Receiver<Control>,
    control_tx: Sender<Control>,
    stats: Arc<Stats>,
    started: Sender<Result<()>>,
    threads: usize,
) {
    // SAFETY: gettid has no preconditions.
    let supervisor = unsafe { libc::gettid() };
    let start = |workers: &mut Vec<JoinHandle<()>>| -> Result<()> {
        let (jobs, control_tx, stats) = (jobs.clone(), control_tx.clone(), stats.clone());
        let handle = std::thread::Builder::new()
            .name("ns-runner".to_owned())
            .spawn(move || worker(jobs, control_tx, stats, supervisor))
            .map_err(io_error(STARTING, "spawning its thread"))?;
        workers.push(handle);
        Ok(())
    };
    let mut workers = Vec::new();
    let first = (0..threads).try_for_each(|_| start(&mut workers));
    let failed = first.is_err();
    let _ = started.send(first);
    if failed {
        // Stop the workers that did start.
        drop(jobs);
        for w in workers {
            let _ = w.join();
        }
        return;
    }
    while let Ok(Control::Retired) = control.recv() {
        stats.retired.fetch_add(1, Ordering::Relaxed);
        if start(&mut workers).is_err() {
            break;
        }
    }
    for w in workers {
        let _ = w.join();
    }
}

/// `peer`: a thread that shares the process's descriptor table (the supervisor).
pub(super) fn worker(
    jobs: Arc<Mutex<Receiver<Message>>>,
    control: Sender<Control>,
    stats: Arc<Stats>,
    peer: libc::pid_t,
) {
    let mut state = ThreadState::new(stats, peer);
    loop {
        let message = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let job = match message {
            Ok(Message::Job(job)) => job,
            Ok(Message::Stop) | Err(_) => return,
        };
        let setup = match &mut state {
            Ok(state) => state.prepare(&job.ns).err(),
            Err(e) => Some(Error::Invalid {
                what: format!("running a closure in {}", job.label),
                reason: format!("the runner thread could not record its own namespaces: {e}"),
            }),
        };
        (job.task)(setup);
        let healthy = match &mut state {
            Ok(state) => state.settle(),
            Err(_) => true,
        };
        if !healthy {
            // Retire: this thread's namespaces are unknown. It exits, and the supervisor
            // starts a fresh thread that takes over the queue.
            let _ = control.send(Control::Retired);
            return;
        }
    }
}
