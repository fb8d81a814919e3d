-- The text index of logs becomes a GIN index over a tsvector of the body's
-- distinct search tokens, computed by Vigil (storage.Tokens: lower-case
-- runs of letters and digits, each CJK character a token; tokens longer
-- than 64 bytes are not indexed; no positions) and sent with the row.
-- PostgreSQL then spends nothing on parsing bodies at insert time, which
-- with the expression index over to_tsvector was most of the log path's
-- cost, and GIN compares lexemes bytewise. See docs/storage.md, "Logs".
ALTER TABLE logs ADD COLUMN tokens tsvector;

-- Records stored before this migration get the equivalent from
-- PostgreSQL's parser.
UPDATE logs SET tokens = strip(to_tsvector('simple', vigil_log_text(body)));
ALTER TABLE logs ALTER COLUMN tokens SET NOT NULL;

DROP INDEX logs_body_text;
CREATE INDEX logs_tokens ON logs USING gin (tokens);
