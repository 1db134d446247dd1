//! Process lifecycle: graceful upgrade (`-u` + SIGQUIT) without a failed request, daemon
//! mode with a pid file, and SIGTERM that lets streams finish yet exits promptly.

use crate::harness::*;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(m: &berry_mock::MockProvider) -> String {
    format!(
        "{FAST_SETTINGS}\n{}{}[models.m]\nname = \"x\"\n[[models.m.backends]]\nprovider = \"p\"\nmodel = \"r\"\n",
        user("u", "tok", ""),
        steered_provider("p", m)
    )
}

/// SIGKILLs a daemon (by pid) when dropped, if it is still running.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

fn long_stream(addr: std::net::SocketAddr, chunks: u32, interval_ms: u32) -> Resp {
    request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Authorization", "Bearer tok"),
            ("x-mock-chunks", &chunks.to_string()),
            ("x-mock-interval-ms", &interval_ms.to_string()),
        ],
        br#"{"model":"x","stream":true}"#,
    )
}

fn assert_complete_stream(r: &Resp, chunks: usize) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.complete, "stream cut: {}", r.text());
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    assert_eq!(
        data.iter()
            .filter(|d| d.contains("\"content\":\"tok"))
            .count(),
        chunks
    );
}

fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

#[test]
fn graceful_upgrade_loses_no_request_and_completes_streams() {
    let m = mock("m");
    let mut old = Gateway::start(&config(&m));
    let addr = old.addr;
    // a 4 s stream that spans the hand-over, under way before anything else
    let stream = std::thread::spawn(move || long_stream(addr, 40, 100));
    assert!(
        wait_until(Duration::from_secs(5), || m.hits_for("/chat/completions")
            == 1),
        "the stream did not reach the provider"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let loop_thread = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match try_request(
                    addr,
                    "POST",
                    "/v1/chat/completions",
                    &[("Authorization", "Bearer tok")],
                    br#"{"model":"x","messages":[]}"#,
                ) {
                    Ok(r) if r.status == 200 && r.complete => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed during upgrade: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    // the new process waits for the listeners; then the old one hands them over
    let new_log = old.dir.join("new.log");
    let mut new = Command::new(binary())
        .arg("--config")
        .arg(&old.config_path)
        .arg("--listen")
        .arg(&old.listen)
        .arg("-c")
        .arg(old.dir.join("pingora.yaml"))
        .arg("-u")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&new_log).unwrap())
        .spawn()
        .unwrap();
    let upgrade_sock = old.dir.join("upgrade.sock");
    assert!(
        wait_until(Duration::from_secs(10), || upgrade_sock.exists()),
        "the new process does not wait for the listeners"
    );
    old.signal("QUIT");

    let r = stream.join().unwrap();
    assert_complete_stream(&r, 40);
    // the old process leaves once its requests are done (5 s hand-over + drain), well
    // before its 10 s grace period
    let mut old_child = old.child.take().unwrap();
    let exited = wait_exit(&mut old_child, Duration::from_secs(9));
    // the load loop goes on against the new process alone for a few requests
    let ok_at_exit = ok.load(Ordering::Relaxed);
    let new_served = wait_until(Duration::from_secs(5), || {
        ok.load(Ordering::Relaxed) >= ok_at_exit + 10
            && std::fs::read_to_string(&new_log).is_ok_and(|l| l.contains("berry::access"))
    });
    stop.store(true, Ordering::Relaxed);
    loop_thread.join().unwrap();
    let new_log_text = std::fs::read_to_string(&new_log).unwrap_or_default();
    let _ = new.kill();
    let _ = new.wait();
    assert!(
        exited.is_some(),
        "old process did not exit; log:\n{}",
        old.log()
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the upgrade; new log:\n{new_log_text}"
    );
    assert!(ok.load(Ordering::Relaxed) > 20);
    assert!(
        new_log_text.contains("berry::access"),
        "the new process served requests:\n{new_log_text}"
    );
    assert!(
        new_served,
        "the new process served no requests after the old one left"
    );
}

#[test]
fn daemon_mode_and_sigterm_let_streams_finish_then_exit() {
    let m = mock("m");
    let dir = temp_dir("daemon");
    let cfg_path = dir.join("berry.toml");
    std::fs::write(&cfg_path, config(&m)).unwrap();
    let conf = pingora_conf(&dir);
    let mut conf_text = std::fs::read_to_string(&conf).unwrap();
    conf_text.push_str(&format!("error_log: {}/error.log\n", dir.display()));
    std::fs::write(&conf, conf_text).unwrap();
    // A relative --config: daemon mode moves the working directory to `/`, and reloads
    // must still find the file.
    let status = Command::new(binary())
        .current_dir(&dir)
        .arg("--config")
        .arg("berry.toml")
        .arg("--listen")
        .arg(LISTEN_ANY)
        .arg("-c")
        .arg(&conf)
        .arg("-d")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the launching process returns once daemonized"
    );
    // the daemon's listener, read from its own socket once its pid file names it
    let pid_file = dir.join("gw.pid");
    let mut bound = None;
    assert!(wait_until(Duration::from_secs(20), || {
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        bound = bound.or_else(|| pid.and_then(|pid| client_listener(pid, None)));
        bound.is_some_and(|a| try_request(a, "GET", "/health", &[], b"").is_ok())
    }));
    let addr = bound.unwrap();
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    let alive = |pid: &str| {
        Command::new("kill")
            .args(["-0", pid])
            .status()
            .unwrap()
            .success()
    };
    assert!(alive(&pid));
    // A failing assertion below must not leave the daemon running.
    let _reaper = KillOnDrop(pid.clone());

    // SIGHUP reloads the config given by a relative path
    let models = |addr| {
        request(
            addr,
            "GET",
            "/v1/models",
            &[("Authorization", "Bearer tok")],
            b"",
        )
        .json()["data"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(models(addr), 1);
    let mut reloaded = config(&m);
    reloaded.push_str(
        "[models.m2]\nname = \"x2\"\n[[models.m2.backends]]\nprovider = \"p\"\nmodel = \"r\"\n",
    );
    std::fs::write(&cfg_path, reloaded).unwrap();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || models(addr) == 2),
        "config not reloaded in daemon mode"
    );

    // SIGTERM during a 2 s stream: the stream completes, then the process exits promptly
    let stream = std::thread::spawn(move || long_stream(addr, 20, 100));
    assert!(
        wait_until(Duration::from_secs(5), || m.hits_for("/chat/completions")
            == 1),
        "the stream did not reach the provider"
    );
    let t0 = Instant::now();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let r = stream.join().unwrap();
    assert_complete_stream(&r, 20);
    assert!(
        wait_until(Duration::from_secs(5), || !alive(&pid)),
        "daemon still running after SIGTERM"
    );
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    assert!(
        log.contains("berry::access"),
        "daemon logs go to error_log:\n{log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn idle_gateway_stops_within_seconds_on_sigterm() {
    let m = mock("m");
    let mut gw = Gateway::start(&config(&m));
    assert_eq!(gw.chat("tok", "x").status, 200);
    let mut child = gw.child.take().unwrap();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let took = wait_exit(&mut child, Duration::from_secs(8));
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(3)),
        "idle stop took {took:?} (grace period is 10 s)"
    );
    // the listener is gone: refused, not accepted and then dropped or left hanging
    let err = try_request(gw.addr, "GET", "/health", &[], b"")
        .expect_err("the stopped gateway still answers");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

/// The client listener is created with `TCP_DEFER_ACCEPT` (read back from the gateway's
/// own socket): a connection reaches Pingora only with its first bytes, so a stop or
/// upgrade never drops an accepted connection that has not sent its request yet.
#[test]
fn the_client_listener_defers_accept_until_data_arrives() {
    let m = mock("m");
    let gw = Gateway::start(&config(&m));
    let pid = gw.child.as_ref().unwrap().id();
    let listeners = berry_test_support::process::tcp_listeners(pid).unwrap();
    let client = listeners
        .iter()
        .find(|l| l.addr == gw.addr)
        .unwrap_or_else(|| panic!("no listener on {}: {listeners:?}", gw.addr));
    // the kernel reports the seconds rounded up to its retransmission schedule
    let secs = client.defer_accept_secs().unwrap();
    assert!(secs >= 5, "TCP_DEFER_ACCEPT = {secs}");
}
