//! Cost per request: every token type at its own price, in `berry_cost_usd_total` and the
//! access log; unpriced backend models warned once and their tokens counted.

use crate::harness::*;
use std::time::Duration;

/// Prices (USD per million tokens): input, output, cache_read, cache_write.
type Prices = (f64, f64, f64, f64);

/// `[prices."gpt-house"]` of the config below: cache writes unlisted, so priced as input.
const HOUSE: Prices = (2.0, 8.0, 0.5, 2.0);
/// The built-in catalog's `claude-sonnet-4-5`.
const SONNET: Prices = (3.0, 15.0, 0.3, 3.75);

/// USD of (input, output, cache_read, cache_write) tokens, summed as the gateway sums them.
fn cost(p: Prices, t: (u64, u64, u64, u64)) -> f64 {
    (t.0 as f64 * p.0 + t.1 as f64 * p.1 + t.2 as f64 * p.2 + t.3 as f64 * p.3) / 1e6
}

fn config(oa: &berry_mock::MockProvider, an: &berry_mock::MockProvider) -> String {
    format!(
        "{settings}\n{user}\n{oa}{un}[providers.an]\nbase_url = \"{an_url}\"\napi_key = \"k\"\n\
         backend_type = \"anthropic\"\n{MOCK_STEERING}\
         [prices.gpt-house]\ninput = 2\noutput = 8\ncache_read = 0.5\n\
         [models.g]\nname = \"g\"\n[[models.g.backends]]\nprovider = \"oa\"\nmodel = \"gpt-house\"\n\
         [models.c]\nname = \"c\"\n[[models.c.backends]]\nprovider = \"an\"\nmodel = \"claude-sonnet-4-5\"\n\
         [models.u]\nname = \"u\"\n[[models.u.backends]]\nprovider = \"un\"\nmodel = \"mystery-model\"\n\
         [[models.u.backends]]\nprovider = \"oa\"\nmodel = \"mystery-model\"\nenabled = false\n",
        settings = quiet_settings(),
        user = user("u", "tok", ""),
        oa = steered_provider("oa", oa),
        un = provider("un", oa),
        an_url = an.base_url(),
    )
}

/// The access log line of request `id`, once written.
fn access_line(gw: &Gateway, id: &str) -> String {
    let needle = format!("request_id={id} ");
    let mut found = String::new();
    wait_until(Duration::from_secs(5), || {
        found = gw
            .log()
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_default()
            .to_string();
        !found.is_empty()
    });
    assert!(!found.is_empty(), "no access line for {id}:\n{}", gw.log());
    found
}

fn u64_at(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

#[test]
fn cache_reads_and_writes_are_charged_at_their_own_prices() {
    let (oa, an) = (mock("oa"), mock("an"));
    let gw = Gateway::start(&config(&oa, &an));
    settle(&gw, &[&oa, &oa, &an]);

    // OpenAI backend, cache read reported as cached prompt tokens.
    let body = r#"{"model":"g","messages":[{"role":"user","content":"hello there"}]}"#;
    let r = gw.post_with(
        "/v1/chat/completions",
        "tok",
        body,
        &[("x-mock-cache-read", "40"), ("x-request-id", "cost-oa")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let u = &r.json()["usage"];
    let cached = u64_at(&u["prompt_tokens_details"]["cached_tokens"]);
    assert_eq!(cached, 40, "{u}");
    let oa_tokens = (
        u64_at(&u["prompt_tokens"]) - cached,
        u64_at(&u["completion_tokens"]),
        cached,
        0,
    );
    assert!(oa_tokens.0 > 0 && oa_tokens.1 > 0, "{u}");
    let oa_cost = cost(HOUSE, oa_tokens);

    // Anthropic backend: reads and writes reported apart.
    let body =
        r#"{"model":"c","max_tokens":16,"messages":[{"role":"user","content":"hello there"}]}"#;
    let r = gw.post_with(
        "/v1/messages",
        "tok",
        body,
        &[
            ("x-mock-cache-read", "1000"),
            ("x-mock-cache-write", "200"),
            ("x-request-id", "cost-an"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let u = &r.json()["usage"];
    let an_tokens = (
        u64_at(&u["input_tokens"]),
        u64_at(&u["output_tokens"]),
        u64_at(&u["cache_read_input_tokens"]),
        u64_at(&u["cache_creation_input_tokens"]),
    );
    assert_eq!((an_tokens.2, an_tokens.3), (1000, 200), "{u}");
    let an_cost = cost(SONNET, an_tokens);
    // Reads at 0.3 and writes at 3.75, not at the input price of 3.
    assert!(an_cost < cost(SONNET, (an_tokens.0 + 1200, an_tokens.1, 0, 0)));

    for (id, want) in [("cost-oa", oa_cost), ("cost-an", an_cost)] {
        let line = access_line(&gw, id);
        let field = format!(" cost_usd={want:.6} ");
        assert!(line.contains(&field), "`{field}` missing in: {line}");
    }
    let charged = |backend: &str| {
        metric(
            &gw,
            "berry_cost_usd_total",
            &[
                ("user", "u"),
                ("team", "-"),
                ("model", backend.split('/').next().unwrap()),
                ("backend", backend),
            ],
        )
    };
    assert!(
        (charged("g/oa/gpt-house") - oa_cost).abs() < 1e-12,
        "{} != {oa_cost}",
        charged("g/oa/gpt-house")
    );
    assert!(
        (charged("c/an/claude-sonnet-4-5") - an_cost).abs() < 1e-12,
        "{} != {an_cost}",
        charged("c/an/claude-sonnet-4-5")
    );
    // The OTel histogram sees the same cost.
    let otel = metric(
        &gw,
        "gen_ai_client_cost_usd_sum",
        &[("gen_ai_provider_name", "anthropic")],
    );
    assert!((otel - an_cost).abs() < 1e-12, "{otel} != {an_cost}");
    assert_eq!(metric(&gw, "berry_unpriced_tokens_total", &[]), 0.0);
}

#[test]
fn unpriced_models_are_warned_once_and_their_tokens_counted() {
    let (oa, an) = (mock("oa"), mock("an"));
    let gw = Gateway::start(&config(&oa, &an));
    settle(&gw, &[&oa, &oa, &an]);
    let warning = "`mystery-model` has no price";
    assert!(
        wait_until(Duration::from_secs(5), || gw.log().contains(warning)),
        "{}",
        gw.log()
    );
    assert_eq!(gw.log().matches(warning).count(), 1, "{}", gw.log());

    let body = r#"{"model":"u","messages":[{"role":"user","content":"hello there"}]}"#;
    let r = gw.post_with(
        "/v1/chat/completions",
        "tok",
        body,
        &[("x-mock-cache-read", "5"), ("x-request-id", "cost-un")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let u = &r.json()["usage"];
    let tokens = u64_at(&u["prompt_tokens"]) + u64_at(&u["completion_tokens"]);
    let line = access_line(&gw, "cost-un");
    assert!(line.contains(" cost_usd=0.000000 "), "{line}");
    let unpriced = |gw: &Gateway| {
        metric(
            gw,
            "berry_unpriced_tokens_total",
            &[("model", "mystery-model")],
        )
    };
    assert_eq!(unpriced(&gw), tokens as f64);
    assert_eq!(
        metric(
            &gw,
            "berry_cost_usd_total",
            &[("backend", "u/un/mystery-model")]
        ),
        0.0
    );
}

#[test]
fn cache_savings_and_cost_are_counted_per_team() {
    let (oa, an) = (mock("oa"), mock("an"));
    let cfg = format!(
        "{}[teams.eng]\nname = \"Engineering\"\n[users.t]\ntoken = \"tok-t\"\nteam = \"eng\"\n",
        config(&oa, &an)
    );
    let gw = Gateway::start(&cfg);
    settle(&gw, &[&oa, &oa, &an]);
    let chat = r#"{"model":"g","messages":[{"role":"user","content":"hello there"}]}"#;
    let msg =
        r#"{"model":"c","max_tokens":16,"messages":[{"role":"user","content":"hello there"}]}"#;
    for token in ["tok-t", "tok"] {
        let r = gw.post_with(
            "/v1/chat/completions",
            token,
            chat,
            &[("x-mock-cache-read", "40")],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let r = gw.post_with(
            "/v1/messages",
            token,
            msg,
            &[("x-mock-cache-read", "1000"), ("x-mock-cache-write", "200")],
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let text = gw.metrics_text();
    // what the cache reads would have cost at the input price minus what they cost:
    // 40 × (2 − 0.5) and 1,000 × (3 − 0.3) per million; cache writes save nothing
    let saved = |team: &str, model: &str| {
        metric_in(
            &text,
            "berry_cache_savings_usd_total",
            &[("team", team), ("model", model)],
        )
    };
    for team in ["eng", "-"] {
        assert!(
            (saved(team, "g") - 0.000060).abs() < 1e-12,
            "{team}: {text}"
        );
        assert!(
            (saved(team, "c") - 0.002700).abs() < 1e-12,
            "{team}: {text}"
        );
    }
    // the team's cost and tokens are its user's
    let of = |name: &str, want: &[(&str, &str)]| metric_in(&text, name, want);
    for (team, user) in [("eng", "t"), ("-", "u")] {
        let cost = of("berry_cost_usd_total", &[("team", team)]);
        assert!(cost > 0.0, "{team}");
        assert!(
            (cost - of("berry_cost_usd_total", &[("user", user)])).abs() < 1e-12,
            "{team}"
        );
        for kind in ["input", "output", "cache_read", "cache_write"] {
            assert_eq!(
                of("berry_tokens_total", &[("team", team), ("type", kind)]),
                of("berry_tokens_total", &[("user", user), ("type", kind)]),
                "{team} {kind}"
            );
        }
        assert_eq!(
            of(
                "berry_tokens_total",
                &[("team", team), ("type", "cache_read")]
            ),
            1040.0
        );
    }
}
