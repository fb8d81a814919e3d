-- Metric metadata (type, help, unit) per metric family, as remote_write
-- 1.0 and OTLP carry it, for /api/v1/metadata. The last write wins.
CREATE TABLE metric_metadata (
    family  text        PRIMARY KEY,
    type    text        NOT NULL,
    help    text        NOT NULL,
    unit    text        NOT NULL,
    updated timestamptz NOT NULL DEFAULT now()
);
