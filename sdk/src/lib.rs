//! Write a Moment policy as a plain Rust function and ship it as WebAssembly.
//!
//! A policy scores the candidate actions (offers, messages, service actions)
//! for one customer at one moment of truth. You write
//! `fn(&Context) -> Vec<Ranked>`; [`export_policy!`] turns it into a core
//! module that speaks Moment's WASM ABI v1 (`memory`, `moment_alloc`,
//! `moment_decide`, no imports), so the JSON, the memory handoff and the
//! error answers are never your concern. The host orders your answer by
//! score, highest first, and keeps the caller's limit; leave out any action
//! you never want shown.
//!
//! ```
//! use moment_sdk::{Context, Ranked, export_policy, priority};
//!
//! /// Discounts for customers about to leave, scaled by how long they stayed.
//! fn decide(ctx: &Context) -> Vec<Ranked> {
//!     let tenure = ctx.attr_f64("tenure_months").unwrap_or(0.0);
//!     let loyal = if tenure >= 24.0 { 1.2 } else { 1.0 };
//!     let price_call = ctx.context_str("reason") == Some("price");
//!     ctx.candidates
//!         .iter()
//!         .filter(|c| ctx.in_stage("at-risk") || !c.has_tag("discount"))
//!         .map(|c| {
//!             let propensity = if price_call && c.has_tag("price") { 0.6 } else { 0.1 };
//!             Ranked::new(&c.id, priority(propensity, c.margin(), loyal))
//!         })
//!         .collect()
//! }
//!
//! export_policy!(decide);
//!
//! # fn main() {
//! let ctx: Context = serde_json::from_str(r#"{
//!     "customer_id": "c-42", "stage": "at-risk", "channel": "call-center",
//!     "attributes": {"tenure_months": 30}, "context": {"reason": "price"},
//!     "candidates": [
//!         {"id": "retention-20", "kind": "offer", "value": 20.0, "cost": 5.0, "tags": ["discount", "price"]},
//!         {"id": "generic-welcome", "kind": "message", "value": 1.0, "tags": []}
//!     ],
//!     "history": {}, "now_ms": 1700000000000
//! }"#).unwrap();
//! let ranked = decide(&ctx);
//! assert_eq!(ranked[0].id, "retention-20");
//! assert!(ranked[0].score > ranked[1].score);
//! # }
//! ```
//!
//! Build it with `crate-type = ["cdylib", "rlib"]` and
//! `cargo build --release --target wasm32-unknown-unknown`; the `rlib` lets
//! native tests call `decide` directly, and [`testing`] replays a table of
//! cases the way the host would. The exports exist only on wasm32, so a
//! native build links any number of policies side by side.

mod context;
mod ranked;

pub mod abi;
pub mod testing;

pub use context::{Candidate, Context, History};
pub use ranked::{Ranked, priority};

/// Exports a policy function as the WASM ABI v1 entry points.
///
/// `export_policy!(decide)` takes the path of a function usable as
/// `FnOnce(&Context) -> Vec<Ranked>` and, on wasm32 only, defines:
///
/// - the global allocator: a bump allocator that never frees
///   (`lol_alloc::LeakingAllocator`), since the host runs one decision per
///   instance and discards its memory after; everything a decision
///   allocates counts against the memory cap (16 MiB by default);
/// - `moment_alloc(len: i32) -> i32`: reserves the input buffer
///   (`abi::export_alloc`, wasm32 only);
/// - `moment_decide(ptr: i32, len: i32) -> i64`: parses the input, calls the
///   function and returns the packed output (`abi::export_decide`, wasm32 only).
///
/// Invoke it once per crate, at the crate root.
#[macro_export]
macro_rules! export_policy {
    ($decide:path) => {
        /// One decision per instance: allocation is a pointer bump and
        /// nothing is ever freed; the host discards the whole memory after.
        #[cfg(target_arch = "wasm32")]
        #[global_allocator]
        #[allow(unsafe_code)]
        // SAFETY: a wasm32-unknown-unknown module has one thread.
        static ALLOCATOR: $crate::abi::lol_alloc::AssumeSingleThreaded<
            $crate::abi::lol_alloc::LeakingAllocator,
        > = unsafe {
            $crate::abi::lol_alloc::AssumeSingleThreaded::new(
                $crate::abi::lol_alloc::LeakingAllocator::new(),
            )
        };

        /// ABI v1: reserves `len` bytes for the input document.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn moment_alloc(len: i32) -> i32 {
            $crate::abi::export_alloc(len)
        }

        /// ABI v1: runs the policy on the input at `ptr`/`len` and returns the
        /// output's address (high 32 bits) and length (low 32 bits).
        ///
        /// # Safety
        ///
        /// `ptr` and `len` must come from one `moment_alloc(len)` call, used once.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn moment_decide(ptr: i32, len: i32) -> i64 {
            // SAFETY: the host passes back exactly the buffer it got from
            // `moment_alloc(len)`, once, as ABI v1 requires.
            unsafe { $crate::abi::export_decide(ptr, len, $decide) }
        }
    };
}
