package registrystore

// notifyChannel is the channel of index notifications; the payload is the
// new index in decimal.
const notifyChannel = "vigil_registry"

// Statements of the change index.
const (
	// lockIndexSQL starts every changing transaction: it serialises
	// writers in one lock order and returns the index before the change.
	lockIndexSQL = "SELECT idx FROM registry_index WHERE one FOR UPDATE"

	// bumpIndexSQL sets the index ($1, the locked value plus one) and
	// notifies every replica at commit.
	bumpIndexSQL = "UPDATE registry_index SET idx = $1::bigint WHERE one RETURNING pg_notify('" + notifyChannel + "', idx::text)"

	indexSQL = "SELECT idx FROM registry_index WHERE one"

	listenSQL = "LISTEN " + notifyChannel
)

// Statements of services.
const (
	// upsertServiceSQL registers or replaces a service, keeping its
	// create_index.
	upsertServiceSQL = `INSERT INTO registry_services (id, name, tags, address, port, meta, create_index, modify_index, registered)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, tags = EXCLUDED.tags, address = EXCLUDED.address,
			port = EXCLUDED.port, meta = EXCLUDED.meta, modify_index = EXCLUDED.modify_index`

	deleteServiceSQL = "DELETE FROM registry_services WHERE id = $1"

	touchServiceSQL = "UPDATE registry_services SET modify_index = $2 WHERE id = $1"

	servicesSQL = `SELECT id, name, tags, address, port, meta::text, create_index, modify_index
		FROM registry_services ORDER BY name, id`

	// criticalTooLongSQL selects the services with a check critical for
	// longer than its deregister_after_ms at $1.
	criticalTooLongSQL = `SELECT DISTINCT service_id FROM registry_checks
		WHERE deregister_after_ms > 0 AND status = 'critical'
		  AND status_since + deregister_after_ms * interval '1 millisecond' <= $1`
)

// Statements of checks.
const (
	checkColumns = `c.id, c.service_id, s.name, c.name, c.notes, c.kind, c.definition::text, c.status, c.output,
		c.status_since, c.last_run, c.ttl_deadline, c.create_index, c.modify_index`

	checksSQL = "SELECT " + checkColumns + " FROM registry_checks c JOIN registry_services s ON s.id = c.service_id ORDER BY c.service_id, c.id"

	// checkForUpdateSQL reads one check's state under a row lock.
	checkForUpdateSQL = "SELECT service_id, kind, definition::text, status, output FROM registry_checks WHERE id = $1 FOR UPDATE"

	// insertCheckSQL adds a check, or replaces the definition of an
	// existing one keeping its status and output ($8, $9 apply to new
	// checks only). It returns whether the row is new.
	insertCheckSQL = `INSERT INTO registry_checks (id, service_id, name, notes, kind, definition, deregister_after_ms,
			status, output, status_since, ttl_deadline, create_index, modify_index)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
		ON CONFLICT (id) DO UPDATE SET service_id = EXCLUDED.service_id, name = EXCLUDED.name, notes = EXCLUDED.notes,
			kind = EXCLUDED.kind, definition = EXCLUDED.definition, deregister_after_ms = EXCLUDED.deregister_after_ms,
			ttl_deadline = COALESCE(registry_checks.ttl_deadline, EXCLUDED.ttl_deadline), modify_index = EXCLUDED.modify_index
		RETURNING (xmax = 0)`

	// setStatusSQL forces a check's status (an explicit initial Status).
	setStatusSQL = "UPDATE registry_checks SET status = $2, output = $3, status_since = $4 WHERE id = $1 AND status <> $2"

	// deleteOtherChecksSQL deletes the checks of service $1 other than
	// $2, except its maintenance check.
	deleteOtherChecksSQL = "DELETE FROM registry_checks WHERE service_id = $1 AND kind <> 'maintenance' AND NOT (id = ANY($2))"

	deleteCheckSQL = "DELETE FROM registry_checks WHERE id = $1"

	// updateResultSQL records a run: $2 status, $3 output, $4 time, $5
	// index, $6 the TTL deadline (NULL keeps it).
	updateResultSQL = `UPDATE registry_checks SET
			status_since = CASE WHEN status = $2 THEN status_since ELSE $4 END,
			status = $2, output = $3, last_run = $4, modify_index = $5,
			ttl_deadline = COALESCE($6, ttl_deadline)
		WHERE id = $1`

	// touchRunSQL records a run that changed nothing the API shows.
	touchRunSQL = "UPDATE registry_checks SET last_run = $2, ttl_deadline = COALESCE($3, ttl_deadline) WHERE id = $1"

	// expireTTLSQL turns critical the TTL checks whose deadline passed.
	expireTTLSQL = `UPDATE registry_checks SET status = 'critical', output = $2, status_since = $1, modify_index = $3
		WHERE kind = 'ttl' AND ttl_deadline <= $1 AND status <> 'critical'
		RETURNING id, service_id`
)

// Statements of the history.
const (
	insertHistorySQL = "INSERT INTO registry_check_history (check_id, service_id, status, output, at) VALUES ($1, $2, $3, $4, $5)"

	historySQL = `SELECT check_id, service_id, status, output, at FROM registry_check_history
		WHERE check_id = $1 ORDER BY at DESC, id DESC LIMIT $2`

	deleteHistorySQL = "DELETE FROM registry_check_history WHERE at < $1"
)
