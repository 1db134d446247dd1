//! End of a request: the final attempt outcome, request metrics, and the access log line.

use super::ctx::RequestCtx;
use super::outcome::finish_attempt;
use crate::metrics;
use crate::routing::Outcome;

/// Label for requests whose user is unknown (refused before authentication succeeded).
const ANONYMOUS: &str = "-";

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
    ctx.attempt = None; // ends in-flight accounting now, not when the context is dropped
    ctx.watchdog = None;

    let duration = ctx.started.elapsed();
    let Some(snap) = ctx.snapshot.as_ref() else {
        return;
    };
    let req = ctx.request.as_ref();
    let model = req.and_then(|r| snap.table.models.get(r.model));
    let user = req.and_then(|r| snap.users.users.get(r.user));
    let backend = match (model, ctx.tried.last()) {
        (Some(m), Some(&i)) => m.backends.get(i),
        _ => None,
    };
    let model_label = model.map_or("-", |m| m.name.as_str());
    let user_label = user.map_or(ANONYMOUS, |u| &u.id);
    let status = ctx.status;

    ctx.inflight = None;
    if ctx.proxied {
        let code = itoa::Buffer::new().format(status).to_string();
        metrics::REQUESTS
            .with_label_values(&[model_label, user_label, &code])
            .inc();
    }
    if let (Some(m), Some(r)) = (model, req) {
        metrics::REQUEST_DURATION
            .with_label_values(&[&m.name])
            .observe(duration.as_secs_f64());
        metrics::OVERHEAD.observe(ctx.overhead.as_secs_f64());
        if let Some(b) = backend {
            let op = r.op.otel_name();
            let gen = [op, b.provider.backend_type.as_str(), m.name.as_str()];
            metrics::GENAI_DURATION
                .with_label_values(&gen)
                .observe(duration.as_secs_f64());
            if let Some(t) = ctx.ttfb {
                metrics::GENAI_TTFT
                    .with_label_values(&gen)
                    .observe(t.as_secs_f64());
            }
            if let (Some(u), Some(usage)) = (user, ctx.usage) {
                for (kind, n) in [
                    ("input", usage.input_tokens),
                    ("output", usage.output_tokens),
                ] {
                    metrics::TOKENS
                        .with_label_values(&[m.name.as_str(), &u.id, &b.provider.id, kind])
                        .inc_by(n);
                    metrics::GENAI_TOKENS
                        .with_label_values(&[op, b.provider.backend_type.as_str(), &m.name, kind])
                        .observe(n as f64);
                }
            }
        }
    }

    let level = if ctx.quiet_log {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    if log::log_enabled!(target: "berry::access", level) {
        let usage = ctx.usage.unwrap_or_default();
        log::log!(
            target: "berry::access",
            level,
            "request_id={} user={} model={} backend={} status={} attempts={} ttfb_ms={} duration_ms={} tokens_in={} tokens_out={} outcome={}",
            ctx.request_id,
            user_label,
            model_label,
            backend.map_or("-", |b| &*b.id),
            status,
            ctx.attempts,
            ctx.ttfb.map_or(-1.0, |t| (t.as_secs_f64() * 1e4).round() / 10.0),
            (duration.as_secs_f64() * 1e4).round() / 10.0,
            usage.input_tokens,
            usage.output_tokens,
            ctx.last_outcome.map_or("-", |o| o.label()),
        );
    }
}
