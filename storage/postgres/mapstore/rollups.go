package mapstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

const (
	// deadKeyBatch bounds the keys one WriteMapRollups deletes once
	// retention has dropped their rows; a backlog goes with the next
	// writes.
	deadKeyBatch = 500
	// deadKeyAge is how much older than the minute written a key's
	// last_seen must be before the key is looked at: partitions are whole
	// days, so no younger key can have lost its rows.
	deadKeyAge = 24 * time.Hour
)

// replicaKey is the unique key of servicemap_keys.
type replicaKey struct {
	replica     string
	incarnation int64
}

// WriteMapRollups writes the cumulative counts of rows' keys as of the
// whole minute minute (UTC), in one transaction: each key is created or
// its last_seen moved to minute, and its row for minute replaced, so a
// later write in the same minute wins and a retried write is harmless.
// Rows with the same key (replica and incarnation) are written once, the
// last one winning. The same transaction deletes at most deadKeyBatch
// keys whose rows retention has dropped (last_seen more than a day before
// minute and its row gone), skipping keys another writer holds. A minute
// without a partition has it created when the Store has Partitions
// (NewWithPartitions), else fails. On error nothing is written.
func (s *Store) WriteMapRollups(ctx context.Context, minute time.Time, rows []storage.MapRollup) error {
	minute = minute.UTC()
	if !minute.Equal(minute.Truncate(time.Minute)) {
		return fmt.Errorf("write map rollups: minute %s is not a whole minute", minute.Format(time.RFC3339Nano))
	}
	if len(rows) == 0 {
		return nil
	}
	// One row per key: ON CONFLICT DO UPDATE cannot touch a row twice.
	byKey := make(map[replicaKey]int, len(rows))
	for i := range rows {
		byKey[replicaKey{rows[i].Key.Replica, rows[i].Key.Incarnation}] = i
	}
	order := make([]int, 0, len(byKey))
	for _, i := range byKey {
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int) int {
		ka, kb := &rows[a].Key, &rows[b].Key
		return cmp.Or(strings.Compare(ka.Replica, kb.Replica), cmp.Compare(ka.Incarnation, kb.Incarnation))
	})
	n := len(order)
	var (
		replicas = make([]string, n)
		incs     = make([]int64, n)
		nodes    = make([]bool, n)
		dims     [7][]string // client, server, connection type, client env, ns, server env, ns
		calls    = make([]int64, n)
		failed   = make([]int64, n)
		ssums    = make([]float64, n)
		csums    = make([]float64, n)
		shist    = make([]int64, 0, n*(len(storage.MapLatencyBounds)+1))
		chist    = make([]int64, 0, n*(len(storage.MapLatencyBounds)+1))
		soff     = make([]int32, n)
		slen     = make([]int32, n)
		coff     = make([]int32, n)
		clen     = make([]int32, n)
	)
	for d := range dims {
		dims[d] = make([]string, n)
	}
	for j, i := range order {
		k, c := &rows[i].Key, &rows[i].Counts
		replicas[j], incs[j], nodes[j] = k.Replica, k.Incarnation, k.Node
		for d, v := range [7]string{k.Client, k.Server, k.ConnectionType, k.ClientEnv, k.ClientNs, k.ServerEnv, k.ServerNs} {
			dims[d][j] = v
		}
		calls[j], failed[j], ssums[j], csums[j] = clamp(c.Calls), clamp(c.Failed), c.ServerSum, c.ClientSum
		soff[j], slen[j] = int32(len(shist)), int32(len(c.ServerHist)) //nolint:gosec // a flush holds far fewer
		for _, v := range c.ServerHist {
			shist = append(shist, clamp(v))
		}
		coff[j], clen[j] = int32(len(chist)), int32(len(c.ClientHist)) //nolint:gosec // as above
		for _, v := range c.ClientHist {
			chist = append(chist, clamp(v))
		}
	}
	write := func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			res, err := tx.Query(ctx, upsertKeysSQL, minute, replicas, incs, nodes,
				dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6])
			if err != nil {
				return err
			}
			ids := make(map[replicaKey]int64, n)
			var (
				k  replicaKey
				id int64
			)
			if _, err := pgx.ForEachRow(res, []any{&k.replica, &k.incarnation, &id}, func() error {
				ids[k] = id
				return nil
			}); err != nil {
				return err
			}
			keyIDs := make([]int64, n)
			for j := range order {
				id, ok := ids[replicaKey{replicas[j], incs[j]}]
				if !ok {
					return fmt.Errorf("key %s/%d: no id returned", replicas[j], incs[j])
				}
				keyIDs[j] = id
			}
			if _, err := tx.Exec(ctx, upsertRollupsSQL, minute, keyIDs, calls, failed, ssums, csums,
				shist, soff, slen, chist, coff, clen); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, deleteDeadKeysSQL, minute.Add(-deadKeyAge), deadKeyBatch); err != nil {
				return fmt.Errorf("delete dead keys: %w", err)
			}
			return nil
		})
	}
	err := write()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" && s.parts != nil {
		// A minute without a partition: create it and write once more.
		if err = s.parts.Ensure(ctx, []time.Time{minute}); err == nil {
			err = write()
		}
	}
	if err != nil {
		return fmt.Errorf("write map rollups: %w", pgcore.Classify(err))
	}
	return nil
}

// clamp converts a count to a bigint, saturating.
func clamp(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// totalKey is what MapTotals sums over.
type totalKey struct {
	node                 bool
	client, server, conn string
}

// MapTotals returns the calls of every node and edge in [q.Start, q.End):
// per key alive in the window, its last row in the window minus its last
// row in [q.Start-q.KeyLookback, q.Start) (zero when there is none: the
// key began in the window), summed over replicas, incarnations and the
// environment and namespace dimensions. Totals without calls are left
// out. The result is sorted edges first, then by client, server and
// connection type; the caller owns it. Calls are counted in the minute of
// the write that first held them. Errors: a message naming the field for
// an invalid query; else classified by pgcore.
func (s *Store) MapTotals(ctx context.Context, q storage.MapWindowQuery) ([]storage.MapTotal, error) {
	switch {
	case !q.Start.Equal(q.Start.Truncate(time.Minute)):
		return nil, errors.New("map totals: start must be a whole minute")
	case !q.End.Equal(q.End.Truncate(time.Minute)):
		return nil, errors.New("map totals: end must be a whole minute")
	case !q.Start.Before(q.End):
		return nil, errors.New("map totals: start must be before end")
	case q.KeyLookback < 0:
		return nil, errors.New("map totals: key lookback must not be negative")
	}
	rows, err := s.pool.Query(ctx, mapTotalsSQL, q.Start, q.End, q.Start.Add(-q.KeyLookback), q.Env, q.Namespace)
	if err != nil {
		return nil, fmt.Errorf("map totals: %w", pgcore.Classify(err))
	}
	var (
		k          totalKey
		end, start rollupRow
		totals     = map[totalKey]*storage.MapTotal{}
	)
	_, err = pgx.ForEachRow(rows, []any{&k.node, &k.client, &k.server, &k.conn,
		&end.calls, &end.failed, &end.serverHist, &end.clientHist, &end.serverSum, &end.clientSum,
		&start.calls, &start.failed, &start.serverHist, &start.clientHist, &start.serverSum, &start.clientSum,
	}, func() error {
		t := totals[k]
		if t == nil {
			t = &storage.MapTotal{Node: k.node, Client: k.client, Server: k.server, ConnectionType: k.conn}
			totals[k] = t
		}
		c := &t.Counts
		c.Calls += delta(end.calls, start.calls)
		c.Failed += delta(end.failed, start.failed)
		c.ServerHist = addDeltas(c.ServerHist, end.serverHist, start.serverHist)
		c.ClientHist = addDeltas(c.ClientHist, end.clientHist, start.clientHist)
		c.ServerSum += fdelta(end.serverSum, start.serverSum)
		c.ClientSum += fdelta(end.clientSum, start.clientSum)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("map totals: %w", pgcore.Classify(err))
	}
	out := make([]storage.MapTotal, 0, len(totals))
	for _, t := range totals {
		if t.Counts.Calls > 0 {
			out = append(out, *t)
		}
	}
	slices.SortFunc(out, func(a, b storage.MapTotal) int {
		ab, bb := 0, 0
		if a.Node {
			ab = 1
		}
		if b.Node {
			bb = 1
		}
		return cmp.Or(cmp.Compare(ab, bb), strings.Compare(a.Client, b.Client), strings.Compare(a.Server, b.Server),
			strings.Compare(a.ConnectionType, b.ConnectionType))
	})
	return out, nil
}

// rollupRow is one probe of MapTotals; the fields of the start probe are
// NULL when the key has no row before the window.
type rollupRow struct {
	calls, failed          *int64
	serverHist, clientHist []int64
	serverSum, clientSum   *float64
}

// delta is end - start, 0 when start is NULL counts as zero, never
// negative.
func delta(end, start *int64) uint64 {
	var e, s int64
	if end != nil {
		e = *end
	}
	if start != nil {
		s = *start
	}
	if e <= s {
		return 0
	}
	return uint64(e - s) //nolint:gosec // positive
}

func fdelta(end, start *float64) float64 {
	var e, s float64
	if end != nil {
		e = *end
	}
	if start != nil {
		s = *start
	}
	return e - s
}

// addDeltas adds end - start, bucket by bucket, to dst, growing it to the
// longer of the histograms.
func addDeltas(dst []uint64, end, start []int64) []uint64 {
	if len(end) > len(dst) {
		dst = append(dst, make([]uint64, len(end)-len(dst))...)
	}
	for i, e := range end {
		var s int64
		if i < len(start) {
			s = start[i]
		}
		if e > s {
			dst[i] += uint64(e - s) //nolint:gosec // positive
		}
	}
	return dst
}
