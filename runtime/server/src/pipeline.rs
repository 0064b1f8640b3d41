//! Running one decision: the pure steps of [`moment_core::pipeline`] around
//! the policy call, with the breaker, metrics and the decision record.
//!
//! No HTTP here: the edge checks the key, the origin and the body, then hands
//! the [`DecideRequest`] to [`DecidePath::decide`]. **A broken policy never
//! becomes an error**: [`decide`] always answers, with the fallback actions
//! when the policy fails.

use std::sync::Arc;
use std::time::Instant;

use moment_core::breaker::{Admit, Ran};
use moment_core::call::{History, Limits, PolicyError, PolicyInput, Spent};
use moment_core::clock::now_ms;
use moment_core::model::Name;
use moment_core::model::contact::WhenUnavailable;
use moment_core::model::profile::Profile;
use moment_core::pipeline::{
    DecideRequest, DecideResponse, DecidedAction, DecisionDocument, ExperimentRef, Explained,
    PolicyRef, Screened, Subject, arbitrate, merged_attributes, rank, screen,
};
use moment_engines::Engines;
use moment_store::{DecisionRecord, StoreError};
use serde_json::{Map, Value};

use crate::decisions::DecisionLog;
use crate::fairness::PolicyPool;
use crate::profiles::Profiles;
use crate::registry::{LoadedPolicy, PointExperiments, Registry, RunningExperiment, Tenant};
use crate::telemetry;

/// Why a decide request got no decision.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The request is invalid; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// No live policy answers at this decision point.
    #[error("no live policy for decision point {0:?}")]
    NoPolicy(String),
    /// The profile store failed where deciding without it would be wrong.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What deciding needs from the running server.
pub struct DecidePath<'a> {
    /// Tenants, live versions, experiments.
    pub registry: &'a Registry,
    /// The policy engines.
    pub engines: &'a Arc<Engines>,
    /// The threads policies run on, shared fairly between tenants.
    pub pool: &'a PolicyPool,
    /// The profile cache in front of the store.
    pub profiles: &'a Profiles,
    /// Where decisions are logged.
    pub decisions: &'a DecisionLog,
}

impl DecidePath<'_> {
    /// Decides for a customer of `tenant_name`: checks the request, picks the
    /// live version or the customer's experiment variant, reads the profile,
    /// runs [`decide`], records impressions when asked (deciding again on a
    /// fresher profile when another write to the customer came first), and
    /// logs the decision.
    /// `tenant` is the registry's entry for `tenant_name`, which the caller
    /// has already looked up (the edge checks its origins).
    pub async fn decide(
        &self,
        tenant_name: &Name,
        tenant: &Arc<Tenant>,
        request: Arc<DecideRequest>,
    ) -> Result<DecideResponse, Refused> {
        let (registry, engines, profiles) = (self.registry, self.engines, self.profiles);
        let limit = checked(tenant, &request)?;
        let unknown = || Refused::NoPolicy(request.point.clone());
        let point = Name::parse(&request.point).map_err(|_| unknown())?;
        let policy = registry.live(tenant_name, &point).ok_or_else(unknown)?;
        // Recording impressions makes this decide a write: serialise it with the
        // customer's other decides here, so a contact cap cannot be passed twice.
        let _customer = match request.record_impressions {
            true => Some(
                profiles
                    .lock_customer(tenant_name, &request.customer_id)
                    .await,
            ),
            false => None,
        };
        let limits = engines.limits().for_tenant(&tenant.settings.limits);
        let experiments = registry.experiments(tenant_name, &point);
        let mut read = Read::Cached;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (profile, history_unavailable) = match read
                .profile(profiles, tenant_name, &request.customer_id)
                .await
            {
                Ok(profile) => (profile, None),
                Err(error @ StoreError::Unavailable { .. }) => {
                    telemetry::profiles_unavailable();
                    tracing::warn!(tenant = %tenant_name, %error, "profile store unavailable; deciding on the request alone");
                    (None, Some(tenant.settings.contact_rules_when_unavailable))
                }
                Err(error) => return Err(Refused::Store(error)),
            };
            let call = Call {
                engines: engines.clone(),
                tenant_name: tenant_name.clone(),
                tenant: tenant.clone(),
                profile: profile.clone(),
                history_unavailable,
                now_ms: now_ms(),
                limits: limits.clone(),
                policy: policy.clone(),
                experiments: experiments.clone(),
                request: request.clone(),
                limit,
                purpose: Purpose::Decide,
            };
            let Decision {
                response,
                mut record,
                ..
            } = self.run(call).await;
            let decided_at = record.at_ms;
            if request.record_impressions
                && history_unavailable.is_none()
                && !response.actions.is_empty()
            {
                let recorded = profiles
                    .record_impressions(
                        tenant_name,
                        &request.customer_id,
                        profile.as_deref(),
                        &record.actions,
                        decided_at,
                    )
                    .await;
                match recorded {
                    Ok(()) => record.impressions = true,
                    // Another replica wrote the profile since it was read: decide
                    // again on the fresh one.
                    Err(StoreError::Stale) if attempt < MAX_ATTEMPTS => {
                        telemetry::decide_retried();
                        read = Read::Fresh;
                        continue;
                    }
                    // The store went away meanwhile: decide again without history.
                    Err(StoreError::Unavailable { .. }) if attempt < MAX_ATTEMPTS => {
                        read = Read::Unavailable;
                        continue;
                    }
                    Err(error) => return Err(Refused::Store(error)),
                }
            }
            self.decisions.log(record);
            return Ok(response);
        }
    }

    /// Tries `policy` (any version, or an unsaved draft) for a customer as
    /// [`decide`](Self::decide) would, with `explain`: the customer's
    /// profile (unless `anonymous`), eligibility, contact rules, the policy
    /// and arbitration. Nothing is written: no decision is logged, no
    /// impression recorded, no experiment consulted, the version's breaker
    /// neither consulted nor fed, and the call is counted as a try.
    pub async fn try_policy(
        &self,
        tenant_name: &Name,
        tenant: &Arc<Tenant>,
        policy: Arc<LoadedPolicy>,
        request: Arc<DecideRequest>,
        anonymous: bool,
    ) -> Result<DecideResponse, Refused> {
        let limit = checked(tenant, &request)?;
        let (profile, history_unavailable) = match anonymous {
            true => (None, None),
            false => match self.profiles.get(tenant_name, &request.customer_id).await {
                Ok(profile) => (profile, None),
                Err(StoreError::Unavailable { .. }) => {
                    (None, Some(tenant.settings.contact_rules_when_unavailable))
                }
                Err(error) => return Err(Refused::Store(error)),
            },
        };
        let call = Call {
            engines: self.engines.clone(),
            tenant_name: tenant_name.clone(),
            tenant: tenant.clone(),
            profile,
            history_unavailable,
            now_ms: now_ms(),
            limits: self.engines.limits().for_tenant(&tenant.settings.limits),
            policy,
            experiments: None,
            request,
            limit,
            purpose: Purpose::Try,
        };
        Ok(self.run(call).await.response)
    }

    /// Runs `call` on the tenant's share of the policy threads; a call that
    /// finds its share full, or waited its whole deadline for a thread, is
    /// answered with the fallback (`overloaded`).
    async fn run(&self, call: Call) -> Decision {
        let queued = Instant::now();
        let overloaded = call.clone();
        let tenant = call.tenant_name.clone();
        let ran = self
            .pool
            .run(&tenant, move || {
                // A call that waited its whole deadline for a thread is
                // late already: answer at once.
                match queued.elapsed() > call.limits.deadline {
                    true => call.run(Some(PolicyError::Overloaded)),
                    false => call.run(None),
                }
            })
            .await;
        ran.unwrap_or_else(|_| overloaded.run(Some(PolicyError::Overloaded)))
    }
}

/// Checks what the request's own fields and the tenant's stages can say,
/// returning how many actions to answer.
fn checked(tenant: &Tenant, request: &DecideRequest) -> Result<usize, Refused> {
    let limit = request
        .check()
        .map_err(|e| Refused::Invalid(e.to_string()))?;
    if let Some(stage) = &request.stage
        && !tenant.settings.has_stage(stage)
    {
        return Err(Refused::Invalid(format!(
            "stage {stage:?} is not one of this tenant's stages {:?}",
            tenant.settings.stages
        )));
    }
    Ok(limit)
}

/// Why a policy runs: to answer a decision, or to try a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A decision: the breaker guards it and it counts as a decision.
    Decide,
    /// A try: the policy always runs (a paused version can be tried), its
    /// failures do not feed the breaker, and it counts as a try.
    Try,
}

/// Decisions made per request, at most, when other writes to the customer's
/// profile keep coming first. Each attempt lost means another write to the
/// customer succeeded meanwhile, so a decide fails (503) only when more than
/// this many writes to one customer overtake it: that many concurrent
/// decides for one customer across replicas, say.
const MAX_ATTEMPTS: u32 = 64;

/// Where a decision reads the customer's profile from.
enum Read {
    /// The profile cache (the store on a miss).
    Cached,
    /// The store: the cached profile turned out stale.
    Fresh,
    /// Nowhere: the store just failed.
    Unavailable,
}

impl Read {
    async fn profile(
        &self,
        profiles: &Profiles,
        tenant: &Name,
        customer: &str,
    ) -> Result<Option<Arc<Profile>>, StoreError> {
        match self {
            Read::Cached => profiles.get(tenant, customer).await,
            Read::Fresh => profiles.reload(tenant, customer).await,
            Read::Unavailable => Err(StoreError::unavailable(
                "the profile store",
                "not reachable",
            )),
        }
    }
}

/// A decision: the answer, and the record for the decision log.
pub struct Decision {
    /// What the caller gets.
    pub response: DecideResponse,
    /// What the log keeps.
    pub record: DecisionRecord,
    /// What the policy call used, when the policy ran.
    pub spent: Option<Spent>,
    /// Why the fallback was served, when it was.
    pub failed: Option<PolicyError>,
}

/// One decision's work, owned, so that it can run on a pool thread.
#[derive(Clone)]
struct Call {
    engines: Arc<Engines>,
    tenant_name: Name,
    tenant: Arc<Tenant>,
    profile: Option<Arc<Profile>>,
    history_unavailable: Option<WhenUnavailable>,
    now_ms: u64,
    limits: Limits,
    policy: Arc<LoadedPolicy>,
    experiments: Option<PointExperiments>,
    request: Arc<DecideRequest>,
    limit: usize,
    purpose: Purpose,
}

impl Call {
    /// [`decide`], or with `skip` its fallback without running the policy.
    fn run(&self, skip: Option<PolicyError>) -> Decision {
        let subject = Subject {
            limits: &self.limits,
            tenant: &self.tenant_name,
            groups: &self.tenant.groups,
            profile: self.profile.as_ref(),
            history_unavailable: self.history_unavailable,
            now_ms: self.now_ms,
        };
        let experiments = self.experiments.as_deref().map_or(&[][..], Vec::as_slice);
        decision(
            &self.engines,
            &subject,
            &self.policy,
            experiments,
            &self.request,
            self.limit,
            skip,
            self.purpose,
        )
    }
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
    decision(
        engines,
        subject,
        live,
        experiments,
        request,
        limit,
        None,
        Purpose::Decide,
    )
}

/// Runs `policy` for a checked request as a try: like [`decide`] without
/// experiments, but past no breaker (every call runs, and a failure does
/// not count towards pausing the version) and counted as a try. What
/// `moment policy test` runs each case through.
pub fn trial(
    engines: &Engines,
    subject: &Subject<'_>,
    policy: &Arc<LoadedPolicy>,
    request: &DecideRequest,
    limit: usize,
) -> Decision {
    decision(
        engines,
        subject,
        policy,
        &[],
        request,
        limit,
        None,
        Purpose::Try,
    )
}

/// [`decide`]; with `skip`, the policy is not run and the fallback is
/// served for that reason.
#[allow(clippy::too_many_arguments)]
fn decision(
    engines: &Engines,
    subject: &Subject<'_>,
    live: &Arc<LoadedPolicy>,
    experiments: &[Arc<RunningExperiment>],
    request: &DecideRequest,
    limit: usize,
    skip: Option<PolicyError>,
    purpose: Purpose,
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
    let Screened {
        allowed,
        why: mut explain,
        out_of_time,
    } = screen(bundle, subject, &attributes, request.explain);
    // Screening that took the whole deadline leaves the policy no time.
    let skip = skip.or(out_of_time.then_some(PolicyError::Deadline));

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
    let admit = match purpose {
        Purpose::Decide => policy.breaker.admit(),
        Purpose::Try => Admit::Run,
    };
    let mut spent = None;
    let mut run = || {
        let (scored, used) = engines.run_spent(&policy.program, &input, subject.limits);
        spent = Some(used);
        scored.and_then(|scored| rank(bundle, &allowed, scored))
    };
    let outcome = match (skip, admit) {
        (Some(skip), _) => Err(skip),
        (None, Admit::Open) => Err(PolicyError::CircuitOpen),
        (None, Admit::Run) if purpose == Purpose::Try => run(),
        (None, Admit::Run) => {
            let outcome = run();
            if let Some(spent) = spent {
                telemetry::policy_call(engine, spent.elapsed);
            }
            let ran = match outcome {
                Ok(_) => Ran::Ranked,
                Err(_) => Ran::Failed,
            };
            if policy.breaker.record(ran) {
                telemetry::breaker_opened(engine);
                tracing::warn!(
                    tenant = %subject.tenant, policy = %policy.name, version = policy.version,
                    "policy keeps failing; pausing it (serving its fallback)"
                );
            }
            outcome
        }
    };

    match (purpose, &outcome) {
        (Purpose::Try, outcome) => {
            telemetry::tried(outcome.as_ref().err().map(PolicyError::reason))
        }
        (Purpose::Decide, Ok(_)) => telemetry::decision(false),
        (Purpose::Decide, Err(err)) => {
            telemetry::decision(true);
            telemetry::fallback(engine, err.reason());
            tracing::warn!(
                tenant = %subject.tenant, policy = %policy.name, version = policy.version,
                engine = engine.as_str(), reason = err.reason(), error = %err,
                "policy failed; serving fallback"
            );
        }
    }
    let mut failed = None;
    let (chosen, ranking, fallback) = match outcome {
        Ok(ranked) => {
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
            failed = Some(err);
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
    Decision {
        response,
        record,
        spent,
        failed,
    }
}
