//! While the store cannot take the decision log, decisions still answer, but
//! nothing that needs every decision logged answers as if it were: the
//! results route and outcomes say 503 until the held-back decisions are
//! written, and count them after. The router runs without a socket over a
//! real embedded store with a switch in front of its decision-log writes.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use moment_core::model::outcome::OutcomeEvent;
use moment_core::model::profile::Profile;
use moment_core::model::{Name, Role};
use moment_server::app::Assembled;
use moment_server::settings::Settings;
use moment_store::sqlite::SqliteStore;
use moment_store::{
    Activity, Admit, Change, CustomerDecision, DecisionRecord, DecisionRef, KeyListing, KeyRecord,
    NewVersion, PolicyHistory, PolicySummary, RecordedOutcomes, Snapshot, Store, StoreError,
    StoredExperiment, StoredVersion, VariantCounts, VariantDay,
};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tower::ServiceExt;

const ROOT: &str = "root-token-for-outage-tests";

/// The embedded store, whose decision-log writes fail while `down` is set.
struct LogOutage {
    inner: SqliteStore,
    down: AtomicBool,
    /// Decision records written.
    logged: AtomicUsize,
}

#[async_trait]
impl Store for LogOutage {
    async fn log_decisions(&self, records: &[DecisionRecord]) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("PostgreSQL", "the test cut it"));
        }
        self.inner.log_decisions(records).await?;
        self.logged.fetch_add(records.len(), Ordering::SeqCst);
        Ok(())
    }
    async fn snapshot(&self, tenant: Option<&Name>) -> Result<Snapshot, StoreError> {
        self.inner.snapshot(tenant).await
    }
    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        self.inner.changes()
    }
    async fn create_tenant(
        &self,
        tenant: &Name,
        settings_json: &str,
        keys: &[KeyRecord],
    ) -> Result<(), StoreError> {
        self.inner.create_tenant(tenant, settings_json, keys).await
    }
    async fn add_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        self.inner.add_keys(keys).await
    }
    async fn keys(&self, tenant: &Name) -> Result<Vec<KeyListing>, StoreError> {
        self.inner.keys(tenant).await
    }
    async fn revoke_key(&self, tenant: &Name, id: &str) -> Result<bool, StoreError> {
        self.inner.revoke_key(tenant, id).await
    }
    async fn missing(&self) -> Vec<String> {
        self.inner.missing().await
    }
    async fn patch_tenant_settings(&self, tenant: &Name, json: &str) -> Result<String, StoreError> {
        self.inner.patch_tenant_settings(tenant, json).await
    }
    async fn create_version(&self, version: NewVersion) -> Result<u32, StoreError> {
        self.inner.create_version(version).await
    }
    async fn version(
        &self,
        tenant: &Name,
        name: &Name,
        version: u32,
    ) -> Result<Option<StoredVersion>, StoreError> {
        self.inner.version(tenant, name, version).await
    }
    async fn activate(
        &self,
        tenant: &Name,
        name: &Name,
        version: u32,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.inner.activate(tenant, name, version, actor).await
    }
    async fn policies(&self, tenant: &Name) -> Result<Vec<PolicySummary>, StoreError> {
        self.inner.policies(tenant).await
    }
    async fn profile(&self, tenant: &Name, customer: &str) -> Result<Option<Profile>, StoreError> {
        self.inner.profile(tenant, customer).await
    }
    async fn patch_profile(
        &self,
        tenant: &Name,
        customer: &str,
        attributes: Map<String, Value>,
        stage: Option<String>,
    ) -> Result<Profile, StoreError> {
        self.inner
            .patch_profile(tenant, customer, attributes, stage)
            .await
    }
    async fn record_outcomes(
        &self,
        tenant: &Name,
        events: &[OutcomeEvent],
    ) -> Result<RecordedOutcomes, StoreError> {
        self.inner.record_outcomes(tenant, events).await
    }
    async fn record_impressions(
        &self,
        tenant: &Name,
        customer: &str,
        seen: Option<&Profile>,
        actions: &[String],
        at_ms: u64,
    ) -> Result<Profile, StoreError> {
        self.inner
            .record_impressions(tenant, customer, seen, actions, at_ms)
            .await
    }

    async fn experiment_days(
        &self,
        tenant: &Name,
        id: &Name,
        goal: &str,
        day_ms: i64,
    ) -> Result<Vec<VariantDay>, StoreError> {
        self.inner.experiment_days(tenant, id, goal, day_ms).await
    }

    async fn activity(
        &self,
        tenant: &Name,
        since_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<Activity>, StoreError> {
        self.inner.activity(tenant, since_ms, bucket_ms).await
    }

    async fn customer_decisions(
        &self,
        tenant: &Name,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<CustomerDecision>, StoreError> {
        self.inner.customer_decisions(tenant, customer, limit).await
    }

    async fn prune_logs(&self, before_ms: u64, limit: usize) -> Result<u64, StoreError> {
        self.inner.prune_logs(before_ms, limit).await
    }

    async fn decision(&self, tenant: &Name, id: &str) -> Result<Option<DecisionRef>, StoreError> {
        self.inner.decision(tenant, id).await
    }
    async fn create_experiment(
        &self,
        tenant: &Name,
        id: &Name,
        point: &Name,
        spec_json: &str,
        admit: &Admit<'_>,
    ) -> Result<(), StoreError> {
        self.inner
            .create_experiment(tenant, id, point, spec_json, admit)
            .await
    }
    async fn experiments(&self, tenant: &Name) -> Result<Vec<StoredExperiment>, StoreError> {
        self.inner.experiments(tenant).await
    }
    async fn experiment(
        &self,
        tenant: &Name,
        id: &Name,
    ) -> Result<Option<StoredExperiment>, StoreError> {
        self.inner.experiment(tenant, id).await
    }
    async fn stop_experiment(&self, tenant: &Name, id: &Name) -> Result<(), StoreError> {
        self.inner.stop_experiment(tenant, id).await
    }
    async fn experiment_counts(
        &self,
        tenant: &Name,
        id: &Name,
        goal: &str,
    ) -> Result<Vec<(String, VariantCounts)>, StoreError> {
        self.inner.experiment_counts(tenant, id, goal).await
    }
    async fn history(
        &self,
        tenant: &Name,
        name: &Name,
    ) -> Result<Option<PolicyHistory>, StoreError> {
        self.inner.history(tenant, name).await
    }
}

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    settings: Settings,
}

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"));
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A router over a [`LogOutage`] store in `dir`, started with `flags`.
async fn outage(dir: &std::path::Path, flags: &[&str]) -> (Router, Arc<LogOutage>) {
    let mut args = vec!["moment", "--data", dir.to_str().unwrap()];
    args.extend(flags);
    let mut settings = Args::try_parse_from(args).unwrap().settings;
    settings.postgres = None;
    settings.redis = None;
    settings.root_token = Some(ROOT.to_owned());
    let store = Arc::new(LogOutage {
        inner: SqliteStore::open(dir).unwrap(),
        down: AtomicBool::new(false),
        logged: AtomicUsize::new(0),
    });
    let router = Assembled::on_store(&settings, store.clone(), None)
        .await
        .unwrap()
        .router;
    (router, store)
}

#[tokio::test]
async fn held_back_decisions_are_bounded_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (router, store) = outage(dir.path(), &["--decision-log-queue-bytes", "1048576"]).await;
    let (_, created) = call(
        &router,
        "POST",
        "/v1/tenants",
        ROOT,
        Some(json!({"id": "acme"})),
    )
    .await;
    let key = |role: Role| created["keys"][role.as_str()].as_str().unwrap().to_owned();
    let bundle = json!({"engine": "rhai", "activate": true, "fallback": ["a"],
        "source": "fn decide(ctx) { [#{id: \"a\", score: 1.0}] }",
        "catalog": [{"id": "a", "kind": "offer"}]});
    let (status, _) = call(
        &router,
        "POST",
        "/v1/policies/hero/versions",
        &key(Role::Editor),
        Some(bundle),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // 40 decisions of ~57 KB each while the log's store is down: about 18
    // fit in the 1 MiB queue, the rest are not logged.
    store.down.store(true, Ordering::SeqCst);
    let context: Map<String, Value> = (0..14)
        .map(|i| (format!("k{i}"), json!("x".repeat(4000))))
        .collect();
    for i in 0..40 {
        let ask = json!({"point": "hero", "customer_id": format!("c-{i}"), "context": context});
        let (status, _) = call(&router, "POST", "/v1/decide", &key(Role::Decide), Some(ask)).await;
        assert_eq!(status, StatusCode::OK);
    }
    store.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let logged = store.logged.load(Ordering::SeqCst);
    assert!(
        (10..=19).contains(&logged),
        "{logged} of 40 held back and written"
    );
}

#[tokio::test]
async fn results_and_outcomes_wait_for_decisions_held_back() {
    let dir = tempfile::tempdir().unwrap();
    let (router, store) = outage(dir.path(), &[]).await;

    let (status, created) = call(
        &router,
        "POST",
        "/v1/tenants",
        ROOT,
        Some(json!({"id": "acme"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = |role: Role| created["keys"][role.as_str()].as_str().unwrap().to_owned();
    let (editor, decide) = (key(Role::Editor), key(Role::Decide));
    for activate in [true, false] {
        let bundle = json!({"engine": "rhai", "activate": activate, "fallback": ["a"],
            "source": "fn decide(ctx) { [#{id: \"a\", score: 1.0}] }",
            "catalog": [{"id": "a", "kind": "offer"}]});
        let (status, _) = call(
            &router,
            "POST",
            "/v1/policies/hero/versions",
            &editor,
            Some(bundle),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let experiment = json!({"id": "split", "point": "hero", "goal": "convert", "variants": [
        {"id": "control", "version": 1, "weight": 0.5}, {"id": "treatment", "version": 2, "weight": 0.5}]});
    let (status, _) = call(
        &router,
        "POST",
        "/v1/experiments",
        &editor,
        Some(experiment),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    store.down.store(true, Ordering::SeqCst);
    let (status, decided) = call(
        &router,
        "POST",
        "/v1/decide",
        &decide,
        Some(json!({"point": "hero", "customer_id": "c-1"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "deciding does not wait on the log");

    // The decision is held back: counting now would leave it out.
    let (status, answer) = call(
        &router,
        "GET",
        "/v1/experiments/split/results",
        &editor,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(
        answer["detail"],
        "cannot reach the decision log's store now; nothing was changed, retry shortly"
    );
    let convert =
        json!({"decision_id": decided["decision_id"], "action_id": "a", "type": "convert"});
    let (status, _) = call(
        &router,
        "POST",
        "/v1/outcomes",
        &decide,
        Some(convert.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // Back: the writer's retry stores the held decision, and both answer.
    store.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _) = call(&router, "POST", "/v1/outcomes", &decide, Some(convert)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, results) = call(
        &router,
        "GET",
        "/v1/experiments/split/results",
        &editor,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let counted: Vec<(u64, u64)> = results["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["exposures"].as_u64().unwrap(),
                v["conversions"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counted.iter().map(|c| c.0).sum::<u64>(), 1, "{results}");
    assert_eq!(counted.iter().map(|c| c.1).sum::<u64>(), 1, "{results}");
}
