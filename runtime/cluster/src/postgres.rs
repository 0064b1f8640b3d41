//! The PostgreSQL half of the cluster store: tenants, keys, policy versions,
//! live-version pointers, experiments, and the decision and outcome logs.
//!
//! Every write that changes what replicas hold in memory sends
//! `NOTIFY moment_changes, '<tenant>'` in its own transaction, so the notice
//! goes out exactly when the write commits.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres as Pg, Transaction};
use tokio::sync::broadcast;

use moment_core::model::Name;
use moment_core::model::outcome::{MAX_VALUE, OutcomeEvent, OutcomeType, default_dedup_key};
use moment_store::{
    Activity, Admit, Change, CustomerDecision, DecisionRecord, DecisionRef, KeyListing, KeyRecord,
    LivePointer, NewVersion, PolicyHistory, PolicySummary, Snapshot, StoreError, StoredExperiment,
    StoredVersion, VariantCounts, VariantDay, customer_decisions, stored_decision, stored_engine,
    stored_event, stored_experiment, stored_key, stored_name, stored_role, stored_version,
    stored_version_info, variant_counts, variant_days,
};

/// The schema, applied at start. sqlx holds a PostgreSQL advisory lock while
/// it migrates, so replicas starting together apply each migration once.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../schema/postgres");

/// The channel replicas announce changed tenants on.
const CHANNEL: &str = "moment_changes";

/// Pooled connections per replica (the change listener has one more of its
/// own): the decide path never waits on PostgreSQL, so a few serve the
/// writes, the log writer and the reconcile.
const POOL_SIZE: u32 = 8;

/// How long a request waits for a connection (or a dead server) before 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection pool and queries.
pub struct Postgres {
    pool: PgPool,
    url: String,
}

fn error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db) if db.code().is_some_and(|c| server_going_away(&c)) => {
            StoreError::unavailable("PostgreSQL", db)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_) => StoreError::unavailable("PostgreSQL", e),
        other => StoreError::Backend(format!("PostgreSQL: {other}")),
    }
}

/// SQLSTATEs of a server that cannot take writes now: class 08 (connection
/// exception), 57P01–57P03 (shutting down, crashed, not yet accepting), and
/// 25006 (read-only transaction, as on a demoted primary after a failover).
fn server_going_away(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "25006")
}

/// A commit that failed in flight: PostgreSQL may or may not have applied
/// it, so it is not "nothing changed, retry" (a retry of an upload could
/// store the version twice).
fn commit_error(e: sqlx::Error) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: the commit's outcome is unknown: {e}"))
}

fn now_ms() -> i64 {
    moment_core::clock::now_ms() as i64
}

fn version_number(v: i32) -> Result<u32, StoreError> {
    stored_version(i64::from(v))
}

type VersionRow = (String, String, i32, String, Vec<u8>, String);

fn to_stored(row: VersionRow) -> Result<StoredVersion, StoreError> {
    let (tenant, name, version, engine, code, bundle_json) = row;
    Ok(StoredVersion {
        tenant: stored_name(tenant)?,
        name: stored_name(name)?,
        version: version_number(version)?,
        engine: stored_engine(&engine)?,
        code,
        bundle_json,
    })
}

type ExperimentRow = (String, String, bool, i64, Option<i64>);

fn to_experiment(row: ExperimentRow) -> Result<StoredExperiment, StoreError> {
    let (tenant, spec_json, running, created_at_ms, stopped_at_ms) = row;
    stored_experiment(tenant, spec_json, running, created_at_ms, stopped_at_ms)
}

async fn notify(tx: &mut Transaction<'_, Pg>, tenant: &Name) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(tenant.as_str())
        .execute(&mut **tx)
        .await
        .map_err(error)?;
    Ok(())
}

async fn record_event(
    tx: &mut Transaction<'_, Pg>,
    tenant: &Name,
    policy: &Name,
    version: u32,
    event: &str,
    actor: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO policy_events (tenant, name, version, event, at, actor) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.as_str())
    .bind(policy.as_str())
    .bind(version as i32)
    .bind(event)
    .bind(now_ms())
    .bind(actor)
    .execute(&mut **tx)
    .await
    .map_err(error)?;
    Ok(())
}

async fn set_live(
    tx: &mut Transaction<'_, Pg>,
    tenant: &Name,
    policy: &Name,
    version: u32,
    actor: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO live_versions (tenant, name, version) VALUES ($1, $2, $3)
         ON CONFLICT (tenant, name) DO UPDATE SET version = excluded.version",
    )
    .bind(tenant.as_str())
    .bind(policy.as_str())
    .bind(version as i32)
    .execute(&mut **tx)
    .await
    .map_err(error)?;
    record_event(tx, tenant, policy, version, "activated", actor).await
}

async fn insert_keys(tx: &mut Transaction<'_, Pg>, keys: &[KeyRecord]) -> Result<(), StoreError> {
    for key in keys {
        sqlx::query(
            "INSERT INTO keys (id, tenant, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.id)
        .bind(key.tenant.as_str())
        .bind(key.role.as_str())
        .bind(key.hash.to_hex())
        .bind(now_ms())
        .execute(&mut **tx)
        .await
        .map_err(error)?;
    }
    Ok(())
}

impl Postgres {
    /// Connects and applies the schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(error)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("PostgreSQL schema migration failed: {e}")))?;
        Ok(Self {
            pool,
            url: url.to_owned(),
        })
    }

    /// Forwards every `NOTIFY` on [`CHANNEL`] as a [`Change::Tenant`], and a
    /// [`Change::Everything`] whenever the listening connection was lost
    /// (notices sent meanwhile are gone).
    pub fn listen(&self, changes: broadcast::Sender<Change>) {
        let url = self.url.clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match PgListener::connect(&url).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for changes on PostgreSQL; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "cannot listen for changes on PostgreSQL; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                let _ = changes.send(Change::Everything);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(notice)) => match Name::parse(notice.payload()) {
                            Ok(tenant) => {
                                let _ = changes.send(Change::Tenant(tenant));
                            }
                            Err(_) => tracing::warn!(
                                payload = notice.payload(),
                                "unreadable change notice"
                            ),
                        },
                        // The connection dropped; the listener reconnects on
                        // the next call, but notices sent meanwhile are lost.
                        Ok(None) => {
                            let _ = changes.send(Change::Everything);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "listening for changes failed; reconnecting");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            break;
                        }
                    }
                }
            }
        });
    }

    /// `None` when PostgreSQL answers, else what is wrong.
    pub async fn missing(&self) -> Option<String> {
        match sqlx::query("SELECT 1").execute(&self.pool).await {
            Ok(_) => None,
            Err(e) => Some(format!("postgres: {e}")),
        }
    }

    /// See [`Store::snapshot`](moment_store::Store::snapshot).
    pub async fn snapshot(&self, tenant: Option<&Name>) -> Result<Snapshot, StoreError> {
        let only = tenant.map(Name::as_str);
        let mut snap = Snapshot::default();
        let tenants: Vec<(String, String)> =
            sqlx::query_as("SELECT id, settings FROM tenants WHERE $1::text IS NULL OR id = $1")
                .bind(only)
                .fetch_all(&self.pool)
                .await
                .map_err(error)?;
        for (id, settings) in tenants {
            snap.tenants.push((stored_name(id)?, settings));
        }
        let keys: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT id, tenant, role, hash FROM keys
             WHERE revoked_at IS NULL AND ($1::text IS NULL OR tenant = $1)",
        )
        .bind(only)
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        for (id, tenant, role, hash) in keys {
            snap.keys.push(stored_key(id, tenant, &role, &hash)?);
        }
        let live: Vec<(String, String, i32)> = sqlx::query_as(
            "SELECT tenant, name, version FROM live_versions WHERE $1::text IS NULL OR tenant = $1",
        )
        .bind(only)
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        for (tenant, name, version) in live {
            snap.live.push(LivePointer {
                tenant: stored_name(tenant)?,
                name: stored_name(name)?,
                version: version_number(version)?,
            });
        }
        snap.experiments = self.read_experiments(only, None, true).await?;
        Ok(snap)
    }

    async fn read_experiments(
        &self,
        tenant: Option<&str>,
        id: Option<&str>,
        running_only: bool,
    ) -> Result<Vec<StoredExperiment>, StoreError> {
        let rows: Vec<ExperimentRow> = sqlx::query_as(
            "SELECT tenant, spec, running, created_at, stopped_at FROM experiments
             WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR id = $2)
               AND (NOT $3 OR running)
             ORDER BY created_at, id",
        )
        .bind(tenant)
        .bind(id)
        .bind(running_only)
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        rows.into_iter().map(to_experiment).collect()
    }

    /// See [`Store::create_tenant`](moment_store::Store::create_tenant).
    pub async fn create_tenant(
        &self,
        tenant: &Name,
        settings_json: &str,
        keys: &[KeyRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(error)?;
        sqlx::query("INSERT INTO tenants (id, settings, created_at) VALUES ($1, $2, $3)")
            .bind(tenant.as_str())
            .bind(settings_json)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(error)?;
        insert_keys(&mut tx, keys).await?;
        notify(&mut tx, tenant).await?;
        tx.commit().await.map_err(commit_error)
    }

    /// See [`Store::add_keys`](moment_store::Store::add_keys).
    pub async fn add_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(error)?;
        insert_keys(&mut tx, keys).await?;
        for key in keys {
            notify(&mut tx, &key.tenant).await?;
        }
        tx.commit().await.map_err(commit_error)
    }

    /// See [`Store::keys`](moment_store::Store::keys).
    pub async fn keys(&self, tenant: &Name) -> Result<Vec<KeyListing>, StoreError> {
        let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, role, created_at, revoked_at FROM keys WHERE tenant = $1 ORDER BY created_at, id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        rows.into_iter()
            .map(|(id, role, created_at_ms, revoked_at_ms)| {
                let role = stored_role(&id, &role)?;
                Ok(KeyListing {
                    id,
                    role,
                    created_at_ms,
                    revoked_at_ms,
                })
            })
            .collect()
    }

    /// See [`Store::revoke_key`](moment_store::Store::revoke_key).
    pub async fn revoke_key(&self, tenant: &Name, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(error)?;
        let changed = sqlx::query(
            "UPDATE keys SET revoked_at = $3 WHERE tenant = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(tenant.as_str())
        .bind(id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(error)?
        .rows_affected();
        notify(&mut tx, tenant).await?;
        tx.commit().await.map_err(commit_error)?;
        Ok(changed == 1)
    }

    /// See [`Store::patch_tenant_settings`](moment_store::Store::patch_tenant_settings).
    pub async fn patch_tenant_settings(
        &self,
        tenant: &Name,
        patch_json: &str,
    ) -> Result<String, StoreError> {
        let mut tx = self.pool.begin().await.map_err(error)?;
        // `||` replaces the top-level keys the patch holds, in the row
        // itself: a concurrent patch of other keys is kept.
        let (merged,): (String,) = sqlx::query_as(
            "UPDATE tenants SET settings = (settings::jsonb || $2::jsonb)::text
             WHERE id = $1 RETURNING settings",
        )
        .bind(tenant.as_str())
        .bind(patch_json)
        .fetch_one(&mut *tx)
        .await
        .map_err(error)?;
        notify(&mut tx, tenant).await?;
        tx.commit().await.map_err(commit_error)?;
        Ok(merged)
    }

    /// See [`Store::create_version`](moment_store::Store::create_version).
    pub async fn create_version(&self, v: NewVersion) -> Result<u32, StoreError> {
        let mut tx = self.pool.begin().await.map_err(error)?;
        // Two replicas uploading to one policy at once take turns here, so
        // each gets the next number.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
            .bind(v.tenant.as_str())
            .bind(v.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(error)?;
        let (next,): (i32,) = sqlx::query_as(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM policy_versions WHERE tenant = $1 AND name = $2",
        )
        .bind(v.tenant.as_str())
        .bind(v.name.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(error)?;
        let version = version_number(next)?;
        sqlx::query(
            "INSERT INTO policy_versions (tenant, name, version, engine, code, bundle, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(v.tenant.as_str())
        .bind(v.name.as_str())
        .bind(next)
        .bind(v.engine.as_str())
        .bind(&v.code)
        .bind(&v.bundle_json)
        .bind(now_ms())
        .bind(&v.actor)
        .execute(&mut *tx)
        .await
        .map_err(error)?;
        record_event(&mut tx, &v.tenant, &v.name, version, "uploaded", &v.actor).await?;
        if v.activate {
            set_live(&mut tx, &v.tenant, &v.name, version, &v.actor).await?;
            notify(&mut tx, &v.tenant).await?;
        }
        tx.commit().await.map_err(commit_error)?;
        Ok(version)
    }

    /// See [`Store::version`](moment_store::Store::version).
    pub async fn version(
        &self,
        tenant: &Name,
        policy: &Name,
        version: u32,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let row: Option<VersionRow> = sqlx::query_as(
            "SELECT tenant, name, version, engine, code, bundle FROM policy_versions
             WHERE tenant = $1 AND name = $2 AND version = $3",
        )
        .bind(tenant.as_str())
        .bind(policy.as_str())
        .bind(version as i32)
        .fetch_optional(&self.pool)
        .await
        .map_err(error)?;
        row.map(to_stored).transpose()
    }

    /// See [`Store::activate`](moment_store::Store::activate).
    pub async fn activate(
        &self,
        tenant: &Name,
        policy: &Name,
        version: u32,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(error)?;
        set_live(&mut tx, tenant, policy, version, actor).await?;
        notify(&mut tx, tenant).await?;
        tx.commit().await.map_err(commit_error)
    }

    /// See [`Store::policies`](moment_store::Store::policies).
    pub async fn policies(&self, tenant: &Name) -> Result<Vec<PolicySummary>, StoreError> {
        let rows: Vec<(String, i32, Option<i32>)> = sqlx::query_as(
            "SELECT v.name, MAX(v.version), MAX(l.version) FROM policy_versions v
             LEFT JOIN live_versions l ON l.tenant = v.tenant AND l.name = v.name
             WHERE v.tenant = $1 GROUP BY v.name ORDER BY v.name",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        rows.into_iter()
            .map(|(name, latest, live)| {
                Ok(PolicySummary {
                    name: stored_name(name)?,
                    live: live.map(version_number).transpose()?,
                    latest: version_number(latest)?,
                })
            })
            .collect()
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Transaction<'static, Pg>, StoreError> {
        self.pool.begin().await.map_err(error)
    }

    /// Stores outcomes not stored before, in `tx`; returns the dedup keys of
    /// those that are new. A concurrent insert of the same key waits for
    /// `tx` to end.
    pub async fn insert_outcomes(
        tx: &mut Transaction<'static, Pg>,
        tenant: &Name,
        events: &[OutcomeEvent],
    ) -> Result<Vec<String>, StoreError> {
        let column = |f: fn(&OutcomeEvent) -> String| events.iter().map(f).collect::<Vec<_>>();
        let new: Vec<(String,)> = sqlx::query_as(
            "INSERT INTO outcomes (tenant, dedup_key, decision_id, customer, action_id, type, value, at)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                      $7::float8[], $8::int8[])
             ON CONFLICT DO NOTHING RETURNING dedup_key",
        )
        .bind(tenant.as_str())
        .bind(column(|e| e.dedup_key.clone()))
        .bind(column(|e| e.decision_id.clone()))
        .bind(column(|e| e.customer_id.clone()))
        .bind(column(|e| e.action_id.clone()))
        .bind(column(|e| e.kind.as_str().to_owned()))
        .bind(events.iter().map(|e| e.value).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.at_ms as i64).collect::<Vec<_>>())
        .fetch_all(&mut **tx)
        .await
        .map_err(error)?;
        Ok(new.into_iter().map(|(k,)| k).collect())
    }

    /// Commits a transaction whose effects elsewhere are already made.
    pub async fn commit(tx: Transaction<'static, Pg>) -> Result<(), StoreError> {
        tx.commit().await.map_err(commit_error)
    }

    /// See [`Store::log_decisions`](moment_store::Store::log_decisions).
    pub async fn log_decisions(&self, records: &[DecisionRecord]) -> Result<(), StoreError> {
        let mut ids = Vec::with_capacity(records.len());
        let (mut tenants, mut points, mut versions) = (Vec::new(), Vec::new(), Vec::new());
        let (mut customers, mut actions, mut fallbacks) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ats, mut docs, mut experiments, mut variants) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in records {
            ids.push(r.id.as_str());
            tenants.push(r.tenant.as_str());
            points.push(r.point.as_str());
            versions.push(r.version as i32);
            customers.push(r.customer_id.as_str());
            actions.push(
                serde_json::to_string(&r.actions)
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
            );
            fallbacks.push(r.fallback);
            ats.push(r.at_ms as i64);
            docs.push(
                serde_json::to_string(&r.document)
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
            );
            experiments.push(r.experiment.as_ref().map(|e| e.0.as_str()));
            variants.push(r.experiment.as_ref().map(|e| e.1.as_str()));
        }
        let mut tx = self.pool.begin().await.map_err(error)?;
        sqlx::query(
            "INSERT INTO decisions (id, tenant, point, version, customer, actions, fallback, at, doc, experiment, variant)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[],
                                  $7::bool[], $8::int8[], $9::text[], $10::text[], $11::text[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&ids)
        .bind(&tenants)
        .bind(&points)
        .bind(&versions)
        .bind(&customers)
        .bind(&actions)
        .bind(&fallbacks)
        .bind(&ats)
        .bind(&docs)
        .bind(&experiments)
        .bind(&variants)
        .execute(&mut *tx)
        .await
        .map_err(error)?;
        let impressions: Vec<(&DecisionRecord, &String)> = records
            .iter()
            .filter(|r| r.impressions)
            .flat_map(|r| r.actions.iter().map(move |a| (r, a)))
            .collect();
        if !impressions.is_empty() {
            sqlx::query(
                "INSERT INTO outcomes (tenant, dedup_key, decision_id, customer, action_id, type, value, at)
                 SELECT t, k, d, c, a, $6, NULL, at
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $7::int8[])
                   AS i (t, k, d, c, a, at)
                 ON CONFLICT DO NOTHING",
            )
            .bind(impressions.iter().map(|(r, _)| r.tenant.as_str()).collect::<Vec<_>>())
            .bind(
                impressions
                    .iter()
                    .map(|(r, a)| default_dedup_key(&r.id, a, OutcomeType::Impression))
                    .collect::<Vec<_>>(),
            )
            .bind(impressions.iter().map(|(r, _)| r.id.as_str()).collect::<Vec<_>>())
            .bind(impressions.iter().map(|(r, _)| r.customer_id.as_str()).collect::<Vec<_>>())
            .bind(impressions.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>())
            .bind(OutcomeType::Impression.as_str())
            .bind(impressions.iter().map(|(r, _)| r.at_ms as i64).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(error)?;
        }
        // Every insert is `ON CONFLICT DO NOTHING`: writing the batch again
        // after a commit of unknown outcome is safe, so the log retries it.
        tx.commit().await.map_err(error)
    }

    /// See [`Store::decision`](moment_store::Store::decision).
    pub async fn decision(
        &self,
        tenant: &Name,
        id: &str,
    ) -> Result<Option<DecisionRef>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT customer, actions FROM decisions WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(error)?;
        row.map(|(customer_id, actions)| stored_decision(tenant, id, customer_id, &actions))
            .transpose()
    }

    /// See [`Store::experiment_days`](moment_store::Store::experiment_days).
    pub async fn experiment_days(
        &self,
        tenant: &Name,
        id: &Name,
        goal: &str,
        day_ms: i64,
    ) -> Result<Vec<VariantDay>, StoreError> {
        let day_ms = day_ms.max(1);
        let exposed: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT variant, (first / $3) * $3 AS day, COUNT(*) FROM
               (SELECT variant, customer, MIN(at) AS first FROM decisions
                WHERE tenant = $1 AND experiment = $2 GROUP BY variant, customer) AS firsts
             GROUP BY variant, day",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(day_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        let converted: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT variant, (first / $4) * $4 AS day, COUNT(*) FROM
               (SELECT d.variant, o.customer, MIN(o.at) AS first
                FROM outcomes o JOIN decisions d ON d.id = o.decision_id AND d.tenant = o.tenant
                WHERE o.tenant = $1 AND d.experiment = $2 AND o.type = $3 GROUP BY d.variant, o.customer) AS firsts
             GROUP BY variant, day",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(goal)
        .bind(day_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        Ok(variant_days(exposed, converted))
    }

    /// See [`Store::activity`](moment_store::Store::activity).
    pub async fn activity(
        &self,
        tenant: &Name,
        since_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<Activity>, StoreError> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT point, (at / $3) * $3 AS bucket, COUNT(*), COUNT(*) FILTER (WHERE fallback)
             FROM decisions WHERE tenant = $1 AND at >= $2
             GROUP BY point, bucket ORDER BY point, bucket",
        )
        .bind(tenant.as_str())
        .bind(since_ms)
        .bind(bucket_ms.max(1))
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        Ok(rows
            .into_iter()
            .map(|(point, bucket_ms, decisions, fallbacks)| Activity {
                point,
                bucket_ms,
                decisions: decisions as u64,
                fallbacks: fallbacks as u64,
            })
            .collect())
    }

    /// See [`Store::customer_decisions`](moment_store::Store::customer_decisions).
    pub async fn customer_decisions(
        &self,
        tenant: &Name,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<CustomerDecision>, StoreError> {
        let decisions: Vec<(String, String, i32, String, bool, i64)> = sqlx::query_as(
            "SELECT id, point, version, actions, fallback, at FROM decisions
             WHERE tenant = $1 AND customer = $2 ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(customer)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        let outcomes: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT decision_id, action_id, type FROM outcomes
             WHERE tenant = $1 AND customer = $2 ORDER BY at",
        )
        .bind(tenant.as_str())
        .bind(customer)
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        let decisions = decisions
            .into_iter()
            .map(|(id, point, version, actions, fallback, at)| {
                (id, point, i64::from(version), actions, fallback, at)
            })
            .collect();
        customer_decisions(decisions, outcomes)
    }

    /// See [`Store::prune_logs`](moment_store::Store::prune_logs).
    pub async fn prune_logs(&self, before_ms: u64, limit: usize) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for sql in [
            "DELETE FROM decisions WHERE ctid IN
               (SELECT ctid FROM decisions WHERE at < $1 LIMIT $2)",
            "DELETE FROM outcomes WHERE ctid IN
               (SELECT ctid FROM outcomes WHERE at < $1 LIMIT $2)",
        ] {
            pruned += sqlx::query(sql)
                .bind(before_ms as i64)
                .bind(limit as i64)
                .execute(&self.pool)
                .await
                .map_err(error)?
                .rows_affected();
        }
        Ok(pruned)
    }

    /// See [`Store::create_experiment`](moment_store::Store::create_experiment).
    pub async fn create_experiment(
        &self,
        tenant: &Name,
        id: &Name,
        point: &Name,
        spec_json: &str,
        admit: &Admit<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(error)?;
        // Two replicas starting experiments on one point take turns here, so
        // each sees the other's and exclusivity holds across replicas.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/experiments/' || $2, 0))",
        )
        .bind(tenant.as_str())
        .bind(point.as_str())
        .execute(&mut *tx)
        .await
        .map_err(error)?;
        let running: Vec<(String,)> = sqlx::query_as(
            "SELECT spec FROM experiments
             WHERE tenant = $1 AND running AND spec::jsonb ->> 'point' = $2",
        )
        .bind(tenant.as_str())
        .bind(point.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(error)?;
        let running: Vec<String> = running.into_iter().map(|(spec,)| spec).collect();
        admit(&running).map_err(StoreError::Invalid)?;
        sqlx::query(
            "INSERT INTO experiments (tenant, id, spec, running, created_at) VALUES ($1, $2, $3, TRUE, $4)",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(spec_json)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(error)?;
        notify(&mut tx, tenant).await?;
        tx.commit().await.map_err(commit_error)
    }

    /// See [`Store::experiments`](moment_store::Store::experiments).
    pub async fn experiments(&self, tenant: &Name) -> Result<Vec<StoredExperiment>, StoreError> {
        self.read_experiments(Some(tenant.as_str()), None, false)
            .await
    }

    /// See [`Store::experiment`](moment_store::Store::experiment).
    pub async fn experiment(
        &self,
        tenant: &Name,
        id: &Name,
    ) -> Result<Option<StoredExperiment>, StoreError> {
        Ok(self
            .read_experiments(Some(tenant.as_str()), Some(id.as_str()), false)
            .await?
            .into_iter()
            .next())
    }

    /// See [`Store::stop_experiment`](moment_store::Store::stop_experiment).
    pub async fn stop_experiment(&self, tenant: &Name, id: &Name) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(error)?;
        sqlx::query(
            "UPDATE experiments SET running = FALSE, stopped_at = $3 WHERE tenant = $1 AND id = $2 AND running",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(error)?;
        notify(&mut tx, tenant).await?;
        tx.commit().await.map_err(commit_error)
    }

    /// See [`Store::experiment_counts`](moment_store::Store::experiment_counts).
    pub async fn experiment_counts(
        &self,
        tenant: &Name,
        id: &Name,
        goal: &str,
    ) -> Result<Vec<(String, VariantCounts)>, StoreError> {
        let exposures: Vec<(String, i64)> = sqlx::query_as(
            "SELECT variant, COUNT(DISTINCT customer) FROM decisions
             WHERE tenant = $1 AND experiment = $2 GROUP BY variant",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        // Values are clamped to the accepted range so that rows stored
        // before it was enforced cannot overflow the sum (an error in
        // float8); LEAST and GREATEST ignore NULLs, hence the filter.
        let conversions: Vec<(String, i64, f64)> = sqlx::query_as(
            "SELECT d.variant, COUNT(DISTINCT o.customer),
                    COALESCE(SUM(LEAST(GREATEST(o.value, -$4), $4))
                        FILTER (WHERE o.value IS NOT NULL), 0)::float8
             FROM outcomes o JOIN decisions d ON d.id = o.decision_id AND d.tenant = o.tenant
             WHERE o.tenant = $1 AND d.experiment = $2 AND o.type = $3 GROUP BY d.variant",
        )
        .bind(tenant.as_str())
        .bind(id.as_str())
        .bind(goal)
        .bind(MAX_VALUE)
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        Ok(variant_counts(exposures, &conversions))
    }

    /// See [`Store::history`](moment_store::Store::history).
    pub async fn history(
        &self,
        tenant: &Name,
        policy: &Name,
    ) -> Result<Option<PolicyHistory>, StoreError> {
        let versions: Vec<(i32, String, i64, String)> = sqlx::query_as(
            "SELECT version, engine, created_at, created_by FROM policy_versions
             WHERE tenant = $1 AND name = $2 ORDER BY version",
        )
        .bind(tenant.as_str())
        .bind(policy.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        if versions.is_empty() {
            return Ok(None);
        }
        let versions = versions
            .into_iter()
            .map(|(version, engine, created_at_ms, created_by)| {
                stored_version_info(version.into(), &engine, created_at_ms, created_by)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let live: Option<(i32,)> =
            sqlx::query_as("SELECT version FROM live_versions WHERE tenant = $1 AND name = $2")
                .bind(tenant.as_str())
                .bind(policy.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(error)?;
        let events: Vec<(String, i32, i64, String)> = sqlx::query_as(
            "SELECT event, version, at, actor FROM policy_events
             WHERE tenant = $1 AND name = $2 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(policy.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(error)?;
        Ok(Some(PolicyHistory {
            live: live.map(|(v,)| version_number(v)).transpose()?,
            versions,
            events: events
                .into_iter()
                .map(|(event, version, at_ms, by)| stored_event(event, version.into(), at_ms, by))
                .collect::<Result<_, StoreError>>()?,
        }))
    }
}
