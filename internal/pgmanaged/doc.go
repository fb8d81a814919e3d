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
//	pgsocket/         the server's Unix socket directory, private to its OS user
//	postgres.log      the server's and initdb's own output (rotated at start past 16 MiB)
//	postgres.port     the TCP port of the last successful start, reused when free
//	postgres.lock     flock(2)ed by the Vigil process managing the cluster
//
// The cluster uses UTF8 with the C locale, trusts connections only over its
// private Unix socket and from 127.0.0.1, and listens on 127.0.0.1 only. Its
// superuser is "vigil" and Vigil's database is "vigil". fsync, full_page_writes
// and synchronous_commit are forced on through the command line, which overrides
// postgresql.conf and ALTER SYSTEM, so a transaction whose commit was
// acknowledged survives a crash (a session may still lower
// synchronous_commit for itself). Other settings are written once into
// postgresql.conf at initdb time and may be edited by the operator.
//
// # Running as root
//
// initdb and postgres refuse to run as root. When Vigil's effective user is root
// (typical in containers) the cluster runs as the "postgres" account, which
// must exist: the child processes get its credentials through
// [syscall.SysProcAttr.Credential], and the cluster and socket directories are
// owned by it. Every directory above the cluster must be searchable by that
// account; Start checks this first and names the offending directory (for
// example /root, mode 0700) and the fix. Otherwise the cluster runs as the
// current user.
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
