-- The console reads a tenant's recent activity and one customer's
-- decisions and outcomes: index them by tenant, and by customer.
CREATE INDEX decisions_by_tenant_time ON decisions (tenant, at);
CREATE INDEX decisions_by_customer ON decisions (tenant, customer, at);
CREATE INDEX outcomes_by_customer ON outcomes (tenant, customer);
