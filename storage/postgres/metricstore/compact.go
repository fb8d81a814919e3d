package metricstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// compactionLockID is the advisory lock key held by the one compactor
// that runs at a time across replicas ("vigilcmp").
const compactionLockID int64 = 0x76696769_6c636d70

// rawTable is the table of raw samples, partitioned by metricChunkWindow.
const rawTable = "metric_samples"

// CompactStats reports what one compaction pass did.
type CompactStats struct {
	Windows  int64         // raw partitions compacted
	Series   int64         // chunk rows written
	Samples  int64         // raw samples read (duplicates included)
	Bytes    int64         // bytes of chunk data written
	Dropped  int64         // emptied raw partitions dropped
	Duration time.Duration // time of the pass, by the store's clock
	Skipped  bool          // another compactor held the lock
}

// Compact compacts every raw sample partition whose window ends at or
// before 'before': in one transaction per window it locks the partition
// against writers (SHARE), reads its samples series by series, merges them
// with the window's existing chunk (raw samples win: they arrived later),
// writes one metric_chunks row per series and truncates the partition;
// then it drops the emptied partition. A crash at any point leaves either
// the raw samples or their chunk, never both and never neither. Only one
// compactor runs at a time across replicas (an advisory lock); when
// another holds it, Compact returns at once with Skipped set. The pass is
// timed by the store's clock (Options.Now). Compactor runs it in a loop.
func (s *Store) Compact(ctx context.Context, before time.Time) (CompactStats, error) {
	return s.compact(ctx, before, s.now)
}

// compact is Compact timed by now.
func (s *Store) compact(ctx context.Context, before time.Time, now func() time.Time) (CompactStats, error) {
	began := now()
	var stats CompactStats
	conn, unlock, err := pgcore.TryLock(ctx, s.pool, compactionLockID)
	if err != nil {
		return stats, fmt.Errorf("compact: lock: %w", err)
	}
	if conn == nil {
		stats.Skipped = true
		return stats, nil
	}
	defer unlock()
	parts, err := s.partitions.List(ctx, conn, rawTable)
	if err != nil {
		return stats, fmt.Errorf("compact: %w", err)
	}
	for _, p := range parts {
		if p.Start.Add(metricChunkWindow).After(before) {
			break
		}
		if err := s.compactWindow(ctx, conn.Conn(), p, &stats); err != nil {
			stats.Duration = now().Sub(began)
			return stats, fmt.Errorf("compact %s: %w", p.Name, err)
		}
		dropped, err := s.partitions.DropIfEmpty(ctx, conn.Conn(), p.Name)
		if err != nil {
			stats.Duration = now().Sub(began)
			return stats, fmt.Errorf("compact %s: %w", p.Name, err)
		}
		if dropped {
			stats.Dropped++
		}
	}
	stats.Duration = now().Sub(began)
	return stats, nil
}

// compactWindow compacts one raw partition in one transaction.
func (s *Store) compactWindow(ctx context.Context, conn *pgx.Conn, p postgres.Partition, stats *CompactStats) error {
	if err := s.partitions.Ensure(ctx, []time.Time{p.Start}); err != nil {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return pgcore.Classify(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	ident := pgx.Identifier{p.Name}.Sanitize()
	if _, err := tx.Exec(ctx, fmt.Sprintf(lockWindowSQL, ident)); err != nil {
		return fmt.Errorf("lock: %w", pgcore.Classify(err))
	}
	// The window's existing chunks: late samples compacted before.
	existing := map[int64][]byte{}
	rows, err := tx.Query(ctx, windowChunksSQL, p.Start)
	if err != nil {
		return fmt.Errorf("read chunks: %w", pgcore.Classify(err))
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
		return fmt.Errorf("read chunks: %w", pgcore.Classify(err))
	}

	var (
		out      = pgcore.NewCopyStream(0)
		cur      []metricSample
		old      []metricSample
		merged   []metricSample
		curID    int64
		curBatch int64
		started  bool
		written  = map[int64]bool{}
		n        int64
		winStart = p.Start.UnixMilli()
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
		out = pgcore.AppendRow(out, chunkCopyColumns)
		out = pgcore.AppendInt64(out, curID)
		out = pgcore.AppendTimestamptz(out, p.Start)
		var mark int
		out, mark = pgcore.BeginField(out)
		var err error
		if out, err = encodeChunkData(out, samples); err != nil {
			return fmt.Errorf("series %d: %w", uint64(curID), err)
		}
		size := pgcore.EndField(out, mark)
		written[curID] = true
		stats.Series++
		stats.Bytes += int64(size)
		return nil
	}
	rows, err = tx.Query(ctx, fmt.Sprintf(windowSamplesSQL, ident))
	if err != nil {
		return fmt.Errorf("read samples: %w", pgcore.Classify(err))
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
		return fmt.Errorf("read samples: %w", pgcore.Classify(err))
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
		if _, err := tx.Exec(ctx, deleteChunksSQL, p.Start, replaced); err != nil {
			return fmt.Errorf("replace chunks: %w", pgcore.Classify(err))
		}
	}
	if len(written) > 0 {
		if err := pgcore.CopyFrom(ctx, tx.Conn().PgConn(), chunkCopySQL, pgcore.EndCopyStream(out)); err != nil {
			return fmt.Errorf("write chunks: %w", pgcore.Classify(err))
		}
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(truncateSQL, ident)); err != nil {
		return fmt.Errorf("truncate: %w", pgcore.Classify(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", pgcore.Classify(err))
	}
	stats.Windows++
	return nil
}

// decodeSampleRow decodes a row (series_id, t, v, batch, st, h) of
// metric_samples in binary format.
func decodeSampleRow(raw [][]byte) (metricSample, int64, int64, error) {
	var smp metricSample
	if len(raw) != 6 || len(raw[0]) != 8 || len(raw[1]) != 8 || len(raw[2]) != 8 || len(raw[3]) != 8 {
		return smp, 0, 0, fmt.Errorf("read samples: unexpected row: %w", pgcore.ErrCorrupt)
	}
	id := int64(binary.BigEndian.Uint64(raw[0]))
	smp.t = int64(binary.BigEndian.Uint64(raw[1]))/1000 + pgcore.EpochUnixMillis
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
