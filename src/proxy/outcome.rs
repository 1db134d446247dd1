//! Feeding an attempt's outcome into backend state and metrics, exactly once.

use super::ctx::RequestCtx;
use crate::clock::now_ms;
use crate::routing::Outcome;

/// Records `outcome` for the current attempt (breaker, cooldown, confidence, provider
/// health, `berry_upstream_attempts_total`) unless it was recorded already.
pub fn finish_attempt(ctx: &mut RequestCtx, outcome: Outcome) {
    let (Some(snap), Some(req)) = (ctx.snapshot.as_ref(), ctx.request.as_ref()) else {
        return;
    };
    let Some(attempt) = ctx.attempt.as_mut() else {
        return;
    };
    if attempt.recorded {
        return;
    }
    attempt.recorded = true;
    ctx.last_outcome = Some(outcome);
    let table = &snap.table;
    let Some(backend) = table
        .models
        .get(req.model)
        .and_then(|m| m.backends.get(attempt.backend))
    else {
        return;
    };
    backend
        .state
        .record(outcome, now_ms(), &table.breaker, &table.settings.smart_ai);
    if outcome == Outcome::Success {
        backend.provider.health.mark_healthy_by_traffic();
    }
    if crate::metrics::per_request() {
        crate::metrics::UPSTREAM_ATTEMPTS
            .with_label_values(&[backend.provider.id.as_str(), &backend.id, outcome.label()])
            .inc();
    }
}
