//! Recording outcomes: checking each against its decision, deduplication
//! keys, and the flush that keeps an accepted outcome from outliving its
//! decision. The HTTP handler only decodes the body and maps the answer.

use moment_core::clock::now_ms;
use moment_core::model::Name;
use moment_core::model::outcome::{OutcomeEvent, OutcomeType, default_dedup_key};
use moment_core::model::text::{TextError, check_id};
use moment_store::{RecordedOutcomes, StoreError};
use serde::Deserialize;

use crate::decisions::{DecisionLog, Unflushed};
use crate::profiles::Profiles;
use crate::telemetry;

/// Most events in one batch.
pub const MAX_BATCH: usize = 1000;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// Longest decision or action id an outcome may name, in bytes.
pub const MAX_ID_LEN: usize = 256;
pub use moment_core::model::outcome::MAX_VALUE;

/// One outcome as a caller reports it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// The decision it follows.
    pub decision_id: String,
    /// The action concerned (one the decision returned).
    pub action_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: OutcomeType,
    /// Business value, e.g. revenue.
    #[serde(default)]
    pub value: Option<f64>,
    /// Makes client retries safe; defaults to decision, action and type.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Why a batch of outcomes was not stored. Nothing of the batch was.
#[derive(Debug, thiserror::Error)]
pub enum OutcomeError {
    /// An outcome is invalid; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// An outcome names a decision this tenant never made (or one too old
    /// to be found).
    #[error("no decision {0:?}")]
    UnknownDecision(String),
    /// The decisions the outcomes follow could not be confirmed stored.
    #[error(transparent)]
    Unflushed(#[from] Unflushed),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks and stores a batch of `tenant`'s outcomes, all or nothing; counts
/// them. Retried outcomes (same idempotency key, or the same decision,
/// action and type) are counted as duplicates, not again.
pub async fn record(
    decisions: &DecisionLog,
    profiles: &Profiles,
    tenant: &Name,
    outcomes: Vec<Outcome>,
) -> Result<RecordedOutcomes, OutcomeError> {
    if outcomes.is_empty() || outcomes.len() > MAX_BATCH {
        return Err(OutcomeError::Invalid(format!(
            "send 1 to {MAX_BATCH} events"
        )));
    }
    let at_ms = now_ms();
    let mut events = Vec::with_capacity(outcomes.len());
    for (i, o) in outcomes.into_iter().enumerate() {
        if o.value
            .is_some_and(|v| !(-MAX_VALUE..=MAX_VALUE).contains(&v))
        {
            return Err(OutcomeError::Invalid(format!(
                "events[{i}].value must be a number between -{MAX_VALUE:e} and {MAX_VALUE:e}"
            )));
        }
        let text = |e: TextError| OutcomeError::Invalid(format!("events[{i}]: {e}"));
        check_id("decision_id", &o.decision_id, MAX_ID_LEN).map_err(text)?;
        check_id("action_id", &o.action_id, MAX_ID_LEN).map_err(text)?;
        if let Some(key) = &o.idempotency_key {
            check_id("idempotency_key", key, MAX_IDEMPOTENCY_KEY_LEN).map_err(text)?;
        }
        let decision = decisions
            .find(tenant, &o.decision_id)
            .await?
            .ok_or_else(|| OutcomeError::UnknownDecision(o.decision_id.clone()))?;
        if !decision.actions.contains(&o.action_id) {
            return Err(OutcomeError::Invalid(format!(
                "action {:?} was not returned by decision {:?}",
                o.action_id, o.decision_id
            )));
        }
        let dedup_key = o
            .idempotency_key
            .map(|k| format!("key:{k}"))
            .unwrap_or_else(|| default_dedup_key(&o.decision_id, &o.action_id, o.kind));
        events.push(OutcomeEvent {
            decision_id: o.decision_id,
            customer_id: decision.customer_id.clone(),
            action_id: o.action_id,
            kind: o.kind,
            value: o.value,
            dedup_key,
            at_ms,
        });
    }
    // An accepted outcome must not outlive its decision: the decisions it
    // names may still be queued for the log, so write the queue first.
    decisions.flush().await?;
    let report = profiles.record(tenant, &events).await?;
    telemetry::outcomes(report.accepted, report.duplicates);
    Ok(report)
}
