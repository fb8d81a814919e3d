-- Trace search that stays fast with millions of spans in the searched
-- window (docs/storage.md, "Search").
--
-- 1. The per-service time index goes from minutes to seconds: search walks
-- a service's spans newest first and reads one bucket of the index at a
-- time, so a bucket must stay small at high rates (a minute of a busy
-- service was tens of thousands of spans, read in full for every search).
-- Deduplication still stores the spans of one busy second under one key.
DROP INDEX spans_service_minute;
CREATE INDEX spans_service_second
    ON spans (service_id, date_bin('1 second', start_time, timestamptz '2000-01-01 00:00:00+00'));
-- The same for error spans alone (error=true, otel.status_code=ERROR, the
-- first search in an incident): a few percent of the spans, so it costs
-- little, and the search reads only error spans instead of every span of
-- the seconds it walks.
CREATE INDEX spans_service_second_errors
    ON spans (service_id, date_bin('1 second', start_time, timestamptz '2000-01-01 00:00:00+00'))
    WHERE status_code = 2;

-- 2. Which tags the spans of each service carry, and when. The writer adds
-- rows for every batch before it copies the batch's spans, per service
-- and top-level span attribute (tag = 64-bit hash of key and value, as
-- the Bloom filters take it):
--   * a value carried by few spans of the batch: one posting per span,
--     with lo = hi = its start time and its trace_id;
--   * a value carried by more: one range row (trace_id NULL) from the
--     first to the last of their start times;
--   * a key with too many such rare values in the batch: one range row
--     under the hash of the key alone (tag = key hash) for all of them.
-- Every span carrying key=value is thus within a range row or has a
-- posting under its hash or its key's, so a search skips, without reading
-- spans, every time the rows do not cover, and reads the traces of the
-- postings directly. tag 0 is a range row that covers every tag: spans
-- stored before this migration get one per service and day.
CREATE TABLE span_tags (
    lo         timestamptz NOT NULL,
    hi         timestamptz NOT NULL,
    tag        bigint      NOT NULL,
    trace_id   uuid,                   -- set on a posting
    service_id integer     NOT NULL
) PARTITION BY RANGE (lo);

CREATE INDEX span_tags_lookup ON span_tags (service_id, tag, hi);

-- Partitions of span_tags for the days spans already has (maintenance
-- creates the others with those of spans), and the rows covering the
-- spans stored so far.
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'spans'::regclass
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF span_tags %s',
                       'span_tags' || substr(p.relname, length('spans') + 1), p.bound);
    END LOOP;
END $$;

INSERT INTO span_tags (lo, hi, tag, service_id)
SELECT min(start_time), max(start_time), 0, service_id
FROM spans
GROUP BY service_id, date_bin('1 day', start_time, timestamptz '2000-01-01 00:00:00+00');
