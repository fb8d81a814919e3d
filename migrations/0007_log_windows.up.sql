-- Log records are now partitioned by two-hour window instead of by day: a
-- newest-first search reads the windows in order and stops once its page
-- is full, so the text index of one window bounds its work. Existing daily
-- partitions are split into windows (the function is in 0004).
SELECT vigil_split_daily_partitions('logs');
