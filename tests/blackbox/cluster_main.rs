//! The black-box suite again, on the cluster store: every server runs with
//! `--postgres` and `--redis`, each test on a fresh PostgreSQL database and
//! Redis key prefix; plus the tests only a cluster has (`cluster`): several
//! replicas on one store, and Redis going away; and the `Store` contract
//! on the cluster store (`store_contract`).
//!
//! Compiled only when `MOMENT_TEST_POSTGRES` (a URL of an existing
//! database, used to create the fresh ones) and `MOMENT_TEST_REDIS` are set
//! (see `runtime/server/build.rs`); `.ci/run` sets both.

#![cfg(cluster_tests)]
#![allow(clippy::unwrap_used, missing_docs)]

/// This suite runs every server on the cluster store.
const CLUSTER: bool = true;

mod helpers;

mod bad_input;
mod cluster;
mod cors_and_ops;
mod decide;
mod demo;
mod eligibility;
mod experiments;
mod hostile;
mod limits;
mod outcomes;
mod policies;
mod restart;
mod store_contract;
mod tenants;
mod walls;
mod wasm;
