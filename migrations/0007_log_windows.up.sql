-- Log records are now partitioned by two-hour window instead of by day: a
-- newest-first search reads the windows in order and stops once its page
-- is full, so the text index of one window bounds its work. Existing daily
-- partitions are split into windows here.
DO $$
DECLARE
    part record;
    day  timestamptz;
    w    timestamptz;
BEGIN
    FOR part IN SELECT c.relname FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = 'logs' AND c.relname ~ '^logs_p[0-9]{8}$'
    LOOP
        day := to_date(right(part.relname, 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('ALTER TABLE logs DETACH PARTITION %I', part.relname);
        FOR i IN 0..11 LOOP
            w := day + make_interval(hours => 2 * i);
            EXECUTE format('CREATE TABLE %I PARTITION OF logs FOR VALUES FROM (%L) TO (%L)',
                part.relname || '_' || to_char(w AT TIME ZONE 'UTC', 'HH24'), w, w + interval '2 hours');
        END LOOP;
        EXECUTE format('INSERT INTO logs SELECT * FROM %I', part.relname);
        EXECUTE format('DROP TABLE %I', part.relname);
    END LOOP;
END
$$;
