package logstore

// logCopySQL copies logs rows; encodeCopy writes its columns in this
// order.
const (
	logCopySQL = `COPY logs (time, observed_time, id, resource_id, span_id, attr_bloom, trace_id,
		service_id, severity_number, severity_text, body, payload, token_hashes) FROM STDIN (FORMAT binary)`
	logCopyColumns = 13
)

// logSelect reads logs rows as scanLogs expects them.
const logSelect = `SELECT time, observed_time, id, resource_id, span_id, trace_id,
	severity_number, severity_text, body, payload FROM logs`

// traceLogsSQL reads the records of trace $1, oldest first, at most $2.
// Ordering by an expression keeps the planner on the trace id index (see
// condTraceStart).
const traceLogsSQL = logSelect + " WHERE trace_id = $1 ORDER BY time + interval '0', id LIMIT $2"

const serviceIDSQL = "SELECT id FROM services WHERE name = $1"

// Conditions of a log search, joined with AND. The %s verbs take
// placeholders (pgcore.Args.Bind).
const (
	condStart = "time >= %s"
	condEnd   = "time <= %s"
	// condTraceStart and condTraceEnd bound the time of a search by trace
	// id without letting the (time, id) index see the bounds: a trace's
	// records are few and the trace id index finds them, but the planner
	// cannot know how selective a trace id is and would AND the time
	// index in, scanning the whole window.
	condTraceStart = "time + interval '0' >= %s"
	condTraceEnd   = "time + interval '0' <= %s"

	condService     = "service_id = %s"
	condMinSeverity = "severity_number >= %s"
	condTraceID     = "trace_id = %s"
	condSpanID      = "span_id = %s"
	// condTokens requires every token's hash in token_hashes (its GIN
	// index finds the candidates); the tokens themselves are tested on
	// the candidates' bodies (textMatches).
	condTokens = "token_hashes @> %s::integer[]"
	// condPhrases rechecks phrases on the candidates; %s is a list of
	// phraseQuery joined with " && ".
	condPhrases = "to_tsvector('simple', vigil_log_text(body)) @@ (%s)"
	phraseQuery = "phraseto_tsquery('simple', vigil_log_text(%s))"
	condBloom   = "attr_bloom & %s = %s"

	// condWindowEnd ends a window of a windowed text search.
	condWindowEnd = "time < %s"
	// condBefore continues after a cursor.
	condBefore = "(time, id) < (%s, %s)"
)

// Orders of a page of search results, newest first, at most %s. By trace
// id, the order is by an expression, so that the (time, id) index does not
// provide it (see condTraceStart).
const (
	orderNewest        = " ORDER BY time DESC, id DESC LIMIT %s"
	orderNewestByTrace = " ORDER BY time + interval '0' DESC, id DESC LIMIT %s"
)

// histogramSQL counts the records matching a filter per bucket, each
// bucket named by its start: its verbs are the placeholders of the step
// (an interval) and of the start, then the filter. date_bin computes in
// integer microseconds; the epoch of an interval is a numeric, which
// costs several times more per row.
const histogramSQL = `SELECT date_bin(%s, time, %s) AS b, count(*) FROM logs WHERE %s GROUP BY b`

// histogramTextSQL reads the time and body of the records matching a
// filter with text terms, whose tokens Vigil tests: the verb is the filter.
const histogramTextSQL = `SELECT time, body FROM logs WHERE %s`

// Statements of compaction. The %s verbs take a sanitized partition name.
const (
	// lockWindowSQL keeps writers of late records out of a partition being
	// truncated (they wait); readers go on.
	lockWindowSQL = "LOCK TABLE %s IN SHARE MODE"
	// declareWindowSQL opens a cursor over a raw partition's records in
	// block order, read compactFetchRows at a time by fetchWindowSQL.
	declareWindowSQL = `DECLARE logs_window NO SCROLL CURSOR FOR SELECT time, observed_time, id, resource_id, span_id,
		attr_bloom, trace_id, service_id, severity_number, severity_text, body, payload FROM %s ORDER BY service_id, time, id`
	fetchWindowSQL = "FETCH 20000 FROM logs_window"
	closeWindowSQL = "CLOSE logs_window" // TRUNCATE refuses a table an open cursor reads
	truncateSQL    = "TRUNCATE %s"
	countWindowSQL = "SELECT count(*) FROM %s"

	// cleanPendingSQL merges the pending lists of the GIN indexes of the
	// log_blocks partition $1 into the indexes.
	cleanPendingSQL = `SELECT gin_clean_pending_list(i.indexrelid) FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
		WHERE i.indrelid = $1::regclass AND am.amname = 'gin'`

	savepointSQL           = "SAVEPOINT blocks"
	rollbackToSavepointSQL = "ROLLBACK TO SAVEPOINT blocks"
)

// blockColumns are the columns of log_blocks in the order copyBlocks
// writes them.
var blockColumns = []string{"start_time", "end_time", "id", "attr_bloom", "service_id", "records",
	"min_severity", "max_severity", "trace_ids", "tokens", "times", "data"}

// lockLogsSQL locks every raw partition against truncation (a utility
// statement: it takes no snapshot).
const lockLogsSQL = "LOCK TABLE logs IN ACCESS SHARE MODE"

// Reading log_blocks. The %s verbs of conditions take placeholders
// (pgcore.Args.Bind).
const (
	blockSelect = "SELECT start_time, end_time, id, service_id, times, data FROM log_blocks"

	condBlockEnd      = "end_time >= %s"
	condBlockStart    = "start_time <= %s"
	condBlockWindow   = "start_time >= %s"
	condBlockSeverity = "max_severity >= %s"
	condBlockTrace    = "trace_ids @> ARRAY[%s::uuid]"
	condBlockTokens   = "tokens @> %s::integer[]"

	// Newest first, at most %s blocks, and the keyset to go on from. With
	// a condition a GIN index answers (trace ids, tokens), the order is by
	// an expression, so that the planner reads that index rather than
	// walk the end_time index and test every block.
	orderBlocks            = " ORDER BY end_time DESC, id DESC LIMIT %s"
	condBlockBefore        = "(end_time, id) < (%s, %s)"
	orderBlocksIndexed     = " ORDER BY end_time + interval '0' DESC, id DESC LIMIT %s"
	condBlockBeforeIndexed = "(end_time + interval '0', id) < (%s, %s)"

	// blockTraceSQL reads the blocks holding trace $1.
	blockTraceSQL = blockSelect + " WHERE trace_ids @> ARRAY[$1::uuid]"

	// blockCountSQL reads, for a histogram, each matching block's start
	// time and record count, and its times column unless the block lies
	// within the range and one bucket and holds no record below the
	// severity: its verbs are the placeholders of the start, end, minimum
	// severity and step in microseconds, then the filter.
	blockCountSQL = `SELECT start_time, records, CASE WHEN start_time >= %[1]s AND end_time <= %[2]s AND min_severity >= %[3]s
		AND floor(extract(epoch FROM start_time - %[1]s) * 1000000 / %[4]s) = floor(extract(epoch FROM end_time - %[1]s) * 1000000 / %[4]s)
		THEN NULL ELSE times END FROM log_blocks WHERE %[5]s`

	// phraseRecheckSQL numbers bodies ($1, from 1) for a phrase condition
	// over body.
	phraseRecheckSQL = "SELECT i FROM unnest(%s::text[]) WITH ORDINALITY AS u(body, i)"
)
