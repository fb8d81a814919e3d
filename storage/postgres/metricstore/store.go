package metricstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Bounds of sample timestamps: the years 1 to 9999, well inside what
// timestamptz and the partitions can hold. Samples outside are refused
// with storage.ErrOutOfBounds.
var (
	minSampleTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	maxSampleTime = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
)

// metricChunkWindow is the span of time one metric_chunks row covers: the
// window of one raw metric_samples partition, aligned to midnight UTC. At
// a 15 s interval a window holds 480 samples of a series.
const metricChunkWindow = postgres.SampleWindow

// metricChunkWindowMillis is metricChunkWindow in milliseconds.
const metricChunkWindowMillis = int64(metricChunkWindow / time.Millisecond)

// ErrInvalidSeries is wrapped by Append errors for a label set the store
// cannot hold: empty, with duplicate or empty label names, or with text that
// PostgreSQL refuses (invalid UTF-8, NUL bytes).
var ErrInvalidSeries = errors.New("invalid series")

// Store stores Prometheus series and samples in PostgreSQL and reads them
// back. It is a Prometheus storage.AppendableV2 (every metric input writes
// through it) and a storage.Queryable (PromQL reads through it). Safe for
// concurrent use.
//
// Durability: an appender's Commit returns nil only once every sample it
// took is committed. Duplicates: when a series has several samples at one
// timestamp, the last one committed wins (within one commit, the last one
// appended); samples may arrive in any order, out-of-order ones included.
type Store struct {
	pool       *pgxpool.Pool
	partitions *postgres.Partitions
	logger     *slog.Logger
	now        func() time.Time

	mu       sync.RWMutex
	pairIDs  map[labelPair]int32
	pairByID map[int32]labelPair
	series   map[uint64]struct{}          // series ids known to exist with their labels
	metadata map[string]metadata.Metadata // metric family metadata last written or read

	selections selectionCache // which series a set of matchers selects
	head       *headCache     // recent samples of the series read
}

// Options are the dependencies of a Store.
type Options struct {
	// Logger receives what the store cannot return (metadata not
	// recorded after a commit); nil discards.
	Logger *slog.Logger
	// Now is the clock compaction passes are timed by, and the one a
	// commit is judged late by (head.go); nil is time.Now.
	Now func() time.Time
	// HeadRange is how far back (before the database's clock) reads are
	// served from the head, the in-process copy of recently read samples
	// (head.go); 0 is DefaultHeadRange, negative turns the head off.
	HeadRange time.Duration
	// HeadMaxSamples bounds the samples the head holds over all series;
	// 0 is DefaultHeadMaxSamples.
	HeadMaxSamples int
}

// labelPair is one row of metric_labels.
type labelPair struct{ name, value string }

// New returns a metric store on pool. partitions, which must not be nil,
// is asked for the partition of a window that does not exist yet, and
// drops the raw partitions compaction emptied.
func New(pool *pgxpool.Pool, partitions *postgres.Partitions, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HeadRange == 0 {
		opts.HeadRange = DefaultHeadRange
	}
	return &Store{
		pool: pool, partitions: partitions, logger: opts.Logger.With("component", "metric_store"), now: opts.Now,
		pairIDs: map[labelPair]int32{}, pairByID: map[int32]labelPair{}, series: map[uint64]struct{}{},
		metadata: map[string]metadata.Metadata{}, head: newHeadCache(opts.HeadRange, opts.HeadMaxSamples),
	}
}

func (s *Store) knownSeries(id uint64) bool {
	s.mu.RLock()
	_, ok := s.series[id]
	s.mu.RUnlock()
	return ok
}

// ensureSeries makes every series of newSeries exist in metric_series
// (and their label pairs in metric_labels) and caches them. A different
// label set stored under the same id is an error naming both.
func (s *Store) ensureSeries(ctx context.Context, newSeries map[uint64]labels.Labels) error {
	if len(newSeries) == 0 {
		return nil
	}
	pairs := map[labelPair]struct{}{}
	for _, ls := range newSeries {
		ls.Range(func(l labels.Label) { pairs[labelPair{l.Name, l.Value}] = struct{}{} })
	}
	ids, err := s.pairIDsFor(ctx, pairs)
	if err != nil {
		return err
	}
	seriesIDs := make([]int64, 0, len(newSeries))
	arrays := make([]string, 0, len(newSeries))
	want := make(map[int64]string, len(newSeries))
	pairsOf := make(map[int64][]int32, len(newSeries))
	var sb strings.Builder
	for id, ls := range newSeries {
		sb.Reset()
		sb.WriteByte('{')
		pairs := make([]int32, 0, ls.Len())
		ls.Range(func(l labels.Label) {
			if len(pairs) > 0 {
				sb.WriteByte(',')
			}
			pid := ids[labelPair{l.Name, l.Value}]
			sb.WriteString(strconv.FormatInt(int64(pid), 10))
			pairs = append(pairs, pid)
		})
		sb.WriteByte('}')
		seriesIDs = append(seriesIDs, int64(id))
		arrays = append(arrays, sb.String())
		want[int64(id)] = sb.String()
		pairsOf[int64(id)] = pairs
	}
	// Insert, then read back what is stored under these ids: the rows that
	// existed before are checked against the labels we meant, which detects
	// a hash collision instead of mixing two series.
	rows, err := s.pool.Query(ctx, insertSeriesSQL, seriesIDs, arrays)
	if err != nil {
		return fmt.Errorf("insert series: %w", pgcore.Classify(err))
	}
	found := map[int64]string{}
	gen := int64(-1) // the generation the insert bumped, if it did
	for rows.Next() {
		var isGen bool
		var id int64
		var arr string
		if err := rows.Scan(&isGen, &id, &arr); err != nil {
			rows.Close()
			return fmt.Errorf("insert series: %w", pgcore.Classify(err))
		}
		if isGen {
			gen = id
		} else {
			found[id] = arr
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("insert series: %w", pgcore.Classify(err))
	}
	if gen >= 0 {
		// The rows missing from found are the ones this statement
		// inserted (or, harmlessly, ones a concurrent statement inserted
		// first: they exist too).
		var made []createdSeries
		for id := range want {
			if _, ok := found[id]; !ok {
				made = append(made, createdSeries{id: id, lset: newSeries[uint64(id)], pairs: pairsOf[id]})
			}
		}
		s.selections.created(gen, made)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.series)+len(newSeries) > pgcore.MaxCacheEntries {
		clear(s.series)
	}
	for id, arr := range want {
		if got, ok := found[id]; ok && got != arr {
			return fmt.Errorf("series %s: id %d already holds label pairs %s: %w",
				newSeries[uint64(id)], uint64(id), got, ErrInvalidSeries)
		}
		s.series[uint64(id)] = struct{}{}
	}
	return nil
}

// pairIDsFor returns the ids of pairs, inserting the missing ones.
func (s *Store) pairIDsFor(ctx context.Context, pairs map[labelPair]struct{}) (map[labelPair]int32, error) {
	out := make(map[labelPair]int32, len(pairs))
	var names, values []string
	s.mu.RLock()
	for p := range pairs {
		if id, ok := s.pairIDs[p]; ok {
			out[p] = id
		} else {
			names = append(names, p.name)
			values = append(values, p.value)
		}
	}
	s.mu.RUnlock()
	if len(names) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, upsertPairsSQL, names, values)
	if err != nil {
		return nil, fmt.Errorf("insert label pairs: %w", pgcore.Classify(err))
	}
	type pairRow struct {
		id int32
		p  labelPair
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pairRow, error) {
		var x pairRow
		err := r.Scan(&x.id, &x.p.name, &x.p.value)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("insert label pairs: %w", pgcore.Classify(err))
	}
	s.mu.Lock()
	if len(s.pairIDs)+len(got) > pgcore.MaxCacheEntries {
		clear(s.pairIDs)
		clear(s.pairByID)
	}
	for _, x := range got {
		out[x.p] = x.id
		s.pairIDs[x.p] = x.id
		s.pairByID[x.id] = x.p
	}
	s.mu.Unlock()
	return out, nil
}
