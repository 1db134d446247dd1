//! A log sink that keeps `write(2)` off the request path.
//!
//! `env_logger` writes and flushes every record. Once the server runs, log lines (the
//! access log above all) are appended to an in-memory buffer instead, and a background
//! thread writes the buffer to stderr every [`FLUSH_EVERY`] (or sooner when it grows past
//! [`FLUSH_BYTES`]). Before [`start_background`] is called — start-up, and the moment of
//! `-d`'s fork — every record goes straight to stderr, so no thread or lock state crosses
//! the fork. Lines written in the last few milliseconds before an abrupt exit may be lost;
//! graceful exits call [`flush`].

use once_cell::sync::Lazy;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Longest time a line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Buffer size that wakes the writer early.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// Beyond this the buffer is written synchronously (the writer thread fell behind).
const MAX_BUFFERED: usize = 4 * 1024 * 1024;

struct Shared {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
    background: AtomicBool,
}

static SHARED: Lazy<Shared> = Lazy::new(|| Shared {
    buf: Mutex::new(Vec::with_capacity(FLUSH_BYTES)),
    wake: Condvar::new(),
    background: AtomicBool::new(false),
});

/// The writer to give `env_logger` (`Target::Pipe`). Cheap; all state is shared.
pub struct LogSink;

impl Write for LogSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let s = &*SHARED;
        if !s.background.load(Ordering::Acquire) {
            return std::io::stderr().lock().write(data);
        }
        let mut buf = s.buf.lock().unwrap_or_else(|e| e.into_inner());
        if buf.len() + data.len() > MAX_BUFFERED {
            let pending = std::mem::take(&mut *buf);
            drop(buf);
            let mut err = std::io::stderr().lock();
            err.write_all(&pending)?;
            return err.write(data);
        }
        buf.extend_from_slice(data);
        if buf.len() >= FLUSH_BYTES {
            s.wake.notify_one();
        }
        Ok(data.len())
    }

    /// Records are flushed by the background writer; this is a no-op once it runs.
    fn flush(&mut self) -> std::io::Result<()> {
        if SHARED.background.load(Ordering::Acquire) {
            Ok(())
        } else {
            std::io::stderr().flush()
        }
    }
}

/// Switches to buffered writing with a background writer thread. Call in the process that
/// serves (after any fork). Idempotent.
pub fn start_background() {
    let s = &*SHARED;
    if s.background.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(|| loop {
            let s = &*SHARED;
            let pending = {
                let buf = s.buf.lock().unwrap_or_else(|e| e.into_inner());
                let (mut buf, _) = s
                    .wake
                    .wait_timeout_while(buf, FLUSH_EVERY, |b| b.len() < FLUSH_BYTES)
                    .unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut *buf)
            };
            if !pending.is_empty() {
                let _ = std::io::stderr().lock().write_all(&pending);
            }
        });
    if spawned.is_err() {
        s.background.store(false, Ordering::Release);
    }
}

/// Writes everything buffered now (before a deliberate exit).
pub fn flush() {
    let pending = std::mem::take(&mut *SHARED.buf.lock().unwrap_or_else(|e| e.into_inner()));
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&pending);
    let _ = err.flush();
}
