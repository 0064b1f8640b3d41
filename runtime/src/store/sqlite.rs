//! The embedded store: one SQLite database in WAL mode under `--data`.
//!
//! Every write is one transaction, committed before the caller is answered,
//! so an acknowledged write survives `kill -9` of the process. Calls run on
//! tokio's blocking pool so they never stall a worker.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{
    KeyRecord, NewVersion, PolicyEvent, PolicyHistory, PolicySummary, Snapshot, Store, StoreError,
    StoredVersion, VersionInfo,
};
use crate::model::policy::EngineKind;
use crate::model::{KeyHash, Name, Role};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(id),
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS policy_versions (
    tenant TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    engine TEXT NOT NULL,
    code BLOB NOT NULL,
    bundle TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
CREATE TABLE IF NOT EXISTS live_versions (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (tenant, name, version) REFERENCES policy_versions(tenant, name, version)
);
CREATE TABLE IF NOT EXISTS policy_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    event TEXT NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL
);
";

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let conn = Connection::open(dir.join("moment.sqlite3")).map_err(backend)?;
        // WAL with synchronous=NORMAL: a committed transaction is in the WAL file
        // before commit returns, so it survives the process being killed.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
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
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn name(s: String) -> Result<Name, StoreError> {
    Name::parse(&s).map_err(|e| StoreError::Backend(format!("stored name {s:?} is invalid: {e}")))
}

fn engine(s: &str) -> Result<EngineKind, StoreError> {
    EngineKind::parse(s)
        .ok_or_else(|| StoreError::Backend(format!("stored engine {s:?} is unknown")))
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
        tenant: name(tenant)?,
        name: name(policy)?,
        version,
        engine: engine(&eng)?,
        code,
        bundle_json,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.with(|conn| {
            let mut snap = Snapshot::default();
            let mut stmt = conn
                .prepare("SELECT id, settings FROM tenants")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(backend)?;
            for row in rows {
                let (id, settings) = row.map_err(backend)?;
                snap.tenants.push((name(id)?, settings));
            }
            let mut stmt = conn
                .prepare("SELECT id, tenant, role, hash FROM keys WHERE revoked_at IS NULL")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
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
                snap.keys.push(KeyRecord {
                    tenant: name(tenant)?,
                    role: Role::parse(&role).ok_or_else(|| {
                        StoreError::Backend(format!("key {id} has unknown role {role:?}"))
                    })?,
                    hash: KeyHash::from_hex(&hash).ok_or_else(|| {
                        StoreError::Backend(format!("key {id} has a malformed hash"))
                    })?,
                    id,
                });
            }
            let mut stmt = conn
                .prepare(
                    "SELECT v.tenant, v.name, v.version, v.engine, v.code, v.bundle
                     FROM live_versions l JOIN policy_versions v
                       ON v.tenant = l.tenant AND v.name = l.name AND v.version = l.version",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([], read_version).map_err(backend)?;
            for row in rows {
                snap.live.push(to_stored(row.map_err(backend)?)?);
            }
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

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }

    async fn update_tenant_settings(
        &self,
        tenant: &Name,
        settings_json: &str,
    ) -> Result<(), StoreError> {
        let (tenant, settings) = (tenant.clone(), settings_json.to_owned());
        self.with(move |conn| {
            conn.execute(
                "UPDATE tenants SET settings = ?2 WHERE id = ?1",
                params![tenant.as_str(), settings],
            )
            .map_err(backend)?;
            Ok(())
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
                    name: name(n)?,
                    live,
                    latest,
                })
            })
            .collect()
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
                        r.get::<_, u32>(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                    ))
                })
                .map_err(backend)?
                .map(|row| {
                    let (version, eng, created_at_ms, created_by) = row.map_err(backend)?;
                    Ok(VersionInfo {
                        version,
                        engine: engine(&eng)?,
                        created_at_ms,
                        created_by,
                    })
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
                .query_map(args, |r| {
                    Ok(PolicyEvent {
                        event: r.get(0)?,
                        version: r.get(1)?,
                        at_ms: r.get(2)?,
                        by: r.get(3)?,
                    })
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
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

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
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
        let snap = store.snapshot().await.unwrap();
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
