package metricstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// AppenderV2 returns an appender that buffers samples until Commit. The
// appender is not safe for concurrent use; ctx bounds its Commit.
func (s *Store) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return &appender{store: s, ctx: ctx, newSeries: map[uint64]labels.Labels{}}
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

type appender struct {
	store     *Store
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
func (a *appender) Append(_ promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
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
			fam = ls.Get(model.MetricNameLabel)
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
func (a *appender) Commit() error {
	defer a.reset()
	if len(a.rows) == 0 {
		return nil
	}
	if err := a.store.ensureSeries(a.ctx, a.newSeries); err != nil {
		return fmt.Errorf("commit samples: %w", err)
	}
	// Sorting by (series, time) keeps index insertion sequential. The
	// append order is the last key: the last of several samples of one
	// series and time is kept below, so the last appended wins within
	// this commit.
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
func (a *appender) Rollback() error {
	a.reset()
	return nil
}

func (a *appender) reset() {
	a.rows = a.rows[:0]
	a.hbuf = nil
	clear(a.newSeries)
	clear(a.meta)
}

// writeSamples copies rows under one new batch number (pgcore.CopyIn
// creates a missing partition once if PostgreSQL reports it), then hands
// the committed rows to the head and draws the closing value of the batch
// sequence (head.go: the batch number opens the write, the closing draw
// announces its commit to the other replicas' heads).
func (s *Store) writeSamples(ctx context.Context, rows []sampleRow) error {
	var batch int64
	s.head.startDraw()
	if err := s.pool.QueryRow(ctx, nextBatchSQL).Scan(&batch); err != nil {
		s.head.endDraw()
		return fmt.Errorf("next batch: %w", pgcore.Classify(err))
	}
	s.head.begin(batch, rows)
	err := pgcore.CopyIn(ctx, s.pool, s.partitions, sampleCopySQL, encodeSampleCopy(rows, batch), pgcore.Times(rows, func(r *sampleRow) time.Time { return time.UnixMilli(r.t) }))
	if err != nil {
		// The COPY may have committed all the same (a connection lost
		// while committing): the head no longer vouches for anything.
		s.head.abort(batch)
		return fmt.Errorf("write samples: %w", pgcore.Classify(err))
	}
	// A late commit changed what the heads hold as known (head.go): tell
	// them, now that it is visible. The clock is read after the commit,
	// so a slow commit counts as late rather than not.
	oldest := rows[0].t
	for i := range rows {
		oldest = min(oldest, rows[i].t)
	}
	now := s.now()
	late := oldest < now.Add(-lateWrite).UnixMilli()
	s.head.feed(batch, rows, now.UnixMilli())
	var closing int64
	s.head.startDraw()
	if err := s.pool.QueryRow(ctx, closeBatchSQL, late).Scan(&closing); err != nil {
		s.head.endDraw()
		// The samples are committed; failing the commit would only have
		// them written again. Other replicas' heads miss the write until
		// their next read from PostgreSQL (a late one until the next late
		// write or until they let the samples go).
		s.logger.WarnContext(ctx, "sample write not announced to heads", "late", late, "err", pgcore.Classify(err))
		return nil
	}
	s.head.drew(closing)
	return nil
}

// encodeSampleCopy renders rows as a binary COPY stream for
// sampleCopySQL.
func encodeSampleCopy(rows []sampleRow, batch int64) []byte {
	size := 0
	for i := range rows {
		size += 2 + 6*4 + 5*8 + len(rows[i].h)
	}
	b := pgcore.NewCopyStream(size)
	for i := range rows {
		r := &rows[i]
		b = pgcore.AppendRow(b, sampleCopyColumns)
		b = pgcore.AppendInt64(b, int64(r.series))
		b = pgcore.AppendTimestamptzMillis(b, r.t)
		b = pgcore.AppendFloat64(b, r.v)
		b = pgcore.AppendInt64(b, batch)
		if r.st == 0 {
			b = pgcore.AppendNull(b)
		} else {
			b = pgcore.AppendInt64(b, r.st)
		}
		if r.h == nil {
			b = pgcore.AppendNull(b)
		} else {
			b = pgcore.AppendBytes(b, r.h)
		}
	}
	return pgcore.EndCopyStream(b)
}
