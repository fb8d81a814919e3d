package alertstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// maxDeltasPerRead bounds one ReadState: a replica far behind catches up
// over several polls.
const maxDeltasPerRead = 1000

// Store is the PostgreSQL state of notification delivery. It is safe for
// concurrent use; every method is one statement or one short transaction.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store over pool, whose database must be migrated.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Delta is one change of replicated state, in the order of Seq.
type Delta struct {
	Seq  int64
	Data []byte
}

// State is what a replica must merge to catch up on one kind of state.
// Snapshot is set (with SnapshotSeq) only when the stored snapshot covers
// deltas after the position asked for; Deltas follow it in order.
type State struct {
	Snapshot    []byte
	SnapshotSeq int64
	Deltas      []Delta
}

// Last returns the position the state brings a reader to: the last delta,
// or the snapshot's, or after when there is nothing new.
func (s State) Last(after int64) int64 {
	if n := len(s.Deltas); n > 0 {
		return s.Deltas[n-1].Seq
	}
	return max(after, s.SnapshotSeq)
}

// AppendDelta appends one change of kind and returns its sequence number.
// Sequence numbers of a kind become visible in increasing order.
func (s *Store) AppendDelta(ctx context.Context, kind string, data []byte) (int64, error) {
	var seq int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockDeltasSQL); err != nil {
			return err
		}
		return tx.QueryRow(ctx, appendDeltaSQL, kind, data).Scan(&seq)
	})
	if err != nil {
		return 0, fmt.Errorf("append %s delta: %w", kind, pgcore.Classify(err))
	}
	return seq, nil
}

// ReadState returns what a reader at position after (0 at start) must
// merge: the snapshot when it covers deltas after that position, then at
// most maxDeltasPerRead deltas; call again while Deltas is full.
func (s *Store) ReadState(ctx context.Context, kind string, after int64) (State, error) {
	var st State
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var seq int64
		var data []byte
		switch err := tx.QueryRow(ctx, snapshotSQL, kind).Scan(&seq, &data); {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case seq > after:
			st.Snapshot, st.SnapshotSeq = data, seq
			after = seq
		}
		rows, err := tx.Query(ctx, deltasAfterSQL, kind, after, maxDeltasPerRead)
		if err != nil {
			return err
		}
		st.Deltas, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delta, error) {
			var d Delta
			err := r.Scan(&d.Seq, &d.Data)
			return d, err
		})
		return err
	})
	if err != nil {
		return State{}, fmt.Errorf("read %s state: %w", kind, pgcore.Classify(err))
	}
	return st, nil
}

// WriteSnapshot stores data as the state of kind including every delta up
// to seq, unless a snapshot covering more is stored already, and deletes
// the deltas the stored snapshot covers.
func (s *Store) WriteSnapshot(ctx context.Context, kind string, seq int64, data []byte) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, upsertSnapshotSQL, kind, seq, data); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, deleteCoveredDeltasSQL, kind)
		return err
	})
	if err != nil {
		return fmt.Errorf("write %s snapshot: %w", kind, pgcore.Classify(err))
	}
	return nil
}

// Alert is one posted alert: its fingerprint, when it ends (for garbage
// collection) and its encoding, which must be a JSON document. Rev is set
// by the store.
type Alert struct {
	Fingerprint uint64
	Rev         int64
	EndsAt      time.Time
	Data        []byte
}

// PutAlerts stores alerts, replacing those of the same fingerprints, and
// gives each a new revision greater than every revision visible before.
func (s *Store) PutAlerts(ctx context.Context, alerts []Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	fps := make([]int64, len(alerts))
	ends := make([]time.Time, len(alerts))
	data := make([]string, len(alerts))
	for i, a := range alerts {
		fps[i] = int64(a.Fingerprint) //nolint:gosec // stored bit for bit
		ends[i] = a.EndsAt
		data[i] = string(a.Data)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockAlertsSQL); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, upsertAlertsSQL, fps, ends, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("put alerts: %w", pgcore.Classify(err))
	}
	return nil
}

// AlertsAfter returns at most limit alerts whose revision is above rev, in
// revision order.
func (s *Store) AlertsAfter(ctx context.Context, rev int64, limit int) ([]Alert, error) {
	rows, err := s.pool.Query(ctx, alertsAfterSQL, rev, limit)
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", pgcore.Classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Alert, error) {
		var a Alert
		var fp int64
		var data string
		err := r.Scan(&fp, &a.Rev, &a.EndsAt, &data)
		a.Fingerprint, a.Data = uint64(fp), []byte(data) //nolint:gosec // stored bit for bit
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", pgcore.Classify(err))
	}
	return out, nil
}

// DeleteAlertsEndedBefore deletes the alerts that ended before t and
// returns how many it deleted.
func (s *Store) DeleteAlertsEndedBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, deleteAlertsEndedSQL, t)
	if err != nil {
		return 0, fmt.Errorf("delete ended alerts: %w", pgcore.Classify(err))
	}
	return tag.RowsAffected(), nil
}

// Notification is one delivery attempt of one integration of a receiver,
// or one receiver test. Message holds the error text or what the receiver
// answered; it must carry no URL or secret.
type Notification struct {
	ID          int64
	Time        time.Time
	Receiver    string
	Integration string
	Index       int
	GroupKey    string
	Firing      int
	Resolved    int
	OK          bool
	// Retry tells whether a failure was worth another attempt.
	Retry    bool
	Message  string
	Duration time.Duration
	// Test marks the attempts of a receiver test.
	Test bool
}

// NotificationFilter selects history entries: of Receiver when set, older
// than Before when set, the newest Limit of them.
type NotificationFilter struct {
	Receiver string
	Before   time.Time
	Limit    int
}

// RecordNotifications appends entries to the history.
func (s *Store) RecordNotifications(ctx context.Context, ns []Notification) error {
	if len(ns) == 0 {
		return nil
	}
	var (
		times                              = make([]time.Time, len(ns))
		receivers, integrations, keys, msg = make([]string, len(ns)), make([]string, len(ns)), make([]string, len(ns)), make([]string, len(ns))
		idx, firing, resolved              = make([]int32, len(ns)), make([]int32, len(ns)), make([]int32, len(ns))
		ok, retry, test                    = make([]bool, len(ns)), make([]bool, len(ns)), make([]bool, len(ns))
		dur                                = make([]int64, len(ns))
	)
	for i, n := range ns {
		times[i], receivers[i], integrations[i], keys[i], msg[i] = n.Time, n.Receiver, n.Integration, n.GroupKey, n.Message
		idx[i], firing[i], resolved[i] = int32(n.Index), int32(n.Firing), int32(n.Resolved) //nolint:gosec // small counts
		ok[i], retry[i], test[i] = n.OK, n.Retry, n.Test
		dur[i] = n.Duration.Microseconds()
	}
	if _, err := s.pool.Exec(ctx, insertNotificationsSQL, times, receivers, integrations, idx, keys,
		firing, resolved, ok, retry, msg, dur, test); err != nil {
		return fmt.Errorf("record notifications: %w", pgcore.Classify(err))
	}
	return nil
}

// Notifications returns the history entries f selects, newest first.
func (s *Store) Notifications(ctx context.Context, f NotificationFilter) ([]Notification, error) {
	var args pgcore.Args
	where := "true"
	if f.Receiver != "" {
		where += " AND " + args.Bind("receiver = %s", f.Receiver)
	}
	if !f.Before.IsZero() {
		where += " AND " + args.Bind("time < %s", f.Before)
	}
	limit := args.Add(max(f.Limit, 1))
	rows, err := s.pool.Query(ctx, fmt.Sprintf(notificationsSQL, where, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("read notifications: %w", pgcore.Classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Notification, error) {
		var n Notification
		var idx, firing, resolved int32
		var dur int64
		err := r.Scan(&n.ID, &n.Time, &n.Receiver, &n.Integration, &idx, &n.GroupKey, &firing, &resolved,
			&n.OK, &n.Retry, &n.Message, &dur, &n.Test)
		n.Index, n.Firing, n.Resolved = int(idx), int(firing), int(resolved)
		n.Duration = time.Duration(dur) * time.Microsecond
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("read notifications: %w", pgcore.Classify(err))
	}
	return out, nil
}

// DeleteNotificationsBefore deletes the history older than t and returns
// how many entries it deleted.
func (s *Store) DeleteNotificationsBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, deleteNotificationsSQL, t)
	if err != nil {
		return 0, fmt.Errorf("delete notifications: %w", pgcore.Classify(err))
	}
	return tag.RowsAffected(), nil
}
