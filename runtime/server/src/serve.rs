//! The HTTP listener: how long a client may take, how many may be
//! connected, and how shutting down ends.
//!
//! `axum::serve` waits for a client forever; one that sends a header a byte
//! a second holds its connection, a slot and, at shutdown, the drain. Here
//! each connection is served by hyper with a header-read timeout (which also
//! ends a keep-alive connection idle that long), request bodies have a read
//! timeout between chunks, at most [`Timeouts::max_connections`] are open at
//! once (the rest wait in the kernel's accept queue), and on SIGTERM
//! in-flight requests get [`Timeouts::drain`] to finish before their
//! connections are closed.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_http::timeout::RequestBodyTimeout;

/// The listener's limits (`--header-read-timeout-ms` and the rest).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Time a client has to send a request's headers; also how long a
    /// keep-alive connection may sit idle.
    pub header_read: Duration,
    /// Time a client may leave between two chunks of a request body.
    pub body_read: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long in-flight requests have to finish after SIGTERM.
    pub drain: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Timeouts,
    shutdown: impl Future<Output = ()>,
) {
    let service = RequestBodyTimeout::new(router, limits.body_read);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(service.clone());
        let connection = graceful.watch(
            builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned(),
        );
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, error = %error, "connection ended");
            }
            drop(slot);
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(open, "shutting down: draining in-flight requests");
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_ms = limits.drain.as_millis() as u64,
            "requests still running after the drain period; closing their connections"
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
