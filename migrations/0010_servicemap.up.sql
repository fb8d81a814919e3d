-- The service map's state shared by every replica (ingest/derive through
-- storage/postgres/mapstore).
--
-- A call between two services is seen as two spans, the client's and the
-- server's, and the two may reach different replicas. A replica pairs
-- them in memory first; a half still alone after the pairing timeout is
-- parked here under its pairing key (trace id, span id of the client
-- span), one column per side. Parking is one INSERT … ON CONFLICT DO
-- UPDATE that fills the empty side only: the row lock makes concurrent
-- offers of the two halves serialise, so exactly one of them sees the row
-- complete, and deletes it (DELETE … RETURNING) in the same transaction.
-- Halves parked longer than the shared timeout are taken out with DELETE
-- … RETURNING over rows locked with SKIP LOCKED, so each is expired by
-- exactly one replica. Rows live seconds; the table stays small.
CREATE TABLE servicegraph_pending (
    trace_id  uuid        NOT NULL,
    span_id   bigint      NOT NULL,
    -- The halves as JSON (storage.PairHalf); NULL until that side arrives.
    client    jsonb,
    server    jsonb,
    parked_at timestamptz NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);

CREATE INDEX servicegraph_pending_parked_at ON servicegraph_pending (parked_at);

-- Example traces of the edges of the service map: at most one per edge
-- per replica and flush (a failed call when there was one), so that the
-- map can list the traces behind an edge for any past window. Partitioned
-- by day like spans, so that retention drops them with the traces they
-- point to.
CREATE TABLE servicemap_traces (
    time            timestamptz NOT NULL,  -- start of the client half (the server half when there is none)
    duration_ns     bigint      NOT NULL,
    client          text        NOT NULL,
    server          text        NOT NULL,
    connection_type text        NOT NULL,  -- '', 'database', 'messaging_system' or 'virtual_node'
    trace_id        bytea       NOT NULL,
    failed          boolean     NOT NULL
) PARTITION BY RANGE (time);

-- The traces of one edge, newest first; and of every edge into a server.
CREATE INDEX servicemap_traces_edge ON servicemap_traces (client, server, time DESC);
CREATE INDEX servicemap_traces_server ON servicemap_traces (server, time DESC);
