//! [`Pending`]: the caller's handle to a closure's result, waited on or awaited, and the
//! completer the runner thread fills it through (a closure dropped unrun still completes it).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use super::keys::Label;
use crate::error::{Error, Result};

pub(super) struct Shared<T> {
    pub(super) state: Mutex<(Option<Result<T>>, Option<Waker>)>,
    pub(super) ready: Condvar,
    /// Set once the result is stored, so that a waiter can spin briefly before it sleeps.
    pub(super) done: std::sync::atomic::AtomicBool,
}

/// Completes a [`Pending`] exactly once; if dropped first (the job never ran), completes it
/// with [`Error::RunnerGone`](crate::Error::RunnerGone).
pub(super) struct Completer<T> {
    pub(super) shared: Option<Arc<Shared<T>>>,
    pub(super) label: Label,
}

impl<T> Completer<T> {
    pub(super) fn complete(&mut self, result: Result<T>) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let waker = match shared.state.lock() {
            Ok(mut state) => {
                state.0 = Some(result);
                state.1.take()
            }
            Err(_) => None,
        };
        shared.done.store(true, Ordering::Release);
        shared.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if self.shared.is_some() {
            let ns = self.label.to_string();
            self.complete(Err(Error::RunnerGone { ns }));
        }
    }
}

/// The result of a closure handed to a [`NamespaceRunner`](crate::NamespaceRunner): a `Future` usable from any async
/// runtime (no runtime is needed), or a value to [`wait`](Pending::wait) for.
pub struct Pending<T> {
    pub(super) shared: Arc<Shared<T>>,
}

impl<T> Pending<T> {
    /// Blocks until the closure has run (or could not run) and returns its result.
    ///
    /// # Errors
    /// Entering the namespace failed ([`Error::Core`](crate::Error::Core)), the closure panicked
    /// ([`Error::Panicked`](crate::Error::Panicked)) or the runner went away first ([`Error::RunnerGone`](crate::Error::RunnerGone)).
    pub fn wait(self) -> Result<T> {
        // Most closures are short: watch for the result for a few microseconds before
        // sleeping on the condition variable (as std's channels do before they park).
        let start = std::time::Instant::now();
        while !self.shared.done.load(Ordering::Acquire)
            && start.elapsed() < std::time::Duration::from_micros(50)
        {
            std::hint::spin_loop();
        }
        let mut state = match self.shared.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        loop {
            if let Some(result) = state.0.take() {
                return result;
            }
            state = match self.shared.ready.wait(state) {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
        }
    }

    /// Whether the result is there, so that [`Pending::wait`] would not block.
    pub fn is_ready(&self) -> bool {
        self.shared
            .state
            .lock()
            .map(|s| s.0.is_some())
            .unwrap_or(true)
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut state = match self.shared.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match state.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("ready", &self.is_ready())
            .finish()
    }
}
