//! The ceiling for `scripts/load.sh`: a bare axum server whose one route
//! parses a decide body into the same `DecideRequest` type Moment uses and
//! answers a small fixed JSON — no auth, no profile, no policy, no log.
//! Moment's decide throughput is reported as a ratio of this one's, measured
//! in the same run on the same machine.
//!
//! Run: `cargo run --release -p moment-server --example ceiling -- 127.0.0.1:0`
//! (prints `ceiling listening on http://ADDR` first).

use axum::routing::post;
use axum::{Json, Router};
use moment_core::pipeline::DecideRequest;
use serde_json::{Value, json};

async fn decide(Json(request): Json<DecideRequest>) -> Json<Value> {
    Json(json!({"point": request.point, "actions": [], "fallback": false}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("ceiling listening on http://{}", listener.local_addr()?);
    axum::serve(listener, Router::new().route("/v1/decide", post(decide))).await
}
