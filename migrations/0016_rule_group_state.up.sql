-- The evaluation state of each rule group, as the replica that evaluates
-- the rules last saw it (alerting/rules through
-- storage/postgres/alertstore): health, errors, times, and the active
-- alerts with their annotations and values, as JSON. Written after every
-- evaluation of a group, read by the other replicas so that their
-- /api/v1/rules and /api/v1/alerts answer as the evaluating one does.
CREATE TABLE rule_group_state (
    file    text        NOT NULL,
    name    text        NOT NULL,
    state   jsonb       NOT NULL,
    updated timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file, name)
);
