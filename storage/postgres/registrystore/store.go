package registrystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// MaxOutput is the most bytes of a check's output the store keeps; longer
// outputs are cut at a rune boundary.
const MaxOutput = 4096

// Check kinds.
const (
	KindHTTP        = "http"
	KindTCP         = "tcp"
	KindGRPC        = "grpc"
	KindTTL         = "ttl"
	KindMaintenance = "maintenance"
)

// Check statuses, as Consul spells them.
const (
	StatusPassing  = "passing"
	StatusWarning  = "warning"
	StatusCritical = "critical"
)

// ErrNotTTL is returned by UpdateTTL for a check that is not a TTL check.
var ErrNotTTL = errors.New("not a TTL check")

// Service is one registered service instance.
type Service struct {
	ID      string
	Name    string
	Tags    []string
	Address string
	Port    int
	Meta    map[string]string
	// CreateIndex and ModifyIndex are values of the change index, set by
	// the store.
	CreateIndex, ModifyIndex int64
}

// Definition is what a check does, stored as JSON. Durations are
// nanoseconds.
type Definition struct {
	HTTP          string              `json:"http,omitempty"`
	Method        string              `json:"method,omitempty"`
	Header        map[string][]string `json:"header,omitempty"`
	Body          string              `json:"body,omitempty"`
	TLSSkipVerify bool                `json:"tls_skip_verify,omitempty"`
	TCP           string              `json:"tcp,omitempty"`
	GRPC          string              `json:"grpc,omitempty"`
	GRPCUseTLS    bool                `json:"grpc_use_tls,omitempty"`
	Interval      time.Duration       `json:"interval,omitempty"`
	Timeout       time.Duration       `json:"timeout,omitempty"`
	TTL           time.Duration       `json:"ttl,omitempty"`
	// DeregisterCriticalServiceAfter is also kept in its own column.
	DeregisterCriticalServiceAfter time.Duration `json:"deregister_critical_service_after,omitempty"`
}

// Check is one check of a service and its current state.
type Check struct {
	ID          string
	ServiceID   string
	ServiceName string // read only: the service's name
	Name        string
	Notes       string
	Kind        string // KindHTTP, KindTCP, KindGRPC, KindTTL or KindMaintenance
	Definition  Definition
	Status      string
	Output      string
	// StatusSince is when Status last changed; LastRun when the check
	// last ran or was updated (zero: never); TTLDeadline when a TTL check
	// that is not updated turns critical.
	StatusSince time.Time
	LastRun     time.Time
	TTLDeadline time.Time

	CreateIndex, ModifyIndex int64
}

// State is the whole registry at one index.
type State struct {
	Index    int64
	Services []Service // ordered by name, then ID
	Checks   []Check   // ordered by service ID, then ID
}

// Registration is a service with the checks registered with it. Checks
// already stored keep their status and output unless ForceStatus is set;
// new checks start with their Status (critical when empty).
type Registration struct {
	Service Service
	Checks  []Check
	// ForceStatus applies each check's Status to existing checks too.
	ForceStatus bool
	// ReplaceExistingChecks deletes the service's other checks (but not
	// its maintenance check).
	ReplaceExistingChecks bool
}

// Transition is a change of a check's status.
type Transition struct {
	CheckID   string
	ServiceID string
	Status    string
	Output    string
	At        time.Time
}

// Store is the PostgreSQL state of the registry. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store over pool, whose database must be migrated.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// change runs fn in a transaction holding the index lock; fn gets the
// index the change will carry and reports whether it changed anything.
// change returns the index after the transaction: the new one when fn
// changed something, else the current one.
func (s *Store) change(ctx context.Context, fn func(tx pgx.Tx, next int64) (bool, error)) (int64, error) {
	var idx int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, lockIndexSQL).Scan(&idx); err != nil {
			return fmt.Errorf("lock index: %w", err)
		}
		changed, err := fn(tx, idx+1)
		if err != nil || !changed {
			return err
		}
		idx++
		_, err = tx.Exec(ctx, bumpIndexSQL, idx)
		return err
	})
	return idx, err
}

// Register stores a service and its checks at now, replacing a service of
// the same ID. It returns the new index.
func (s *Store) Register(ctx context.Context, r Registration, now time.Time) (int64, error) {
	svc := r.Service
	meta, err := json.Marshal(nonNilMeta(svc.Meta))
	if err != nil {
		return 0, fmt.Errorf("register service %s: %w", svc.ID, err)
	}
	tags := svc.Tags
	if tags == nil {
		tags = []string{}
	}
	idx, err := s.change(ctx, func(tx pgx.Tx, next int64) (bool, error) {
		if _, err := tx.Exec(ctx, upsertServiceSQL, svc.ID, svc.Name, tags, svc.Address, svc.Port, string(meta), next, now); err != nil {
			return false, err
		}
		ids := make([]string, 0, len(r.Checks))
		for _, c := range r.Checks {
			c.ServiceID = svc.ID
			if err := putCheck(ctx, tx, c, r.ForceStatus, next, now); err != nil {
				return false, err
			}
			ids = append(ids, c.ID)
		}
		if r.ReplaceExistingChecks {
			if _, err := tx.Exec(ctx, deleteOtherChecksSQL, svc.ID, ids); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("register service %s: %w", svc.ID, pgcore.Classify(err))
	}
	return idx, nil
}

// PutCheck adds a check to an existing service (c.ServiceID), or replaces
// the definition of a check of the same ID. It returns the new index, or
// storage.ErrNotFound when the service does not exist.
func (s *Store) PutCheck(ctx context.Context, c Check, force bool, now time.Time) (int64, error) {
	idx, err := s.change(ctx, func(tx pgx.Tx, next int64) (bool, error) {
		tag, err := tx.Exec(ctx, touchServiceSQL, c.ServiceID, next)
		if err != nil {
			return false, err
		}
		if tag.RowsAffected() == 0 {
			return false, storage.ErrNotFound
		}
		return true, putCheck(ctx, tx, c, force, next, now)
	})
	if err != nil {
		return 0, fmt.Errorf("put check %s: %w", c.ID, classify(err))
	}
	return idx, nil
}

func putCheck(ctx context.Context, tx pgx.Tx, c Check, force bool, next int64, now time.Time) error {
	def, err := json.Marshal(c.Definition)
	if err != nil {
		return err
	}
	status := c.Status
	if status == "" {
		status = StatusCritical
	}
	output := Truncate(c.Output)
	var deadline *time.Time
	if c.Kind == KindTTL {
		d := now.Add(c.Definition.TTL)
		deadline = &d
	}
	var inserted bool
	if err := tx.QueryRow(ctx, insertCheckSQL, c.ID, c.ServiceID, c.Name, c.Notes, c.Kind, string(def),
		c.Definition.DeregisterCriticalServiceAfter.Milliseconds(), status, output, now, deadline, next).Scan(&inserted); err != nil {
		return err
	}
	if !inserted && force && c.Status != "" {
		tag, err := tx.Exec(ctx, setStatusSQL, c.ID, status, output, now)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		inserted = true
	}
	if inserted {
		_, err = tx.Exec(ctx, insertHistorySQL, c.ID, c.ServiceID, status, output, now)
	}
	return err
}

// DeleteCheck deletes one check. It returns the new index, or
// storage.ErrNotFound when there is no such check.
func (s *Store) DeleteCheck(ctx context.Context, id string) (int64, error) {
	idx, err := s.change(ctx, func(tx pgx.Tx, _ int64) (bool, error) {
		tag, err := tx.Exec(ctx, deleteCheckSQL, id)
		if err == nil && tag.RowsAffected() == 0 {
			err = storage.ErrNotFound
		}
		return err == nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("delete check %s: %w", id, classify(err))
	}
	return idx, nil
}

// Deregister deletes a service and its checks. It returns the new index,
// or storage.ErrNotFound when there is no such service.
func (s *Store) Deregister(ctx context.Context, id string) (int64, error) {
	idx, err := s.change(ctx, func(tx pgx.Tx, _ int64) (bool, error) {
		tag, err := tx.Exec(ctx, deleteServiceSQL, id)
		if err == nil && tag.RowsAffected() == 0 {
			err = storage.ErrNotFound
		}
		return err == nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("deregister service %s: %w", id, classify(err))
	}
	return idx, nil
}

// Result is one run of a check, or one update of a TTL check.
type Result struct {
	CheckID string
	Status  string
	Output  string
	At      time.Time
}

// Recorded tells what a Record changed.
type Recorded struct {
	// Index is the index after the call.
	Index int64
	// Transition is set when the status changed.
	Transition *Transition
	// ServiceID is the check's service.
	ServiceID string
}

// RecordResult stores the result of a run of an active check. The index
// moves only when the status or the output changed; a transition is kept
// in the history only when the status changed. A check deleted meanwhile
// is storage.ErrNotFound.
func (s *Store) RecordResult(ctx context.Context, r Result) (Recorded, error) {
	rec, err := s.record(ctx, r, false)
	if err != nil {
		return Recorded{}, fmt.Errorf("record check %s: %w", r.CheckID, classify(err))
	}
	return rec, nil
}

// UpdateTTL sets the status and output of a TTL check and moves its
// deadline to r.At plus its TTL. It returns storage.ErrNotFound for an
// unknown check and ErrNotTTL for a check of another kind.
func (s *Store) UpdateTTL(ctx context.Context, r Result) (Recorded, error) {
	rec, err := s.record(ctx, r, true)
	if err != nil {
		return Recorded{}, fmt.Errorf("update check %s: %w", r.CheckID, classify(err))
	}
	return rec, nil
}

func (s *Store) record(ctx context.Context, r Result, ttl bool) (Recorded, error) {
	var rec Recorded
	output := Truncate(r.Output)
	idx, err := s.change(ctx, func(tx pgx.Tx, next int64) (bool, error) {
		var kind, def, status, old string
		if err := tx.QueryRow(ctx, checkForUpdateSQL, r.CheckID).Scan(&rec.ServiceID, &kind, &def, &status, &old); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return false, storage.ErrNotFound
			}
			return false, err
		}
		var deadline *time.Time
		if ttl {
			if kind != KindTTL {
				return false, ErrNotTTL
			}
			var d Definition
			if err := json.Unmarshal([]byte(def), &d); err != nil {
				return false, fmt.Errorf("%w: check definition: %w", pgcore.ErrCorrupt, err)
			}
			t := r.At.Add(d.TTL)
			deadline = &t
		}
		if status == r.Status && old == output {
			_, err := tx.Exec(ctx, touchRunSQL, r.CheckID, r.At, deadline)
			return false, err
		}
		if _, err := tx.Exec(ctx, updateResultSQL, r.CheckID, r.Status, output, r.At, next, deadline); err != nil {
			return false, err
		}
		if status != r.Status {
			rec.Transition = &Transition{CheckID: r.CheckID, ServiceID: rec.ServiceID, Status: r.Status, Output: output, At: r.At}
			if _, err := tx.Exec(ctx, insertHistorySQL, r.CheckID, rec.ServiceID, r.Status, output, r.At); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	rec.Index = idx
	return rec, err
}

// ExpireTTL turns critical, with output, every TTL check whose deadline
// is at or before now and that is not critical yet, and returns those
// transitions.
func (s *Store) ExpireTTL(ctx context.Context, now time.Time, output string) ([]Transition, error) {
	var out []Transition
	_, err := s.change(ctx, func(tx pgx.Tx, next int64) (bool, error) {
		out = out[:0]
		rows, err := tx.Query(ctx, expireTTLSQL, now, output, next)
		if err != nil {
			return false, err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transition, error) {
			t := Transition{Status: StatusCritical, Output: output, At: now}
			return t, r.Scan(&t.CheckID, &t.ServiceID)
		})
		if err != nil {
			return false, err
		}
		for _, t := range out {
			if _, err := tx.Exec(ctx, insertHistorySQL, t.CheckID, t.ServiceID, t.Status, t.Output, t.At); err != nil {
				return false, err
			}
		}
		return len(out) > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire ttl checks: %w", pgcore.Classify(err))
	}
	return out, nil
}

// DeregisterCritical deregisters every service that has a check critical
// for at least its DeregisterCriticalServiceAfter at now, and returns
// their IDs.
func (s *Store) DeregisterCritical(ctx context.Context, now time.Time) ([]string, error) {
	var ids []string
	_, err := s.change(ctx, func(tx pgx.Tx, _ int64) (bool, error) {
		rows, err := tx.Query(ctx, criticalTooLongSQL, now)
		if err != nil {
			return false, err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return false, err
		}
		for _, id := range ids {
			if _, err := tx.Exec(ctx, deleteServiceSQL, id); err != nil {
				return false, err
			}
		}
		return len(ids) > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("deregister critical services: %w", pgcore.Classify(err))
	}
	return ids, nil
}

// Index returns the current change index.
func (s *Store) Index(ctx context.Context) (int64, error) {
	var idx int64
	if err := s.pool.QueryRow(ctx, indexSQL).Scan(&idx); err != nil {
		return 0, fmt.Errorf("read registry index: %w", pgcore.Classify(err))
	}
	return idx, nil
}

// State reads the whole registry as of one index, in one snapshot. The
// caller owns the returned slices.
func (s *Store) State(ctx context.Context) (State, error) {
	var st State
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, indexSQL).Scan(&st.Index); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, servicesSQL)
		if err != nil {
			return err
		}
		st.Services, err = pgx.CollectRows(rows, scanService)
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, checksSQL)
		if err != nil {
			return err
		}
		st.Checks, err = pgx.CollectRows(rows, scanCheck)
		return err
	})
	if err != nil {
		return State{}, fmt.Errorf("read registry: %w", pgcore.Classify(err))
	}
	return st, nil
}

func scanService(r pgx.CollectableRow) (Service, error) {
	var s Service
	var port int32
	var meta string
	if err := r.Scan(&s.ID, &s.Name, &s.Tags, &s.Address, &port, &meta, &s.CreateIndex, &s.ModifyIndex); err != nil {
		return s, err
	}
	s.Port = int(port)
	if err := json.Unmarshal([]byte(meta), &s.Meta); err != nil {
		return s, fmt.Errorf("%w: service %s meta: %w", pgcore.ErrCorrupt, s.ID, err)
	}
	return s, nil
}

func scanCheck(r pgx.CollectableRow) (Check, error) {
	var c Check
	var def string
	var lastRun, deadline *time.Time
	if err := r.Scan(&c.ID, &c.ServiceID, &c.ServiceName, &c.Name, &c.Notes, &c.Kind, &def, &c.Status, &c.Output,
		&c.StatusSince, &lastRun, &deadline, &c.CreateIndex, &c.ModifyIndex); err != nil {
		return c, err
	}
	if lastRun != nil {
		c.LastRun = *lastRun
	}
	if deadline != nil {
		c.TTLDeadline = *deadline
	}
	if err := json.Unmarshal([]byte(def), &c.Definition); err != nil {
		return c, fmt.Errorf("%w: check %s definition: %w", pgcore.ErrCorrupt, c.ID, err)
	}
	return c, nil
}

// History returns the last limit status transitions of a check, newest
// first.
func (s *Store) History(ctx context.Context, checkID string, limit int) ([]Transition, error) {
	rows, err := s.pool.Query(ctx, historySQL, checkID, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("read check history: %w", pgcore.Classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transition, error) {
		var t Transition
		return t, r.Scan(&t.CheckID, &t.ServiceID, &t.Status, &t.Output, &t.At)
	})
	if err != nil {
		return nil, fmt.Errorf("read check history: %w", pgcore.Classify(err))
	}
	return out, nil
}

// DeleteHistoryBefore deletes the transitions older than t and returns how
// many it deleted.
func (s *Store) DeleteHistoryBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, deleteHistorySQL, t)
	if err != nil {
		return 0, fmt.Errorf("delete check history: %w", pgcore.Classify(err))
	}
	return tag.RowsAffected(), nil
}

// classify keeps the store's own sentinels and classifies the rest.
func classify(err error) error {
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, ErrNotTTL) {
		return err
	}
	return pgcore.Classify(err)
}

// Truncate cuts s to at most MaxOutput bytes at a rune boundary, and
// replaces invalid UTF-8 and NUL bytes, which text columns refuse.
func Truncate(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) > MaxOutput {
		cut := MaxOutput
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func nonNilMeta(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
