package postgres

// Statements of the migration runner.
const (
	lockMigrationsSQL   = "SELECT pg_advisory_lock($1)"
	unlockMigrationsSQL = "SELECT pg_advisory_unlock($1)"

	createMigrationsTableSQL = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`

	appliedVersionsSQL = "SELECT version FROM schema_migrations"
	recordMigrationSQL = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"
	schemaVersionSQL   = "SELECT max(version) FROM schema_migrations"
)

// Statements of partition maintenance. The %s verbs take sanitized
// identifiers (pgx.Identifier) and RFC 3339 times, which cannot be
// statement parameters in DDL.
const (
	lockMaintenanceSQL = "SELECT pg_advisory_xact_lock($1)"

	createPartitionSQL = "CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')"

	// listPartitionsSQL returns (partition, parent) for the parents in $1.
	listPartitionsSQL = `SELECT c.relname, p.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relname = ANY($1)`

	// Dropping a partition locks its parent too (ACCESS EXCLUSIVE), and
	// DROP TABLE would lock the partition first: a reader, which locks
	// the parent first, could then deadlock with it. So the parent
	// (ONLY: not its partitions) is locked first, as readers do.
	lockParentSQL       = "LOCK TABLE ONLY %s IN ACCESS EXCLUSIVE MODE"
	parentOfSQL         = "SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = $1::regclass"
	lockPartitionSQL    = "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE"
	partitionHasRowsSQL = "SELECT EXISTS (SELECT 1 FROM %s)"
	dropPartitionSQL    = "DROP TABLE %s"
)
