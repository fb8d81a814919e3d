package logstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// compactionLockID is the advisory lock key held by the one log compactor
// that runs at a time across replicas ("vigillcp").
const compactionLockID int64 = 0x76696769_6c6c6370

// compactFetchRows is how many raw rows compaction fetches at a time from
// the window's cursor (fetchWindowSQL); compactCopyBlocks how many blocks
// it writes per COPY at most (Store.copyBlocks). Together they bound its
// memory whatever the window's size.
const (
	compactFetchRows  = 20_000
	compactCopyBlocks = 64
)

// CompactStats reports what one compaction pass did.
type CompactStats struct {
	Windows  int64         // raw windows compacted
	Blocks   int64         // log_blocks rows written
	Records  int64         // records moved into blocks
	RawBytes int64         // bytes of their bodies and payloads
	Bytes    int64         // bytes of the compressed times and data columns written
	Dropped  int64         // emptied raw partitions dropped
	Rewrites int64         // windows written twice: records arrived while they were read
	Duration time.Duration // time of the pass, by the store's clock
	Skipped  bool          // another compactor held the lock
}

// Steps of a window's compaction, as a failpoint hook sees them.
const (
	stepRead     = "read"     // before reading the raw partition's rows (again after a rewrite)
	stepWrite    = "write"    // before each COPY of blocks
	stepLock     = "lock"     // before locking the raw partition
	stepTruncate = "truncate" // before emptying the raw partition
	stepCommit   = "commit"   // before committing
	stepDrop     = "drop"     // after committing, before dropping the emptied partition
)

// Compact compacts every raw log partition whose two-hour window ends at
// or before 'before': in one transaction per window it reads its records
// by service and time, writes them as log_blocks rows of at most 1,000
// records each, locks the partition against writers (SHARE: a late record
// waits, readers go on; records that arrived while it was read are
// compacted too, see compactWindow) and truncates it; then it drops the
// emptied partition (a record arriving later for the window recreates it
// and is compacted by a later pass into blocks of its own). A crash or an
// error at any point leaves either the raw records or their blocks, never
// both and never neither. Only one compactor runs at a time across
// replicas (an advisory lock); when another holds it, Compact returns at
// once with Skipped set. Compactor runs it in a loop.
func (s *Store) Compact(ctx context.Context, before time.Time) (CompactStats, error) {
	began := s.now()
	var stats CompactStats
	codec, err := s.codec()
	if err != nil {
		return stats, err
	}
	conn, unlock, err := pgcore.TryLock(ctx, s.pool, compactionLockID)
	if err != nil {
		return stats, fmt.Errorf("compact logs: lock: %w", err)
	}
	if conn == nil {
		stats.Skipped = true
		return stats, nil
	}
	defer unlock()
	parts, err := s.partitions.List(ctx, conn, "logs")
	if err != nil {
		return stats, fmt.Errorf("compact logs: %w", err)
	}
	for _, p := range parts {
		if p.Start.Add(postgres.LogWindow).After(before) {
			break
		}
		if err := s.compactWindow(ctx, conn.Conn(), codec, p, &stats); err != nil {
			stats.Duration = s.now().Sub(began)
			return stats, fmt.Errorf("compact logs %s: %w", p.Name, err)
		}
		if err := s.hook(stepDrop); err != nil {
			stats.Duration = s.now().Sub(began)
			return stats, fmt.Errorf("compact logs %s: %w", p.Name, err)
		}
		dropped, err := s.partitions.DropIfEmpty(ctx, conn.Conn(), p.Name)
		if err != nil {
			stats.Duration = s.now().Sub(began)
			return stats, fmt.Errorf("compact logs %s: %w", p.Name, err)
		}
		if dropped {
			stats.Dropped++
		}
	}
	stats.Duration = s.now().Sub(began)
	return stats, nil
}

// hook runs the failpoint hook of tests, if any, before step.
func (s *Store) hook(step string) error {
	if s.compactHook == nil {
		return nil
	}
	return s.compactHook(step)
}

// compactWindow compacts one raw partition in one transaction. Its
// figures are added to stats once it has committed.
//
// The partition is read and its blocks written without a lock, so that
// writers of late records do not wait for the whole compaction; only then
// is it locked against writers (SHARE) and counted: when records arrived
// meanwhile, the blocks are rolled back (to a savepoint) and written again
// from the partition as it is under the lock. Then it is truncated.
func (s *Store) compactWindow(ctx context.Context, conn *pgx.Conn, codec *blockCodec, p postgres.Partition, stats *CompactStats) error {
	if err := s.partitions.Ensure(ctx, []time.Time{p.Start}); err != nil {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return pgcore.Classify(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	ident := pgx.Identifier{p.Name}.Sanitize()
	if _, err := tx.Exec(ctx, savepointSQL); err != nil {
		return fmt.Errorf("savepoint: %w", pgcore.Classify(err))
	}
	win, err := s.writeBlocks(ctx, tx, codec, ident)
	if err != nil {
		return err
	}
	if err := s.hook(stepLock); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(lockWindowSQL, ident)); err != nil {
		return fmt.Errorf("lock: %w", pgcore.Classify(err))
	}
	var now int64
	if err := tx.QueryRow(ctx, fmt.Sprintf(countWindowSQL, ident)).Scan(&now); err != nil {
		return fmt.Errorf("count: %w", pgcore.Classify(err))
	}
	if now != win.Records {
		// Late records committed while the window was read: write its
		// blocks again, now that no writer can add to it.
		if _, err := tx.Exec(ctx, rollbackToSavepointSQL); err != nil {
			return fmt.Errorf("savepoint: %w", pgcore.Classify(err))
		}
		if win, err = s.writeBlocks(ctx, tx, codec, ident); err != nil {
			return err
		}
		stats.Rewrites++
	}
	if err := s.hook(stepTruncate); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(truncateSQL, ident)); err != nil {
		return fmt.Errorf("truncate: %w", pgcore.Classify(err))
	}
	// The blocks' GIN entries went partly to the indexes' pending lists,
	// which every search of the window would scan linearly until a VACUUM:
	// merge them now, in bulk.
	blocksPart := pgx.Identifier{"log_blocks_p" + strings.TrimPrefix(p.Name, "logs_p")}.Sanitize()
	if _, err := tx.Exec(ctx, cleanPendingSQL, blocksPart); err != nil {
		return fmt.Errorf("clean pending index entries: %w", pgcore.Classify(err))
	}
	if err := s.hook(stepCommit); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", pgcore.Classify(err))
	}
	stats.Windows++
	stats.Blocks += win.Blocks
	stats.Records += win.Records
	stats.RawBytes += win.RawBytes
	stats.Bytes += win.Bytes
	return nil
}

// writeBlocks reads the partition ident (sanitized) through a cursor, in
// (service, time, id) order, and writes its records as blocks in tx. The
// returned stats count the blocks and records written.
func (s *Store) writeBlocks(ctx context.Context, tx pgx.Tx, codec *blockCodec, ident string) (CompactStats, error) {
	var (
		win     CompactStats
		run     []logRow // the current service's records not yet in a block
		pending []encodedBlock
		tok     tokenizer
		runSize int
	)
	if err := s.hook(stepRead); err != nil {
		return win, err
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(declareWindowSQL, ident)); err != nil {
		return win, fmt.Errorf("read: %w", pgcore.Classify(err))
	}
	cut := func() error {
		if len(run) == 0 {
			return nil
		}
		b, err := codec.encode(run, &tok)
		if err != nil {
			return err
		}
		b.id = s.randID()
		pending = append(pending, b)
		run, runSize = run[:0], 0
		return nil
	}
	write := func() error {
		for len(pending) > 0 {
			chunk := pending[:min(len(pending), s.copyBlocks)]
			if err := s.hook(stepWrite); err != nil {
				return err
			}
			if err := copyBlocks(ctx, tx, chunk); err != nil {
				return fmt.Errorf("write blocks: %w", err)
			}
			for _, b := range chunk {
				win.Blocks++
				win.Records += int64(b.records)
				win.RawBytes += int64(b.rawBodyBytes)
				win.Bytes += int64(len(b.times) + len(b.data))
			}
			pending = pending[len(chunk):]
		}
		pending = nil
		return nil
	}
	for {
		rows, err := tx.Query(ctx, fetchWindowSQL)
		if err != nil {
			return win, fmt.Errorf("read: %w", pgcore.Classify(err))
		}
		n := 0
		var (
			r     logRow
			trace pgtype.UUID
		)
		_, err = pgx.ForEachRow(rows, []any{&r.time, &r.observed, &r.id, &r.resource, &r.spanID, &r.bloom, &trace,
			&r.service, &r.severity, &r.sevText, &r.body, &r.payload}, func() error {
			n++
			r.traceID = [16]byte{}
			if trace.Valid {
				r.traceID = trace.Bytes
			}
			if len(run) > 0 && (run[0].service != r.service || len(run) == maxBlockRecords ||
				runSize+len(r.body)+len(r.payload) > maxBlockBytes) {
				if err := cut(); err != nil {
					return err
				}
			}
			run = append(run, r)
			runSize += len(r.body) + len(r.payload)
			return nil
		})
		if err != nil {
			return win, fmt.Errorf("read: %w", pgcore.Classify(err))
		}
		if len(pending) >= s.copyBlocks {
			if err := write(); err != nil {
				return win, err
			}
		}
		if n < compactFetchRows {
			break
		}
		if err := ctx.Err(); err != nil {
			return win, err
		}
	}
	if _, err := tx.Exec(ctx, closeWindowSQL); err != nil {
		return win, fmt.Errorf("read: %w", pgcore.Classify(err))
	}
	if err := cut(); err != nil {
		return win, err
	}
	return win, write()
}

// copyBlocks writes blocks with one COPY in tx.
func copyBlocks(ctx context.Context, tx pgx.Tx, blocks []encodedBlock) error {
	i := 0
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"log_blocks"}, blockColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(blocks) {
			return nil, nil
		}
		b := &blocks[i]
		i++
		return []any{b.start, b.end, b.id, b.bloom, b.service, b.records, b.minSev, b.maxSev,
			b.traceIDs, b.tokens, b.times, b.data}, nil
	}))
	return pgcore.Classify(err)
}
