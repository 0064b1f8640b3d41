-- Retention prunes the decision and outcome logs by age: index their time.
CREATE INDEX decisions_by_time ON decisions (at);
CREATE INDEX outcomes_by_time ON outcomes (at);
