//! The embedded store: one SQLite database in WAL mode under `--data`.
//!
//! Every write is one transaction, committed before the caller is answered,
//! so an acknowledged write survives `kill -9` of the process. Calls run on
//! tokio's blocking pool so they never stall a worker.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use rusqlite_migration::{M, Migrations};

use serde_json::{Map, Value};

use crate::{
    Activity, Admit, CustomerDecision, DecisionRecord, DecisionRef, KeyListing, KeyRecord,
    LivePointer, NewVersion, PolicyHistory, PolicySummary, RecordedOutcomes, Snapshot, Store,
    StoreError, StoredExperiment, StoredVersion, VariantCounts, VariantDay, customer_decisions,
    stored_decision, stored_engine, stored_event, stored_experiment, stored_key, stored_name,
    stored_role, stored_version_info, variant_counts, variant_days,
};
use moment_core::model::Name;
use moment_core::model::outcome::{MAX_VALUE, OutcomeEvent, OutcomeType, default_dedup_key};
use moment_core::model::profile::Profile;

/// The embedded store's schema, one migration per file in
/// `runtime/schema/sqlite/` (beside the PostgreSQL ones), applied in order
/// and counted in SQLite's `user_version`.
static MIGRATIONS: std::sync::LazyLock<Migrations<'static>> = std::sync::LazyLock::new(|| {
    Migrations::new(vec![
        M::up(include_str!("../../schema/sqlite/0001_initial.sql")).foreign_key_check(),
        M::up(include_str!(
            "../../schema/sqlite/0002_decisions_keyed_by_tenant.sql"
        ))
        .foreign_key_check(),
        M::up(include_str!("../../schema/sqlite/0003_log_retention.sql")),
        M::up(include_str!(
            "../../schema/sqlite/0004_decisions_by_customer.sql"
        )),
    ])
});

/// SQLite-backed [`Store`].
///
/// Writes (and reads inside them) go through one connection. The decide
/// path's reads — a profile on a cache miss, a decision an outcome names —
/// have a read-only connection of their own: in WAL mode it reads the last
/// committed state while a write is in progress, so a long write (a batch of
/// the decision log, a pruning pass) never holds a decision up.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("moment.sqlite3");
        let mut conn = Connection::open(&path).map_err(backend)?;
        // WAL with synchronous=NORMAL: a committed transaction is in the WAL file
        // before commit returns, so it survives the process being killed.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(backend)?;
        // Foreign keys are enforced from here on, but not while migrating: a
        // migration that rebuilds a table (SQLite's way to change one) would
        // otherwise trip over the rows that reference it. Each migration
        // checks the keys before it commits (`foreign_key_check`).
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Backend(format!("cannot migrate the embedded store: {e}")))?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(backend)?;
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend)?;
        reader
            .execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(backend)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Runs `f` on the writing connection, on tokio's blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Self::on(self.conn.clone(), f).await
    }

    /// Runs `f` on the read-only connection, which never waits for a write.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Self::on(self.reader.clone(), f).await
    }

    async fn on<T, F>(conn: Arc<Mutex<Connection>>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Backend("connection mutex poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict
        }
        other => StoreError::Backend(other.to_string()),
    }
}

fn now_ms() -> i64 {
    moment_core::clock::now_ms() as i64
}

fn record_event(
    tx: &Transaction<'_>,
    tenant: &Name,
    policy: &Name,
    version: u32,
    event: &str,
    actor: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO policy_events (tenant, name, version, event, at, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![tenant.as_str(), policy.as_str(), version, event, now_ms(), actor],
    )
    .map_err(backend)?;
    Ok(())
}

fn read_profile(
    tx: &Connection,
    tenant: &Name,
    customer: &str,
) -> Result<Option<Profile>, StoreError> {
    let doc: Option<String> = tx
        .query_row(
            "SELECT doc FROM profiles WHERE tenant = ?1 AND customer = ?2",
            params![tenant.as_str(), customer],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    doc.map(|d| {
        serde_json::from_str(&d)
            .map_err(|e| StoreError::Backend(format!("profile of {customer:?} is unreadable: {e}")))
    })
    .transpose()
}

fn write_profile(
    tx: &Connection,
    tenant: &Name,
    customer: &str,
    profile: &mut Profile,
) -> Result<(), StoreError> {
    profile.revision += 1;
    let doc = serde_json::to_string(profile).map_err(|e| StoreError::Backend(e.to_string()))?;
    tx.execute(
        "INSERT INTO profiles (tenant, customer, doc, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, customer) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
        params![tenant.as_str(), customer, doc, now_ms()],
    )
    .map_err(backend)?;
    Ok(())
}

/// Experiments, optionally of one tenant, with one id, or running only.
fn read_experiments(
    conn: &Connection,
    tenant: Option<&Name>,
    id: Option<&Name>,
    running_only: bool,
) -> Result<Vec<StoredExperiment>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT tenant, spec, running, created_at, stopped_at FROM experiments
             WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR id = ?2) AND (?3 = 0 OR running = 1)
             ORDER BY created_at, id",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(
            params![tenant.map(Name::as_str), id.map(Name::as_str), running_only],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            },
        )
        .map_err(backend)?;
    rows.map(|row| {
        let (tenant, spec_json, running, created_at_ms, stopped_at_ms) = row.map_err(backend)?;
        stored_experiment(tenant, spec_json, running, created_at_ms, stopped_at_ms)
    })
    .collect()
}

fn insert_keys(tx: &Transaction<'_>, keys: &[KeyRecord]) -> Result<(), StoreError> {
    for key in keys {
        tx.execute(
            "INSERT INTO keys (id, tenant, role, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                key.id,
                key.tenant.as_str(),
                key.role.as_str(),
                key.hash.to_hex(),
                now_ms()
            ],
        )
        .map_err(backend)?;
    }
    Ok(())
}

fn set_live(
    tx: &Transaction<'_>,
    tenant: &Name,
    policy: &Name,
    version: u32,
    actor: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO live_versions (tenant, name, version) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant, name) DO UPDATE SET version = excluded.version",
        params![tenant.as_str(), policy.as_str(), version],
    )
    .map_err(backend)?;
    record_event(tx, tenant, policy, version, "activated", actor)
}

fn read_version(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, u32, String, Vec<u8>, String)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn to_stored(
    raw: (String, String, u32, String, Vec<u8>, String),
) -> Result<StoredVersion, StoreError> {
    let (tenant, policy, version, eng, code, bundle_json) = raw;
    Ok(StoredVersion {
        tenant: stored_name(tenant)?,
        name: stored_name(policy)?,
        version,
        engine: stored_engine(&eng)?,
        code,
        bundle_json,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn snapshot(&self, tenant: Option<&Name>) -> Result<Snapshot, StoreError> {
        let only = tenant.map(|t| t.as_str().to_owned());
        self.with(move |conn| {
            let mut snap = Snapshot::default();
            let mut stmt = conn
                .prepare("SELECT id, settings FROM tenants WHERE ?1 IS NULL OR id = ?1")
                .map_err(backend)?;
            let rows = stmt
                .query_map([&only], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(backend)?;
            for row in rows {
                let (id, settings) = row.map_err(backend)?;
                snap.tenants.push((stored_name(id)?, settings));
            }
            let mut stmt = conn
                .prepare(
                    "SELECT id, tenant, role, hash FROM keys
                     WHERE revoked_at IS NULL AND (?1 IS NULL OR tenant = ?1)",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([&only], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(backend)?;
            for row in rows {
                let (id, tenant, role, hash) = row.map_err(backend)?;
                snap.keys.push(stored_key(id, tenant, &role, &hash)?);
            }
            let mut stmt = conn
                .prepare("SELECT tenant, name, version FROM live_versions WHERE ?1 IS NULL OR tenant = ?1")
                .map_err(backend)?;
            let rows = stmt
                .query_map([&only], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
                })
                .map_err(backend)?;
            for row in rows {
                let (tenant, policy, version) = row.map_err(backend)?;
                snap.live.push(LivePointer {
                    tenant: stored_name(tenant)?,
                    name: stored_name(policy)?,
                    version,
                });
            }
            let tenant = only.map(stored_name).transpose()?;
            snap.experiments = read_experiments(conn, tenant.as_ref(), None, true)?;
            Ok(snap)
        })
        .await
    }

    async fn create_tenant(
        &self,
        tenant: &Name,
        settings_json: &str,
        keys: &[KeyRecord],
    ) -> Result<(), StoreError> {
        let (tenant, settings, keys) = (tenant.clone(), settings_json.to_owned(), keys.to_vec());
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            tx.execute(
                "INSERT INTO tenants (id, settings, created_at) VALUES (?1, ?2, ?3)",
                params![tenant.as_str(), settings, now_ms()],
            )
            .map_err(backend)?;
            insert_keys(&tx, &keys)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn add_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            insert_keys(&tx, &keys)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn keys(&self, tenant: &Name) -> Result<Vec<KeyListing>, StoreError> {
        let tenant = tenant.clone();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare("SELECT id, role, created_at, revoked_at FROM keys WHERE tenant = ?1 ORDER BY created_at, id")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![tenant.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (id, role, created_at_ms, revoked_at_ms) = row.map_err(backend)?;
                let role = stored_role(&id, &role)?;
                Ok(KeyListing { id, role, created_at_ms, revoked_at_ms })
            })
            .collect()
        })
        .await
    }

    async fn revoke_key(&self, tenant: &Name, id: &str) -> Result<bool, StoreError> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.with(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE keys SET revoked_at = ?3 WHERE tenant = ?1 AND id = ?2 AND revoked_at IS NULL",
                    params![tenant.as_str(), id, now_ms()],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn missing(&self) -> Vec<String> {
        match self
            .with(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
        {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!("the embedded database: {e}")],
        }
    }

    async fn patch_tenant_settings(
        &self,
        tenant: &Name,
        patch_json: &str,
    ) -> Result<String, StoreError> {
        let patch: serde_json::Map<String, serde_json::Value> = serde_json::from_str(patch_json)
            .map_err(|e| StoreError::Invalid(format!("settings patch: {e}")))?;
        let tenant = tenant.clone();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let stored: String = tx
                .query_row(
                    "SELECT settings FROM tenants WHERE id = ?1",
                    params![tenant.as_str()],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let mut settings: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&stored).map_err(|e| StoreError::Backend(e.to_string()))?;
            settings.extend(patch);
            let merged =
                serde_json::to_string(&settings).map_err(|e| StoreError::Backend(e.to_string()))?;
            tx.execute(
                "UPDATE tenants SET settings = ?2 WHERE id = ?1",
                params![tenant.as_str(), merged],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(merged)
        })
        .await
    }

    async fn create_version(&self, v: NewVersion) -> Result<u32, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let version: u32 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM policy_versions WHERE tenant = ?1 AND name = ?2",
                    params![v.tenant.as_str(), v.name.as_str()],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO policy_versions (tenant, name, version, engine, code, bundle, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    v.tenant.as_str(),
                    v.name.as_str(),
                    version,
                    v.engine.as_str(),
                    v.code,
                    v.bundle_json,
                    now_ms(),
                    v.actor
                ],
            )
            .map_err(backend)?;
            record_event(&tx, &v.tenant, &v.name, version, "uploaded", &v.actor)?;
            if v.activate {
                set_live(&tx, &v.tenant, &v.name, version, &v.actor)?;
            }
            tx.commit().map_err(backend)?;
            Ok(version)
        })
        .await
    }

    async fn version(
        &self,
        tenant: &Name,
        policy: &Name,
        version: u32,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let (tenant, policy) = (tenant.clone(), policy.clone());
        self.with(move |conn| {
            conn.query_row(
                "SELECT tenant, name, version, engine, code, bundle FROM policy_versions
                 WHERE tenant = ?1 AND name = ?2 AND version = ?3",
                params![tenant.as_str(), policy.as_str(), version],
                read_version,
            )
            .optional()
            .map_err(backend)?
            .map(to_stored)
            .transpose()
        })
        .await
    }

    async fn activate(
        &self,
        tenant: &Name,
        policy: &Name,
        version: u32,
        actor: &str,
    ) -> Result<(), StoreError> {
        let (tenant, policy, actor) = (tenant.clone(), policy.clone(), actor.to_owned());
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            set_live(&tx, &tenant, &policy, version, &actor)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn policies(&self, tenant: &Name) -> Result<Vec<PolicySummary>, StoreError> {
        let tenant = tenant.clone();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT v.name, MAX(v.version), l.version FROM policy_versions v
                     LEFT JOIN live_versions l ON l.tenant = v.tenant AND l.name = v.name
                     WHERE v.tenant = ?1 GROUP BY v.name ORDER BY v.name",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![tenant.as_str()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, Option<u32>>(2)?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (n, latest, live) = row.map_err(backend)?;
                Ok(PolicySummary {
                    name: stored_name(n)?,
                    live,
                    latest,
                })
            })
            .collect()
        })
        .await
    }

    async fn profile(&self, tenant: &Name, customer: &str) -> Result<Option<Profile>, StoreError> {
        let (tenant, customer) = (tenant.clone(), customer.to_owned());
        self.read(move |conn| read_profile(conn, &tenant, &customer))
            .await
    }

    async fn patch_profile(
        &self,
        tenant: &Name,
        customer: &str,
        attributes: Map<String, Value>,
        stage: Option<String>,
    ) -> Result<Profile, StoreError> {
        let (tenant, customer) = (tenant.clone(), customer.to_owned());
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let mut profile = read_profile(&tx, &tenant, &customer)?.unwrap_or_default();
            profile
                .merge(attributes, stage)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            write_profile(&tx, &tenant, &customer, &mut profile)?;
            tx.commit().map_err(backend)?;
            Ok(profile)
        })
        .await
    }

    async fn record_outcomes(
        &self,
        tenant: &Name,
        events: &[OutcomeEvent],
    ) -> Result<RecordedOutcomes, StoreError> {
        let (tenant, events) = (tenant.clone(), events.to_vec());
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let mut report = RecordedOutcomes::default();
            let mut profiles: Vec<(String, Profile)> = Vec::new();
            for e in &events {
                let inserted = tx
                    .execute(
                        "INSERT OR IGNORE INTO outcomes (tenant, dedup_key, decision_id, customer, action_id, type, value, at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            tenant.as_str(), e.dedup_key, e.decision_id, e.customer_id, e.action_id,
                            e.kind.as_str(), e.value, e.at_ms as i64
                        ],
                    )
                    .map_err(backend)?;
                if inserted == 0 {
                    report.duplicates += 1;
                    continue;
                }
                report.accepted += 1;
                let at = match profiles.iter().position(|(c, _)| c == &e.customer_id) {
                    Some(at) => at,
                    None => {
                        let profile = read_profile(&tx, &tenant, &e.customer_id)?.unwrap_or_default();
                        profiles.push((e.customer_id.clone(), profile));
                        profiles.len() - 1
                    }
                };
                profiles[at].1.record(&e.action_id, e.kind, e.at_ms);
            }
            for (customer, profile) in &mut profiles {
                write_profile(&tx, &tenant, customer, profile)?;
            }
            tx.commit().map_err(backend)?;
            report.profiles = profiles;
            Ok(report)
        })
        .await
    }

    async fn record_impressions(
        &self,
        tenant: &Name,
        customer: &str,
        seen: Option<&Profile>,
        actions: &[String],
        at_ms: u64,
    ) -> Result<Profile, StoreError> {
        let (tenant, customer, actions) = (tenant.clone(), customer.to_owned(), actions.to_vec());
        let seen_revision = seen.map_or(0, |p| p.revision);
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            // The stored profile, not `seen`, is the base: the revision check
            // and the write are in one transaction.
            let mut profile = read_profile(&tx, &tenant, &customer)?.unwrap_or_default();
            if profile.revision != seen_revision {
                return Err(StoreError::Stale);
            }
            profile.record_impressions(&actions, at_ms);
            write_profile(&tx, &tenant, &customer, &mut profile)?;
            tx.commit().map_err(backend)?;
            Ok(profile)
        })
        .await
    }

    async fn prune_logs(&self, before_ms: u64, limit: usize) -> Result<u64, StoreError> {
        self.with(move |conn| {
            let mut pruned = 0;
            for sql in [
                "DELETE FROM decisions WHERE rowid IN
                   (SELECT rowid FROM decisions WHERE at < ?1 LIMIT ?2)",
                "DELETE FROM outcomes WHERE rowid IN
                   (SELECT rowid FROM outcomes WHERE at < ?1 LIMIT ?2)",
            ] {
                pruned += conn
                    .execute(sql, params![before_ms as i64, limit as i64])
                    .map_err(backend)? as u64;
            }
            Ok(pruned)
        })
        .await
    }

    async fn log_decisions(&self, records: &[DecisionRecord]) -> Result<(), StoreError> {
        let records = records.to_vec();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO decisions
                           (id, tenant, point, version, customer, actions, fallback, at, doc, experiment, variant)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .map_err(backend)?;
                for r in &records {
                    let actions = serde_json::to_string(&r.actions).map_err(|e| StoreError::Backend(e.to_string()))?;
                    let document = serde_json::to_string(&r.document).map_err(|e| StoreError::Backend(e.to_string()))?;
                    stmt.execute(params![
                        r.id, r.tenant.as_str(), r.point.as_str(), r.version, r.customer_id, actions,
                        r.fallback, r.at_ms as i64, document,
                        r.experiment.as_ref().map(|e| &e.0), r.experiment.as_ref().map(|e| &e.1)
                    ])
                    .map_err(backend)?;
                }
                let mut impressions = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO outcomes (tenant, dedup_key, decision_id, customer, action_id, type, value, at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)",
                    )
                    .map_err(backend)?;
                for r in records.iter().filter(|r| r.impressions) {
                    for action in &r.actions {
                        impressions
                            .execute(params![
                                r.tenant.as_str(), default_dedup_key(&r.id, action, OutcomeType::Impression), r.id, r.customer_id,
                                action, OutcomeType::Impression.as_str(), r.at_ms as i64
                            ])
                            .map_err(backend)?;
                    }
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn decision(&self, tenant: &Name, id: &str) -> Result<Option<DecisionRef>, StoreError> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.read(move |conn| {
            let row: Option<(String, String)> = conn
                .query_row(
                    "SELECT customer, actions FROM decisions WHERE tenant = ?1 AND id = ?2",
                    params![tenant.as_str(), id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            row.map(|(customer_id, actions)| stored_decision(&tenant, &id, customer_id, &actions))
                .transpose()
        })
        .await
    }

    async fn experiment_days(
        &self,
        tenant: &Name,
        id: &Name,
        goal: &str,
        day_ms: i64,
    ) -> Result<Vec<VariantDay>, StoreError> {
        let (tenant, id, goal) = (tenant.clone(), id.clone(), goal.to_owned());
        self.read(move |conn| {
            let day_ms = day_ms.max(1);
            let rows = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
            let exposed = conn
                .prepare_cached(
                    "SELECT variant, (first / ?3) * ?3 AS day, COUNT(*) FROM
                       (SELECT variant, customer, MIN(at) AS first FROM decisions
                        WHERE tenant = ?1 AND experiment = ?2 GROUP BY variant, customer) AS firsts
                     GROUP BY variant, day",
                )
                .map_err(backend)?
                .query_map(params![tenant.as_str(), id.as_str(), day_ms], rows)
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let converted = conn
                .prepare_cached(
                    "SELECT variant, (first / ?4) * ?4 AS day, COUNT(*) FROM
                       (SELECT d.variant, o.customer, MIN(o.at) AS first
                        FROM outcomes o JOIN decisions d ON d.id = o.decision_id AND d.tenant = o.tenant
                        WHERE o.tenant = ?1 AND d.experiment = ?2 AND o.type = ?3 GROUP BY d.variant, o.customer) AS firsts
                     GROUP BY variant, day",
                )
                .map_err(backend)?
                .query_map(params![tenant.as_str(), id.as_str(), goal, day_ms], rows)
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok(variant_days(exposed, converted))
        })
        .await
    }

    async fn activity(
        &self,
        tenant: &Name,
        since_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<Activity>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT point, (at / ?3) * ?3 AS bucket, COUNT(*), SUM(fallback)
                     FROM decisions WHERE tenant = ?1 AND at >= ?2
                     GROUP BY point, bucket ORDER BY point, bucket",
                )
                .map_err(backend)?;
            stmt.query_map(params![tenant.as_str(), since_ms, bucket_ms.max(1)], |r| {
                Ok(Activity {
                    point: r.get(0)?,
                    bucket_ms: r.get(1)?,
                    decisions: r.get::<_, i64>(2)? as u64,
                    fallbacks: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)
        })
        .await
    }

    async fn customer_decisions(
        &self,
        tenant: &Name,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<CustomerDecision>, StoreError> {
        let (tenant, customer) = (tenant.clone(), customer.to_owned());
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, point, version, actions, fallback, at FROM decisions
                     WHERE tenant = ?1 AND customer = ?2 ORDER BY at DESC, id DESC LIMIT ?3",
                )
                .map_err(backend)?;
            let decisions = stmt
                .query_map(params![tenant.as_str(), customer, limit as i64], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT decision_id, action_id, type FROM outcomes
                     WHERE tenant = ?1 AND customer = ?2 ORDER BY at",
                )
                .map_err(backend)?;
            let outcomes = stmt
                .query_map(params![tenant.as_str(), customer], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            customer_decisions(decisions, outcomes)
        })
        .await
    }

    async fn create_experiment(
        &self,
        tenant: &Name,
        id: &Name,
        point: &Name,
        spec_json: &str,
        admit: &Admit<'_>,
    ) -> Result<(), StoreError> {
        // One process writes the embedded store, and its service writes
        // experiments one at a time: reading, then inserting, is atomic enough.
        let (t, p) = (tenant.clone(), point.clone());
        let running = self
            .with(move |conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT spec FROM experiments
                         WHERE tenant = ?1 AND running = 1 AND json_extract(spec, '$.point') = ?2",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![t.as_str(), p.as_str()], |r| r.get::<_, String>(0))
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        admit(&running).map_err(StoreError::Invalid)?;
        let (tenant, id, spec) = (tenant.clone(), id.clone(), spec_json.to_owned());
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO experiments (tenant, id, spec, running, created_at) VALUES (?1, ?2, ?3, 1, ?4)",
                params![tenant.as_str(), id.as_str(), spec, now_ms()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn experiments(&self, tenant: &Name) -> Result<Vec<StoredExperiment>, StoreError> {
        let tenant = tenant.clone();
        self.with(move |conn| read_experiments(conn, Some(&tenant), None, false))
            .await
    }

    async fn experiment(
        &self,
        tenant: &Name,
        id: &Name,
    ) -> Result<Option<StoredExperiment>, StoreError> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.with(move |conn| {
            Ok(read_experiments(conn, Some(&tenant), Some(&id), false)?
                .into_iter()
                .next())
        })
        .await
    }

    async fn stop_experiment(&self, tenant: &Name, id: &Name) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.with(move |conn| {
            conn.execute(
                "UPDATE experiments SET running = 0, stopped_at = ?3 WHERE tenant = ?1 AND id = ?2 AND running = 1",
                params![tenant.as_str(), id.as_str(), now_ms()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn experiment_counts(
        &self,
        tenant: &Name,
        id: &Name,
        goal: &str,
    ) -> Result<Vec<(String, VariantCounts)>, StoreError> {
        let (tenant, id, goal) = (tenant.clone(), id.clone(), goal.to_owned());
        self.with(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT variant, COUNT(DISTINCT customer) FROM decisions
                     WHERE tenant = ?1 AND experiment = ?2 GROUP BY variant",
                )
                .map_err(backend)?;
            let exposures = stmt
                .query_map(params![tenant.as_str(), id.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let mut stmt = conn
                .prepare(
                    // Clamped to the accepted range so that rows stored
                    // before it was enforced cannot sum to infinity.
                    "SELECT d.variant, COUNT(DISTINCT o.customer),
                            COALESCE(SUM(MIN(MAX(o.value, -?4), ?4)), 0)
                     FROM outcomes o JOIN decisions d ON d.id = o.decision_id AND d.tenant = o.tenant
                     WHERE o.tenant = ?1 AND d.experiment = ?2 AND o.type = ?3 GROUP BY d.variant",
                )
                .map_err(backend)?;
            let conversions = stmt
                .query_map(params![tenant.as_str(), id.as_str(), goal, MAX_VALUE], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, f64>(2)?))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok(variant_counts(exposures, &conversions))
        })
        .await
    }

    async fn history(
        &self,
        tenant: &Name,
        policy: &Name,
    ) -> Result<Option<PolicyHistory>, StoreError> {
        let (tenant, policy) = (tenant.clone(), policy.clone());
        self.with(move |conn| {
            let args = params![tenant.as_str(), policy.as_str()];
            let mut stmt = conn
                .prepare(
                    "SELECT version, engine, created_at, created_by FROM policy_versions
                     WHERE tenant = ?1 AND name = ?2 ORDER BY version",
                )
                .map_err(backend)?;
            let versions = stmt
                .query_map(args, |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                    ))
                })
                .map_err(backend)?
                .map(|row| {
                    let (version, engine, created_at_ms, created_by) = row.map_err(backend)?;
                    stored_version_info(version, &engine, created_at_ms, created_by)
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            if versions.is_empty() {
                return Ok(None);
            }
            let live = conn
                .query_row(
                    "SELECT version FROM live_versions WHERE tenant = ?1 AND name = ?2",
                    args,
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            let mut stmt = conn
                .prepare(
                    "SELECT event, version, at, actor FROM policy_events
                     WHERE tenant = ?1 AND name = ?2 ORDER BY seq",
                )
                .map_err(backend)?;
            let events = stmt
                .query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(backend)?
                .map(|row| {
                    let (event, version, at_ms, by) = row.map_err(backend)?;
                    stored_event(event, version, at_ms, by)
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(Some(PolicyHistory {
                live,
                versions,
                events,
            }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use moment_core::model::policy::EngineKind;

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    /// A profile read answers the last committed profile while a write
    /// transaction is open: it never waits behind the writing connection.
    /// (The writer's lock is held across the read on purpose: a read that
    /// took it would never finish.)
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn profile_reads_do_not_wait_for_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.create_tenant(&n("acme"), "{}", &[]).await.unwrap();
        let attributes = serde_json::json!({"tier": "gold"});
        let attributes = attributes.as_object().unwrap().clone();
        store
            .patch_profile(&n("acme"), "c-1", attributes, None)
            .await
            .unwrap();

        let writer = store.conn.clone();
        let mut writing = writer.lock().unwrap();
        let tx = writing.transaction().unwrap();
        tx.execute("UPDATE profiles SET doc = '{}' WHERE customer = 'c-1'", [])
            .unwrap();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            store.profile(&n("acme"), "c-1"),
        )
        .await
        .expect("the read waited for the writer");
        let profile = read.unwrap().unwrap();
        assert_eq!(profile.attributes["tier"], "gold", "the committed profile");
        drop(tx);
        drop(writing);
    }

    #[tokio::test]
    async fn versions_number_from_one_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.create_tenant(&n("acme"), "{}", &[]).await.unwrap();
        assert!(matches!(
            store.create_tenant(&n("acme"), "{}", &[]).await,
            Err(StoreError::Conflict)
        ));
        let new = |activate| NewVersion {
            tenant: n("acme"),
            name: n("hero"),
            engine: EngineKind::Rhai,
            code: b"fn decide(ctx) { [] }".to_vec(),
            bundle_json: "{}".into(),
            activate,
            actor: "key_1".into(),
        };
        assert_eq!(store.create_version(new(true)).await.unwrap(), 1);
        assert_eq!(store.create_version(new(false)).await.unwrap(), 2);
        drop(store);

        let store = SqliteStore::open(dir.path()).unwrap();
        let snap = store.snapshot(None).await.unwrap();
        assert_eq!(snap.live.len(), 1);
        assert_eq!(snap.live[0].version, 1);
        store
            .activate(&n("acme"), &n("hero"), 2, "key_1")
            .await
            .unwrap();
        let history = store
            .history(&n("acme"), &n("hero"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(history.live, Some(2));
        assert_eq!(history.versions.len(), 2);
        let events: Vec<_> = history
            .events
            .iter()
            .map(|e| (e.event.as_str(), e.version))
            .collect();
        assert_eq!(
            events,
            [
                ("uploaded", 1),
                ("activated", 1),
                ("uploaded", 2),
                ("activated", 2)
            ]
        );
        assert!(
            store
                .history(&n("acme"), &n("other"))
                .await
                .unwrap()
                .is_none()
        );
    }
}
