//! The caller's side of a spawn: decide which processes are needed, prepare everything the
//! children will use, start the chain, collect the outcome and clean up on every error path.
//!
//! The chain, for a spawn that enters namespaces E of a target and creates new ones N:
//!
//! ```text
//! caller ──clone3(VFORK|FILES)──▶ intermediate: setns(E)
//!                                   └─clone3(PARENT|VFORK|FILES)──▶ pid stage   (only if pid ∈ E and pid ∈ N)
//!                                        └─clone3(PARENT|N)──▶ child: setup, then execve / closure
//! ```
//!
//! When the target's user namespace is left to the trampoline (`Spec::image_entry`), E
//! lacks it and the child's `execve` is an `execveat` of the trampoline, which enters it and
//! then executes the program (see `crate::trampoline`).
//!
//! One file per stage, in the order [`spawn`] runs them:
//!
//! | stage | file | what it does |
//! |---|---|---|
//! | spec | `spec.rs` | the prepared description of the spawn; refuses what cannot work |
//! | shape | `shape.rs` | which processes exist and which get their own memory |
//! | descriptors | `descriptors.rs` | checks the child's numbers, opens the spawn's own above them |
//! | (for them) | `board.rs` | the page slot the kernel writes the program's pid into |
//! | arena | `arena.rs` | stacks and the report page, kept per thread; pointer arrays |
//! | plan | `plan.rs` | the one structure every task runs against |
//! | start | `start.rs` | the caller creates the intermediate (or the child itself) |
//! | collect | `collect.rs` | reaps the helpers, waits for the child's setup, kills it on failure |
//! | (or) | `forked.rs` | the same when the trampoline created the program's process (`Shape::image_forks`) |
//! | errors | `errors.rs` | a report or record becomes a typed error |
//! | (around start and collect) | `hide.rs` | the caller's memory non-dumpable while a task sharing it is in a container's pid namespace |
//!
//! Invariants:
//! - Every process is created with `CLONE_PARENT` (or by the caller itself), so all of them
//!   are the caller's children: the caller reaps the intermediate and pid stage through
//!   their pidfds, and the child is waitable like any other.
//! - Each creator is suspended until the process it created has exited or exec'd
//!   (`CLONE_VFORK`, or, when it must write the child's id maps first, the child's
//!   `CLONE_CHILD_CLEARTID` word), so when the caller's `clone3` returns, everything but the
//!   child is done and no task still runs on the caller's memory.
//! - With nothing to enter and no id maps to write, the caller creates the child itself: one
//!   `clone3(CLONE_VM|CLONE_VFORK)`, like `posix_spawn`. Where `clone3` is refused (kernels
//!   before 5.3, seccomp profiles that answer `ENOSYS`), every task is created with the
//!   legacy `clone` instead, decided once by asking the kernel.
//! - Everything a task reads is prepared here before the first task starts; nothing in this
//!   folder runs after `clone` (that is `crate::child`).
//! - On any error every process the spawn created is reaped and every descriptor it opened
//!   closed; where a task's existence cannot be proved (`doubt`), nothing it could read is
//!   freed.

mod arena;
pub(crate) mod board;
mod collect;
mod descriptors;
mod errors;
mod forked;
mod hide;
mod plan;
mod shape;
mod spec;
mod start;

use libc::c_void;

use crate::child::{self, Plan, Task};
use crate::error::{Error, Result};
use crate::sys::SignalsBlocked;
use arena::Arena;
use descriptors::{check_moves, Descriptors};
use errors::io_err;
use plan::{plan, Strings};
pub(crate) use shape::Shape;
use spec::check_spec;
pub(crate) use spec::{PrivilegeSpec, Spawned, Spec, SpecAction};

/// Runs one spawn. `doubt` is set when a task of the spawn may exist that cannot be found
/// (see `take_task`): it may still read anything the spec points to, so the caller must
/// never free that.
pub(crate) fn spawn(spec: &Spec<'_>, doubt: &mut bool) -> Result<Spawned> {
    let what = spec.what.as_str();
    check_spec(spec)?;
    let floor = check_moves(spec, |reason| Error::Invalid {
        what: format!("spawning {what}"),
        reason,
    })?;
    let shape = Shape::of(spec);
    let fds = Descriptors::open(spec, &shape, floor)?;
    let child_stack = if matches!(spec.action, SpecAction::Call { .. }) {
        8 << 20
    } else {
        256 << 10
    };
    let arena =
        Arena::take(child_stack).map_err(io_err(what, "mapping the stacks and the report page"))?;
    let (report, stacks) = (&arena.report, &arena.stacks);
    // Pointer arrays into the spec's strings, alive until this function returns.
    let strings = Strings::new(spec, &shape, &fds);

    // While a task sharing the caller's memory lives in a container's pid namespace.
    let hidden = shape.hide_memory.then(hide::Hidden::open);
    let blocked = SignalsBlocked::new();
    let plan = Box::new(plan(
        spec, &shape, report, &fds, stacks, floor, &blocked, &strings,
    ));
    let plan_ptr = &*plan as *const Plan<'_> as *mut c_void;

    // Start the chain. When this returns, every process but the child has exited, and the
    // child no longer runs on the caller's memory.
    let started = if shape.intermediate {
        start::start_intermediate(spec, &shape, &plan, report, stacks, plan_ptr)
    } else {
        // The caller creates the child itself; failures land in the report page.
        let _ = child::create_child(&plan, Task::Caller);
        Ok(None)
    };
    let Descriptors {
        status_r,
        status_w,
        fork_page,
        fork_slot,
        cgroup_tasks_raw,
        ..
    } = fds;
    // The caller's copy of the write end: the child has its own.
    drop(status_w);

    let outcome;
    (outcome, *doubt) = match started {
        Ok(intermediate) => collect::collect(
            spec,
            &shape,
            report,
            intermediate,
            status_r.as_ref(),
            fork_page
                .as_ref()
                .map(|fd| (fd, fork_slot.as_ref().map_or(0, board::Slot::offset))),
        ),
        Err(e) => (Err(e), false),
    };
    drop(blocked);
    if !*doubt {
        // Every task of the spawn is gone or off the caller's memory.
        drop(hidden);
    } else {
        // A task may still run on it unseen: the window stays open for good.
        std::mem::forget(hidden);
    }
    if *doubt {
        // A task of the spawn may exist that cannot be found (see `take_task`): it may still
        // run on the plan, its stack and the report page, so they are never freed.
        std::mem::forget(plan);
        std::mem::forget(arena);
        std::mem::forget(strings);
        // (The plan points into it.)
        std::mem::forget(cgroup_tasks_raw);
        // A trampoline of the spawn may still write its slot.
        std::mem::forget(fork_slot);
    } else {
        drop(plan);
        arena.give_back();
    }
    outcome
}
