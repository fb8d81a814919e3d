package spanstore

// spanCopySQL copies spans rows; encodeCopy writes its columns in this
// order.
const (
	spanCopySQL = `COPY spans (start_time, span_id, parent_span_id, duration_ns, resource_id, tag_bloom,
		trace_id, service_id, start_minute, operation_id, status_code, payload) FROM STDIN (FORMAT binary)`
	spanCopyColumns = 12
)

// tagCopySQL copies span_tags rows; encodeTagCopy writes its columns in
// this order.
const (
	tagCopySQL     = `COPY span_tags (lo, hi, tag, trace_id, service_id) FROM STDIN (FORMAT binary)`
	tagCopyColumns = 5
)

// Dictionary lists for the Jaeger API.
const (
	servicesSQL = "SELECT name FROM services ORDER BY name"

	operationsSQL = `SELECT o.name, o.kind FROM operations o JOIN services s ON s.id = o.service_id
		WHERE s.name = $1 ORDER BY o.name, o.kind`

	operationsOfKindSQL = `SELECT o.name, o.kind FROM operations o JOIN services s ON s.id = o.service_id
		WHERE s.name = $1 AND o.kind = $2 ORDER BY o.name, o.kind`
)

// spanSelect reads spans rows as scanSpans expects them.
const spanSelect = `SELECT trace_id, start_time, span_id, parent_span_id, duration_ns,
	resource_id, operation_id, status_code, payload FROM spans`

// tracesSQL reads every span of the trace ids in $1.
const tracesSQL = spanSelect + " WHERE trace_id = ANY($1)"

// Statements of a trace search.
const (
	// searchWorkMemSQL keeps the sort of a busy minute's candidates in
	// memory.
	searchWorkMemSQL = "SET LOCAL work_mem = '64MB'"

	allServiceIDsSQL   = "SELECT id FROM services"
	serviceIDByNameSQL = "SELECT id FROM services WHERE name = $1"

	// operationIDsSQL returns the operations of the services $1 named $2
	// (any name when empty) of kind $3 (any kind when negative).
	operationIDsSQL = `SELECT id FROM operations WHERE service_id = ANY($1)
		AND ($2 = '' OR name = $2) AND ($3 < 0 OR kind = $3)`

	// resolveTagsSQL returns, for each key=value pair of ($1, $2), the
	// ids of the key and of the value interned for it, 0 when unknown.
	resolveTagsSQL = `SELECT t.key, t.want, coalesce(k.id, 0), coalesce(v.id, 0)
		FROM unnest($1::text[], $2::text[]) AS t(key, want)
		LEFT JOIN attribute_keys k ON k.key = t.key
		LEFT JOIN attribute_values v ON v.key_id = k.id AND v.value = t.want`

	// serviceKeysSQL returns which of the key ids $2 the services $1 have
	// carried on their spans.
	serviceKeysSQL = `SELECT DISTINCT key_id FROM service_attribute_keys
		WHERE service_id = ANY($1) AND key_id = ANY($2)`

	serviceResourcesSQL = "SELECT id, resource, scope FROM resources WHERE service_id = ANY($1)"

	// moreCandidatesSQL tells whether a span meets the conditions %s.
	moreCandidatesSQL = "SELECT 1 FROM spans WHERE %s LIMIT 1"

	// spanTagsSQL returns the span_tags rows of the services $1 under
	// the hashes $2 that overlap the window [$3, $4].
	spanTagsSQL = `SELECT tag, lo, hi, trace_id FROM span_tags
		WHERE service_id = ANY($1) AND tag = ANY($2) AND hi >= $3 AND lo <= $4`
)

// Conditions of a trace search over spans, joined with AND. The %s verbs
// take placeholders (pgcore.Args.Bind).
const (
	condServices = "service_id = ANY(%s)"
	// condServicesByTrace is condServices for the reads of postings'
	// traces (trace_id = ANY), in a form no index serves: without
	// statistics on a fresh partition PostgreSQL otherwise ANDs the
	// trace id index with the service's whole range of the second index,
	// millions of entries, to find a few hundred rows.
	condServicesByTrace = "service_id + 0 = ANY(%s)"
	condStartMin        = "start_time >= %s"
	condStartMax        = "start_time <= %s"
	condOperations      = "operation_id = ANY(%s)"
	condDurationMin     = "duration_ns >= %s"
	condDurationMax     = "duration_ns <= %s"
	// condSeconds selects whole seconds of start_time through the
	// (service_id, second) index; condBetween then cuts them exactly.
	condSeconds = "date_bin('1 second', start_time, timestamptz '2000-01-01 00:00:00+00') BETWEEN %s AND %s"
	condBetween = "start_time BETWEEN %s AND %s"
	condTraces  = "trace_id = ANY(%s)"
	// condBefore continues a page after the last row read.
	condBefore = "(start_time, span_id) < (%s, %s)"
	// orderNewest ends a page of candidates: newest first, at most %d.
	orderNewest = " ORDER BY start_time DESC, span_id DESC LIMIT %d"
)

// Alternatives of one search tag, joined with OR: a span matches the tag
// only if it meets one of them.
const (
	condBloom    = "tag_bloom & %s = %s"
	condResource = "resource_id = ANY(%s)"
	condError    = "status_code = 2"
	condNotError = "status_code <> 2"
	condStatusOK = "status_code = 1"
)
