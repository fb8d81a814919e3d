package alertstore

// Statements of the replicated Alertmanager state.
const (
	// lockDeltasSQL serialises appends (inside their transaction) so that
	// sequence numbers commit in order: a reader that has seen seq n has
	// seen every delta below it. The key is "vignfsta" in ASCII.
	lockDeltasSQL = "SELECT pg_advisory_xact_lock(8532464692893021281)"

	appendDeltaSQL = "INSERT INTO notify_state_deltas (kind, data) VALUES ($1, $2) RETURNING seq"

	snapshotSQL = "SELECT seq, data FROM notify_state_snapshots WHERE kind = $1"

	// deltasAfterSQL reads the deltas of kind $1 after seq $2, in order.
	deltasAfterSQL = "SELECT seq, data FROM notify_state_deltas WHERE kind = $1 AND seq > $2 ORDER BY seq LIMIT $3"

	// upsertSnapshotSQL keeps the snapshot covering the most deltas: a
	// replica lagging behind never replaces a newer one.
	upsertSnapshotSQL = `INSERT INTO notify_state_snapshots (kind, seq, data) VALUES ($1, $2, $3)
		ON CONFLICT (kind) DO UPDATE SET seq = EXCLUDED.seq, data = EXCLUDED.data, updated = now()
		WHERE notify_state_snapshots.seq < EXCLUDED.seq`

	// deleteCoveredDeltasSQL deletes the deltas the stored snapshot of
	// kind $1 includes.
	deleteCoveredDeltasSQL = `DELETE FROM notify_state_deltas d USING notify_state_snapshots s
		WHERE s.kind = $1 AND d.kind = s.kind AND d.seq <= s.seq`
)

// Statements of the posted alerts.
const (
	// lockAlertsSQL serialises alert writes in their transaction, for the
	// same reason as lockDeltasSQL ("vignfalr").
	lockAlertsSQL = "SELECT pg_advisory_xact_lock(8532464692891839602)"

	// upsertAlertsSQL writes alerts ($1 fingerprints, $2 end times, $3
	// JSON), giving each a new revision.
	upsertAlertsSQL = `INSERT INTO notify_alerts (fingerprint, rev, ends_at, data)
		SELECT f, nextval('notify_alert_revs'), e, d
		FROM unnest($1::bigint[], $2::timestamptz[], $3::jsonb[]) AS u(f, e, d)
		ON CONFLICT (fingerprint) DO UPDATE SET rev = EXCLUDED.rev, ends_at = EXCLUDED.ends_at, data = EXCLUDED.data`

	alertsAfterSQL = "SELECT fingerprint, rev, ends_at, data::text FROM notify_alerts WHERE rev > $1 ORDER BY rev LIMIT $2"

	deleteAlertsEndedSQL = "DELETE FROM notify_alerts WHERE ends_at < $1"
)

// Statements of the notification history.
const (
	insertNotificationsSQL = `INSERT INTO notify_history
		(time, receiver, integration, idx, group_key, firing, resolved, ok, retry, message, duration_us, test)
		SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::integer[], $5::text[],
			$6::integer[], $7::integer[], $8::boolean[], $9::boolean[], $10::text[], $11::bigint[], $12::boolean[])`

	// notificationsSQL reads history newest first; %s is the filter.
	notificationsSQL = `SELECT id, time, receiver, integration, idx, group_key, firing, resolved, ok, retry, message, duration_us, test
		FROM notify_history WHERE %s ORDER BY time DESC, id DESC LIMIT %s`

	deleteNotificationsSQL = "DELETE FROM notify_history WHERE time < $1"
)

// Statements of the shared rule group state.
const (
	upsertRuleGroupStateSQL = `INSERT INTO rule_group_state (file, name, state, updated) VALUES ($1, $2, $3, now())
		ON CONFLICT (file, name) DO UPDATE SET state = EXCLUDED.state, updated = EXCLUDED.updated`
	ruleGroupStatesSQL = "SELECT file, name, state, updated FROM rule_group_state"
)
