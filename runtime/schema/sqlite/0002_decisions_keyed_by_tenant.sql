-- The decision log keyed as in PostgreSQL, by (tenant, id): the first
-- releases keyed it by id alone. SQLite cannot change a primary key in
-- place, so the table is rebuilt and its rows copied.

CREATE TABLE decisions_by_tenant (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    point TEXT NOT NULL,
    version INTEGER NOT NULL,
    customer TEXT NOT NULL,
    actions TEXT NOT NULL,
    fallback INTEGER NOT NULL,
    at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    experiment TEXT,
    variant TEXT,
    PRIMARY KEY (tenant, id)
);
INSERT INTO decisions_by_tenant
    (tenant, id, point, version, customer, actions, fallback, at, doc, experiment, variant)
    SELECT tenant, id, point, version, customer, actions, fallback, at, doc, experiment, variant
    FROM decisions;
DROP TABLE decisions;
ALTER TABLE decisions_by_tenant RENAME TO decisions;
CREATE INDEX decisions_by_experiment ON decisions (tenant, experiment, variant);
