//! Moment's runtime: the `moment` server and CLI.
//!
//! A caller asks `POST /v1/decide` which actions fit a customer now; Moment
//! runs the tenant's policy (Rhai or WebAssembly) over the tenant's catalog
//! and answers with ranked actions. Modules, outermost first: [`app`] starts
//! the server, [`http`] is the only module that knows HTTP, [`service`] does
//! writes, [`pipeline`] decides, [`engine`] runs tenant code under limits,
//! [`registry`] holds what decide reads in memory, [`store`] persists.
//! See `ARCHITECTURE.md` at the repository root.

pub mod app;
pub mod breaker;
pub mod clock;
pub mod decisions;
pub mod demo;
pub mod engine;
pub mod http;
pub mod model;
pub mod pipeline;
pub mod profiles;
pub mod registry;
pub mod replication;
pub mod service;
pub mod settings;
pub mod stats;
pub mod store;
pub mod telemetry;
