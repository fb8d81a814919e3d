// Package postgres is the only package of Vigil that knows SQL. It applies
// the embedded migrations, writes spans with binary COPY, reads them back
// for the query layer, and keeps the time partitions (create ahead, drop
// after retention). pgx errors never leave it: connection failures come back
// wrapped in storage.ErrUnavailable, missing objects as storage.ErrNotFound.
// docs/storage.md explains the schema.
package postgres
