-- Compacted metric samples. See docs/storage.md, "Metrics", for the
-- reasoning and the measurements.

-- Raw samples are now partitioned by two-hour chunk window instead of by
-- day: once a window is past, the compactor turns its partition into one
-- metric_chunks row per series and drops the partition.
--
-- vigil_split_daily_partitions replaces every daily partition
-- (<parent>_pYYYYMMDD) of parent by twelve two-hour partitions
-- (<parent>_pYYYYMMDD_HH) holding the same rows.
CREATE FUNCTION vigil_split_daily_partitions(parent text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    part record;
    day  timestamptz;
    w    timestamptz;
BEGIN
    FOR part IN SELECT c.relname FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = parent AND c.relname ~ ('^' || parent || '_p[0-9]{8}$')
    LOOP
        day := to_date(right(part.relname, 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', parent, part.relname);
        FOR i IN 0..11 LOOP
            w := day + make_interval(hours => 2 * i);
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                part.relname || '_' || to_char(w AT TIME ZONE 'UTC', 'HH24'), parent, w, w + interval '2 hours');
        END LOOP;
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', parent, part.relname);
        EXECUTE format('DROP TABLE %I', part.relname);
    END LOOP;
END
$$;

SELECT vigil_split_daily_partitions('metric_samples');

-- One row per series and two-hour window (aligned to midnight UTC) whose
-- samples were compacted. data is a sequence of segments, each a kind byte,
-- a uvarint length and the segment: Prometheus XOR2 chunks (tsdb/chunkenc,
-- with start timestamps) for float samples, Vigil's histogram encoding for
-- native histogram samples. Partitioned by day of the window's start, so
-- retention drops whole days like the other signals.
CREATE TABLE metric_chunks (
    series_id bigint      NOT NULL,
    start_t   timestamptz NOT NULL,
    data      bytea       NOT NULL
) PARTITION BY RANGE (start_t);
CREATE UNIQUE INDEX metric_chunks_series_start ON metric_chunks (series_id, start_t);
