package dict

// Upserts of the write side. Each takes its rows as parallel arrays
// sorted in one global order, so that concurrent writers cannot deadlock,
// and those that return ids use DO UPDATE (a no-op) rather than DO
// NOTHING so that existing rows come back too, in one round trip.
const (
	upsertServicesSQL = `INSERT INTO services (name) SELECT unnest($1::text[])
		ON CONFLICT (name) DO UPDATE SET last_seen = now()
		RETURNING id, name`

	touchServicesSQL = "UPDATE services SET last_seen = now() WHERE id = ANY($1)"

	upsertOperationsSQL = `INSERT INTO operations (service_id, name, kind)
		SELECT * FROM unnest($1::int[], $2::text[], $3::smallint[])
		ON CONFLICT (service_id, name, kind) DO UPDATE SET kind = EXCLUDED.kind
		RETURNING id, service_id, name, kind`

	upsertKeysSQL = `INSERT INTO attribute_keys (key) SELECT unnest($1::text[])
		ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key
		RETURNING id, key`

	insertServiceKeysSQL = `INSERT INTO service_attribute_keys (service_id, key_id)
		SELECT * FROM unnest($1::int[], $2::int[]) ON CONFLICT DO NOTHING`

	countValuesSQL = `SELECT k, (SELECT count(*) FROM attribute_values WHERE key_id = k)
		FROM unnest($1::int[]) AS k`

	// internValuesSQL also reports whether each row is new (xmax = 0).
	internValuesSQL = `INSERT INTO attribute_values (key_id, value) SELECT * FROM unnest($1::int[], $2::text[])
		ON CONFLICT (key_id, value) DO UPDATE SET value = EXCLUDED.value
		RETURNING id, key_id, value, xmax = 0`

	insertResourcesSQL = `INSERT INTO resources (id, service_id, resource, scope)
		SELECT * FROM unnest($1::bigint[], $2::int[], $3::bytea[], $4::bytea[])
		ON CONFLICT (id) DO NOTHING`
)

// Lookups by id of the read side.
const (
	valuesByIDSQL     = "SELECT id, key_id, value FROM attribute_values WHERE id = ANY($1)"
	keysByIDSQL       = "SELECT id, key FROM attribute_keys WHERE id = ANY($1)"
	operationsByIDSQL = "SELECT id, service_id, name, kind FROM operations WHERE id = ANY($1)"
	servicesByIDSQL   = "SELECT id, name FROM services WHERE id = ANY($1)"
	resourcesByIDSQL  = "SELECT id, service_id, resource, scope FROM resources WHERE id = ANY($1)"
)
