package metricstore

// Statements of the write side.
const (
	// insertSeriesSQL inserts the series ($1 ids, $2 their label pair id
	// arrays as text) and returns what is stored under those ids: rows
	// that existed before are checked against the labels meant. The CTE's
	// insert is not visible to its own SELECT, so a missing row is one
	// this statement inserted.
	// The generation of the series dictionary is bumped in the same
	// statement when a row was inserted, so a reader that sees the new
	// generation sees the new series; the generation it was bumped to
	// comes back as one more row (first column true), which tells the
	// writer which generation its new series made (selection.go).
	insertSeriesSQL = `WITH ins AS (
		INSERT INTO metric_series (id, labels)
		SELECT id, l::integer[] FROM unnest($1::bigint[], $2::text[]) AS u(id, l)
		ON CONFLICT (id) DO NOTHING
		RETURNING id),
	bump AS (
		UPDATE metric_series_generation SET gen = gen + 1 WHERE EXISTS (SELECT 1 FROM ins) RETURNING gen)
		SELECT false, id, labels::text FROM metric_series WHERE id = ANY($1)
		UNION ALL SELECT true, gen, '' FROM bump`

	// seriesGenerationSQL reads the generations of the series dictionary
	// and of late writes, the database's clock, and the last value drawn
	// from the batch sequence by anyone (0 before the first draw;
	// sequences are not transactional, so this is the latest draw, not
	// the snapshot's), all for the head (head.go).
	seriesGenerationSQL = `SELECT g.gen, g.late_gen, clock_timestamp(),
		CASE WHEN b.is_called THEN b.last_value ELSE b.last_value - 1 END
		FROM metric_series_generation g, metric_sample_batches b`
	// closeBatchSQL follows every committed sample write: it draws the
	// closing value of the batch sequence, which tells the heads of other
	// replicas that a write committed (head.go), and when $1 is true
	// announces a late write to them by bumping the late generation, in
	// the same statement (a data-modifying WITH runs whether or not the
	// main query reads it).
	closeBatchSQL = `WITH bump AS (UPDATE metric_series_generation SET late_gen = late_gen + 1 WHERE $1::boolean)
		SELECT nextval('metric_sample_batches')`

	// upsertPairsSQL returns the ids of the label pairs ($1 names, $2
	// values), inserting the missing ones: DO UPDATE (a no-op) so that
	// existing rows are returned too, in sorted order so that concurrent
	// writers cannot deadlock.
	upsertPairsSQL = `INSERT INTO metric_labels (name, value)
		SELECT n, v FROM unnest($1::text[], $2::text[]) AS u(n, v) ORDER BY n, v
		ON CONFLICT (name, value) DO UPDATE SET name = EXCLUDED.name
		RETURNING id, name, value`

	nextBatchSQL = "SELECT nextval('metric_sample_batches')"

	// sampleCopySQL copies metric_samples rows; encodeSampleCopy writes
	// its columns in this order.
	sampleCopySQL     = "COPY metric_samples (series_id, t, v, batch, st, h) FROM STDIN (FORMAT binary)"
	sampleCopyColumns = 6

	upsertMetadataSQL = `INSERT INTO metric_metadata (family, type, help, unit)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
		ON CONFLICT (family) DO UPDATE SET type = EXCLUDED.type, help = EXCLUDED.help, unit = EXCLUDED.unit, updated = now()`
)

// Statements of the read side.
const (
	// Label pairs a matcher may match: of one value, of a set of values,
	// or every value of the label name.
	pairsOfValueSQL = "SELECT id, value FROM metric_labels WHERE name = $1 AND value = $2"
	pairsOfSetSQL   = "SELECT id, value FROM metric_labels WHERE name = $1 AND value = ANY($2)"
	pairsOfNameSQL  = "SELECT id, value FROM metric_labels WHERE name = $1"

	pairsByIDSQL = "SELECT id, name, value FROM metric_labels WHERE id = ANY($1)"

	// seriesSQL selects the series matching a filter (seriesFilter.where).
	seriesSQL = "SELECT s.id, s.labels FROM metric_series s WHERE %s"

	// seriesWithDataSQL keeps the series of $1 that have a raw sample in
	// [$2, $3] or a chunk whose window ($4 is $2 minus a window) overlaps
	// it.
	seriesWithDataSQL = `SELECT id FROM unnest($1::bigint[]) AS u(id) WHERE EXISTS (
		SELECT 1 FROM metric_samples WHERE series_id = u.id AND t >= $2 AND t <= $3)
		OR EXISTS (SELECT 1 FROM metric_chunks WHERE series_id = u.id AND start_t > $4 AND start_t <= $3)`

	// readSamplesSQL reads the raw samples of the series $1 in [$2, $3]
	// and the chunks whose window ($4 is $2 minus a window) overlaps it, in
	// one statement, ordered by series and time; a chunk row has its data
	// in the last column, a raw row NULL there.
	readSamplesSQL = `SELECT series_id, t, v, batch, st, h, NULL::bytea FROM metric_samples
		WHERE series_id = ANY($1) AND t >= $2 AND t <= $3
		UNION ALL
		SELECT series_id, start_t, 0, 0, NULL, NULL, data FROM metric_chunks
		WHERE series_id = ANY($1) AND start_t > $4 AND start_t <= $3
		ORDER BY 1, 2`

	// readRawSamplesSQL is readSamplesSQL without the chunks, for a
	// range no compaction can have reached yet (samplesQuery); the same
	// columns.
	readRawSamplesSQL = `SELECT series_id, t, v, batch, st, h, NULL::bytea FROM metric_samples
		WHERE series_id = ANY($1) AND t >= $2 AND t <= $3 ORDER BY 1, 2`

	allLabelNamesSQL = "SELECT DISTINCT name FROM metric_labels"
	// labelNamesSQL returns the label names of the series matching a
	// filter.
	labelNamesSQL = `SELECT DISTINCT l.name FROM metric_series s
		JOIN metric_labels l ON l.id = ANY(s.labels) WHERE %s`

	allLabelValuesSQL = "SELECT value FROM metric_labels WHERE name = $1"
	// labelValuesSQL returns the values of label $1 among the series
	// matching a filter.
	labelValuesSQL = `SELECT DISTINCT l.value FROM metric_series s
		JOIN metric_labels l ON l.id = ANY(s.labels) AND l.name = $1 WHERE %s`

	metadataOfFamilySQL = "SELECT family, type, help, unit FROM metric_metadata WHERE family = $1"
	allMetadataSQL      = "SELECT family, type, help, unit FROM metric_metadata ORDER BY family"
)

// Conditions on metric_series aliased s, joined with AND; the %s verbs
// take placeholders (pgcore.Args.Bind).
const (
	condAnySeries = "TRUE"
	condHasPairOf = "s.labels && %s::integer[]"
	condHasNoneOf = "NOT s.labels && %s::integer[]"
)

// Statements of compaction. The %s verbs take a sanitized partition name.
const (
	// lockWindowSQL keeps writers of late samples out of a partition being
	// compacted (they wait); readers go on.
	lockWindowSQL    = "LOCK TABLE %s IN SHARE MODE"
	windowChunksSQL  = "SELECT series_id, data FROM metric_chunks WHERE start_t = $1"
	windowSamplesSQL = "SELECT series_id, t, v, batch, st, h FROM %s ORDER BY series_id, t"
	deleteChunksSQL  = "DELETE FROM metric_chunks WHERE start_t = $1 AND series_id = ANY($2)"
	truncateSQL      = "TRUNCATE %s"

	// chunkCopySQL writes compacted chunks, three columns in this order.
	chunkCopySQL     = "COPY metric_chunks (series_id, start_t, data) FROM STDIN (FORMAT binary)"
	chunkCopyColumns = 3
)
