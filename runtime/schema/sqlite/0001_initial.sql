-- Moment's embedded store as the first releases wrote it (every statement
-- IF NOT EXISTS: data directories from before versioned migrations hold
-- these tables already, at user_version 0). Customer profiles live here too;
-- the cluster keeps them in Redis.

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
CREATE TABLE IF NOT EXISTS profiles (
    tenant TEXT NOT NULL,
    customer TEXT NOT NULL,
    doc TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, customer)
);
CREATE TABLE IF NOT EXISTS decisions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    point TEXT NOT NULL,
    version INTEGER NOT NULL,
    customer TEXT NOT NULL,
    actions TEXT NOT NULL,
    fallback INTEGER NOT NULL,
    at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    experiment TEXT,
    variant TEXT
);
CREATE TABLE IF NOT EXISTS experiments (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    spec TEXT NOT NULL,
    running INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    stopped_at INTEGER,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS outcomes (
    tenant TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    customer TEXT NOT NULL,
    action_id TEXT NOT NULL,
    type TEXT NOT NULL,
    value REAL,
    at INTEGER NOT NULL,
    PRIMARY KEY (tenant, dedup_key)
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
CREATE INDEX IF NOT EXISTS decisions_by_experiment ON decisions (tenant, experiment, variant);
CREATE INDEX IF NOT EXISTS outcomes_by_decision ON outcomes (tenant, decision_id);
