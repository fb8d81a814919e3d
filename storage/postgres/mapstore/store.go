package mapstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Store is the shared state of the service map. It is safe for concurrent
// use, by any number of replicas on one database; every method is one
// statement or one short transaction.
type Store struct {
	pool  *pgxpool.Pool
	parts *postgres.Partitions // nil: a missing partition fails the write
}

// New returns a Store over pool, whose database must be migrated. Example
// traces land in the daily partitions of servicemap_traces that partition
// maintenance creates ahead of time; a write for a day without one fails
// (see NewWithPartitions).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// NewWithPartitions is New with parts creating a missing partition of
// servicemap_traces when a write needs it (a clock jump, a late trace).
func NewWithPartitions(pool *pgxpool.Pool, parts *postgres.Partitions) *Store {
	return &Store{pool: pool, parts: parts}
}

// pairKey is the primary key of servicegraph_pending.
type pairKey struct {
	trace [16]byte
	span  [8]byte
}

func keyOf(h *storage.PairHalf) pairKey { return pairKey{h.TraceID, h.SpanID} }

func compareKeys(a, b pairKey) int {
	return cmp.Or(bytes.Compare(a.trace[:], b.trace[:]), bytes.Compare(a.span[:], b.span[:]))
}

// Offer parks halves under their pairing keys and returns the pairs they
// complete with halves parked earlier (by any replica), deleting those
// rows: each pair is returned to exactly one caller, however many offer
// concurrently. Two halves of one key in halves pair at once; a second
// copy of a side already parked (in halves or in the table) is dropped,
// and so is a completed row holding a half that does not decode.
// Halves whose ParkedAt is zero are parked at the time of the call. On
// error nothing is parked.
func (s *Store) Offer(ctx context.Context, halves []storage.PairHalf) ([]storage.Pair, error) {
	if len(halves) == 0 {
		return nil, nil
	}
	now := time.Now()
	// At most one half per key and statement: ON CONFLICT DO UPDATE
	// cannot touch a row twice.
	type sides struct {
		pair           storage.Pair
		client, server bool
	}
	byKey := make(map[pairKey]*sides, len(halves))
	var pairs []storage.Pair
	for i := range halves {
		h := halves[i]
		if h.ParkedAt.IsZero() {
			h.ParkedAt = now
		}
		k := keyOf(&h)
		p := byKey[k]
		if p == nil {
			p = &sides{}
			byKey[k] = p
		}
		switch {
		case h.Client && !p.client:
			p.pair.Client, p.client = h, true
		case !h.Client && !p.server:
			p.pair.Server, p.server = h, true
		}
	}
	keys := make([]pairKey, 0, len(byKey))
	for k, p := range byKey {
		if p.client && p.server {
			pairs = append(pairs, p.pair)
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return pairs, nil
	}
	slices.SortFunc(keys, compareKeys)
	n := len(keys)
	var (
		traceIDs = make([]pgtype.UUID, n)
		spanIDs  = make([]int64, n)
		clients  = make([]*string, n)
		servers  = make([]*string, n)
		parked   = make([]time.Time, n)
	)
	for i, k := range keys {
		p := byKey[k]
		h := &p.pair.Server
		if p.client {
			h = &p.pair.Client
		}
		data, err := json.Marshal(h)
		if err != nil {
			return nil, fmt.Errorf("offer halves: encode: %w", err)
		}
		js := string(data)
		if h.Client {
			clients[i] = &js
		} else {
			servers[i] = &js
		}
		traceIDs[i] = pgtype.UUID{Bytes: k.trace, Valid: true}
		spanIDs[i] = int64(binary.BigEndian.Uint64(k.span[:])) //nolint:gosec // stored bit for bit
		parked[i] = h.ParkedAt
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, offerSQL, traceIDs, spanIDs, clients, servers, parked)
		if err != nil {
			return err
		}
		var (
			doneTraces []pgtype.UUID
			doneSpans  []int64
			trace      pgtype.UUID
			span       int64
			client     *string
			server     *string
			complete   bool
		)
		_, err = pgx.ForEachRow(rows, []any{&trace, &span, &client, &server, &complete}, func() error {
			if !complete {
				return nil
			}
			// A row is deleted once complete, even when a half of it does
			// not decode (it was not written by Vigil): left in place, it
			// would fail every later offer of its key.
			doneTraces = append(doneTraces, trace)
			doneSpans = append(doneSpans, span)
			var p storage.Pair
			if decode(client, &p.Client) == nil && decode(server, &p.Server) == nil {
				pairs = append(pairs, p)
			}
			return nil
		})
		if err != nil || len(doneTraces) == 0 {
			return err
		}
		_, err = tx.Exec(ctx, deleteCompletedSQL, doneTraces, doneSpans)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("offer halves: %w", pgcore.Classify(err))
	}
	return pairs, nil
}

// decode reads a half stored as JSON.
func decode(data *string, h *storage.PairHalf) error {
	if data == nil {
		return fmt.Errorf("%w: pending half missing", pgcore.ErrCorrupt)
	}
	if err := json.Unmarshal([]byte(*data), h); err != nil {
		return fmt.Errorf("%w: pending half: %w", pgcore.ErrCorrupt, err)
	}
	return nil
}

// Expire takes out at most limit halves parked before before, oldest
// first, and returns them: each to exactly one caller, however many
// expire concurrently. Rows being completed by a concurrent Offer are
// left to it. A half that does not decode (it was not written by Vigil)
// is deleted and left out. limit must be at least 1.
func (s *Store) Expire(ctx context.Context, before time.Time, limit int) ([]storage.PairHalf, error) {
	if limit < 1 {
		return nil, errors.New("expire halves: limit must be at least 1")
	}
	rows, err := s.pool.Query(ctx, expireSQL, before, limit)
	if err != nil {
		return nil, fmt.Errorf("expire halves: %w", pgcore.Classify(err))
	}
	var (
		out            []storage.PairHalf
		client, server *string
	)
	_, err = pgx.ForEachRow(rows, []any{&client, &server}, func() error {
		for _, data := range []*string{client, server} {
			var h storage.PairHalf
			if data != nil && decode(data, &h) == nil {
				out = append(out, h)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire halves: %w", pgcore.Classify(err))
	}
	return out, nil
}

// WriteEdgeTraces stores example traces of edges. It is not idempotent:
// a retried write stores the traces again.
func (s *Store) WriteEdgeTraces(ctx context.Context, traces []storage.EdgeTrace) error {
	if len(traces) == 0 {
		return nil
	}
	n := len(traces)
	var (
		times     = make([]time.Time, n)
		durations = make([]int64, n)
		clients   = make([]string, n)
		servers   = make([]string, n)
		conns     = make([]string, n)
		ids       = make([][]byte, n)
		failed    = make([]bool, n)
	)
	for i := range traces {
		t := &traces[i]
		times[i], durations[i], clients[i], servers[i] = t.Time, int64(t.Duration), t.Client, t.Server
		conns[i], ids[i], failed[i] = t.ConnectionType, t.TraceID[:], t.Failed
	}
	insert := func() error {
		_, err := s.pool.Exec(ctx, insertTracesSQL, times, durations, clients, servers, conns, ids, failed)
		return err
	}
	err := insert()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" && s.parts != nil {
		// A time without a partition: create it and write once more.
		if err = s.parts.Ensure(ctx, times); err == nil {
			err = insert()
		}
	}
	if err != nil {
		return fmt.Errorf("write edge traces: %w", pgcore.Classify(err))
	}
	return nil
}

// EdgeTraces returns the example traces of q's edge whose time lies in
// [q.Start, q.End], newest first, at most q.Limit (which must be at least
// 1). An empty Client or Server matches any.
func (s *Store) EdgeTraces(ctx context.Context, q storage.EdgeTraceQuery) ([]storage.EdgeTrace, error) {
	if q.Limit < 1 {
		return nil, errors.New("edge traces: limit must be at least 1")
	}
	args := []any{q.Start, q.End, q.Limit}
	var filter strings.Builder
	if q.Client != "" {
		args = append(args, q.Client)
		filter.WriteString(" AND client = $" + strconv.Itoa(len(args)))
	}
	if q.Server != "" {
		args = append(args, q.Server)
		filter.WriteString(" AND server = $" + strconv.Itoa(len(args)))
	}
	rows, err := s.pool.Query(ctx, fmt.Sprintf(edgeTracesSQL, filter.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("edge traces: %w", pgcore.Classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.EdgeTrace, error) {
		var (
			t   storage.EdgeTrace
			ns  int64
			id  []byte
			err = r.Scan(&t.Time, &ns, &t.Client, &t.Server, &t.ConnectionType, &id, &t.Failed)
		)
		if err != nil {
			return t, err
		}
		if len(id) != len(t.TraceID) {
			return t, fmt.Errorf("%w: trace id of %d bytes", pgcore.ErrCorrupt, len(id))
		}
		copy(t.TraceID[:], id)
		t.Time, t.Duration = t.Time.UTC(), time.Duration(ns)
		return t, nil
	})
	if err != nil {
		return nil, fmt.Errorf("edge traces: %w", pgcore.Classify(err))
	}
	return out, nil
}
