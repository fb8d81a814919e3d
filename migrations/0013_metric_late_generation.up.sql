-- The generation of late writes: bumped by a writer once it has committed
-- samples more than 30 s older than its clock. Readers keep an in-process
-- head of recently read samples and read again from PostgreSQL only what
-- is newer than they last read (less a margin); a new late generation
-- tells them that older samples changed, on any replica, and they drop
-- what they hold. See docs/storage.md, "The head".
ALTER TABLE metric_series_generation ADD COLUMN late_gen bigint NOT NULL DEFAULT 0;
