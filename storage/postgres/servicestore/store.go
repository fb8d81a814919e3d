package servicestore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// Store answers the service catalogue. It only reads. Safe for concurrent
// use.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a service store on pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// ServiceSummaries returns every service in the dictionary, sorted by
// name, with its first and last sighting (last_seen is bumped at most once
// a minute by the span and log writers) and the signals it still has
// stored ("traces", "logs", "metrics", in that order; never nil): spans
// and logs are looked up through their (service, time) indexes, metrics as
// a job or service_name label equal to the service's name. Times are UTC.
// Errors wrap storage.ErrUnavailable when the database cannot be reached.
func (s *Store) ServiceSummaries(ctx context.Context) ([]storage.ServiceSummary, error) {
	rows, err := s.pool.Query(ctx, summariesSQL)
	if err != nil {
		return nil, fmt.Errorf("list service summaries: %w", pgcore.Classify(err))
	}
	var (
		out               []storage.ServiceSummary
		name              string
		first, last       time.Time
		spans, logs, mets bool
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &first, &last, &spans, &logs, &mets}, func() error {
		sum := storage.ServiceSummary{Name: name, FirstSeen: first.UTC(), LastSeen: last.UTC(), Signals: []string{}}
		for _, sig := range []struct {
			has  bool
			name string
		}{{spans, "traces"}, {logs, "logs"}, {mets, "metrics"}} {
			if sig.has {
				sum.Signals = append(sum.Signals, sig.name)
			}
		}
		out = append(out, sum)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list service summaries: %w", pgcore.Classify(err))
	}
	return out, nil
}
