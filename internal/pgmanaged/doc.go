// Package pgmanaged runs a private PostgreSQL cluster for Vigil from the system's
// Postgres server binaries.
//
// It sits at the very start of the data flow: when `vigil serve` is given no
// database URL, cmd/vigil calls [Start] before running migrations, hands
// [Instance.URL] to the storage layer exactly as if the operator had passed it,
// supervises the server with [Instance.Run] next to the other components, and
// calls [Instance.Stop] last, after everything that writes to the database has
// shut down. Nothing else in Vigil knows the database is managed.
//
// # Files
//
// Everything lives in the data directory given as [Config.DataDir]:
//
//	postgres/         the cluster (PGDATA), created by initdb on first start
//	postgres.initdb/  scratch directory of an initdb in progress; never holds data
//	pgsocket/         the server's Unix socket directory: mode 0700, owned by the server's OS user
//	postgres.log      the server's and initdb's own output, mode 0600 (rotated at start past 16 MiB)
//	postgres.lock     flock(2)ed by the Vigil process managing the cluster, mode 0600
//
// The cluster uses UTF8 with the C locale. fsync, full_page_writes and
// synchronous_commit are forced on through the command line, which overrides
// postgresql.conf and ALTER SYSTEM, so a transaction whose commit was
// acknowledged survives a crash (a session may still lower
// synchronous_commit for itself). Other settings are written once into
// postgresql.conf at initdb time and may be edited by the operator;
// pg_hba.conf is Vigil's and is rewritten at every start.
//
// # Access
//
// The server is private to Vigil. It opens no TCP port (listen_addresses
// is empty on the command line). Its only Unix socket, mode 0700, is in a
// directory of mode 0700 owned by the server's OS user, so the kernel lets
// no one but that user and root connect: the users who can read the
// cluster's files anyway. pg_hba.conf therefore trusts the socket, and
// admits two roles only:
//
//   - "postgres", the bootstrap superuser, which Start alone uses to set the
//     cluster up; no connection string for it leaves the package;
//   - "vigil", an ordinary role (no SUPERUSER, CREATEROLE, CREATEDB,
//     REPLICATION or BYPASSRLS) that owns the "vigil" database, its public
//     schema and everything in it. [Instance.URL] connects as "vigil", so
//     what runs in Vigil's connections cannot read or write the server's
//     files or run programs as its OS user (COPY ... PROGRAM, pg_read_file,
//     C functions, ALTER SYSTEM).
//
// [Instance.URL] names the socket directory as host:
// postgres:///vigil?host=/data/pgsocket&port=5432&user=vigil (URL-encoded).
// [Config.Port] only numbers the socket file (.s.PGSQL.5432 by default). To
// look inside with psql, as root or the server's OS user, give the socket
// directory as an absolute path: psql -h /abs/data/pgsocket -U vigil vigil.
//
// A socket's path must fit in about 100 bytes, so a data directory whose
// path is longer than about 80 bytes, or holds a comma, quote, backslash or
// whitespace, gets its socket directory in the system's temporary
// directory instead ($TMPDIR, else /tmp): vigil-pg-<hash of the cluster's
// path>, created and checked the same way. Its name does not change between
// starts, and Start refuses one that another user owns, since anyone can
// create a directory of that name first.
//
// # Upgrading from earlier versions
//
// Earlier versions listened on 127.0.0.1 with trust authentication, made
// "vigil" the superuser Vigil connected as, and recorded the TCP port in a
// world-readable postgres.port, so any local user could run programs as
// the server's OS user. The next Start converts such a cluster in place:
// it rewrites pg_hba.conf, starts the server on its socket only, renames
// the bootstrap superuser from "vigil" to "postgres" (PostgreSQL 16 and
// later refuse to take SUPERUSER away from the bootstrap superuser),
// creates the unprivileged "vigil" role, and gives it the database and
// the schemas, tables, sequences, functions and types the superuser owned
// there. It also deletes postgres.port and makes postgres.log private.
// Each step looks before it acts, so an upgrade interrupted at any point
// is completed by the next start. Connection strings of earlier versions
// (postgres://vigil@127.0.0.1:PORT/vigil) stop working; only URL does.
//
// # Running as root
//
// initdb and postgres refuse to run as root. When Vigil's effective user is root
// (typical in containers) the cluster runs as the "postgres" account, which
// must exist: the child processes get its credentials through
// [syscall.SysProcAttr.Credential], and the cluster and socket directories are
// owned by it. Every directory above the cluster must be searchable by that
// account; Start checks this first and names the offending directory (for
// example /root, mode 0700) and the fix. Vigil, as root, still reaches the
// socket, because root passes file permissions (CAP_DAC_OVERRIDE).
// Otherwise the cluster runs as the current user.
//
// # Shutdown and crashes
//
// The postmaster runs in its own process group, so a Ctrl-C at the terminal
// reaches Vigil only, and Vigil stops the server after its own components, in
// order. [Instance.Stop] requests a fast shutdown (SIGINT: active transactions
// are rolled back, a checkpoint is written) and escalates to an immediate
// shutdown (SIGQUIT) and then SIGKILL when its context expires.
//
// If Vigil dies without calling Stop (kill -9, OOM killer, panic), the server
// is not left running on Linux: it is started with a parent-death signal of
// SIGQUIT, so the kernel asks it for an immediate shutdown. On other systems
// an orphaned server keeps running and the next Start reports
// [ErrAlreadyRunning] with its pid. Either way no committed data is lost: the
// next Start lets Postgres run its own crash recovery from the WAL. A leftover
// postmaster.pid whose process is gone does not block the next start, nor, on
// Linux, one whose pid now belongs to an unrelated process (common after a
// container restart). A live server on the cluster does, with
// [ErrAlreadyRunning] naming its pid, and so does another Vigil process
// managing the same data directory (an flock on postgres.lock, which the
// kernel releases however that process ends).
//
// Under systemd, use KillMode=mixed (or process) so that stopping the unit
// signals Vigil and lets Vigil stop the server, instead of signalling every
// process of the unit at once.
//
// The package supports Linux, macOS and the BSDs; it needs process groups,
// setuid credentials, flock(2) and Unix sockets.
package pgmanaged
