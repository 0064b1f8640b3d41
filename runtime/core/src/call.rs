//! What a policy call takes and gives, whichever engine runs it: the
//! [`Limits`] it runs under, the [`PolicyInput`] document, the [`Scored`]
//! ranking it answers, and every way it can fail, [`PolicyError`].
//!
//! **Tenant code never runs without a budget**: every call has a wall-clock
//! deadline and an operation (or fuel) budget, plus size caps on what goes in
//! and comes out.

use std::time::Duration;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::model::policy::{Action, Candidate};
use crate::model::profile::Profile;

/// Per-call limits for tenant code.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock budget of one policy call.
    pub deadline: Duration,
    /// Rhai operations one call may perform.
    pub rhai_max_operations: u64,
    /// Largest Rhai array a call may build, in items; strings and maps are
    /// capped tighter still (see `moment_engines::rhai_engine`).
    pub rhai_max_data: usize,
    /// Heap a Rhai call may hold beyond its input, in bytes.
    pub rhai_max_memory_bytes: usize,
    /// WASM fuel (roughly, instructions) one call may burn.
    pub wasm_fuel: u64,
    /// Largest linear memory a WASM policy may have, in bytes.
    pub wasm_memory_bytes: usize,
    /// Largest input document a WASM policy receives, in bytes of JSON.
    pub max_input_bytes: usize,
    /// Largest output a WASM policy may return, in bytes of JSON.
    pub max_output_bytes: usize,
    /// Largest policy source or module accepted at upload.
    pub max_code_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(20),
            rhai_max_operations: 1_000_000,
            rhai_max_data: 64 * 1024,
            rhai_max_memory_bytes: 32 * 1024 * 1024,
            wasm_fuel: 100_000_000,
            wasm_memory_bytes: 16 * 1024 * 1024,
            // Room for a 1,000-action catalog with its history.
            max_input_bytes: 1024 * 1024,
            max_output_bytes: 256 * 1024,
            max_code_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A tenant's own limits: each, when set, replaces the operator's default
/// for that tenant's calls, and may only be tighter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// Wall-clock budget of one policy call, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Rhai operations one call may perform (checked every 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhai_max_operations: Option<u64>,
    /// WASM fuel one call may burn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_fuel: Option<u64>,
    /// Largest WASM linear memory, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_memory_bytes: Option<usize>,
}

impl Limits {
    /// Refuses tenant limits that are zero or looser than these.
    pub fn check(&self, tenant: &TenantLimits) -> Result<(), String> {
        let within = |name: &str, value: Option<u64>, max: u64| match value {
            Some(v) if v == 0 || v > max => {
                Err(format!("limits.{name} must be between 1 and {max}"))
            }
            _ => Ok(()),
        };
        within(
            "deadline_ms",
            tenant.deadline_ms,
            self.deadline.as_millis() as u64,
        )?;
        within(
            "rhai_max_operations",
            tenant.rhai_max_operations,
            self.rhai_max_operations,
        )?;
        within("wasm_fuel", tenant.wasm_fuel, self.wasm_fuel)?;
        within(
            "wasm_memory_bytes",
            tenant.wasm_memory_bytes.map(|b| b as u64),
            self.wasm_memory_bytes as u64,
        )
    }

    /// These limits with a tenant's own applied.
    pub fn for_tenant(&self, tenant: &TenantLimits) -> Limits {
        Limits {
            deadline: tenant
                .deadline_ms
                .map_or(self.deadline, Duration::from_millis)
                .min(self.deadline),
            rhai_max_operations: tenant
                .rhai_max_operations
                .unwrap_or(u64::MAX)
                .min(self.rhai_max_operations),
            wasm_fuel: tenant.wasm_fuel.unwrap_or(u64::MAX).min(self.wasm_fuel),
            wasm_memory_bytes: tenant
                .wasm_memory_bytes
                .unwrap_or(usize::MAX)
                .min(self.wasm_memory_bytes),
            ..self.clone()
        }
    }
}

/// What one policy call used of its budget.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spent {
    /// Rhai operations performed, or WASM fuel burnt (roughly, instructions):
    /// what [`Limits::rhai_max_operations`] or [`Limits::wasm_fuel`] caps.
    pub operations: u64,
    /// Wall-clock time of the call, input encoding and output decoding included.
    pub elapsed: Duration,
}

/// The document a policy receives: the same for both engines.
#[derive(Clone, Serialize)]
pub struct PolicyInput<'a> {
    /// The customer being decided for.
    pub customer_id: &'a str,
    /// Life-cycle stage, if known.
    pub stage: Option<&'a str>,
    /// Channel asking, if given.
    pub channel: Option<&'a str>,
    /// Merged customer attributes.
    pub attributes: &'a Map<String, Value>,
    /// Request context (reason for the call, basket, page …).
    pub context: &'a Map<String, Value>,
    /// Actions the policy may choose from.
    pub candidates: Vec<&'a Candidate>,
    /// Contact history per action id.
    pub history: History<'a>,
    /// Decision time, ms since the Unix epoch.
    pub now_ms: u64,
}

/// The `history` document a policy receives: for each catalog action the
/// customer has seen, in catalog order, `{"impressions", "last_shown_ms"}`.
/// Serialized straight from the profile; no JSON map is built.
#[derive(Clone, Copy)]
pub struct History<'a> {
    profile: Option<&'a Profile>,
    catalog: &'a [Action],
}

/// One action's entry in [`History`].
#[derive(Serialize)]
struct Seen {
    impressions: u32,
    last_shown_ms: Option<u64>,
}

impl<'a> History<'a> {
    /// The history of `profile` (none without one) for `catalog`'s actions.
    pub fn new(profile: Option<&'a Profile>, catalog: &'a [Action]) -> Self {
        Self { profile, catalog }
    }

    /// Action ids with their entries, in catalog order.
    fn entries(&self) -> impl Iterator<Item = (&'a str, Seen)> + use<'a> {
        let (profile, catalog) = (self.profile, self.catalog);
        profile.into_iter().flat_map(move |p| {
            catalog.iter().filter_map(move |a| {
                let h = p.history.get(&a.id)?;
                let seen = Seen {
                    impressions: h.impressions,
                    last_shown_ms: h.last_shown_ms,
                };
                Some((a.id.as_str(), seen))
            })
        })
    }
}

impl Serialize for History<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (id, seen) in self.entries() {
            map.serialize_entry(id, &seen)?;
        }
        map.end()
    }
}

/// One action as scored by a policy, before arbitration.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// Action id (not yet checked against the candidates).
    pub id: String,
    /// The policy's score; higher is better.
    pub score: f64,
}

/// Why a policy call produced no usable ranking. The caller gets the
/// fallback actions; the reason is counted and logged.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    /// The wall-clock deadline passed.
    #[error("policy ran past its deadline")]
    Deadline,
    /// The operation or fuel budget ran out.
    #[error("policy exhausted its operation budget")]
    Fuel,
    /// The policy hit a memory or data-size limit.
    #[error("policy exceeded its memory limit")]
    Memory,
    /// The policy recursed too deeply.
    #[error("policy overflowed its call stack")]
    StackOverflow,
    /// The policy raised an error or trapped.
    #[error("policy failed: {0}")]
    Trap(String),
    /// The input document is larger than the policy may receive.
    #[error("policy input is {0} bytes, over the limit")]
    InputTooLarge(usize),
    /// The output is larger than allowed.
    #[error("policy output is too large")]
    OutputTooLarge,
    /// The host could not encode the policy's input (a bug of ours, not the
    /// policy's).
    #[error("encoding the policy's input failed: {0}")]
    Encoding(String),
    /// The output is not a ranking.
    #[error("policy output is malformed: {0}")]
    BadOutput(String),
    /// The stored code of this version no longer compiles (see the start-up log).
    #[error("policy version could not be loaded")]
    Unloadable,
    /// The output names an action that is not a candidate.
    #[error("policy returned action {0:?}, which is not a candidate")]
    UnknownAction(String),
    /// The tenant already had its share of policy threads busy and its
    /// queue full, or the call waited past its deadline for a thread; the
    /// policy was not run.
    #[error("policy not run: this tenant's decisions are over their share of the server")]
    Overloaded,
    /// The version's breaker is open after repeated failures; the
    /// policy was not run (see [`crate::breaker`]).
    #[error("policy paused after repeated failures")]
    CircuitOpen,
}

impl PolicyError {
    /// Short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyError::Deadline => "deadline",
            PolicyError::Fuel => "fuel",
            PolicyError::Memory => "memory",
            PolicyError::StackOverflow => "stack_overflow",
            PolicyError::Trap(_) => "trap",
            PolicyError::InputTooLarge(_) => "input_too_large",
            PolicyError::OutputTooLarge => "output_too_large",
            PolicyError::Encoding(_) => "input_encoding",
            PolicyError::BadOutput(_) => "bad_output",
            PolicyError::UnknownAction(_) => "unknown_action",
            PolicyError::Unloadable => "unloadable",
            PolicyError::CircuitOpen => "circuit_open",
            PolicyError::Overloaded => "overloaded",
        }
    }
}
