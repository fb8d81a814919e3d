-- Log records (OTLP logs), partitioned by day of their timestamp like
-- spans. They reuse the services, resources and attribute dictionaries of
-- 0001_traces: a record carries ids, not repeated strings.

-- vigil_log_text is what the text index sees of a body: the body with
-- every CJK character (kana, hangul, ideographs) set apart by spaces, so
-- that the 'simple' text search parser, which otherwise keeps a run of
-- ideographs as one word, makes each character a token. A Chinese word is
-- then searched as the phrase of its characters (phraseto_tsquery). See
-- docs/storage.md, "Logs", for the measurements behind this choice.
CREATE FUNCTION vigil_log_text(body text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN regexp_replace(body,
        '([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])', ' \1 ', 'g');

-- Columns are ordered widest first so the row has no alignment padding.
-- time is the record's timestamp (its observed timestamp when it has
-- none); id is a random 64-bit number drawn by the writer that orders
-- records of the same microsecond, so that (time, id) is a stable
-- pagination key. body is the body's text (a string body as sent, any
-- other body as JSON); payload holds everything only displayed (flags,
-- event name, attributes, a structured body) in Vigil's compact encoding.
-- attr_bloom is a 64-bit Bloom filter of the record's attributes, the
-- top-level fields of a structured (or JSON object) body, and its
-- resource attributes, as tag_bloom is for spans.
CREATE TABLE logs (
    time            timestamptz NOT NULL,
    observed_time   timestamptz NOT NULL,
    id              bigint      NOT NULL,
    resource_id     bigint      NOT NULL,
    span_id         bigint      NOT NULL,  -- 0 when the record has none
    attr_bloom      bigint      NOT NULL,
    trace_id        uuid,                  -- NULL when the record has none
    service_id      integer     NOT NULL,
    severity_number smallint    NOT NULL,
    severity_text   text        NOT NULL,
    body            text        NOT NULL,
    payload         bytea       NOT NULL
) PARTITION BY RANGE (time);

-- Newest first, with or without filters: search walks this backwards.
CREATE INDEX logs_time ON logs (time, id);
-- One service's records, newest first.
CREATE INDEX logs_service_time ON logs (service_id, time);
-- The logs of a trace. Partial: most records of most fleets carry no
-- trace context, and NULLs need no entry.
CREATE INDEX logs_trace_id ON logs (trace_id) WHERE trace_id IS NOT NULL;
-- Free text: words and phrases, case-insensitive, CJK by character.
CREATE INDEX logs_body_text ON logs USING gin (to_tsvector('simple', vigil_log_text(body)));
