//! The `Store` contract: what every implementation must do, checked the same
//! way on each. `runtime/store/tests/contract.rs` runs it on the embedded
//! store; `tests/blackbox/store_contract.rs` (in the `blackbox_cluster`
//! suite) on PostgreSQL + Redis.
//!
//! Every check works under tenants of its own, so one store serves them all.

use std::sync::Arc;

use moment_core::model::outcome::{MAX_VALUE, OutcomeEvent, OutcomeType};
use moment_core::model::policy::{Action, ActionKind, Bundle, EngineKind};
use moment_core::model::{KeyHash, Name, Role};
use moment_core::pipeline::DecisionDocument;
use moment_store::{DecisionRecord, KeyRecord, NewVersion, Store, StoreError};
use serde_json::{Map, Value, json};

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn key(tenant: &str, id: &str, role: Role) -> KeyRecord {
    KeyRecord {
        id: id.to_owned(),
        tenant: name(tenant),
        role,
        hash: KeyHash::of(&format!("secret-{id}")),
    }
}

fn version(tenant: &str, policy: &str, activate: bool) -> NewVersion {
    NewVersion {
        tenant: name(tenant),
        name: name(policy),
        engine: EngineKind::Rhai,
        code: format!("fn decide(ctx) {{ [] }} // {policy}").into_bytes(),
        bundle_json: r#"{"catalog":[{"id":"a","kind":"offer"}],"fallback":["a"]}"#.to_owned(),
        activate,
        actor: "key-1".to_owned(),
    }
}

fn attributes(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn decision(tenant: &str, id: &str, customer: &str, experiment: Option<&str>) -> DecisionRecord {
    let bundle = Bundle::new(
        vec![Action {
            id: "a".into(),
            kind: ActionKind::Offer,
            value: 1.0,
            cost: None,
            tags: vec![],
            payload: Value::Null,
            eligibility: None,
            contact: None,
        }],
        &["a".to_owned()],
    )
    .unwrap();
    DecisionRecord {
        id: id.to_owned(),
        tenant: name(tenant),
        point: name("hero"),
        version: 1,
        customer_id: customer.to_owned(),
        actions: vec!["a".to_owned()],
        fallback: false,
        impressions: false,
        experiment: experiment.map(|variant| ("exp".to_owned(), variant.to_owned())),
        at_ms: 1_000,
        document: DecisionDocument {
            stage: None,
            channel: Some("web".into()),
            attributes: json!({"customer_id": customer}),
            context: Map::new(),
            profile: None,
            bundle: Arc::new(bundle),
            candidates: vec![0],
            ranking: vec![(0, 1.0)],
        },
    }
}

fn outcome(decision: &str, customer: &str, kind: OutcomeType, dedup: &str) -> OutcomeEvent {
    OutcomeEvent {
        decision_id: decision.to_owned(),
        customer_id: customer.to_owned(),
        action_id: "a".to_owned(),
        kind,
        value: Some(2.5),
        dedup_key: dedup.to_owned(),
        at_ms: 2_000,
    }
}

/// Runs every check on `store`.
pub async fn run(store: &dyn Store) {
    assert!(
        store.missing().await.is_empty(),
        "a healthy store misses nothing"
    );
    tenants_and_keys(store).await;
    settings(store).await;
    versions_and_activation(store).await;
    profiles(store).await;
    impressions_are_conditional(store).await;
    outcomes_count_once(store).await;
    decisions_are_kept_per_tenant(store).await;
    experiments_and_counts(store).await;
    logs_are_pruned_by_age(store).await;
    activity_and_customer_decisions(store).await;
}

async fn activity_and_customer_decisions(store: &dyn Store) {
    let tenant = name("c-activity");
    store.create_tenant(&tenant, "{}", &[]).await.unwrap();
    store
        .create_tenant(&name("c-activity-2"), "{}", &[])
        .await
        .unwrap();
    let at = |id: &str, customer: &str, at_ms: u64, fallback: bool| DecisionRecord {
        at_ms,
        fallback,
        ..decision("c-activity", id, customer, None)
    };
    store
        .log_decisions(&[
            at("a-1", "c-1", 10_000, false),
            at("a-2", "c-1", 10_500, true),
            at("a-3", "c-2", 11_200, false),
            at("a-4", "c-1", 12_100, false),
            at("a-0", "c-1", 5_000, false),
            decision("c-activity-2", "a-9", "c-1", None),
        ])
        .await
        .unwrap();
    let counted: Vec<(String, i64, u64, u64)> = store
        .activity(&tenant, 10_000, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.point, a.bucket_ms, a.decisions, a.fallbacks))
        .collect();
    assert_eq!(
        counted,
        [
            ("hero".to_owned(), 10_000, 2, 1),
            ("hero".to_owned(), 11_000, 1, 0),
            ("hero".to_owned(), 12_000, 1, 0)
        ],
        "per bucket since the start, this tenant's only"
    );

    store
        .record_outcomes(
            &tenant,
            &[
                outcome("a-4", "c-1", OutcomeType::Click, "a-4/a/click"),
                outcome("a-4", "c-1", OutcomeType::Convert, "a-4/a/convert"),
                outcome("a-1", "c-1", OutcomeType::Reject, "a-1/a/reject"),
            ],
        )
        .await
        .unwrap();
    let theirs = store.customer_decisions(&tenant, "c-1", 3).await.unwrap();
    let ids: Vec<&str> = theirs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        ["a-4", "a-2", "a-1"],
        "newest first, at most the limit"
    );
    assert_eq!(
        theirs[0].outcomes,
        [
            ("a".to_owned(), "click".to_owned()),
            ("a".to_owned(), "convert".to_owned())
        ]
    );
    assert!(theirs[1].fallback && theirs[1].outcomes.is_empty());
    assert_eq!(theirs[2].actions, ["a"]);
    assert_eq!((theirs[2].point.as_str(), theirs[2].version), ("hero", 1));
    assert!(
        store
            .customer_decisions(&name("c-nobody"), "c-1", 3)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn tenants_and_keys(store: &dyn Store) {
    let acme = name("c-acme");
    let keys = [key("c-acme", "k-admin", Role::Admin)];
    store.create_tenant(&acme, "{}", &keys).await.unwrap();
    assert!(matches!(
        store.create_tenant(&acme, "{}", &[]).await,
        Err(StoreError::Conflict)
    ));
    store
        .add_keys(&[key("c-acme", "k-decide", Role::Decide)])
        .await
        .unwrap();
    let listed = store.keys(&acme).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["k-admin", "k-decide"], "oldest first");
    assert!(store.revoke_key(&acme, "k-decide").await.unwrap());
    assert!(!store.revoke_key(&acme, "k-decide").await.unwrap());
    assert!(!store.revoke_key(&name("c-other"), "k-admin").await.unwrap());
    let listed = store.keys(&acme).await.unwrap();
    assert!(listed[1].revoked_at_ms.is_some());

    let snapshot = store.snapshot(Some(&acme)).await.unwrap();
    assert_eq!(snapshot.tenants, [(acme.clone(), "{}".to_owned())]);
    let live_keys: Vec<(&str, Role)> = snapshot
        .keys
        .iter()
        .map(|k| (k.id.as_str(), k.role))
        .collect();
    assert_eq!(
        live_keys,
        [("k-admin", Role::Admin)],
        "revoked keys are left out"
    );
    assert_eq!(snapshot.keys[0].hash, KeyHash::of("secret-k-admin"));
}

async fn settings(store: &dyn Store) {
    let tenant = name("c-settings");
    store.create_tenant(&tenant, "{}", &[]).await.unwrap();
    let patched = |json: &str| serde_json::from_str::<Value>(json).unwrap();
    let merged = store
        .patch_tenant_settings(&tenant, r#"{"stages":["a"]}"#)
        .await
        .unwrap();
    assert_eq!(patched(&merged), json!({"stages": ["a"]}));
    // Another field's patch keeps the first; a field given again is replaced.
    let merged = store
        .patch_tenant_settings(&tenant, r#"{"cors_origins":["x"],"stages":["b"]}"#)
        .await
        .unwrap();
    assert_eq!(
        patched(&merged),
        json!({"stages": ["b"], "cors_origins": ["x"]})
    );
    let snapshot = store.snapshot(Some(&tenant)).await.unwrap();
    assert_eq!(patched(&snapshot.tenants[0].1), patched(&merged));
    let all = store.snapshot(None).await.unwrap();
    assert!(all.tenants.iter().any(|(t, _)| *t == tenant));
}

async fn versions_and_activation(store: &dyn Store) {
    let tenant = name("c-versions");
    store.create_tenant(&tenant, "{}", &[]).await.unwrap();
    assert_eq!(
        store
            .create_version(version("c-versions", "hero", true))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .create_version(version("c-versions", "hero", false))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .create_version(version("c-versions", "side", false))
            .await
            .unwrap(),
        1
    );

    let stored = store
        .version(&tenant, &name("hero"), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.version, stored.engine), (2, EngineKind::Rhai));
    assert_eq!(stored.code, version("c-versions", "hero", false).code);
    assert!(stored.bundle_json.contains("fallback"));
    assert!(
        store
            .version(&tenant, &name("hero"), 3)
            .await
            .unwrap()
            .is_none()
    );

    store
        .activate(&tenant, &name("hero"), 2, "key-2")
        .await
        .unwrap();
    assert!(
        store
            .activate(&tenant, &name("hero"), 9, "key-2")
            .await
            .is_err(),
        "a version that does not exist cannot go live"
    );
    let policies = store.policies(&tenant).await.unwrap();
    let rows: Vec<(&str, Option<u32>, u32)> = policies
        .iter()
        .map(|p| (p.name.as_str(), p.live, p.latest))
        .collect();
    assert_eq!(rows, [("hero", Some(2), 2), ("side", None, 1)]);

    let history = store
        .history(&tenant, &name("hero"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(history.live, Some(2));
    assert_eq!(history.versions.len(), 2);
    let events: Vec<(&str, u32, &str)> = history
        .events
        .iter()
        .map(|e| (e.event.as_str(), e.version, e.by.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("uploaded", 1, "key-1"),
            ("activated", 1, "key-1"),
            ("uploaded", 2, "key-1"),
            ("activated", 2, "key-2"),
        ]
    );
    assert!(
        store
            .history(&tenant, &name("none"))
            .await
            .unwrap()
            .is_none()
    );

    let snapshot = store.snapshot(Some(&tenant)).await.unwrap();
    let live: Vec<(&str, u32)> = snapshot
        .live
        .iter()
        .map(|l| (l.name.as_str(), l.version))
        .collect();
    assert_eq!(live, [("hero", 2)]);
}

async fn profiles(store: &dyn Store) {
    let tenant = name("c-profiles");
    store.create_tenant(&tenant, "{}", &[]).await.unwrap();
    assert!(store.profile(&tenant, "c-1").await.unwrap().is_none());
    let first = store
        .patch_profile(
            &tenant,
            "c-1",
            attributes(json!({"tier": "gold", "age": 40})),
            None,
        )
        .await
        .unwrap();
    let second = store
        .patch_profile(
            &tenant,
            "c-1",
            attributes(json!({"age": null, "city": "Oslo"})),
            Some("at-risk".into()),
        )
        .await
        .unwrap();
    assert!(
        second.revision > first.revision,
        "every write moves the revision"
    );
    let stored = store.profile(&tenant, "c-1").await.unwrap().unwrap();
    assert_eq!(stored, second);
    assert_eq!(
        Value::Object(stored.attributes),
        json!({"tier": "gold", "city": "Oslo"}),
        "null removes, the rest merges"
    );
    assert_eq!(stored.stage.as_deref(), Some("at-risk"));
    assert!(
        store
            .profile(&name("c-other"), "c-1")
            .await
            .unwrap()
            .is_none(),
        "profiles are per tenant"
    );
}

async fn impressions_are_conditional(store: &dyn Store) {
    let tenant = name("c-impressions");
    store.create_tenant(&tenant, "{}", &[]).await.unwrap();
    let actions = ["a".to_owned()];
    let first = store
        .record_impressions(&tenant, "c-1", None, &actions, 1_000)
        .await
        .unwrap();
    assert_eq!(first.history["a"].impressions, 1);
    // A decision that read no profile lost the race to the first one.
    assert!(matches!(
        store
            .record_impressions(&tenant, "c-1", None, &actions, 1_001)
            .await,
        Err(StoreError::Stale)
    ));
    let second = store
        .record_impressions(&tenant, "c-1", Some(&first), &actions, 1_002)
        .await
        .unwrap();
    assert_eq!(second.history["a"].impressions, 2);
    assert!(matches!(
        store
            .record_impressions(&tenant, "c-1", Some(&first), &actions, 1_003)
            .await,
        Err(StoreError::Stale)
    ));
    assert_eq!(
        store.profile(&tenant, "c-1").await.unwrap().unwrap(),
        second
    );
}

async fn outcomes_count_once(store: &dyn Store) {
    let tenant = name("c-outcomes");
    store.create_tenant(&tenant, "{}", &[]).await.unwrap();
    store
        .log_decisions(&[decision("c-outcomes", "d-1", "c-1", None)])
        .await
        .unwrap();
    let events = [
        outcome("d-1", "c-1", OutcomeType::Click, "d-1/a/click"),
        outcome("d-1", "c-1", OutcomeType::Accept, "d-1/a/accept"),
    ];
    let first = store.record_outcomes(&tenant, &events).await.unwrap();
    assert_eq!((first.accepted, first.duplicates), (2, 0));
    let retry = store.record_outcomes(&tenant, &events).await.unwrap();
    assert_eq!(
        (retry.accepted, retry.duplicates),
        (0, 2),
        "a retry counts once"
    );
    let profile = store.profile(&tenant, "c-1").await.unwrap().unwrap();
    let history = &profile.history["a"];
    assert_eq!(history.counts[&OutcomeType::Click], 1);
    assert_eq!(history.counts[&OutcomeType::Accept], 1);
    assert_eq!(history.last_ms[&OutcomeType::Accept], 2_000);
}

async fn decisions_are_kept_per_tenant(store: &dyn Store) {
    for tenant in ["c-log-a", "c-log-b"] {
        store.create_tenant(&name(tenant), "{}", &[]).await.unwrap();
    }
    // The same id under two tenants: each tenant's log keeps its own.
    store
        .log_decisions(&[
            decision("c-log-a", "d-shared", "c-a", None),
            decision("c-log-b", "d-shared", "c-b", None),
        ])
        .await
        .unwrap();
    // Logging a decision again (a retried batch) changes nothing.
    store
        .log_decisions(&[decision("c-log-a", "d-shared", "c-other", None)])
        .await
        .unwrap();
    let a = store
        .decision(&name("c-log-a"), "d-shared")
        .await
        .unwrap()
        .unwrap();
    let b = store
        .decision(&name("c-log-b"), "d-shared")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.customer_id.as_str(), b.customer_id.as_str()),
        ("c-a", "c-b")
    );
    assert_eq!(a.actions, ["a"]);
    assert!(
        store
            .decision(&name("c-log-a"), "d-none")
            .await
            .unwrap()
            .is_none()
    );
}

async fn experiments_and_counts(store: &dyn Store) {
    let tenant = name("c-experiments");
    store.create_tenant(&tenant, "{}", &[]).await.unwrap();
    let exp = name("exp");
    let point = name("hero");
    let spec = r#"{"id":"exp","point":"hero"}"#;
    let seen = std::sync::Mutex::new(Vec::new());
    let record = |running: &[String]| {
        seen.lock().unwrap().push(running.to_vec());
        Ok(())
    };
    store
        .create_experiment(&tenant, &exp, &point, spec, &record)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_experiment(&tenant, &exp, &point, "{}", &record)
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        seen.lock().unwrap()[1],
        [spec],
        "admit sees the running one"
    );
    let refuse = |_: &[String]| Err("overlaps".to_owned());
    assert!(matches!(
        store.create_experiment(&tenant, &name("other"), &point, spec, &refuse).await,
        Err(StoreError::Invalid(reason)) if reason == "overlaps"
    ));
    let listed = store.experiments(&tenant).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].running && listed[0].stopped_at_ms.is_none());
    assert_eq!(listed[0].spec_json, spec);
    let running = store.snapshot(Some(&tenant)).await.unwrap().experiments;
    assert_eq!(running.len(), 1);

    // Two customers in control (one of them twice), one in treatment; one
    // control customer and the treatment customer convert.
    store
        .log_decisions(&[
            decision("c-experiments", "e-1", "c-1", Some("control")),
            decision("c-experiments", "e-2", "c-1", Some("control")),
            decision("c-experiments", "e-3", "c-2", Some("control")),
            decision("c-experiments", "e-4", "c-3", Some("treatment")),
            decision("c-experiments", "e-5", "c-4", None),
        ])
        .await
        .unwrap();
    store
        .record_outcomes(
            &tenant,
            &[
                outcome("e-2", "c-1", OutcomeType::Convert, "e-2/a/convert"),
                outcome("e-4", "c-3", OutcomeType::Convert, "e-4/a/convert"),
                outcome("e-5", "c-4", OutcomeType::Convert, "e-5/a/convert"),
                outcome("e-3", "c-2", OutcomeType::Click, "e-3/a/click"),
            ],
        )
        .await
        .unwrap();
    let mut counts = store
        .experiment_counts(&tenant, &exp, "convert")
        .await
        .unwrap();
    counts.sort_by(|a, b| a.0.cmp(&b.0));
    let counts: Vec<(&str, u64, u64, f64)> = counts
        .iter()
        .map(|(v, c)| (v.as_str(), c.exposures, c.conversions, c.value))
        .collect();
    assert_eq!(
        counts,
        [("control", 2, 1, 2.5), ("treatment", 1, 1, 2.5)],
        "unique exposed customers, and exposed customers with a goal outcome"
    );

    // Values stored before the edge bounded them sum without overflowing,
    // each clamped to the bound; an outcome without a value adds nothing.
    store
        .log_decisions(&[
            decision("c-experiments", "e-6", "c-5", Some("treatment")),
            decision("c-experiments", "e-7", "c-6", Some("control")),
        ])
        .await
        .unwrap();
    let huge = |dedup: &str| OutcomeEvent {
        value: Some(f64::MAX),
        ..outcome("e-6", "c-5", OutcomeType::Convert, dedup)
    };
    let valueless = OutcomeEvent {
        value: None,
        ..outcome("e-7", "c-6", OutcomeType::Convert, "e-7/a/convert")
    };
    store
        .record_outcomes(&tenant, &[huge("old-1"), huge("old-2"), valueless])
        .await
        .unwrap();
    let mut counts = store
        .experiment_counts(&tenant, &exp, "convert")
        .await
        .unwrap();
    counts.sort_by(|a, b| a.0.cmp(&b.0));
    let values: Vec<(&str, u64, f64)> = counts
        .iter()
        .map(|(v, c)| (v.as_str(), c.conversions, c.value))
        .collect();
    assert_eq!(
        values,
        [("control", 2, 2.5), ("treatment", 2, 2.5 + 2.0 * MAX_VALUE)]
    );

    // Day by day (days of a second here): each customer counted on the day
    // of their first exposure and of their first conversion.
    let days: Vec<(String, i64, u64, u64)> = store
        .experiment_days(&tenant, &exp, "convert", 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.variant, d.day_ms, d.exposed, d.converted))
        .collect();
    let day =
        |v: &str, at: i64, exposed: u64, converted: u64| (v.to_owned(), at, exposed, converted);
    assert_eq!(
        days,
        [
            day("control", 1_000, 3, 0),
            day("control", 2_000, 0, 2),
            day("treatment", 1_000, 2, 0),
            day("treatment", 2_000, 0, 2)
        ]
    );

    store.stop_experiment(&tenant, &exp).await.unwrap();
    let stopped = store.experiment(&tenant, &exp).await.unwrap().unwrap();
    assert!(!stopped.running && stopped.stopped_at_ms.is_some());
    assert!(
        store
            .snapshot(Some(&tenant))
            .await
            .unwrap()
            .experiments
            .is_empty()
    );
    assert!(
        store
            .experiment(&tenant, &name("none"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn logs_are_pruned_by_age(store: &dyn Store) {
    let tenant = name("c-prune");
    store.create_tenant(&tenant, "{}", &[]).await.unwrap();
    let mut old = decision("c-prune", "d-old", "c-1", None);
    old.at_ms = 10_000;
    let mut new = decision("c-prune", "d-new", "c-1", None);
    new.at_ms = 50_000;
    store.log_decisions(&[old, new]).await.unwrap();
    let mut accepted = outcome("d-old", "c-1", OutcomeType::Accept, "d-old/a/accept");
    accepted.at_ms = 11_000;
    store.record_outcomes(&tenant, &[accepted]).await.unwrap();
    // In small batches, until nothing before the cut is left (the earlier
    // checks' records, at 1 and 2 s, go too).
    let mut pruned = 0;
    loop {
        let batch = store.prune_logs(20_000, 2).await.unwrap();
        assert!(batch <= 4, "at most the limit from each log");
        if batch == 0 {
            break;
        }
        pruned += batch;
    }
    assert!(pruned >= 2, "the old decision and its outcome");
    assert!(store.decision(&tenant, "d-old").await.unwrap().is_none());
    assert!(store.decision(&tenant, "d-new").await.unwrap().is_some());
    // Contact history lives in the profile and stays.
    let profile = store.profile(&tenant, "c-1").await.unwrap().unwrap();
    assert_eq!(profile.history["a"].counts[&OutcomeType::Accept], 1);
}
