package servicestore

// summariesSQL lists every service of the dictionary, sorted by name, with
// whether it still has spans and logs (raw or compacted into blocks,
// through their (service, time) indexes) and metrics (a job or
// service_name label equal to its name).
const summariesSQL = `SELECT s.name, s.first_seen, s.last_seen,
	EXISTS (SELECT 1 FROM spans WHERE service_id = s.id),
	EXISTS (SELECT 1 FROM logs WHERE service_id = s.id)
		OR EXISTS (SELECT 1 FROM log_blocks WHERE service_id = s.id),
	EXISTS (SELECT 1 FROM metric_labels WHERE name IN ('job', 'service_name') AND value = s.name)
	FROM services s ORDER BY s.name`
