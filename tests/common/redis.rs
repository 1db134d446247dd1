//! A real `redis-server` (Debian package `redis-server`, installed by `scripts/test.sh`) for
//! the integration tests: on a probed free port, no persistence, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary: `$BERRY_REDIS_SERVER` or `redis-server` on PATH.
fn binary() -> String {
    std::env::var("BERRY_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

/// One `redis-server` process bound to 127.0.0.1.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// TLS-only server: the `--tls-*` arguments.
    tls: Option<Vec<String>>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING (panics after 10 s, or
    /// with an install hint when `redis-server` is missing).
    pub fn start() -> RedisServer {
        Self::start_with(None)
    }

    /// A TLS-only server (`rediss://`) with the PEM files `cert.pem`, `key.pem` and `ca.pem`
    /// of `dir`; clients are not asked for certificates. Ready once its port accepts.
    pub fn start_tls(dir: &Path) -> RedisServer {
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        Self::start_with(Some(vec![
            "--tls-cert-file".into(),
            file("cert.pem"),
            "--tls-key-file".into(),
            file("key.pem"),
            "--tls-ca-cert-file".into(),
            file("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]))
    }

    fn start_with(tls: Option<Vec<String>>) -> RedisServer {
        // The probed port may be taken by someone else before the server binds it: retry.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("probe a free port")
                .port();
            let mut server = RedisServer {
                port,
                child: None,
                tls: tls.clone(),
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not come up on any probed port");
    }

    /// `redis://127.0.0.1:<port>/` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Kills the server (its data is gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (after `stop`), waiting for PING.
    pub fn restart(&mut self) {
        self.stop();
        // The port was just released by our own server; give the bind a few tries.
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
    }

    /// A synchronous client connection for assertions on the server's contents.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .expect("connect to the test redis-server")
    }

    /// Spawns on `self.port`; true once it answers PING (a TLS server: accepts), false if it
    /// exited (port taken).
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let ports = match &self.tls {
            None => vec!["--port".to_string(), port],
            Some(tls) => {
                let mut a = vec!["--port".into(), "0".into(), "--tls-port".into(), port];
                a.extend(tls.iter().cloned());
                a
            }
        };
        let child = Command::new(binary())
            .args(&ports)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server not found: install the Debian package (`apt-get install redis-server`; \
                 scripts/test.sh does it) or set BERRY_REDIS_SERVER"
            ),
            Err(e) => panic!("spawn redis-server: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            let ready = if self.tls.is_some() {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                redis::Client::open(self.url())
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                    .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                    .is_ok()
            };
            if ready {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "redis-server on port {} did not answer PING within 10 s",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a paused (stopped) server too.
        self.stop();
    }
}
