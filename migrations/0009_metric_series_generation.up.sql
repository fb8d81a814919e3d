-- The generation of the series dictionary: a counter bumped in the same
-- statement that inserts new metric_series rows. Readers cache which series
-- a set of matchers selects, tagged with the generation they read before
-- selecting; an unchanged generation means no series was added since, on any
-- replica, so the cached selection still holds (series rows are never
-- deleted or changed). It spares rule evaluation, which runs the same
-- selectors every interval, a scan of metric_series per selector.
CREATE TABLE metric_series_generation (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    gen bigint  NOT NULL
);
INSERT INTO metric_series_generation (one, gen) VALUES (true, 0);
