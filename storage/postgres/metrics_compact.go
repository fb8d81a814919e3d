package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// compactionLockID is the advisory lock key held by the one compactor
// that runs at a time across replicas ("vigilcmp").
const compactionLockID int64 = 0x76696769_6c636d70

// CompactStats reports what one compaction pass did.
type CompactStats struct {
	Windows  int64         // raw partitions compacted
	Series   int64         // chunk rows written
	Samples  int64         // raw samples read (duplicates included)
	Bytes    int64         // bytes of chunk data written
	Dropped  int64         // emptied raw partitions dropped
	Duration time.Duration // wall time of the pass
	Skipped  bool          // another compactor held the lock
}

// rawPartition is one partition of metric_samples.
type rawPartition struct {
	name  string
	start time.Time
}

// rawPartitions lists the partitions of metric_samples, oldest first.
func (s *MetricStore) rawPartitions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]rawPartition, error) {
	spec, _ := tableSpec("metric_samples")
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relname = 'metric_samples'`)
	if err != nil {
		return nil, fmt.Errorf("list raw sample partitions: %w", classify(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list raw sample partitions: %w", classify(err))
	}
	var out []rawPartition
	for _, n := range names {
		start, err := time.Parse(spec.layout, strings.TrimPrefix(n, "metric_samples_p"))
		if err != nil {
			continue // not one of ours
		}
		out = append(out, rawPartition{name: n, start: start})
	}
	slices.SortFunc(out, func(a, b rawPartition) int { return a.start.Compare(b.start) })
	return out, nil
}

// Compact compacts every raw sample partition whose window ends at or
// before 'before': in one transaction per window it locks the partition
// against writers (SHARE), reads its samples series by series, merges them
// with the window's existing chunk (raw samples win: they arrived later),
// writes one metric_chunks row per series and truncates the partition;
// then it drops the emptied partition. A crash at any point leaves either
// the raw samples or their chunk, never both and never neither. Only one
// compactor runs at a time across replicas (an advisory lock); when
// another holds it, Compact returns at once with Skipped set.
func (s *MetricStore) Compact(ctx context.Context, before time.Time) (CompactStats, error) {
	began := time.Now()
	var stats CompactStats
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return stats, fmt.Errorf("compact: %w", classify(err))
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", compactionLockID).Scan(&locked); err != nil {
		return stats, fmt.Errorf("compact: lock: %w", classify(err))
	}
	if !locked {
		stats.Skipped = true
		return stats, nil
	}
	defer func() {
		// A session lock outlives a failed transaction; release it on a
		// context that is not cancelled, or drop the connection.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", compactionLockID); err != nil {
			_ = conn.Conn().Close(uctx)
		}
	}()
	parts, err := s.rawPartitions(ctx, conn)
	if err != nil {
		return stats, fmt.Errorf("compact: %w", err)
	}
	for _, p := range parts {
		if p.start.Add(metricChunkWindow).After(before) {
			break
		}
		if err := s.compactWindow(ctx, conn.Conn(), p, &stats); err != nil {
			stats.Duration = time.Since(began)
			return stats, fmt.Errorf("compact %s: %w", p.name, err)
		}
		dropped, err := s.dropRawPartition(ctx, conn.Conn(), p.name)
		if err != nil {
			stats.Duration = time.Since(began)
			return stats, fmt.Errorf("compact %s: %w", p.name, err)
		}
		if dropped {
			stats.Dropped++
		}
	}
	stats.Duration = time.Since(began)
	return stats, nil
}

// chunkCopySQL writes compacted chunks.
const chunkCopySQL = "COPY metric_chunks (series_id, start_t, data) FROM STDIN (FORMAT binary)"

// compactWindow compacts one raw partition in one transaction.
func (s *MetricStore) compactWindow(ctx context.Context, conn *pgx.Conn, p rawPartition, stats *CompactStats) error {
	if err := s.partitions.Ensure(ctx, []time.Time{p.start}); err != nil {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return classify(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	ident := pgx.Identifier{p.name}.Sanitize()
	if _, err := tx.Exec(ctx, "LOCK TABLE "+ident+" IN SHARE MODE"); err != nil {
		return fmt.Errorf("lock: %w", classify(err))
	}
	// The window's existing chunks: late samples compacted before.
	existing := map[int64][]byte{}
	rows, err := tx.Query(ctx, "SELECT series_id, data FROM metric_chunks WHERE start_t = $1", p.start)
	if err != nil {
		return fmt.Errorf("read chunks: %w", classify(err))
	}
	var (
		id   int64
		data []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &data}, func() error {
		existing[id] = slices.Clone(data)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read chunks: %w", classify(err))
	}

	var (
		out      = slices.Clone(copyHeader)
		cur      []metricSample
		old      []metricSample
		merged   []metricSample
		curID    int64
		curBatch int64
		started  bool
		written  = map[int64]bool{}
		n        int64
		startPG  = p.start.UnixMicro() - pgEpoch.UnixMicro()
		winStart = p.start.UnixMilli()
		winEnd   = winStart + metricChunkWindowMillis - 1
	)
	flush := func() error {
		if !started || len(cur) == 0 {
			return nil
		}
		samples := cur
		if prev, ok := existing[curID]; ok {
			var err error
			if old, err = decodeChunkData(old[:0], prev, winStart, winEnd); err != nil {
				return fmt.Errorf("series %d: %w", uint64(curID), err)
			}
			merged = mergeSamples(merged[:0], old, cur)
			samples = merged
		}
		var err error
		out = binary.BigEndian.AppendUint16(out, 3)
		out = binary.BigEndian.AppendUint32(out, 8)
		out = binary.BigEndian.AppendUint64(out, uint64(curID))
		out = binary.BigEndian.AppendUint32(out, 8)
		out = binary.BigEndian.AppendUint64(out, uint64(startPG))
		lenAt := len(out)
		out = append(out, 0, 0, 0, 0)
		if out, err = encodeChunkData(out, samples); err != nil {
			return fmt.Errorf("series %d: %w", uint64(curID), err)
		}
		size := len(out) - lenAt - 4
		binary.BigEndian.PutUint32(out[lenAt:], uint32(size))
		written[curID] = true
		stats.Series++
		stats.Bytes += int64(size)
		return nil
	}
	rows, err = tx.Query(ctx, "SELECT series_id, t, v, batch, st, h FROM "+ident+" ORDER BY series_id, t")
	if err != nil {
		return fmt.Errorf("read samples: %w", classify(err))
	}
	for rows.Next() {
		if n++; n%65536 == 0 {
			if err := ctx.Err(); err != nil {
				rows.Close()
				return err
			}
		}
		smp, sid, batch, err := decodeSampleRow(rows.RawValues())
		if err != nil {
			rows.Close()
			return err
		}
		if !started || sid != curID {
			if err := flush(); err != nil {
				rows.Close()
				return err
			}
			cur, curID, started = cur[:0], sid, true
		} else if last := len(cur) - 1; cur[last].t == smp.t {
			if batch > curBatch {
				cur[last], curBatch = smp, batch
			}
			continue
		}
		cur = append(cur, smp)
		curBatch = batch
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read samples: %w", classify(err))
	}
	if err := flush(); err != nil {
		return err
	}
	stats.Samples += n
	var replaced []int64
	for id := range existing {
		if written[id] {
			replaced = append(replaced, id)
		}
	}
	if len(replaced) > 0 {
		if _, err := tx.Exec(ctx, "DELETE FROM metric_chunks WHERE start_t = $1 AND series_id = ANY($2)", p.start, replaced); err != nil {
			return fmt.Errorf("replace chunks: %w", classify(err))
		}
	}
	if len(written) > 0 {
		out = binary.BigEndian.AppendUint16(out, 0xffff)
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(out), chunkCopySQL); err != nil {
			return fmt.Errorf("write chunks: %w", classify(err))
		}
	}
	if _, err := tx.Exec(ctx, "TRUNCATE "+ident); err != nil {
		return fmt.Errorf("truncate: %w", classify(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	stats.Windows++
	return nil
}

// dropRawPartition drops a compacted raw partition unless a late write
// filled it again since (the next pass compacts that).
func (s *MetricStore) dropRawPartition(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	dropped := false
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", maintenanceLockID); err != nil {
			return err
		}
		ident := pgx.Identifier{name}.Sanitize()
		if _, err := tx.Exec(ctx, "LOCK TABLE "+ident+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return err
		}
		var nonEmpty bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+ident+")").Scan(&nonEmpty); err != nil {
			return err
		}
		if nonEmpty {
			return nil
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+ident); err != nil {
			return err
		}
		dropped = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("drop: %w", classify(err))
	}
	if dropped {
		s.partitions.forget(name)
	}
	return dropped, nil
}

// decodeSampleRow decodes a row (series_id, t, v, batch, st, h) of
// metric_samples in binary format.
func decodeSampleRow(raw [][]byte) (metricSample, int64, int64, error) {
	var smp metricSample
	if len(raw) != 6 || len(raw[0]) != 8 || len(raw[1]) != 8 || len(raw[2]) != 8 || len(raw[3]) != 8 {
		return smp, 0, 0, fmt.Errorf("read samples: unexpected row: %w", errCorruptPayload)
	}
	id := int64(binary.BigEndian.Uint64(raw[0]))
	smp.t = int64(binary.BigEndian.Uint64(raw[1]))/1000 + pgEpochMillis
	smp.f = math.Float64frombits(binary.BigEndian.Uint64(raw[2]))
	batch := int64(binary.BigEndian.Uint64(raw[3]))
	if len(raw[4]) == 8 {
		smp.st = int64(binary.BigEndian.Uint64(raw[4]))
	}
	if raw[5] != nil {
		h, fh, err := decodeHistogram(raw[5])
		if err != nil {
			return smp, id, batch, fmt.Errorf("read samples of series %d: %w", uint64(id), err)
		}
		smp.h, smp.fh, smp.f = h, fh, 0
	}
	return smp, id, batch, nil
}

// CompactorConfig configures RunCompactor.
type CompactorConfig struct {
	// Interval between passes (default 1 min).
	Interval time.Duration
	// Delay is how long after a window ends it is compacted (default 1 h):
	// samples arriving later than that land in a new raw partition that
	// the next pass merges into the window's chunk.
	Delay time.Duration
	// Registerer receives the compactor's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock (nil = time.Now).
	Now func() time.Time
}

// RunCompactor compacts every cfg.Interval until ctx is cancelled. Errors
// are logged and retried at the next pass. It exports
// vigil_metric_compaction_lag_seconds (how far past its due time the
// oldest uncompacted window is; 0 when none is due), runs, failures,
// samples and chunk bytes totals, and the duration of the last pass.
func (s *MetricStore) RunCompactor(ctx context.Context, cfg CompactorConfig) error {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Delay <= 0 {
		cfg.Delay = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var (
		lag = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_metric_compaction_lag_seconds",
			Help: "Seconds since the oldest uncompacted raw sample window became due for compaction (0 when none is due)."})
		runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_metric_compaction_runs_total",
			Help: "Compaction passes by result (ok, error, skipped: another replica held the lock)."}, []string{"result"})
		samples = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_metric_compaction_samples_total",
			Help: "Raw samples read by compaction."})
		chunkBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_metric_compaction_chunk_bytes_total",
			Help: "Bytes of chunk data written by compaction."})
		last = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_metric_compaction_last_duration_seconds",
			Help: "Wall time of the last compaction pass."})
	)
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{lag, runs, samples, chunkBytes, last} {
			if err := cfg.Registerer.Register(c); err != nil {
				return fmt.Errorf("register compactor metrics: %w", err)
			}
		}
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		now := cfg.Now()
		stats, err := s.Compact(ctx, now.Add(-cfg.Delay))
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			runs.WithLabelValues("error").Inc()
			s.logger.WarnContext(ctx, "metric compaction", "err", err)
		case stats.Skipped:
			runs.WithLabelValues("skipped").Inc()
		default:
			runs.WithLabelValues("ok").Inc()
			if stats.Windows > 0 {
				s.logger.InfoContext(ctx, "compacted metric samples", "windows", stats.Windows, "series", stats.Series,
					"samples", stats.Samples, "chunk_bytes", stats.Bytes, "duration", stats.Duration)
			}
		}
		samples.Add(float64(stats.Samples))
		chunkBytes.Add(float64(stats.Bytes))
		last.Set(stats.Duration.Seconds())
		if parts, err := s.rawPartitions(ctx, s.pool); err == nil {
			due := 0.0
			if len(parts) > 0 {
				if d := now.Sub(parts[0].start.Add(metricChunkWindow + cfg.Delay)); d > 0 {
					due = d.Seconds()
				}
			}
			lag.Set(due)
		} else if !errors.Is(err, context.Canceled) {
			s.logger.WarnContext(ctx, "metric compaction lag", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
