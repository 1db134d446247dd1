//! Claude Code (`claude -p`, the native binary in `BERRY_TEST_CLAUDE`, installed by
//! `scripts/test.sh`) through the gateway is charged exactly what the provider reported:
//! every request of a run (a tool call and the answer to its output are two requests) is
//! charged once, at the configured price, in the access log and the metrics, cache reads
//! and writes included; a run killed mid-stream is charged the prompt the provider
//! already reported and an estimate of the output. A byte tap between the gateway and the
//! mock ([`Tap`]) reads what the provider reported, request by request.

use crate::harness::*;
use crate::usage_tap::{access_lines, Access, Exchange, Tap, Usage};
use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// `[prices."claude-tapped"]`: (input, output, cache_read, cache_write) USD per million.
pub const PRICE: (f64, f64, f64, f64) = (4.0, 16.0, 0.5, 5.0);

/// Claude Code's binary (`BERRY_TEST_CLAUDE`), or `None` (with a note) when it is not set
/// outside CI; in CI (`CI=true`) a missing Claude Code fails the test.
pub fn claude_bin() -> Option<String> {
    match std::env::var("BERRY_TEST_CLAUDE") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "BERRY_TEST_CLAUDE is not set but CI=true: run scripts/test.sh (it installs \
             @anthropic-ai/claude-code into .tools/claude-code and exports BERRY_TEST_CLAUDE)"
        ),
        _ => {
            eprintln!(
                "note: skipping a Claude Code test: BERRY_TEST_CLAUDE is not set \
                 (scripts/test.sh installs Claude Code into .tools/claude-code and sets it)"
            );
            None
        }
    }
}

/// `claude -p PROMPT --model MODEL` against `gw` with `token`, a throwaway `HOME`, stdin
/// from `/dev/null`, `headers` sent on every request (`ANTHROPIC_CUSTOM_HEADERS`: the
/// mock's steering headers) and extra `args`. Started, not waited for.
pub fn spawn_claude(
    claude: &str,
    gw: &Gateway,
    token: &str,
    model: &str,
    prompt: &str,
    headers: &[(&str, &str)],
    args: &[&str],
) -> Child {
    let home = gw.dir.join(format!("claude-home-{}", fastrand::u32(..)));
    std::fs::create_dir_all(&home).unwrap();
    let custom: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    Command::new(claude)
        .args(["-p", prompt, "--model", model])
        .args(args)
        .current_dir(&home)
        .env("HOME", &home)
        .env("ANTHROPIC_BASE_URL", format!("http://{}", gw.addr))
        .env("ANTHROPIC_API_KEY", token)
        .env("ANTHROPIC_CUSTOM_HEADERS", custom.join("\n"))
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {claude}: {e}"))
}

/// [`spawn_claude`] as user `cc` on model `claude-x` (see [`config`]), waited for (at most
/// two minutes).
pub fn run_claude(
    claude: &str,
    gw: &Gateway,
    prompt: &str,
    headers: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let child = spawn_claude(claude, gw, "tok-cc", "claude-x", prompt, headers, args);
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!(
                "claude -p did not finish within 2 minutes; gateway log:\n{}",
                gw.log()
            )
        }
    }
}

/// User `cc` (token `tok-cc`) of team `agents` (a $100 monthly budget); model `claude-x`
/// on Anthropic provider `an`, reached through `tap`, backend model `claude-tapped` priced
/// at [`PRICE`].
fn config(tap: &Tap) -> String {
    format!(
        "{settings}\n{user}\n[providers.an]\nbase_url = \"{url}\"\napi_key = \"k\"\n\
         backend_type = \"anthropic\"\n{MOCK_STEERING}\n\
         [prices.claude-tapped]\ninput = {}\noutput = {}\ncache_read = {}\ncache_write = {}\n\
         [models.c]\nname = \"claude-x\"\n[[models.c.backends]]\nprovider = \"an\"\nmodel = \"claude-tapped\"\n",
        PRICE.0,
        PRICE.1,
        PRICE.2,
        PRICE.3,
        settings = quiet_settings(),
        user = user("cc", "tok-cc", "team = \"agents\"\n[teams.agents]\nbudget_usd_per_month = 100"),
        url = tap.base_url(),
    )
}

/// The access lines of user `cc`, by request id, once `n` of them are written.
fn charged(gw: &Gateway, n: usize) -> BTreeMap<String, Access> {
    let lines = || -> BTreeMap<String, Access> {
        access_lines(&gw.log())
            .into_iter()
            .filter(|a| a.user == "cc")
            .map(|a| (a.request_id.clone(), a))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(5), || lines().len() >= n),
        "fewer than {n} access lines:\n{}",
        gw.log()
    );
    lines()
}

/// The metric sums of user `cc`: tokens by type and cost.
fn metered(gw: &Gateway) -> (Usage, f64) {
    let text = gw.metrics_text();
    let t = |kind: &str| {
        metric_in(
            &text,
            "berry_tokens_total",
            &[("user", "cc"), ("type", kind)],
        ) as u64
    };
    let usage = Usage {
        input: t("input"),
        output: t("output"),
        cache_read: t("cache_read"),
        cache_write: t("cache_write"),
    };
    let cost = metric_in(
        &text,
        "berry_cost_usd_total",
        &[("user", "cc"), ("team", "agents"), ("model", "claude-x")],
    );
    (usage, cost)
}

/// Every Messages request `calls` that went upstream was charged once, exactly what the
/// provider reported at [`PRICE`]; and every charged request of `cc` went upstream. The
/// sum of what the provider reported.
fn assert_each_charged_once(gw: &Gateway, calls: &[Exchange]) -> Usage {
    let log = charged(gw, calls.len());
    let mut total = Usage::default();
    for call in calls {
        let id = call.request_id.as_deref().expect("x-request-id upstream");
        let a = log
            .get(id)
            .unwrap_or_else(|| panic!("request {id} not in the access log:\n{}", gw.log()));
        let reported = call.usage.unwrap_or_default();
        assert_eq!(
            (a.model.as_str(), a.status),
            ("claude-x", call.status),
            "{id}"
        );
        assert_eq!(
            (a.tokens_in, a.tokens_out, a.estimated),
            (reported.input, reported.output, false),
            "request {id} ({} {}): charged {a:?}, reported {reported:?}",
            call.method,
            call.path
        );
        assert_eq!(a.cost_usd, format!("{:.6}", reported.cost(PRICE)), "{id}");
        total = total.add(&reported);
    }
    let upstream: Vec<&str> = calls
        .iter()
        .filter_map(|c| c.request_id.as_deref())
        .collect();
    for (id, a) in &log {
        assert!(
            upstream.contains(&id.as_str()) || (a.tokens_in, a.tokens_out) == (0, 0),
            "charged without an upstream call: {a:?}"
        );
    }
    total
}

#[test]
fn every_request_of_a_claude_code_run_is_charged_once_at_its_price() {
    let Some(claude) = claude_bin() else {
        return;
    };
    let m = mock_with("an", |o| {
        o.chunks = 6;
        o.prompt_cache = true;
    });
    let tap = Tap::start(m.addr());
    let gw = Gateway::start(&config(&tap));
    settle(&gw, &[&m]);

    // The mock answers with a `Read` call of a file in Claude Code's working directory,
    // then (the request carrying its output) with text. Its simulated prompt cache reads
    // Claude Code's own `cache_control` markers: the first request writes the prefix, the
    // second reads it.
    let note = gw.dir.join("note.txt");
    std::fs::write(&note, "the note's text\n").unwrap();
    let input = format!(r#"{{"file_path":"{}"}}"#, note.display());
    let headers = [
        ("x-mock-tool-use", "Read"),
        ("x-mock-tool-input", input.as_str()),
    ];
    let out = run_claude(
        &claude,
        &gw,
        "read the note",
        &headers,
        &["--allowedTools", "Read"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("the note's text"),
        "claude -p failed:\n{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );

    let calls = tap.calls("/messages");
    let answered: Vec<&Exchange> = calls.iter().filter(|c| c.usage.is_some()).collect();
    // the tool call and the answer to its output, both streamed and complete
    assert!(answered.len() >= 2, "{calls:#?}");
    assert!(answered.iter().all(|c| c.complete && c.status == 200));
    let total = assert_each_charged_once(&gw, &calls);
    let (first, last) = (
        answered[0].usage.unwrap(),
        answered[answered.len() - 1].usage.unwrap(),
    );
    assert!(first.cache_write > 0, "{calls:#?}");
    assert!(last.cache_read > 0, "{calls:#?}");

    // the metrics carry the same sums: nothing counted twice, nothing left out
    let (tokens, cost) = metered(&gw);
    assert_eq!(tokens, total);
    assert!(
        (cost - total.cost(PRICE)).abs() < 1e-9,
        "berry_cost_usd_total {cost} != {}",
        total.cost(PRICE)
    );
    // the team's month spend: each request settled once, in whole micro-dollars
    let micros: f64 = calls
        .iter()
        .filter_map(|c| c.usage)
        .map(|u| (u.cost(PRICE) * 1e6).round())
        .sum();
    let spend = metric(
        &gw,
        "berry_spend_usd",
        &[("scope", "team"), ("id", "agents"), ("window", "month")],
    );
    assert!(
        (spend - micros / 1e6).abs() < 1e-9,
        "{spend} != {}",
        micros / 1e6
    );
}

#[test]
fn a_claude_code_run_killed_mid_stream_is_charged_what_was_reported() {
    let Some(claude) = claude_bin() else {
        return;
    };
    let m = mock("an");
    let tap = Tap::start(m.addr());
    let gw = Gateway::start(&config(&tap));
    settle(&gw, &[&m]);
    let headers = [
        ("x-mock-chunks", "100"),
        ("x-mock-interval-ms", "100"),
        ("x-mock-cache-read", "2000"),
        ("x-mock-cache-write", "300"),
    ];
    let mut child = spawn_claude(&claude, &gw, "tok-cc", "claude-x", "say hi", &headers, &[]);
    // killed once its answer is streaming (the text has begun)
    let streaming = || {
        tap.calls("/messages")
            .into_iter()
            .find(|c| c.status == 200 && c.text_bytes > 0 && !c.complete)
    };
    let started = wait_until(Duration::from_secs(60), || streaming().is_some());
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "no streaming answer; gateway log:\n{}", gw.log());
    let id = streaming()
        .and_then(|c| c.request_id)
        .expect("the streaming call's request id");

    let access = |gw: &Gateway| {
        access_lines(&gw.log())
            .into_iter()
            .find(|a| a.request_id == id)
    };
    assert!(
        wait_until(Duration::from_secs(10), || access(&gw).is_some()),
        "request {id} not logged:\n{}",
        gw.log()
    );
    let a = access(&gw).unwrap();
    let call = tap.exchange(&id);
    assert!(
        !call.complete,
        "the upstream stream was cut short: {call:?}"
    );
    let reported = call.usage.expect("message_start usage");
    // the prompt and cache counts stand as `message_start` reported them; the output is
    // the text bytes the gateway passed on / 4 (never more than the tap saw)
    assert!(a.estimated, "{a:?}");
    assert_eq!(a.tokens_in, reported.input, "{a:?} vs {reported:?}");
    assert!(
        a.tokens_out >= 1 && a.tokens_out <= (call.text_bytes / 4) as u64,
        "{a:?}, {} text bytes upstream",
        call.text_bytes
    );
    let expect = Usage {
        output: a.tokens_out,
        ..reported
    };
    assert_eq!(a.cost_usd, format!("{:.6}", expect.cost(PRICE)));
    let (tokens, cost) = metered(&gw);
    // this run's other requests (if any) completed: theirs are exact
    let others = tap
        .calls("/messages")
        .into_iter()
        .filter(|c| c.request_id.as_deref() != Some(id.as_str()))
        .filter_map(|c| c.usage)
        .fold(Usage::default(), |s, u| s.add(&u));
    assert_eq!(tokens, expect.add(&others));
    assert!(
        (cost - expect.add(&others).cost(PRICE)).abs() < 1e-9,
        "{cost}"
    );
}
