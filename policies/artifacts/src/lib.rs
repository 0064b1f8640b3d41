//! Moment's reference policies and test inputs for its engines: the
//! reference policies compiled to WebAssembly (committed as
//! `policies/*/policy.wasm`; `tests/rebuild.rs` checks they are what their
//! sources build to), the Rhai twin of the telco policy, each policy's
//! `bundle.json` and `cases.json`, and the directory of hostile `.wat`
//! modules in `tests/corpus`.
//!
//! Add it as a dev-dependency and upload these bytes the way a tenant would:
//!
//! ```
//! use moment_policy_artifacts::{TELCO_RETENTION_BUNDLE, TELCO_RETENTION_WASM};
//!
//! assert_eq!(&TELCO_RETENTION_WASM[..4], b"\0asm");
//! assert!(TELCO_RETENTION_BUNDLE.contains("generic-welcome"));
//! ```

/// The telco retention policy (`policies/telco-retention`) as a WASM ABI v1
/// core module: exports `memory`, `moment_alloc`, `moment_decide`; no
/// imports.
pub const TELCO_RETENTION_WASM: &[u8] = include_bytes!("../../telco-retention/policy.wasm");

/// The same telco retention policy in Rhai (`fn decide(ctx)`); it ranks every
/// input exactly as [`TELCO_RETENTION_WASM`] does.
pub const TELCO_RETENTION_RHAI: &str = include_str!("../../telco-retention/policy.rhai");

/// The telco policy's bundle: `{"catalog":[…],"fallback":["generic-welcome"]}`.
pub const TELCO_RETENTION_BUNDLE: &str = include_str!("../../telco-retention/bundle.json");

/// The telco policy's cases: `[{"name","request","expect"}]`, where
/// `request` is a decide request without `point` and `expect` the action ids
/// the caller must get, in order, when the candidates are the whole catalog.
pub const TELCO_RETENTION_CASES: &str = include_str!("../../telco-retention/cases.json");

/// The website's hero banner policy (`policies/web-hero`) in Rhai; the demo
/// serves it for the web example.
pub const WEB_HERO_RHAI: &str = include_str!("../../web-hero/policy.rhai");

/// The web hero policy's bundle: `{"catalog":[…],"fallback":["newsletter"]}`.
pub const WEB_HERO_BUNDLE: &str = include_str!("../../web-hero/bundle.json");

/// The kiosk basket policy (`policies/kiosk-basket`) as a WASM ABI v1 core
/// module: exports `memory`, `moment_alloc`, `moment_decide`; no imports.
pub const KIOSK_BASKET_WASM: &[u8] = include_bytes!("../../kiosk-basket/policy.wasm");

/// The kiosk policy's bundle: `{"catalog":[…],"fallback":["generic-welcome"]}`.
pub const KIOSK_BASKET_BUNDLE: &str = include_str!("../../kiosk-basket/bundle.json");

/// The kiosk policy's cases, shaped like [`TELCO_RETENTION_CASES`].
pub const KIOSK_BASKET_CASES: &str = include_str!("../../kiosk-basket/cases.json");

/// The hostile corpus: `.wat` modules that loop, trap, exhaust memory or
/// the stack, return garbage or import WASI. `README.md` there says what
/// the host must do with each; compile them with the `wat` crate.
pub const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus");
