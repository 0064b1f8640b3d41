-- Moment's cluster store: what every replica shares through PostgreSQL.
-- Mirrors the embedded SQLite schema (runtime/src/store/sqlite.rs); customer
-- profiles and contact history live in Redis instead.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants (id),
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE policy_versions (
    tenant TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    engine TEXT NOT NULL,
    code BYTEA NOT NULL,
    bundle TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, name, version)
);

CREATE TABLE live_versions (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (tenant, name, version) REFERENCES policy_versions (tenant, name, version)
);

CREATE TABLE policy_events (
    seq BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    event TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL
);

CREATE TABLE experiments (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    spec TEXT NOT NULL,
    running BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    stopped_at BIGINT,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE decisions (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    point TEXT NOT NULL,
    version INTEGER NOT NULL,
    customer TEXT NOT NULL,
    actions TEXT NOT NULL,
    fallback BOOLEAN NOT NULL,
    at BIGINT NOT NULL,
    doc TEXT NOT NULL,
    experiment TEXT,
    variant TEXT,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX decisions_by_experiment ON decisions (tenant, experiment, variant);

CREATE TABLE outcomes (
    tenant TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    customer TEXT NOT NULL,
    action_id TEXT NOT NULL,
    type TEXT NOT NULL,
    value DOUBLE PRECISION,
    at BIGINT NOT NULL,
    PRIMARY KEY (tenant, dedup_key)
);
CREATE INDEX outcomes_by_decision ON outcomes (tenant, decision_id);
