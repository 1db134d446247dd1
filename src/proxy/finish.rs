//! End of a request: the final attempt outcome, request metrics, the access log line, and
//! the settlement of its cost (spend ledger, budgets) and tokens.

use super::ctx::{Operation, Proxied, RequestCtx, RequestPhase};
use crate::auth::UserEntry;
use crate::metrics;
use crate::quota::Finished;
use crate::routing::{Backend, ModelRoute, Outcome};
use crate::spend::Charge;
use crate::vocab::TokenUsage;
use std::time::Duration;

/// Label for requests whose user or model is unknown (refused before it was resolved).
const UNKNOWN: &str = "-";

/// What a finished request resolved to (all optional: refusals stop early).
struct Resolved<'a> {
    model: Option<&'a ModelRoute>,
    user: Option<&'a UserEntry>,
    backend: Option<&'a Backend>,
    /// Counted in `berry_requests_total` (a proxied endpoint, answered or refused).
    proxied: bool,
    quiet: bool,
    attempts: u32,
    ttfb: Option<Duration>,
    usage: Option<TokenUsage>,
    outcome: Option<Outcome>,
    op: Option<Operation>,
    /// `usage` includes the gateway's estimate (a stream that ended before its usage came).
    estimated: bool,
    /// The hash of the request's session key (`session=` in the access log).
    session: Option<crate::body::SessionKey>,
}

/// `team` label of a user without a team.
const NO_TEAM: &str = "-";

impl<'a> Resolved<'a> {
    /// Cost in USD of the request's usage at its backend's price (`None`: no usage, or an
    /// unpriced backend).
    fn cost_usd(&self) -> Option<f64> {
        let price = self.backend?.price?;
        Some(price.cost_usd(self.usage.as_ref()?))
    }

    /// The spend to settle: the request reached a backend and has usage (reported or
    /// estimated); an unpriced backend's tokens are charged at 0.
    fn charge(&self, at_ms: i64) -> Option<Charge<'a>> {
        let (user, model, backend, usage) = (self.user?, self.model?, self.backend?, self.usage?);
        Some(Charge {
            user: &user.id,
            team: user.team_id(),
            model: model.name.as_str(),
            backend: &backend.id,
            micros: backend.price.map_or(0, |p| p.cost_micro_usd(&usage)),
            usage,
            at_ms,
        })
    }
}

/// Records everything about a finished request. Never fails.
pub fn finish_request(ctx: &mut RequestCtx, error: bool) {
    let duration = ctx.started.elapsed();
    let status = ctx.status;
    let mut grant = None;
    let (r, overhead) = match &mut ctx.phase {
        RequestPhase::Received => return,
        RequestPhase::Local(l) => (
            Resolved {
                model: None,
                user: l.user.as_deref(),
                backend: None,
                proxied: l.refused,
                quiet: l.quiet,
                attempts: 0,
                ttfb: None,
                usage: None,
                outcome: None,
                op: None,
                estimated: false,
                session: None,
            },
            None,
        ),
        RequestPhase::Proxied(p) => {
            settle_last_attempt(p, status, error);
            charge_unfinished_stream(p, status);
            grant = p.grant.take();
            if !p.request.op.charged() {
                // A stored response read back carries the usage it was charged with.
                if let Some(a) = p.answer.as_mut() {
                    a.usage = None;
                }
            }
            let answer = p.answer.as_ref();
            (
                Resolved {
                    model: Some(&p.request.model),
                    user: Some(&p.request.user),
                    backend: p.attempt.as_ref().map(|a| &*a.backend),
                    proxied: true,
                    quiet: false,
                    attempts: p.attempts,
                    ttfb: answer.map(|a| a.ttfb),
                    usage: answer.and_then(|a| a.usage),
                    outcome: p.last_outcome,
                    op: Some(p.request.op),
                    estimated: answer.is_some_and(|a| a.estimated),
                    session: p.request.session.key,
                },
                Some(ctx.overhead),
            )
        }
    };
    if metrics::per_request() {
        record_metrics(&r, status, duration, overhead);
    }
    log_access(ctx.request_id.as_str(), &r, status, duration);
    // Settle now, not when the context is dropped: the spend ledger and budgets take the
    // request's cost, the user's token budgets its tokens; its slots are released.
    if let (Some(grant), Some(user)) = (grant, r.user) {
        let done = Finished {
            tokens: r
                .usage
                .map_or(0, |u| u.prompt_tokens().saturating_add(u.output)),
            charge: r.charge(crate::spend::now_unix_ms()),
            now_ms: crate::clock::now_ms(),
        };
        grant.finish(user, &done);
    }
    if let Some(p) = ctx.proxied_mut() {
        p.attempt = None;
        p.inflight = None;
    }
}

/// Charges a stream that ended before its backend reported all of its usage (the client
/// left, or the stream broke): a count the backend already reported stands (Anthropic's
/// `message_start` carries the prompt's), a missing prompt count is estimated as the
/// client's request body bytes / 4, and the output as the generated-text bytes the stream
/// carried / 4 when that is more than reported. An estimate never lowers a reported
/// count; using one marks the answer `estimated`.
fn charge_unfinished_stream(p: &mut Proxied, status: u16) {
    let charged = p.request.op.charged();
    let prompt_bytes = p.prompt_bytes;
    let Some(a) = p.answer.as_mut() else {
        return;
    };
    if !charged || !a.sse || a.complete || !(status == 0 || (200..300).contains(&status)) {
        return;
    }
    let mut usage = a.usage.unwrap_or_default();
    let prompt = u64::try_from(prompt_bytes / 4).unwrap_or(u64::MAX);
    if usage.prompt_tokens() == 0 && prompt > 0 {
        usage.input = prompt;
        a.estimated = true;
    }
    let output = a.content_bytes / 4;
    if output > usage.output {
        usage.output = output;
        a.estimated = true;
    }
    if a.estimated {
        a.usage = Some(usage);
    }
}

/// Records the outcome of the attempt that answered, if no failure path did: a complete
/// 2xx answer is a success, a 2xx the client left early is neutral, other statuses count
/// as their class.
fn settle_last_attempt(p: &mut Proxied, status: u16, error: bool) {
    if p.attempt.as_ref().is_none_or(|a| a.recorded) {
        return;
    }
    let complete = p.answer.as_ref().is_some_and(|a| a.complete);
    let outcome = if status == 0 || error {
        Outcome::ClientClosed
    } else if (200..300).contains(&status) {
        if complete {
            Outcome::Success
        } else {
            Outcome::ClientClosed
        }
    } else {
        Outcome::from_status(status, None)
    };
    p.finish_attempt(outcome);
}

fn record_metrics(r: &Resolved<'_>, status: u16, duration: Duration, overhead: Option<Duration>) {
    if r.proxied {
        let mut code = itoa::Buffer::new();
        metrics::REQUESTS
            .with_label_values(&[
                r.model.map_or(UNKNOWN, |m| m.name.as_str()),
                r.user.map_or(UNKNOWN, |u| &u.id),
                code.format(status),
            ])
            .inc();
    }
    let (Some(m), Some(op)) = (r.model, r.op) else {
        return;
    };
    m.metrics.request_duration().observe(duration.as_secs_f64());
    if let Some(o) = overhead {
        metrics::OVERHEAD.observe(o.as_secs_f64());
    }
    let Some(b) = r.backend else {
        return;
    };
    if let Some(h) = b.metrics.genai_duration(op) {
        h.observe(duration.as_secs_f64());
    }
    if let (Some(t), Some(h)) = (r.ttfb, b.metrics.genai_ttft(op)) {
        h.observe(t.as_secs_f64());
    }
    if let (Some(u), Some(usage)) = (r.user, r.usage) {
        let team = u.team_id().unwrap_or(NO_TEAM);
        let counts = [
            usage.input,
            usage.output,
            usage.cache_read,
            usage.cache_write,
        ];
        // Cache counts only when there are some: most answers have none.
        for (kind, (name, n)) in metrics::TOKEN_KINDS.iter().zip(counts).enumerate() {
            if n == 0 && name.starts_with("cache") {
                continue;
            }
            metrics::TOKENS
                .with_label_values(&[m.name.as_str(), &u.id, team, &b.provider.id, name])
                .inc_by(n);
            if let Some(h) = b.metrics.genai_tokens(op, kind) {
                h.observe(n as f64);
            }
        }
        match b.price {
            Some(price) => {
                let cost = price.cost_usd(&usage);
                metrics::COST
                    .with_label_values(&[&u.id, team, m.name.as_str(), &b.id])
                    .inc_by(cost);
                let saved = usage.cache_read as f64 * (price.input - price.cache_read) / 1e6;
                if saved > 0.0 {
                    metrics::CACHE_SAVINGS
                        .with_label_values(&[team, m.name.as_str()])
                        .inc_by(saved);
                }
                if let Some(h) = b.metrics.genai_cost(op) {
                    h.observe(cost);
                }
            }
            None => {
                let n = usage.prompt_tokens().saturating_add(usage.output);
                if n > 0 {
                    metrics::UNPRICED_TOKENS
                        .with_label_values(&[&b.real_model])
                        .inc_by(n);
                }
            }
        }
    }
}

/// `session=`: the session key's hash (16 hex digits), `-` without one.
struct SessionField(Option<crate::body::SessionKey>);

impl std::fmt::Display for SessionField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(k) => k.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// One access-log line per request (target `berry::access`; health and metrics scrapes at
/// debug level). Never a token, key or body.
fn log_access(request_id: &str, r: &Resolved<'_>, status: u16, duration: Duration) {
    let level = if r.quiet {
        log::Level::Debug
    } else {
        log::Level::Info
    };
    if !log::log_enabled!(target: "berry::access", level) {
        return;
    }
    let usage = r.usage.unwrap_or_default();
    log::log!(
        target: "berry::access",
        level,
        "request_id={} user={} model={} backend={} status={} attempts={} ttfb_ms={} duration_ms={} tokens_in={} tokens_out={} cost_usd={:.6} estimated={} outcome={} session={}",
        request_id,
        r.user.map_or(UNKNOWN, |u| &u.id),
        r.model.map_or(UNKNOWN, |m| m.name.as_str()),
        r.backend.map_or(UNKNOWN, |b| &b.id),
        status,
        r.attempts,
        r.ttfb.map_or(-1.0, |t| (t.as_secs_f64() * 1e4).round() / 10.0),
        (duration.as_secs_f64() * 1e4).round() / 10.0,
        usage.input,
        usage.output,
        r.cost_usd().unwrap_or(0.0),
        r.estimated,
        r.outcome.map_or(UNKNOWN, |o| o.label()),
        SessionField(r.session),
    );
}
