//! The errors a spawn maps: a failure written to the report page or a status record
//! (task, step, detail, errno) becomes a typed [`Error`] naming the spawn and the cause.

use std::io;
use std::sync::atomic::Ordering;

use ns_core::NsType;

use super::spec::Spec;
use crate::child::{self, Report};
use crate::error::{io_error, Error, Process, Step};

pub(super) fn io_err(what: &str, op: &'static str) -> impl FnOnce(io::Error) -> Error {
    io_error(format!("spawning {what}"), op)
}

pub(super) fn report_error(spec: &Spec<'_>, report: &Report) -> Error {
    failure_error(
        spec,
        report.task.load(Ordering::Relaxed),
        report.step.load(Ordering::Relaxed),
        report.detail.load(Ordering::Relaxed),
        report.errno.load(Ordering::Relaxed),
    )
}

/// The error for a failure record of the status pipe: (kind, task, step, detail, errno).
/// Only the child and the trampoline write there, and both write the same record.
pub(super) fn record_error(spec: &Spec<'_>, rec: &child::Record) -> Error {
    let [_, _, step, detail, errno] = *rec;
    failure_error(
        spec,
        child::Task::Child as u32,
        step,
        detail as i32,
        errno as i32,
    )
}

pub(super) fn failure_error(
    spec: &Spec<'_>,
    task: u32,
    step: u32,
    detail: i32,
    errno: i32,
) -> Error {
    let process = match task {
        1 => Process::Intermediate,
        2 => Process::PidStage,
        3 => Process::Child,
        _ => Process::Caller,
    };
    let step = Step::from_u32(step).unwrap_or(Step::CreateChild);
    match step {
        Step::EnterNamespaces => Error::Enter {
            what: spec.what.clone(),
            process,
            cause: ns_core::Error::entering(
                errno,
                NsType::from_bits_truncate(detail),
                spec.subject.clone(),
            ),
        },
        Step::Exec if detail != child::EXEC_TRAMPOLINE => Error::Exec {
            program: spec.what.clone(),
            errno,
        },
        step => Error::Step {
            what: spec.what.clone(),
            process,
            step,
            detail,
            errno,
        },
    }
}
