//! Where the client connection loop and the proxy meet: the scope the loop opens around
//! each HTTP/1 request it serves. This is the only interface between the two — the loop
//! (`crate::connection`) opens the scope and honours it; the proxy (`crate::proxy`) reports
//! into it; neither imports the other.
//!
//! The scope carries two things, both task-local (the request is served on the task that
//! opened the scope):
//! * whether the request head was read ([`head_read`], called by the proxy when it creates
//!   the request context): the loop's header deadline applies only until then;
//! * the upstream header deadline of the attempt in progress ([`watch_upstream_deadline`]):
//!   the loop polls it next to the request with a timer it keeps for the whole connection,
//!   and fires it ([`UpstreamDeadline::fire`]) when it passes.
//!
//! Outside a scope (HTTP/2 clients are served by Pingora's own loop) every function here
//! is a no-op that says so.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::{Arc, Weak};
use tokio::time::Instant;

/// An armed upstream header deadline, as the connection loop sees it.
pub trait UpstreamDeadline: Send + Sync {
    /// When it fires.
    fn at(&self) -> Instant;
    /// Fires it: called once `at` passed, on the task that serves the request (the task
    /// that owns the upstream socket).
    fn fire(&self);
}

/// What the connection loop tracks for the request its task is serving.
struct RequestScope {
    /// The request head was read: its header deadline no longer applies.
    head_read: Cell<bool>,
    /// The upstream header deadline of the current attempt, if one is armed, and how many
    /// were armed so far (each new one moves the loop's timer). Held weakly: the attempt
    /// owns it, and dropping it there disarms it.
    upstream: RefCell<(Option<Weak<dyn UpstreamDeadline>>, u64)>,
}

tokio::task_local! {
    static SCOPE: RequestScope;
}

/// Runs `serve` (one request) inside a fresh request scope. Used by the connection loop.
pub async fn run<F: Future>(serve: F) -> F::Output {
    let scope = RequestScope {
        head_read: Cell::new(false),
        upstream: RefCell::new((None, 0)),
    };
    SCOPE.scope(scope, serve).await
}

/// Marks the current request's head as read (disarms its header deadline). Called from
/// the proxy's `new_ctx`; does nothing outside a request scope.
pub fn head_read() {
    let _ = SCOPE.try_with(|s| s.head_read.set(true));
}

/// Whether the current request's head was read; `true` outside a request scope (there is
/// no header deadline to apply then).
pub fn was_head_read() -> bool {
    SCOPE.try_with(|s| s.head_read.get()).unwrap_or(true)
}

/// Whether the current task is a request served inside a request scope (HTTP/1 clients).
pub fn in_scope() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// Has the connection loop serving the current task's request fire `deadline` when
/// `deadline.at()` passes, unless every strong reference to it was dropped before (it is
/// held weakly). Replaces a deadline handed over earlier in the same request. `false`
/// outside a request scope (HTTP/2 clients): the caller must wait for it itself.
pub fn watch_upstream_deadline<D: UpstreamDeadline + 'static>(deadline: &Arc<D>) -> bool {
    let weak: Weak<D> = Arc::downgrade(deadline);
    let weak: Weak<dyn UpstreamDeadline> = weak;
    SCOPE
        .try_with(|s| {
            let mut slot = s.upstream.borrow_mut();
            *slot = (Some(weak), slot.1.wrapping_add(1));
        })
        .is_ok()
}

/// The armed upstream deadline of the current request, if any (still held by its
/// attempt), with its arming number.
pub fn armed_upstream_deadline() -> Option<(Arc<dyn UpstreamDeadline>, u64)> {
    SCOPE
        .try_with(|s| {
            let slot = s.upstream.borrow();
            slot.0.as_ref().and_then(Weak::upgrade).map(|d| (d, slot.1))
        })
        .ok()
        .flatten()
}

/// Forgets the current request's armed upstream deadline (it fired).
pub fn forget_upstream_deadline() {
    let _ = SCOPE.try_with(|s| s.upstream.borrow_mut().0 = None);
}
