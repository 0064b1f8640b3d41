//! Moment's domain, free of I/O: the model (names, keys, catalogs and
//! bundles, contact rules, profiles, outcomes, experiments), what a policy
//! call takes and gives ([`call`]), the decide pipeline's pure steps
//! ([`pipeline`]), the per-version circuit breaker, the experiment
//! statistics and the clock.
//!
//! Every other crate of the server builds on this one; it depends only on
//! `moment-targeting`. With the `openapi` feature its request and response
//! types describe themselves for the server's OpenAPI document.

pub mod breaker;
pub mod call;
pub mod clock;
pub mod model;
pub mod pipeline;
pub mod stats;
