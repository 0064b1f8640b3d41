//! Moment's server: the `moment` binary and what only a running server
//! needs.
//!
//! A caller asks `POST /v1/decide` which actions fit a customer now; Moment
//! runs the tenant's policy (Rhai or WebAssembly) over the tenant's catalog
//! and answers with ranked actions. Modules, outermost first: [`app`] starts
//! the server, [`http`] is the only module that knows HTTP, [`service`] does
//! writes, [`pipeline`] decides (around `moment_core::pipeline`'s pure
//! steps and `moment_engines`), [`registry`] holds what decide reads in
//! memory, [`profiles`] caches customers and [`decisions`] logs decisions in
//! front of the store (`moment_store`, `moment_cluster`). See
//! `ARCHITECTURE.md` at the repository root.

pub mod app;
pub mod cli;
pub mod console;
pub mod decisions;
pub mod demo;
pub mod fairness;
pub mod http;
pub mod outcomes;
pub mod pipeline;
pub mod profiles;
pub mod quotas;
pub mod registry;
pub mod replication;
pub mod retention;
pub mod serve;
pub mod service;
pub mod settings;
pub mod telemetry;
