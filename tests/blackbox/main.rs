//! Black-box tests: each starts the real `moment` binary on port 0 with its
//! own data directory and talks to it over HTTP, as a user would.

#![allow(clippy::unwrap_used, missing_docs)]

/// This suite runs every server on the embedded store.
const CLUSTER: bool = false;

mod helpers;

mod bad_input;
#[cfg(browser_tests)]
mod browser;
mod cli;
mod console;
#[cfg(browser_tests)]
mod console_browser;
mod cors_and_ops;
mod decide;
mod demo;
mod eligibility;
mod experiments;
mod hardening;
mod hostile;
mod limits;
mod outcomes;
mod policies;
mod restart;
mod tenants;
mod upgrade;
mod versions;
mod walls;
mod wasm;
#[cfg(browser_tests)]
mod web_example_browser;
