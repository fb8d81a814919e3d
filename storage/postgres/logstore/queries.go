package logstore

// logCopySQL copies logs rows; encodeCopy writes its columns in this
// order.
const (
	logCopySQL = `COPY logs (time, observed_time, id, resource_id, span_id, attr_bloom, trace_id,
		service_id, severity_number, severity_text, body, payload, tokens) FROM STDIN (FORMAT binary)`
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
	// condTokens requires every token of a tsquery text in the tokens
	// column (and its GIN index).
	condTokens = "tokens @@ %s::tsquery"
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

// histogramSQL counts the records matching a filter per bucket: its verbs
// are the placeholders of the start and of the step in microseconds, then
// the filter.
const histogramSQL = `SELECT floor(extract(epoch FROM time - %s) * 1000000 / %s)::int AS b, count(*)
	FROM logs WHERE %s GROUP BY b`
