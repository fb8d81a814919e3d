//go:build unix && !aix && !solaris

package pgmanaged

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNoBinaries reports that no usable PostgreSQL server binaries (initdb and
// postgres, version 14 or later) were found. Its message tells the operator
// how to install them or how to use an existing server instead.
var ErrNoBinaries = errors.New("postgres server binaries (initdb, postgres) not found: " +
	"install PostgreSQL 14 or later (Debian/Ubuntu: apt-get install postgresql; " +
	"Fedora/RHEL: dnf install postgresql-server; macOS: brew install postgresql) " +
	"or point Vigil at an existing server with --db or VIGIL_DB")

// minMajor is the oldest server Vigil's schema supports (native partitioning
// features it relies on).
const minMajor = 14

// probeTimeout bounds each `pg_config` or `--version` probe, so a hung
// wrapper cannot stall discovery.
const probeTimeout = 10 * time.Second

// binDir is a validated directory holding initdb and postgres of one major
// version.
type binDir struct {
	path  string
	major int
}

// FindBinDir returns the directory of the PostgreSQL server binaries Start
// would use when [Config.BinDir] is empty: the directory printed by
// `pg_config --bindir`, then the directories of initdb and postgres found on
// PATH (after resolving symlinks), then /usr/lib/postgresql/*/bin,
// /usr/pgsql-*/bin and Homebrew's postgresql@* prefixes, highest version
// first. A candidate is accepted only if it holds both initdb and postgres as
// real executables, not shell wrappers, reporting the same major version, at
// least 14. The returned path has its symlinks resolved.
//
// The error wraps [ErrNoBinaries] when no candidate qualifies; its message
// also lists why each candidate found was rejected. ctx bounds the probes,
// which run the candidates with --version.
func FindBinDir(ctx context.Context) (string, error) {
	b, err := findBinDir(ctx, 0)
	if err != nil {
		return "", err
	}
	return b.path, nil
}

// findBinDir discovers server binaries. When wantMajor is not zero (an
// existing cluster's version) it returns the first candidate of that major
// version rather than the first candidate, so installing a newer Postgres
// next to the one that created the cluster does not break it.
func findBinDir(ctx context.Context, wantMajor int) (binDir, error) {
	var (
		rejected []string
		other    []string
		seen     = map[string]bool{}
	)
	for _, dir := range candidateDirs(ctx) {
		real, err := filepath.EvalSymlinks(dir)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		b, err := inspectBinDir(ctx, real, true)
		if err != nil {
			rejected = append(rejected, err.Error())
			continue
		}
		if wantMajor == 0 || b.major == wantMajor {
			return b, nil
		}
		other = append(other, fmt.Sprintf("PostgreSQL %d in %s", b.major, b.path))
	}
	if len(other) > 0 {
		return binDir{}, fmt.Errorf("find postgres binaries: the cluster was created by PostgreSQL %d but only %s were found; "+
			"install the PostgreSQL %d server binaries, set the bin dir to them, or upgrade the cluster with pg_upgrade",
			wantMajor, strings.Join(other, ", "), wantMajor)
	}
	if len(rejected) > 0 {
		return binDir{}, fmt.Errorf("find postgres binaries: %w (rejected: %s)", ErrNoBinaries, strings.Join(rejected, "; "))
	}
	return binDir{}, fmt.Errorf("find postgres binaries: %w", ErrNoBinaries)
}

// candidateDirs lists directories that may hold server binaries, most
// trusted first. pg_config comes first because it names the installation's
// real bin directory even where PATH holds wrappers or symlinks.
func candidateDirs(ctx context.Context) []string {
	var dirs []string
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		out, err := exec.CommandContext(pctx, pgConfig, "--bindir").Output()
		cancel()
		if dir := strings.TrimSpace(string(out)); err == nil && filepath.IsAbs(dir) {
			dirs = append(dirs, dir)
		}
	}
	for _, name := range []string{"initdb", "postgres", "pg_ctl"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	var globbed []string
	for _, pattern := range []string{
		"/usr/lib/postgresql/*/bin",
		"/usr/pgsql-*/bin",
		"/opt/homebrew/opt/postgresql@*/bin",
		"/usr/local/opt/postgresql@*/bin",
		"/opt/homebrew/opt/postgresql/bin",
		"/usr/local/opt/postgresql/bin",
	} {
		matches, _ := filepath.Glob(pattern) // the patterns are constant and valid
		globbed = append(globbed, matches...)
	}
	slices.SortStableFunc(globbed, func(a, b string) int { return pathVersion(b) - pathVersion(a) })
	return append(dirs, globbed...)
}

var pathVersionRE = regexp.MustCompile(`(?:postgresql|pgsql)[/@-](\d+)`)

// pathVersion extracts the major version from an installation path such as
// /usr/lib/postgresql/15/bin, or 0.
func pathVersion(p string) int {
	m := pathVersionRE.FindStringSubmatch(p)
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(m[1]) // digits only, by the expression
	return v
}

// inspectBinDir checks that dir holds initdb and postgres of the same
// supported major version. With strict set it also rejects scripts: a
// wrapper on PATH (one that switches users, adds flags or prints a hint)
// cannot be trusted to behave like initdb when given our arguments.
func inspectBinDir(ctx context.Context, dir string, strict bool) (binDir, error) {
	var majors [2]int
	for i, name := range []string{"initdb", "postgres"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			return binDir{}, fmt.Errorf("%s: no %s", dir, name)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return binDir{}, fmt.Errorf("%s: not an executable file", p)
		}
		if strict {
			script, err := isScript(p)
			if err != nil {
				return binDir{}, fmt.Errorf("%s: %w", p, err)
			}
			if script {
				return binDir{}, fmt.Errorf("%s: is a script, not the server binary", p)
			}
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		out, err := exec.CommandContext(pctx, p, "--version").Output()
		cancel()
		if err != nil {
			return binDir{}, fmt.Errorf("%s --version: %w", p, err)
		}
		major, err := parseMajor(string(out))
		if err != nil {
			return binDir{}, fmt.Errorf("%s --version: %w", p, err)
		}
		majors[i] = major
	}
	if majors[0] != majors[1] {
		return binDir{}, fmt.Errorf("%s: initdb is version %d but postgres is version %d", dir, majors[0], majors[1])
	}
	if majors[0] < minMajor {
		return binDir{}, fmt.Errorf("%s: PostgreSQL %d is older than the supported %d", dir, majors[0], minMajor)
	}
	return binDir{path: dir, major: majors[0]}, nil
}

// isScript reports whether the file starts with a "#!" interpreter line.
func isScript(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var head [2]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		return false, err
	}
	return bytes.Equal(head[:], []byte("#!")), nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// parseMajor reads the major version from `postgres --version` output such
// as "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)" or
// "postgres (PostgreSQL) 17beta1".
func parseMajor(out string) (int, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unrecognized version output %q", strings.TrimSpace(out))
	}
	return strconv.Atoi(m[1])
}
