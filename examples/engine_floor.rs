//! The engine floor for the load benchmark: a Pingora proxy with no hooks but
//! `upstream_peer`, same Pingora version and server conf as the gateway. Whatever the
//! gateway costs above this is the gateway's own.
//!
//! ```text
//! engine_floor LISTEN UPSTREAM [pingora flags, e.g. -c conf.yaml]
//! ```

use async_trait::async_trait;
use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;

/// The gateway's allocator, so the floor and the gateway are compared like with like.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at start-up: a background thread returns freed pages to the
/// system (after `dirty_decay_ms`, 10 s) while the process idles. Without it pages are only
/// returned when the process allocates again, so an idle gateway kept the RSS of its last
/// burst (thousands of streams released, then quiet).
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf = MallocConf(c"background_thread:true".as_ptr());

/// The `const char *` jemalloc reads.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);
// SAFETY: points to a static, immutable C string.
unsafe impl Sync for MallocConf {}

#[cfg(feature = "heap-profile")]
#[path = "../bench/heap_dump.rs"]
mod heap_dump;

struct Floor(SocketAddr);

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora_error::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "heap-profile")]
    heap_dump::install();
    let mut args = std::env::args().skip(1);
    let usage = "usage: engine_floor LISTEN UPSTREAM [pingora flags]";
    let listen = args.next().ok_or(usage)?;
    let upstream: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let opt =
        <Opt as clap::Parser>::parse_from(std::iter::once("engine_floor".to_string()).chain(args));
    let mut server = Server::new(Some(opt))?;
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, Floor(upstream));
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever()
}
