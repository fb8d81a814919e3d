-- Per-minute rollups of the service map (ingest/derive through
-- storage/postgres/mapstore), so that a map over an hour or a day reads two
-- rows per key instead of every sample of the traces_service_graph_* and
-- traces_span_metrics_* series (which stay, for PromQL and the alert rules).
--
-- A key is one edge or one node as counted by one deriver replica in one
-- incarnation: the deriver numbers a key when it creates it, and again when
-- it re-creates it after forgetting it, and within an incarnation the counts
-- are cumulative from zero. So the calls of a window are, per key, its last
-- row before the end minus its last row before the start.
CREATE TABLE servicemap_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    replica         text        NOT NULL,  -- the deriver's vigil_replica
    incarnation     bigint      NOT NULL,
    node            boolean     NOT NULL,  -- a service's server and consumer spans, not an edge
    client          text        NOT NULL DEFAULT '',
    server          text        NOT NULL DEFAULT '',
    connection_type text        NOT NULL DEFAULT '',
    client_env      text        NOT NULL DEFAULT '',
    client_ns       text        NOT NULL DEFAULT '',
    server_env      text        NOT NULL DEFAULT '',
    server_ns       text        NOT NULL DEFAULT '',
    first_seen      timestamptz NOT NULL,  -- minute of the first row written
    last_seen       timestamptz NOT NULL,  -- minute of the latest row written
    UNIQUE (replica, incarnation)
-- Every flush updates its keys; within a minute nothing indexed changes,
-- and the free space left in each page keeps those updates heap-only.
) WITH (fillfactor = 70);

-- The keys alive in a window [start, end] (last_seen >= start AND
-- first_seen <= end): recent windows read the end of the index. The
-- writer also walks it from the oldest end to delete the keys whose rows
-- retention has dropped.
CREATE INDEX servicemap_keys_alive ON servicemap_keys (last_seen, first_seen);

-- The cumulative counts of a key as of the last flush of its writer in a
-- minute (a later flush in the same minute replaces the row). Histograms
-- hold one count per latency bucket (storage.MapLatencyBounds, then +Inf),
-- not cumulative over buckets; sums are in seconds. client_hist is empty
-- for a node. Partitioned by day like servicemap_traces, so that retention
-- drops whole days; no foreign key, so that dropping costs nothing.
CREATE TABLE servicemap_rollups (
    key_id      bigint      NOT NULL,  -- servicemap_keys.id
    minute      timestamptz NOT NULL,
    calls       bigint      NOT NULL,
    failed      bigint      NOT NULL,
    server_hist bigint[]    NOT NULL,
    client_hist bigint[]    NOT NULL,
    server_sum  float8      NOT NULL,
    client_sum  float8      NOT NULL,
    -- Also the index of the two probes per key of a window: the last row
    -- before a minute.
    PRIMARY KEY (key_id, minute)
) PARTITION BY RANGE (minute);
