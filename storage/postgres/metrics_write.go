package postgres

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
)

// Bounds of sample timestamps: the years 1 to 9999, well inside what
// timestamptz and the daily partitions can hold. Samples outside are
// refused with storage.ErrOutOfBounds.
var (
	minSampleTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	maxSampleTime = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
)

// ErrInvalidSeries is wrapped by Append errors for a label set the store
// cannot hold: empty, with duplicate or empty label names, or with text that
// PostgreSQL refuses (invalid UTF-8, NUL bytes).
var ErrInvalidSeries = errors.New("invalid series")

// MetricStore stores Prometheus series and samples in PostgreSQL and reads
// them back. It is a storage.AppendableV2 (every metric input writes
// through it) and a storage.Queryable (PromQL reads through it). Safe for
// concurrent use.
//
// Durability: an appender's Commit returns nil only once every sample it
// took is committed. Duplicates: when a series has several samples at one
// timestamp, the last one committed wins (within one commit, the last one
// appended); samples may arrive in any order, out-of-order ones included.
type MetricStore struct {
	pool       *pgxpool.Pool
	partitions *Partitions
	logger     *slog.Logger

	mu       sync.RWMutex
	pairIDs  map[labelPair]int32
	pairByID map[int32]labelPair
	series   map[uint64]struct{}          // series ids known to exist with their labels
	metadata map[string]metadata.Metadata // metric family metadata last written or read
}

// labelPair is one row of metric_labels.
type labelPair struct{ name, value string }

// NewMetricStore returns a metric store on pool. partitions is consulted
// when a sample falls into a day whose partition does not exist yet. A nil
// logger discards logs.
func NewMetricStore(pool *pgxpool.Pool, partitions *Partitions, logger *slog.Logger) *MetricStore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &MetricStore{
		pool: pool, partitions: partitions, logger: logger.With("component", "metric_store"),
		pairIDs: map[labelPair]int32{}, pairByID: map[int32]labelPair{}, series: map[uint64]struct{}{},
		metadata: map[string]metadata.Metadata{},
	}
}

// AppenderV2 returns an appender that buffers samples until Commit. The
// appender is not safe for concurrent use; ctx bounds its Commit.
func (s *MetricStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return &metricAppender{store: s, ctx: ctx, newSeries: map[uint64]labels.Labels{}}
}

// sampleRow is one row of metric_samples before its batch is known.
type sampleRow struct {
	series uint64
	t      int64 // milliseconds since the epoch
	st     int64 // start timestamp in milliseconds, 0 = unknown
	v      float64
	h      []byte // nil for a float sample
	seq    int    // order of Append within the commit
}

type metricAppender struct {
	store     *MetricStore
	ctx       context.Context
	rows      []sampleRow
	newSeries map[uint64]labels.Labels     // series not known to exist, by id
	hbuf      []byte                       // arena of the histogram encodings
	meta      map[string]metadata.Metadata // metadata by metric family, when given
}

// Append buffers one sample of the series ls (copied, so callers may reuse
// it) and returns the series' reference, its id. Exactly one of v, h and fh
// is the value: h or fh when not nil. The start timestamp st (0 = unknown)
// is stored with the sample; metadata and exemplars are not. Errors wrap ErrInvalidSeries or storage.ErrOutOfBounds;
// a refused sample does not spoil the others.
func (a *metricAppender) Append(_ promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	if t < minSampleTime || t > maxSampleTime {
		return 0, fmt.Errorf("append %s at %d: %w", ls, t, promstorage.ErrOutOfBounds)
	}
	id := ls.Hash()
	if _, ok := a.newSeries[id]; !ok && !a.store.knownSeries(id) {
		if err := checkSeries(ls); err != nil {
			return 0, fmt.Errorf("append %s: %w", ls, err)
		}
		a.newSeries[id] = ls.Copy()
	}
	row := sampleRow{series: id, t: t, st: st, v: v, seq: len(a.rows)}
	if h != nil || fh != nil {
		start := len(a.hbuf)
		a.hbuf = appendHistogram(a.hbuf, h, fh)
		row.v = 0
		row.h = a.hbuf[start:len(a.hbuf):len(a.hbuf)]
	}
	a.rows = append(a.rows, row)
	if m := opts.Metadata; m.Type != "" || m.Help != "" || m.Unit != "" {
		if a.meta == nil {
			a.meta = map[string]metadata.Metadata{}
		}
		fam := opts.MetricFamilyName
		if fam == "" {
			fam = ls.Get(labels.MetricName)
		}
		if _, ok := a.meta[fam]; !ok {
			a.meta[strings.Clone(fam)] = m
		}
	}
	return promstorage.SeriesRef(id), nil
}

// checkSeries reports why ls cannot be stored, or nil.
func checkSeries(ls labels.Labels) error {
	if ls.IsEmpty() {
		return fmt.Errorf("no labels: %w", ErrInvalidSeries)
	}
	if name, dup := ls.HasDuplicateLabelNames(); dup {
		return fmt.Errorf("duplicate label name %q: %w", name, ErrInvalidSeries)
	}
	var err error
	ls.Range(func(l labels.Label) {
		switch {
		case err != nil:
		case l.Name == "":
			err = fmt.Errorf("empty label name: %w", ErrInvalidSeries)
		case !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value):
			err = fmt.Errorf("label %q: invalid UTF-8: %w", l.Name, ErrInvalidSeries)
		case strings.IndexByte(l.Name, 0) >= 0 || strings.IndexByte(l.Value, 0) >= 0:
			err = fmt.Errorf("label %q: NUL byte: %w", l.Name, ErrInvalidSeries)
		}
	})
	return err
}

// Commit stores every buffered sample and returns once they are committed;
// on error none of them is (series and label rows may be, harmlessly).
// Errors wrap storage.ErrUnavailable when the database cannot be reached.
func (a *metricAppender) Commit() error {
	defer a.reset()
	if len(a.rows) == 0 {
		return nil
	}
	if err := a.store.ensureSeries(a.ctx, a.newSeries); err != nil {
		return fmt.Errorf("commit samples: %w", err)
	}
	// Sorting by (series, time) keeps index insertion sequential; the stable
	// sort keeps append order among duplicates, so keeping the last of each
	// run is "last appended wins" within this commit.
	// An unstable sort with the append order as the last key: the last of
	// several samples of one series and time is kept below.
	slices.SortFunc(a.rows, func(x, y sampleRow) int {
		return cmp.Or(cmp.Compare(x.series, y.series), cmp.Compare(x.t, y.t), cmp.Compare(x.seq, y.seq))
	})
	rows := a.rows[:0]
	for i, r := range a.rows {
		if i+1 < len(a.rows) && a.rows[i+1].series == r.series && a.rows[i+1].t == r.t {
			continue
		}
		rows = append(rows, r)
	}
	if err := a.store.writeSamples(a.ctx, rows); err != nil {
		return fmt.Errorf("commit samples: %w", err)
	}
	// The samples are committed: a failure to record metadata is logged,
	// not returned (a retry would only store the samples again).
	if err := a.store.UpdateMetadata(a.ctx, a.meta); err != nil {
		a.store.logger.WarnContext(a.ctx, "metric metadata not recorded", "err", err)
	}
	return nil
}

// Rollback drops the buffered samples.
func (a *metricAppender) Rollback() error {
	a.reset()
	return nil
}

func (a *metricAppender) reset() {
	a.rows = a.rows[:0]
	a.hbuf = nil
	clear(a.newSeries)
	clear(a.meta)
}

func (s *MetricStore) knownSeries(id uint64) bool {
	s.mu.RLock()
	_, ok := s.series[id]
	s.mu.RUnlock()
	return ok
}

// ensureSeries makes every series of newSeries exist in metric_series
// (and their label pairs in metric_labels) and caches them. A different
// label set stored under the same id is an error naming both.
func (s *MetricStore) ensureSeries(ctx context.Context, newSeries map[uint64]labels.Labels) error {
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
	var sb strings.Builder
	for id, ls := range newSeries {
		sb.Reset()
		sb.WriteByte('{')
		i := 0
		ls.Range(func(l labels.Label) {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.FormatInt(int64(ids[labelPair{l.Name, l.Value}]), 10))
			i++
		})
		sb.WriteByte('}')
		seriesIDs = append(seriesIDs, int64(id))
		arrays = append(arrays, sb.String())
		want[int64(id)] = sb.String()
	}
	// Insert, then read back what is stored under these ids: the rows that
	// existed before are checked against the labels we meant, which detects
	// a hash collision instead of mixing two series.
	rows, err := s.pool.Query(ctx, `WITH ins AS (
		INSERT INTO metric_series (id, labels)
		SELECT id, l::integer[] FROM unnest($1::bigint[], $2::text[]) AS u(id, l)
		ON CONFLICT (id) DO NOTHING)
		SELECT id, labels::text FROM metric_series WHERE id = ANY($1)`, seriesIDs, arrays)
	if err != nil {
		return fmt.Errorf("insert series: %w", classify(err))
	}
	found := map[int64]string{}
	for rows.Next() {
		var id int64
		var arr string
		if err := rows.Scan(&id, &arr); err != nil {
			rows.Close()
			return fmt.Errorf("insert series: %w", classify(err))
		}
		found[id] = arr
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("insert series: %w", classify(err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.series)+len(newSeries) > maxCacheEntries {
		clear(s.series)
	}
	for id, arr := range want {
		// The CTE's insert is not visible to its own SELECT: a missing row
		// is one this statement inserted.
		if got, ok := found[id]; ok && got != arr {
			return fmt.Errorf("series %s: id %d already holds label pairs %s: %w",
				newSeries[uint64(id)], uint64(id), got, ErrInvalidSeries)
		}
		s.series[uint64(id)] = struct{}{}
	}
	return nil
}

// pairIDsFor returns the ids of pairs, inserting the missing ones.
func (s *MetricStore) pairIDsFor(ctx context.Context, pairs map[labelPair]struct{}) (map[labelPair]int32, error) {
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
	// ON CONFLICT DO UPDATE (a no-op update) so that existing rows are
	// returned too; sorted input keeps concurrent writers from deadlocking.
	rows, err := s.pool.Query(ctx, `INSERT INTO metric_labels (name, value)
		SELECT n, v FROM unnest($1::text[], $2::text[]) AS u(n, v) ORDER BY n, v
		ON CONFLICT (name, value) DO UPDATE SET name = EXCLUDED.name
		RETURNING id, name, value`, names, values)
	if err != nil {
		return nil, fmt.Errorf("insert label pairs: %w", classify(err))
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
		id int32
		p  labelPair
	}, error) {
		var x struct {
			id int32
			p  labelPair
		}
		err := r.Scan(&x.id, &x.p.name, &x.p.value)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("insert label pairs: %w", classify(err))
	}
	s.mu.Lock()
	if len(s.pairIDs)+len(got) > maxCacheEntries {
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

var metricCopySQL = "COPY metric_samples (series_id, t, v, batch, st, h) FROM STDIN (FORMAT binary)"

// writeSamples copies rows under one new batch number (copyIn creates
// missing daily partitions once if PostgreSQL reports them).
func (s *MetricStore) writeSamples(ctx context.Context, rows []sampleRow) error {
	var batch int64
	if err := s.pool.QueryRow(ctx, "SELECT nextval('metric_sample_batches')").Scan(&batch); err != nil {
		return fmt.Errorf("next batch: %w", classify(err))
	}
	err := copyIn(ctx, s.pool, s.partitions, metricCopySQL, encodeSampleCopy(rows, batch), func(yield func(time.Time) bool) {
		for i := range rows {
			if !yield(time.UnixMilli(rows[i].t)) {
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("write samples: %w", classify(err))
	}
	return nil
}

// pgEpochMillis is PostgreSQL's timestamp epoch in Unix milliseconds.
var pgEpochMillis = pgEpoch.UnixMilli()

// encodeSampleCopy renders rows in PostgreSQL's binary COPY format, in the
// column order of metricCopySQL.
func encodeSampleCopy(rows []sampleRow, batch int64) []byte {
	size := len(copyHeader) + 2
	for i := range rows {
		size += 2 + 6*4 + 5*8 + len(rows[i].h)
	}
	b := make([]byte, 0, size)
	b = append(b, copyHeader...)
	for i := range rows {
		r := &rows[i]
		b = binary.BigEndian.AppendUint16(b, 6)
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, r.series)
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64((r.t-pgEpochMillis)*1000))
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.v))
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, uint64(batch))
		if r.st == 0 {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff) // NULL
		} else {
			b = binary.BigEndian.AppendUint32(b, 8)
			b = binary.BigEndian.AppendUint64(b, uint64(r.st))
		}
		if r.h == nil {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff) // NULL
		} else {
			b = binary.BigEndian.AppendUint32(b, uint32(len(r.h)))
			b = append(b, r.h...)
		}
	}
	return binary.BigEndian.AppendUint16(b, 0xffff)
}
