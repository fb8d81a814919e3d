package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-obs/vigil/storage"
)

// ServiceSummaries returns every service in the dictionary, sorted by name,
// with its first and last sighting (last_seen is bumped at most once a
// minute by the writers) and the signals it still has stored: spans and
// logs are looked up through their (service, time) indexes, metrics as a
// job or service_name label equal to the service's name.
func (s *SpanStore) ServiceSummaries(ctx context.Context) ([]storage.ServiceSummary, error) {
	rows, err := s.pool.Query(ctx, `SELECT s.name, s.first_seen, s.last_seen,
		EXISTS (SELECT 1 FROM spans WHERE service_id = s.id),
		EXISTS (SELECT 1 FROM logs WHERE service_id = s.id),
		EXISTS (SELECT 1 FROM metric_labels WHERE name IN ('job', 'service_name') AND value = s.name)
		FROM services s ORDER BY s.name`)
	if err != nil {
		return nil, fmt.Errorf("list service summaries: %w", classify(err))
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
		return nil, fmt.Errorf("list service summaries: %w", classify(err))
	}
	return out, nil
}
