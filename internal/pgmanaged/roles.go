//go:build unix && !aix && !solaris

package pgmanaged

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// bootstrapSuperuserOID is the OID initdb gives its superuser (the -U
// role), in every PostgreSQL version.
const bootstrapSuperuserOID = 10

// appRoleAttributes are the attributes of appRole: it may log in and
// nothing else that a plain role may not.
const appRoleAttributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"

// renamerRole is the throwaway superuser that renames the bootstrap
// superuser of a cluster created by an earlier version. It exists only
// inside one transaction.
const renamerRole = "vigil_pgmanaged_renamer"

// adminCandidates are the names the bootstrap superuser may have, in the
// order tried: adminRole in clusters created or already upgraded by this
// version, appRole in clusters created by earlier versions, where Vigil
// connected as the superuser.
var adminCandidates = [...]string{adminRole, appRole}

// errNoAdmin reports that none of adminCandidates is a superuser that may
// connect; waiting for the server longer would not help.
var errNoAdmin = errors.New("no superuser to set the cluster up")

// connectAdmin connects to db as the cluster's bootstrap superuser. The
// caller closes the connection.
func (i *Instance) connectAdmin(ctx context.Context, db string) (*pgx.Conn, error) {
	var lastErr error
	for _, role := range adminCandidates {
		conn, err := pgx.Connect(ctx, i.connString(role, db))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "28000" { // invalid_authorization_specification: no such role
			lastErr = err
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("connect to %s as %s: %w", db, role, err)
		}
		var super bool
		if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("connect to %s as %s: check role: %w", db, role, err)
		}
		if super {
			return conn, nil
		}
		conn.Close(context.WithoutCancel(ctx))
		lastErr = fmt.Errorf("role %s is not a superuser", role)
	}
	return nil, fmt.Errorf("%w: neither %s nor %s: %w", errNoAdmin, adminRole, appRole, lastErr)
}

// setup makes the cluster's roles and Vigil's database what Vigil expects:
//
//   - the bootstrap superuser is named "postgres" (earlier versions named it
//     "vigil" and connected as it);
//   - "vigil" is a role with appRoleAttributes;
//   - the "vigil" database exists and belongs to "vigil", and so do the
//     schemas and the objects in them that the bootstrap superuser owned
//     (see ownershipFixes).
//
// It runs at every start. Each step looks before it changes anything, so
// setup is idempotent, a current cluster costs a few catalog queries, and
// an upgrade interrupted at any point is completed by the next start.
func (i *Instance) setup(ctx context.Context) error {
	conn, err := i.connectAdmin(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var bootstrap string
	if err := conn.QueryRow(ctx, "SELECT rolname FROM pg_roles WHERE oid = $1", bootstrapSuperuserOID).Scan(&bootstrap); err != nil {
		return fmt.Errorf("look up superuser: %w", err)
	}
	if bootstrap != adminRole {
		if err := i.renameBootstrap(ctx, conn, bootstrap); err != nil {
			return err
		}
	}
	if err := i.ensureAppRole(ctx, conn); err != nil {
		return err
	}
	if err := i.ensureDatabase(ctx, conn); err != nil {
		return err
	}
	dbConn, err := i.connectAdmin(ctx, databaseName)
	if err != nil {
		return err
	}
	defer dbConn.Close(context.WithoutCancel(ctx))
	return i.giveObjects(ctx, dbConn)
}

// renameBootstrap renames the bootstrap superuser, named from, to
// adminRole, which frees the name "vigil" for the unprivileged role.
// Renaming is the only way: PostgreSQL 16 and later refuse to take
// SUPERUSER away from the bootstrap superuser. A role cannot be renamed by
// a session of which it is the session user, so within one transaction a
// throwaway superuser becomes the session user for the rename.
func (i *Instance) renameBootstrap(ctx context.Context, conn *pgx.Conn, from string) error {
	var taken bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", adminRole).Scan(&taken); err != nil {
		return fmt.Errorf("rename superuser %s: %w", from, err)
	}
	if taken {
		return fmt.Errorf("rename superuser %s to %s: a role %s already exists; rename or drop it", from, adminRole, adminRole)
	}
	renamer := pgx.Identifier{renamerRole}.Sanitize()
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, sql := range []string{
			"CREATE ROLE " + renamer + " SUPERUSER NOLOGIN",
			"SET LOCAL SESSION AUTHORIZATION " + renamer,
			"ALTER ROLE " + pgx.Identifier{from}.Sanitize() + " RENAME TO " + pgx.Identifier{adminRole}.Sanitize(),
			"RESET SESSION AUTHORIZATION",
			"DROP ROLE " + renamer,
		} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rename superuser %s to %s: %w", from, adminRole, err)
	}
	i.logger.WarnContext(ctx, "renamed the cluster's superuser; vigil becomes an unprivileged role", "from", from, "to", adminRole)
	return nil
}

// ensureAppRole creates appRole, or resets its attributes when they differ
// from appRoleAttributes.
func (i *Instance) ensureAppRole(ctx context.Context, conn *pgx.Conn) error {
	var plain bool
	err := conn.QueryRow(ctx, `SELECT rolcanlogin AND NOT (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)
		FROM pg_roles WHERE rolname = $1`, appRole).Scan(&plain)
	role := pgx.Identifier{appRole}.Sanitize()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := conn.Exec(ctx, "CREATE ROLE "+role+" "+appRoleAttributes); err != nil {
			return fmt.Errorf("create role %s: %w", appRole, err)
		}
		i.logger.InfoContext(ctx, "created role", "role", appRole)
	case err != nil:
		return fmt.Errorf("look up role %s: %w", appRole, err)
	case !plain:
		if _, err := conn.Exec(ctx, "ALTER ROLE "+role+" "+appRoleAttributes); err != nil {
			return fmt.Errorf("alter role %s: %w", appRole, err)
		}
		i.logger.WarnContext(ctx, "reset role attributes", "role", appRole, "attributes", appRoleAttributes)
	}
	return nil
}

// ensureDatabase creates Vigil's database owned by appRole, or gives an
// existing one to appRole.
func (i *Instance) ensureDatabase(ctx context.Context, conn *pgx.Conn) error {
	var owner string
	err := conn.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", databaseName).Scan(&owner)
	db, role := pgx.Identifier{databaseName}.Sanitize(), pgx.Identifier{appRole}.Sanitize()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+db+" OWNER "+role); err != nil {
			return fmt.Errorf("create database %s: %w", databaseName, err)
		}
		i.logger.InfoContext(ctx, "created database", "database", databaseName, "owner", appRole)
	case err != nil:
		return fmt.Errorf("look up database %s: %w", databaseName, err)
	case owner != appRole:
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+db+" OWNER TO "+role); err != nil {
			return fmt.Errorf("give database %s to %s: %w", databaseName, appRole, err)
		}
		i.logger.WarnContext(ctx, "gave database to role", "database", databaseName, "from", owner, "role", appRole)
	}
	return nil
}

// ownershipFixes lists, for the database it runs in, the statements that
// give appRole ($1) what the bootstrap superuser owns outside the system
// schemas: schemas (and schemas owned by pg_database_owner, such as public
// since PostgreSQL 15), tables, views and their kin, sequences that belong
// to no column (the others follow their table, as do indexes and row
// types), functions, procedures and aggregates, types and domains,
// statistics objects, text search configurations and dictionaries, and
// collations: every kind of object Vigil's migrations create and then
// some. Objects that belong to an extension stay with the extension's
// owner. 10 is bootstrapSuperuserOID.
const ownershipFixes = `
WITH ns AS (
	SELECT oid, nspname, nspowner FROM pg_namespace
	WHERE nspname <> 'information_schema' AND nspname !~ '^pg_'
), ext AS (
	SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
)
SELECT format('ALTER SCHEMA %I OWNER TO %I', ns.nspname, $1::text) FROM ns
	WHERE ns.nspowner IN (10, 'pg_database_owner'::regrole)
	AND ('pg_namespace'::regclass::oid, ns.oid) NOT IN (SELECT classid, objid FROM ext)
UNION ALL
SELECT format('ALTER TABLE %s OWNER TO %I', c.oid::regclass, $1::text) FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
	WHERE c.relowner = 10 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
	AND ('pg_class'::regclass::oid, c.oid) NOT IN (SELECT classid, objid FROM ext)
UNION ALL
SELECT format('ALTER SEQUENCE %s OWNER TO %I', c.oid::regclass, $1::text) FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
	WHERE c.relowner = 10 AND c.relkind = 'S'
	AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
		AND d.deptype IN ('a', 'i', 'e'))
UNION ALL
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $1::text) FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
	WHERE p.proowner = 10
	AND ('pg_proc'::regclass::oid, p.oid) NOT IN (SELECT classid, objid FROM ext)
UNION ALL
SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, $1::text) FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
	WHERE t.typowner = 10
	AND (t.typtype IN ('d', 'e', 'r')
		OR t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c'))
	AND ('pg_type'::regclass::oid, t.oid) NOT IN (SELECT classid, objid FROM ext)
UNION ALL
SELECT format('ALTER STATISTICS %I.%I OWNER TO %I', ns.nspname, s.stxname, $1::text) FROM pg_statistic_ext s JOIN ns ON ns.oid = s.stxnamespace
	WHERE s.stxowner = 10
UNION ALL
SELECT format('ALTER TEXT SEARCH CONFIGURATION %s OWNER TO %I', c.oid::regconfig, $1::text) FROM pg_ts_config c JOIN ns ON ns.oid = c.cfgnamespace
	WHERE c.cfgowner = 10
	AND ('pg_ts_config'::regclass::oid, c.oid) NOT IN (SELECT classid, objid FROM ext)
UNION ALL
SELECT format('ALTER TEXT SEARCH DICTIONARY %s OWNER TO %I', d.oid::regdictionary, $1::text) FROM pg_ts_dict d JOIN ns ON ns.oid = d.dictnamespace
	WHERE d.dictowner = 10
	AND ('pg_ts_dict'::regclass::oid, d.oid) NOT IN (SELECT classid, objid FROM ext)
UNION ALL
SELECT format('ALTER COLLATION %I.%I OWNER TO %I', ns.nspname, c.collname, $1::text) FROM pg_collation c JOIN ns ON ns.oid = c.collnamespace
	WHERE c.collowner = 10
	AND ('pg_collation'::regclass::oid, c.oid) NOT IN (SELECT classid, objid FROM ext)
`

// giveObjects runs ownershipFixes in Vigil's database over conn. Each
// statement commits on its own: after an upgrade, the tables of a large
// store (each partition with its indexes) would not fit in one
// transaction's locks, and whatever an interruption leaves is found again
// at the next start.
func (i *Instance) giveObjects(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, ownershipFixes, appRole)
	if err != nil {
		return fmt.Errorf("list objects to give to %s: %w", appRole, err)
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list objects to give to %s: %w", appRole, err)
	}
	if len(stmts) == 0 {
		return nil
	}
	begin := time.Now()
	for _, stmt := range stmts {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("give objects to %s: %w", appRole, err)
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("give objects to %s: %s: %w", appRole, stmt, err)
		}
	}
	i.logger.InfoContext(ctx, "gave the superuser's objects to role", "role", appRole, "database", databaseName,
		"objects", len(stmts), "took", time.Since(begin).Round(time.Millisecond))
	return nil
}
