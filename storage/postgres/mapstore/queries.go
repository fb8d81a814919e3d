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

// Statements of the map rollups (servicemap_keys, servicemap_rollups).
const (
	// upsertKeysSQL creates the keys of a flush or moves their last_seen
	// to the flush's minute ($1): $2 replicas, $3 incarnations, $4 node,
	// $5…$11 the dimensions. Callers pass each key once, sorted, so
	// concurrent writers lock rows in one order. It returns the id of
	// each key. The flushes of one minute leave the indexed columns as
	// they are, so their updates are heap-only and add no index entries.
	upsertKeysSQL = `INSERT INTO servicemap_keys AS k (replica, incarnation, node, client, server, connection_type,
			client_env, client_ns, server_env, server_ns, first_seen, last_seen)
		SELECT r, i, n, c, s, ct, ce, cn, se, sn, $1, $1
		FROM unnest($2::text[], $3::bigint[], $4::boolean[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::text[]) AS u(r, i, n, c, s, ct, ce, cn, se, sn)
		ORDER BY r, i
		ON CONFLICT (replica, incarnation) DO UPDATE
			SET first_seen = least(k.first_seen, EXCLUDED.first_seen), last_seen = greatest(k.last_seen, EXCLUDED.last_seen)
		RETURNING replica, incarnation, id`

	// upsertRollupsSQL writes the row of each key for the minute $1,
	// replacing the row of an earlier flush in that minute: $2 key ids,
	// $3 calls, $4 failed, $5 and $6 the sums of the server and client
	// latencies. The histograms of every row are passed one after the
	// other, the server ones in $7 (each row's at offset $8, of length $9)
	// and the client ones in $10 ($11, $12).
	upsertRollupsSQL = `INSERT INTO servicemap_rollups AS r (key_id, minute, calls, failed, server_hist, client_hist, server_sum, client_sum)
		SELECT id, $1, c, f, ($7::bigint[])[so + 1 : so + sn], ($10::bigint[])[co + 1 : co + cn], ss, cs
		FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::float8[], $6::float8[],
			$8::int[], $9::int[], $11::int[], $12::int[]) AS u(id, c, f, ss, cs, so, sn, co, cn)
		ON CONFLICT (key_id, minute) DO UPDATE
			SET calls = EXCLUDED.calls, failed = EXCLUDED.failed, server_hist = EXCLUDED.server_hist,
				client_hist = EXCLUDED.client_hist, server_sum = EXCLUDED.server_sum, client_sum = EXCLUDED.client_sum`

	// deleteDeadKeysSQL deletes at most $2 keys whose last_seen is before
	// $1 and whose last row is gone: rows are written in minute order and
	// retention drops whole days oldest first, so a key without the row
	// of its last_seen has no row left. Keys are taken oldest first (the
	// dead ones come first in that order); keys locked by another writer
	// are skipped.
	deleteDeadKeysSQL = `DELETE FROM servicemap_keys WHERE id IN (
			SELECT k.id FROM servicemap_keys k
			WHERE k.last_seen < $1
				AND NOT EXISTS (SELECT 1 FROM servicemap_rollups r WHERE r.key_id = k.id AND r.minute = k.last_seen)
			ORDER BY k.last_seen LIMIT $2
			FOR UPDATE SKIP LOCKED)`

	// mapTotalsSQL reads, for every key alive in [$1, $2) that passes the
	// filters ($4 environment, $5 namespace, '' = any), its last row in
	// the window and its last row in [$3, $1) (none: the key began in the
	// window). Each probe is one descent of the primary key.
	mapTotalsSQL = `SELECT k.node, k.client, k.server, k.connection_type,
			e.calls, e.failed, e.server_hist, e.client_hist, e.server_sum, e.client_sum,
			s.calls, s.failed, s.server_hist, s.client_hist, s.server_sum, s.client_sum
		FROM servicemap_keys k
		CROSS JOIN LATERAL (SELECT calls, failed, server_hist, client_hist, server_sum, client_sum
			FROM servicemap_rollups r WHERE r.key_id = k.id AND r.minute >= $1 AND r.minute < $2
			ORDER BY r.minute DESC LIMIT 1) e
		LEFT JOIN LATERAL (SELECT calls, failed, server_hist, client_hist, server_sum, client_sum
			FROM servicemap_rollups r WHERE r.key_id = k.id AND r.minute >= $3 AND r.minute < $1
			ORDER BY r.minute DESC LIMIT 1) s ON true
		WHERE k.last_seen >= $1 AND k.first_seen < $2
			AND ($4 = '' OR k.server_env = $4 OR (NOT k.node AND k.client_env = $4))
			AND ($5 = '' OR k.server_ns = $5 OR (NOT k.node AND k.client_ns = $5))`
)
