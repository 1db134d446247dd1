//! End of a request: the final attempt outcome, request metrics, and the access log line.

use super::ctx::RequestCtx;
use super::outcome::finish_attempt;
use crate::auth::UserEntry;
use crate::metrics;
use crate::routing::{Backend, ModelRoute, Outcome};
use std::time::Duration;

/// Label for requests whose user or model is unknown (refused before it was resolved).
const UNKNOWN: &str = "-";

/// What a finished request resolved to (all optional: refusals stop early).
struct Resolved<'a> {
    model: Option<&'a ModelRoute>,
    user: Option<&'a UserEntry>,
    backend: Option<&'a Backend>,
}

/// Records everything about a finished request. Never fails.
pub fn finish_request(ctx: &mut RequestCtx, error: bool) {
    if ctx.attempt.as_ref().is_some_and(|a| !a.recorded) {
        let outcome = if ctx.status == 0 || error {
            Outcome::ClientClosed
        } else if (200..300).contains(&ctx.status) {
            if ctx.body_complete {
                Outcome::Success
            } else {
                Outcome::ClientClosed
            }
        } else {
            Outcome::from_status(ctx.status, None)
        };
        finish_attempt(ctx, outcome);
    }
    // End in-flight accounting now, not when the context is dropped.
    ctx.attempt = None;
    ctx.inflight = None;
    ctx.watchdog = None;

    let duration = ctx.started.elapsed();
    let Some(snap) = ctx.snapshot.clone() else {
        return;
    };
    let req = ctx.request.as_ref();
    let model = req.and_then(|r| snap.table.models.get(r.model));
    let r = Resolved {
        model,
        user: ctx.user.and_then(|u| snap.users.users.get(u)),
        backend: model
            .zip(ctx.tried.last())
            .and_then(|(m, &i)| m.backends.get(i)),
    };
    if metrics::per_request() {
        record_metrics(ctx, &r, duration);
    }
    log_access(ctx, &r, duration);
}

fn record_metrics(ctx: &RequestCtx, r: &Resolved<'_>, duration: Duration) {
    if ctx.proxied {
        let code = itoa::Buffer::new().format(ctx.status).to_string();
        metrics::REQUESTS
            .with_label_values(&[
                r.model.map_or(UNKNOWN, |m| m.name.as_str()),
                r.user.map_or(UNKNOWN, |u| &u.id),
                &code,
            ])
            .inc();
    }
    let (Some(m), Some(req)) = (r.model, ctx.request.as_ref()) else {
        return;
    };
    metrics::REQUEST_DURATION
        .with_label_values(&[&m.name])
        .observe(duration.as_secs_f64());
    metrics::OVERHEAD.observe(ctx.overhead.as_secs_f64());
    let Some(b) = r.backend else {
        return;
    };
    let op = req.op.otel_name();
    let genai = [op, b.provider.backend_type.as_str(), m.name.as_str()];
    metrics::GENAI_DURATION
        .with_label_values(&genai)
        .observe(duration.as_secs_f64());
    if let Some(t) = ctx.ttfb {
        metrics::GENAI_TTFT
            .with_label_values(&genai)
            .observe(t.as_secs_f64());
    }
    if let (Some(u), Some(usage)) = (r.user, ctx.usage) {
        for (kind, n) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
        ] {
            metrics::TOKENS
                .with_label_values(&[m.name.as_str(), &u.id, &b.provider.id, kind])
                .inc_by(n);
            metrics::GENAI_TOKENS
                .with_label_values(&[genai[0], genai[1], genai[2], kind])
                .observe(n as f64);
        }
    }
}

/// One access-log line per request (target `berry::access`; health and metrics scrapes at
/// debug level). Never a token, key or body.
fn log_access(ctx: &RequestCtx, r: &Resolved<'_>, duration: Duration) {
    let level = if ctx.quiet_log {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    if !log::log_enabled!(target: "berry::access", level) {
        return;
    }
    let usage = ctx.usage.unwrap_or_default();
    log::log!(
        target: "berry::access",
        level,
        "request_id={} user={} model={} backend={} status={} attempts={} ttfb_ms={} duration_ms={} tokens_in={} tokens_out={} outcome={}",
        ctx.request_id,
        r.user.map_or(UNKNOWN, |u| &u.id),
        r.model.map_or(UNKNOWN, |m| m.name.as_str()),
        r.backend.map_or(UNKNOWN, |b| &b.id),
        ctx.status,
        ctx.attempts,
        ctx.ttfb.map_or(-1.0, |t| (t.as_secs_f64() * 1e4).round() / 10.0),
        (duration.as_secs_f64() * 1e4).round() / 10.0,
        usage.input_tokens,
        usage.output_tokens,
        ctx.last_outcome.map_or(UNKNOWN, |o| o.label()),
    );
}
