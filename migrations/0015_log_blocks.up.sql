-- Compacted log records. Once a two-hour window of logs is closed, the
-- log compactor (storage/postgres/logstore/compact.go) rewrites its rows
-- into blocks: one row per service and run of at most 1,000 records of
-- the window, in (time, id) order, their fields stored column by column
-- and compressed with zstd. Searches find blocks through the block-level
-- columns and indexes below, then the records inside them. See
-- docs/storage.md, "Compacted blocks", for the format and the figures.
--
-- start_time and end_time are the times of the block's oldest and newest
-- record (a block never spans two windows); attr_bloom is the union of its
-- records' attr_bloom; min_severity and max_severity bound their severity
-- numbers; trace_ids holds their distinct trace ids; tokens holds the
-- 20-bit hashes of the distinct search tokens of their bodies (a search
-- narrows blocks by them and checks every record exactly). times holds the
-- records' times and severity numbers and data every other field (see
-- block.go); both are zstd-compressed already, so PostgreSQL must not try
-- to compress them again. Partitioned by two-hour window of start_time
-- like logs, so retention drops compacted windows whole.
CREATE TABLE log_blocks (
    start_time   timestamptz NOT NULL,
    end_time     timestamptz NOT NULL,
    id           bigint      NOT NULL,
    attr_bloom   bigint      NOT NULL,
    service_id   integer     NOT NULL,
    records      integer     NOT NULL,
    min_severity smallint    NOT NULL,
    max_severity smallint    NOT NULL,
    trace_ids    uuid[]      NOT NULL,
    tokens       integer[]   NOT NULL,
    times        bytea       NOT NULL,
    data         bytea       NOT NULL
) PARTITION BY RANGE (start_time);
ALTER TABLE log_blocks ALTER COLUMN times SET STORAGE EXTERNAL;
ALTER TABLE log_blocks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Newest first: a search walks blocks by end_time backwards.
CREATE INDEX log_blocks_end ON log_blocks (end_time, id);
CREATE INDEX log_blocks_service_end ON log_blocks (service_id, end_time);
-- The blocks holding a trace's records.
CREATE INDEX log_blocks_trace_ids ON log_blocks USING gin (trace_ids);
-- The blocks that may hold every token of a search.
CREATE INDEX log_blocks_tokens ON log_blocks USING gin (tokens);
