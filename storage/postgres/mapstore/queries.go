package mapstore

// Statements of the pairing of halves (servicegraph_pending).
const (
	// offerSQL parks halves ($1 trace ids, $2 span ids, $3 client halves,
	// $4 server halves: one of the two NULL per row, $5 parking times).
	// A conflicting row is updated only when it holds the other side,
	// filling the empty one; the row lock makes a concurrent offer of the
	// other half wait and then see the row complete, so exactly one
	// statement returns it complete. A second copy of a side already
	// parked is ignored. Callers pass at most one half per key and sort
	// the keys, so concurrent offers lock rows in one order.
	offerSQL = `INSERT INTO servicegraph_pending AS p (trace_id, span_id, client, server, parked_at)
		SELECT t, s, c, sv, pa FROM unnest($1::uuid[], $2::bigint[], $3::jsonb[], $4::jsonb[], $5::timestamptz[])
			WITH ORDINALITY AS u(t, s, c, sv, pa, o) ORDER BY o
		ON CONFLICT (trace_id, span_id) DO UPDATE
			SET client = coalesce(p.client, EXCLUDED.client), server = coalesce(p.server, EXCLUDED.server)
			WHERE (p.client IS NULL) <> (EXCLUDED.client IS NULL)
		RETURNING trace_id, span_id, client::text, server::text, client IS NOT NULL AND server IS NOT NULL`

	// deleteCompletedSQL deletes the rows the offer completed, in the
	// offer's transaction (a statement cannot both update and delete a
	// row).
	deleteCompletedSQL = `DELETE FROM servicegraph_pending p
		USING unnest($1::uuid[], $2::bigint[]) AS k(trace_id, span_id)
		WHERE p.trace_id = k.trace_id AND p.span_id = k.span_id`

	// expireSQL takes out at most $2 rows parked before $1, oldest first.
	// Rows locked by an offer completing them, or by another replica
	// expiring them, are skipped: each half comes back once.
	expireSQL = `DELETE FROM servicegraph_pending p
		WHERE (p.trace_id, p.span_id) IN (
			SELECT trace_id, span_id FROM servicegraph_pending
			WHERE parked_at < $1 ORDER BY parked_at LIMIT $2
			FOR UPDATE SKIP LOCKED)
		RETURNING client::text, server::text`
)

// Statements of the example traces (servicemap_traces).
const (
	// insertTracesSQL writes example traces: $1 times, $2 durations (ns),
	// $3 clients, $4 servers, $5 connection types, $6 trace ids, $7 failed.
	insertTracesSQL = `INSERT INTO servicemap_traces (time, duration_ns, client, server, connection_type, trace_id, failed)
		SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::boolean[])`

	// edgeTracesSQL reads example traces in [$1, $2] newest first; %s is
	// the filter on client and server.
	edgeTracesSQL = `SELECT time, duration_ns, client, server, connection_type, trace_id, failed
		FROM servicemap_traces WHERE time >= $1 AND time <= $2%s ORDER BY time DESC, trace_id LIMIT $3`
)
