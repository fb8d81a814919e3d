package metricstore

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// maxMetadataLen bounds the help text and unit stored per family.
const maxMetadataLen = 4096

// UpdateMetadata records the metadata of metric families (family name →
// type, help, unit). Only what differs from what this store last wrote or
// read is sent to PostgreSQL.
func (s *Store) UpdateMetadata(ctx context.Context, md map[string]metadata.Metadata) error {
	var fams, types, helps, units []string
	s.mu.RLock()
	for f, m := range md {
		// A family name that is not valid UTF-8 names no series.
		if f == "" || strings.IndexByte(f, 0) >= 0 || !utf8.ValidString(f) || (m.Type == "" && m.Help == "" && m.Unit == "") {
			continue
		}
		m = clampMetadata(m)
		if old, ok := s.metadata[f]; ok && old == m {
			continue
		}
		fams = append(fams, f)
		types, helps, units = append(types, string(m.Type)), append(helps, m.Help), append(units, m.Unit)
	}
	s.mu.RUnlock()
	if len(fams) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, upsertMetadataSQL, fams, types, helps, units)
	if err != nil {
		return fmt.Errorf("update metric metadata: %w", pgcore.Classify(err))
	}
	s.mu.Lock()
	if len(s.metadata)+len(fams) > pgcore.MaxCacheEntries {
		clear(s.metadata)
	}
	for i, f := range fams {
		s.metadata[f] = metadata.Metadata{Type: model.MetricType(types[i]), Help: helps[i], Unit: units[i]}
	}
	s.mu.Unlock()
	return nil
}

// clampMetadata keeps metadata within bounds and valid UTF-8.
func clampMetadata(m metadata.Metadata) metadata.Metadata {
	clamp := func(s string) string {
		s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
		if len(s) > maxMetadataLen {
			s = strings.ToValidUTF8(s[:maxMetadataLen], "")
		}
		return s
	}
	return metadata.Metadata{Type: model.MetricType(clamp(string(m.Type))), Help: clamp(m.Help), Unit: clamp(m.Unit)}
}

// Metadata returns the metadata of metric families: of metric alone when
// it is not empty, of at most limit families (0 = all), sorted by name.
func (s *Store) Metadata(ctx context.Context, metric string, limit int) (map[string]metadata.Metadata, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if metric != "" {
		rows, err = s.pool.Query(ctx, metadataOfFamilySQL, metric)
	} else {
		rows, err = s.pool.Query(ctx, allMetadataSQL)
	}
	if err != nil {
		return nil, fmt.Errorf("read metric metadata: %w", pgcore.Classify(err))
	}
	out := map[string]metadata.Metadata{}
	var fam, typ, help, unit string
	_, err = pgx.ForEachRow(rows, []any{&fam, &typ, &help, &unit}, func() error {
		if limit > 0 && len(out) >= limit {
			return nil
		}
		out[fam] = metadata.Metadata{Type: model.MetricType(typ), Help: help, Unit: unit}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read metric metadata: %w", pgcore.Classify(err))
	}
	return out, nil
}
