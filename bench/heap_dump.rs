//! Bench-only (the `heap-profile` feature): `kill -USR2 <pid>` makes jemalloc write a heap
//! profile (`prof.dump`, named after the `prof_prefix` of `_RJEM_MALLOC_CONF`), so a
//! profile can be taken at a chosen moment, e.g. while thousands of streams are held
//! (scripts/stream-memory.sh).

use std::ptr::null_mut;

/// Blocks SIGUSR2 in the calling thread and every thread it starts afterwards, and starts
/// the thread that waits for it. Call first thing in `main`, before any other thread.
pub fn install() {
    // SAFETY: a zeroed sigset_t is a valid argument for sigemptyset, which initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, initialised signal set owned by this frame.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, null_mut());
    }
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: `set` and `sig` are valid for the call.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 && sig == libc::SIGUSR2 {
            // SAFETY: "prof.dump" takes no old value and an optional file name (none here:
            // jemalloc picks one from prof_prefix).
            let rc = unsafe {
                tikv_jemalloc_sys::mallctl(
                    c"prof.dump".as_ptr(),
                    null_mut(),
                    null_mut(),
                    null_mut(),
                    0,
                )
            };
            eprintln!("heap profile dump: mallctl(prof.dump) = {rc}");
        }
    });
}
