//! Running one decision: the pure steps of [`moment_core::pipeline`] around
//! the policy call, with the breaker, metrics and the decision record.
//!
//! No HTTP here: the edge parses, authorises and loads the profile, then hands
//! a checked [`DecideRequest`] to [`decide`]. **A broken policy never becomes
//! an error**: [`decide`] always answers, with the fallback actions when the
//! policy fails.

use std::sync::Arc;
use std::time::Instant;

use moment_core::breaker::{Admit, Ran};
use moment_core::call::{History, PolicyError, PolicyInput};
use moment_core::pipeline::{
    DecideRequest, DecideResponse, DecidedAction, DecisionDocument, ExperimentRef, Explained,
    PolicyRef, Subject, arbitrate, merged_attributes, rank, screen,
};
use moment_engines::Engines;
use moment_store::DecisionRecord;
use serde_json::{Map, Value};

use crate::registry::{LoadedPolicy, RunningExperiment};
use crate::telemetry;

/// A decision: the answer, and the record for the decision log.
pub struct Decision {
    /// What the caller gets.
    pub response: DecideResponse,
    /// What the log keeps.
    pub record: DecisionRecord,
}

/// Runs the policy for a checked request: the variant's version when the
/// customer is in one of `experiments`, else the `live` one. Never fails: a
/// failing policy yields its (eligible) fallback actions.
pub fn decide(
    engines: &Engines,
    subject: &Subject<'_>,
    live: &Arc<LoadedPolicy>,
    experiments: &[Arc<RunningExperiment>],
    request: &DecideRequest,
    limit: usize,
) -> Decision {
    let profile = subject.profile.map(|p| &**p);
    let stage = request
        .stage
        .as_deref()
        .or(profile.and_then(|p| p.stage.as_deref()));
    let attributes = Value::Object(merged_attributes(profile, request, stage));
    let assigned = experiments.iter().find_map(|running| {
        let variant =
            running
                .experiment
                .assign(&request.customer_id, &attributes, subject.groups)?;
        Some((running, variant))
    });
    let (policy, experiment) = match assigned {
        Some((running, variant)) => (
            &running.variants[variant],
            Some(ExperimentRef {
                id: running.experiment.id.to_string(),
                variant: running.experiment.spec.variants[variant].id.clone(),
            }),
        ),
        None => (live, None),
    };
    let bundle = &policy.bundle;
    let history = History::new(profile, bundle.actions());
    let (allowed, mut explain) = screen(bundle, subject, &attributes, request.explain);

    let empty = Map::new();
    let input = PolicyInput {
        customer_id: &request.customer_id,
        stage,
        channel: request.channel.as_deref(),
        attributes: attributes.as_object().unwrap_or(&empty),
        context: &request.context,
        candidates: (0..allowed.len())
            .filter(|&i| allowed[i])
            .map(|i| &bundle.candidates()[i])
            .collect(),
        history,
        now_ms: subject.now_ms,
    };
    let engine = policy.program.engine();
    let outcome = match policy.breaker.admit() {
        Admit::Open => Err(PolicyError::CircuitOpen),
        Admit::Run => {
            let started = Instant::now();
            let outcome = engines.run(&policy.program, &input, subject.limits);
            telemetry::policy_call(engine, started.elapsed());
            let ran = match &outcome {
                Err(err) if err.over_budget() => Ran::OverBudget,
                _ => Ran::Finished,
            };
            if policy.breaker.record(ran) {
                telemetry::breaker_opened(engine);
                tracing::warn!(
                    tenant = %subject.tenant, policy = %policy.name, version = policy.version,
                    "policy keeps running out of budget; pausing it (serving its fallback)"
                );
            }
            outcome.and_then(|scored| rank(bundle, &allowed, scored))
        }
    };

    let (chosen, ranking, fallback) = match outcome {
        Ok(ranked) => {
            telemetry::decision(false);
            let chosen = arbitrate(
                bundle,
                &ranked,
                limit,
                &request.max_per_kind,
                explain.as_mut(),
            );
            (chosen, ranked, false)
        }
        Err(err) => {
            telemetry::decision(true);
            telemetry::fallback(engine, err.reason());
            tracing::warn!(
                tenant = %subject.tenant, policy = %policy.name, version = policy.version,
                engine = engine.as_str(), reason = err.reason(), error = %err,
                "policy failed; serving fallback"
            );
            if let Some(explain) = explain.as_mut() {
                for (i, why) in explain.iter_mut().enumerate() {
                    if allowed[i] {
                        *why = Explained::PolicyFailed {
                            reason: err.reason().to_owned(),
                        };
                    }
                }
            }
            let chosen: Vec<(usize, Option<f64>)> = bundle
                .fallback()
                .iter()
                .filter(|&&i| allowed[i])
                .take(limit)
                .map(|&i| (i, None))
                .collect();
            (chosen, Vec::new(), true)
        }
    };
    if let Some(explain) = explain.as_mut() {
        for (rank, &(i, score)) in chosen.iter().enumerate() {
            explain[i] = Explained::Returned {
                rank: rank + 1,
                score,
            };
        }
    }

    let decision_id = uuid::Uuid::now_v7().to_string();
    let actions: Vec<DecidedAction> = chosen
        .iter()
        .map(|&(i, score)| {
            let a = &bundle.actions()[i];
            DecidedAction {
                id: a.id.clone(),
                kind: a.kind,
                score,
                payload: a.payload.clone(),
            }
        })
        .collect();
    let candidates = (0..allowed.len()).filter(|&i| allowed[i]).collect();
    let record = DecisionRecord {
        id: decision_id.clone(),
        tenant: subject.tenant.clone(),
        point: policy.name.clone(),
        version: policy.version,
        customer_id: request.customer_id.clone(),
        actions: actions.iter().map(|a| a.id.clone()).collect(),
        fallback,
        impressions: false,
        experiment: experiment
            .as_ref()
            .map(|e| (e.id.clone(), e.variant.clone())),
        at_ms: subject.now_ms,
        // The policy is done with the attributes and the ranking: move them
        // in rather than copy them. Ids and history are looked up in the
        // shared policy and profile when the writer task serialises it.
        document: DecisionDocument {
            stage: stage.map(str::to_owned),
            channel: request.channel.clone(),
            attributes,
            context: request.context.clone(),
            profile: subject.profile.cloned(),
            bundle: policy.bundle.clone(),
            candidates,
            ranking,
        },
    };
    let response = DecideResponse {
        decision_id,
        point: policy.name.to_string(),
        policy: PolicyRef {
            name: policy.name.to_string(),
            version: policy.version,
        },
        experiment,
        actions,
        fallback,
        explain: explain.map(|e| {
            bundle
                .actions()
                .iter()
                .map(|a| a.id.clone())
                .zip(e)
                .collect()
        }),
    };
    Decision { response, record }
}
