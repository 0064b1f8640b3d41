//! The one typed settings struct, from flags and `MOMENT_*` environment
//! variables, validated at start.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use moment_core::call::Limits;

use crate::fairness::Shares;
use crate::quotas::Quotas;
use crate::serve::Timeouts;
use moment_core::model::policy::MAX_CATALOG_LEN;

/// Shortest root token accepted.
pub const MIN_ROOT_TOKEN_LEN: usize = 16;

/// Settings of `moment serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MOMENT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the embedded store, and of compiled policy modules.
    #[arg(long, env = "MOMENT_DATA", default_value = "./moment-data")]
    pub data: PathBuf,
    /// PostgreSQL URL of the cluster store (with `--redis`); without both,
    /// the embedded store under `--data` is used.
    #[arg(long, env = "MOMENT_POSTGRES_URL", requires = "redis")]
    pub postgres: Option<String>,
    /// Redis URL of the cluster store (with `--postgres`).
    #[arg(long, env = "MOMENT_REDIS_URL", requires = "postgres")]
    pub redis: Option<String>,
    /// Prefix of this cluster's Redis keys, to share one Redis between clusters.
    #[arg(long, env = "MOMENT_REDIS_PREFIX", default_value = "moment")]
    pub redis_prefix: String,
    /// Create (or re-key) a `demo` tenant with the reference policies and print its keys.
    #[arg(long)]
    pub demo: bool,
    /// The operator's token for creating tenants (at least 16 characters),
    /// from `MOMENT_ROOT_TOKEN` only: a flag would show it in `ps` and shell history.
    #[arg(skip = std::env::var("MOMENT_ROOT_TOKEN").ok())]
    pub root_token: Option<String>,
    /// Wall-clock budget of one policy call, in milliseconds.
    #[arg(long, env = "MOMENT_POLICY_DEADLINE_MS", default_value_t = 20)]
    pub policy_deadline_ms: u64,
    /// Rhai operations one policy call may perform.
    #[arg(long, env = "MOMENT_RHAI_MAX_OPERATIONS", default_value_t = 1_000_000)]
    pub rhai_max_operations: u64,
    /// WASM fuel (about one unit per instruction) one policy call may burn.
    #[arg(long, env = "MOMENT_WASM_FUEL", default_value_t = 100_000_000)]
    pub wasm_fuel: u64,
    /// Largest linear memory of a WASM policy, in bytes.
    #[arg(long, env = "MOMENT_WASM_MEMORY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub wasm_memory_bytes: usize,
    /// Largest request body, in bytes (policy uploads excepted).
    #[arg(long, env = "MOMENT_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest policy source or WASM module, in bytes.
    #[arg(long, env = "MOMENT_MAX_CODE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_code_bytes: usize,
    /// How many customer profiles to keep in memory.
    #[arg(long, env = "MOMENT_PROFILE_CACHE_CUSTOMERS", default_value = "100000")]
    pub profile_cache_customers: NonZeroUsize,
    /// How many recent decisions to keep in memory for outcome lookups.
    #[arg(long, env = "MOMENT_RECENT_DECISIONS", default_value = "100000")]
    pub recent_decisions: NonZeroUsize,
    /// How many compiled policy versions to keep besides the live ones.
    #[arg(long, env = "MOMENT_POLICY_CACHE_VERSIONS", default_value = "4096")]
    pub policy_cache_versions: NonZeroUsize,
    /// Time a client has to send a request's headers, in milliseconds; also
    /// how long a keep-alive connection may sit idle.
    #[arg(long, env = "MOMENT_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// Time a client may leave between two chunks of a request body, in milliseconds.
    #[arg(long, env = "MOMENT_BODY_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,
    /// Most client connections open at once; more wait to be accepted.
    #[arg(long, env = "MOMENT_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Bytes of decisions waiting to be written to the store, at most; more
    /// are not logged (and counted) until the store catches up.
    #[arg(long, env = "MOMENT_DECISION_LOG_QUEUE_BYTES", default_value_t = 64 << 20)]
    pub decision_log_queue_bytes: usize,
    /// Days decisions and outcomes are kept in the logs.
    #[arg(long, env = "MOMENT_LOG_RETENTION_DAYS", default_value_t = 90)]
    pub log_retention_days: u64,
    /// Seconds between two prunings of the logs.
    #[arg(long, env = "MOMENT_LOG_PRUNE_EVERY_S", default_value_t = 3600)]
    pub log_prune_every_s: u64,
    /// Policies (decision points) one tenant may have.
    #[arg(long, env = "MOMENT_MAX_POLICIES", default_value_t = Quotas::default().policies)]
    pub max_policies: usize,
    /// Versions one policy may have.
    #[arg(long, env = "MOMENT_MAX_VERSIONS", default_value_t = Quotas::default().versions)]
    pub max_versions: usize,
    /// Actions in one version's catalog.
    #[arg(long, env = "MOMENT_MAX_CATALOG_ACTIONS", default_value_t = Quotas::default().catalog_actions)]
    pub max_catalog_actions: usize,
    /// Experiments one tenant may have, running or stopped.
    #[arg(long, env = "MOMENT_MAX_EXPERIMENTS", default_value_t = Quotas::default().experiments)]
    pub max_experiments: usize,
    /// Active keys one tenant may have.
    #[arg(long, env = "MOMENT_MAX_KEYS", default_value_t = Quotas::default().keys)]
    pub max_keys: usize,
    /// Threads policies run on [default: one per core, and one more].
    #[arg(long, env = "MOMENT_POLICY_THREADS")]
    pub policy_threads: Option<usize>,
    /// Most policy calls of one tenant running at once [default: one per core].
    #[arg(long, env = "MOMENT_TENANT_POLICY_THREADS")]
    pub tenant_policy_threads: Option<usize>,
    /// Most policy calls of one tenant waiting for a thread; more are
    /// answered with the fallback at once (reason `overloaded`).
    #[arg(long, env = "MOMENT_TENANT_QUEUE", default_value_t = 64)]
    pub tenant_queue: usize,
    /// Requests per second one tenant may send to this server, with a burst
    /// of one second's worth; more are answered 429 before any work.
    /// 0 means unlimited. Set it where tenants share a server.
    #[arg(long, env = "MOMENT_TENANT_RATE_LIMIT", default_value_t = 0)]
    pub tenant_rate_limit: u32,
    /// How long in-flight requests have to finish after SIGTERM, in milliseconds.
    #[arg(long, env = "MOMENT_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Root token too short to be a secret.
    #[error("MOMENT_ROOT_TOKEN must be at least {MIN_ROOT_TOKEN_LEN} characters")]
    WeakRootToken,
    /// Only one of the cluster store's two URLs.
    #[error(
        "the cluster store needs both --postgres and --redis (MOMENT_POSTGRES_URL, MOMENT_REDIS_URL)"
    )]
    HalfCluster,
    /// A Redis key prefix that would mix with other keys.
    #[error("--redis-prefix must be 1 to 64 characters, none of them whitespace")]
    BadRedisPrefix,
    /// A zero or absurd limit.
    #[error("{0} must be between {1} and {2}")]
    OutOfRange(&'static str, u64, u64),
}

impl Settings {
    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self
            .root_token
            .as_ref()
            .is_some_and(|t| t.len() < MIN_ROOT_TOKEN_LEN)
        {
            return Err(SettingsError::WeakRootToken);
        }
        if self.postgres.is_some() != self.redis.is_some() {
            return Err(SettingsError::HalfCluster);
        }
        if self.redis_prefix.is_empty()
            || self.redis_prefix.len() > 64
            || self.redis_prefix.contains(char::is_whitespace)
        {
            return Err(SettingsError::BadRedisPrefix);
        }
        if !(1..=10_000).contains(&self.policy_deadline_ms) {
            return Err(SettingsError::OutOfRange("policy_deadline_ms", 1, 10_000));
        }
        if !(1..=1_000_000_000).contains(&self.rhai_max_operations) {
            return Err(SettingsError::OutOfRange(
                "rhai_max_operations",
                1,
                1_000_000_000,
            ));
        }
        if !(1_000..=10_000_000_000).contains(&self.wasm_fuel) {
            return Err(SettingsError::OutOfRange(
                "wasm_fuel",
                1_000,
                10_000_000_000,
            ));
        }
        if !(64 << 10..=1 << 30).contains(&self.wasm_memory_bytes) {
            return Err(SettingsError::OutOfRange(
                "wasm_memory_bytes",
                64 << 10,
                1 << 30,
            ));
        }
        if !(1024..=64 << 20).contains(&self.max_body_bytes) {
            return Err(SettingsError::OutOfRange("max_body_bytes", 1024, 64 << 20));
        }
        if !(1024..=64 << 20).contains(&self.max_code_bytes) {
            return Err(SettingsError::OutOfRange("max_code_bytes", 1024, 64 << 20));
        }
        for (name, ms) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("drain_timeout_ms", self.drain_timeout_ms),
        ] {
            if !(100..=600_000).contains(&ms) {
                return Err(SettingsError::OutOfRange(name, 100, 600_000));
            }
        }
        if !(1 << 20..=16 << 30).contains(&self.decision_log_queue_bytes) {
            return Err(SettingsError::OutOfRange(
                "decision_log_queue_bytes",
                1 << 20,
                16 << 30,
            ));
        }
        if !(1..=36_500).contains(&self.log_retention_days) {
            return Err(SettingsError::OutOfRange("log_retention_days", 1, 36_500));
        }
        if !(1..=86_400).contains(&self.log_prune_every_s) {
            return Err(SettingsError::OutOfRange("log_prune_every_s", 1, 86_400));
        }
        let quotas = self.quotas();
        for (name, n) in [
            ("max_policies", quotas.policies),
            ("max_versions", quotas.versions),
            ("max_experiments", quotas.experiments),
            ("max_keys", quotas.keys),
        ] {
            if !(1..=1_000_000).contains(&n) {
                return Err(SettingsError::OutOfRange(name, 1, 1_000_000));
            }
        }
        // Three keys come with every tenant.
        if quotas.keys < 3 {
            return Err(SettingsError::OutOfRange("max_keys", 3, 1_000_000));
        }
        if !(1..=MAX_CATALOG_LEN).contains(&quotas.catalog_actions) {
            return Err(SettingsError::OutOfRange(
                "max_catalog_actions",
                1,
                MAX_CATALOG_LEN as u64,
            ));
        }
        let shares = self.shares();
        for (name, n) in [
            ("policy_threads", shares.threads),
            ("tenant_policy_threads", shares.per_tenant),
            ("tenant_queue", shares.queue),
        ] {
            if !(1..=4096).contains(&n) {
                return Err(SettingsError::OutOfRange(name, 1, 4096));
            }
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(SettingsError::OutOfRange("max_connections", 1, 1_000_000));
        }
        Ok(())
    }

    /// The per-tenant quotas.
    pub fn quotas(&self) -> Quotas {
        Quotas {
            policies: self.max_policies,
            versions: self.max_versions,
            catalog_actions: self.max_catalog_actions,
            experiments: self.max_experiments,
            keys: self.max_keys,
        }
    }

    /// How the policy threads are shared.
    pub fn shares(&self) -> Shares {
        let machine = Shares::for_machine();
        Shares {
            threads: self.policy_threads.unwrap_or(machine.threads),
            per_tenant: self.tenant_policy_threads.unwrap_or(machine.per_tenant),
            queue: self.tenant_queue,
        }
    }

    /// The listener's timeouts and connection cap.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header_read: Duration::from_millis(self.header_read_timeout_ms),
            body_read: Duration::from_millis(self.body_read_timeout_ms),
            max_connections: self.max_connections,
            drain: Duration::from_millis(self.drain_timeout_ms),
        }
    }

    /// The policy limits these settings give.
    pub fn limits(&self) -> Limits {
        Limits {
            deadline: Duration::from_millis(self.policy_deadline_ms),
            rhai_max_operations: self.rhai_max_operations,
            wasm_fuel: self.wasm_fuel,
            wasm_memory_bytes: self.wasm_memory_bytes,
            max_code_bytes: self.max_code_bytes,
            ..Limits::default()
        }
    }
}
