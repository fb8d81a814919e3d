-- Alertmanager state shared by every replica (alerting/notify through
-- storage/postgres/alertstore).
--
-- Silences and the notification log travel as Alertmanager's own gossip
-- messages: every change a replica makes is appended to
-- notify_state_deltas under a sequence number, every replica merges the
-- deltas it has not seen yet, and a replica's maintenance folds the state
-- into notify_state_snapshots and deletes the deltas the snapshot covers.
-- Appends take a transaction-scoped advisory lock, so sequence numbers
-- become visible in increasing order and a reader polling "seq > last"
-- never skips a delta committed late.
CREATE TABLE notify_state_deltas (
    kind    text        NOT NULL,
    seq     bigint      GENERATED ALWAYS AS IDENTITY,
    data    bytea       NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, seq)
);

CREATE TABLE notify_state_snapshots (
    kind    text        PRIMARY KEY,
    -- seq is the last delta the snapshot includes.
    seq     bigint      NOT NULL,
    data    bytea       NOT NULL,
    updated timestamptz NOT NULL DEFAULT now()
);

-- Alerts posted to any replica (the Alertmanager API or the rule engine),
-- one row per fingerprint holding the alert as JSON. rev orders changes
-- so that replicas copy only what changed since their last poll.
CREATE SEQUENCE notify_alert_revs;

CREATE TABLE notify_alerts (
    fingerprint bigint      PRIMARY KEY,
    rev         bigint      NOT NULL,
    ends_at     timestamptz NOT NULL,
    data        jsonb       NOT NULL
);

CREATE INDEX notify_alerts_rev ON notify_alerts (rev);

-- Every delivery attempt of every integration, and receiver tests. Rows
-- older than the configured retention are deleted.
CREATE TABLE notify_history (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time        timestamptz NOT NULL,
    receiver    text        NOT NULL,
    integration text        NOT NULL,
    idx         integer     NOT NULL,
    group_key   text        NOT NULL,
    firing      integer     NOT NULL,
    resolved    integer     NOT NULL,
    ok          boolean     NOT NULL,
    retry       boolean     NOT NULL,
    message     text        NOT NULL,
    duration_us bigint      NOT NULL,
    test        boolean     NOT NULL
);

CREATE INDEX notify_history_time ON notify_history (time DESC, id DESC);
CREATE INDEX notify_history_receiver_time ON notify_history (receiver, time DESC, id DESC);
