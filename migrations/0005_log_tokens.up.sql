-- The text index of logs becomes a GIN index over an array of the body's
-- distinct search tokens, computed by Vigil (storage.Tokens: lower-case
-- runs of letters and digits, each CJK character a token; tokens longer
-- than 64 bytes are not indexed) and sent with the row. PostgreSQL then
-- spends nothing on parsing bodies at insert time, which with the
-- expression index over to_tsvector was most of the log path's cost. See
-- docs/storage.md, "Logs".
ALTER TABLE logs ADD COLUMN tokens text[];

-- Records stored before this migration get an equivalent array computed
-- here (by PostgreSQL's regular expressions, close to storage.Tokens).
UPDATE logs SET tokens = ARRAY(
    SELECT DISTINCT t FROM regexp_split_to_table(lower(vigil_log_text(body)), '[^[:alnum:]]+') AS t
    WHERE t <> '' AND octet_length(t) <= 64);
ALTER TABLE logs ALTER COLUMN tokens SET NOT NULL;

DROP INDEX logs_body_text;
CREATE INDEX logs_tokens ON logs USING gin (tokens);
