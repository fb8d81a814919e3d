package services

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-obs/vigil/storage"
)

// DefaultTimeout bounds each query when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Lister is what the catalogue needs from storage. Implementations must be
// safe for concurrent use; the returned summaries are owned by the caller.
type Lister interface {
	// ServiceSummaries returns every known service.
	ServiceSummaries(ctx context.Context) ([]storage.ServiceSummary, error)
}

// Config bounds catalogue queries. Its zero value takes the defaults.
type Config struct {
	// Timeout bounds each query (default DefaultTimeout).
	Timeout time.Duration
}

// Service answers the catalogue over a Lister. Safe for concurrent use.
type Service struct {
	l   Lister
	cfg Config
}

// New returns a Service over l, which must not be nil.
func New(l Lister, cfg Config) *Service {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Service{l: l, cfg: cfg}
}

// Summaries returns every known service sorted by name, each with the
// signals it has stored ("traces", "logs", "metrics"; never nil). The
// result is owned by the caller.
func (s *Service) Summaries(ctx context.Context) ([]storage.ServiceSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	out, err := s.l.ServiceSummaries(ctx)
	if err != nil {
		return nil, fmt.Errorf("service summaries: %w", err)
	}
	slices.SortFunc(out, func(a, b storage.ServiceSummary) int { return strings.Compare(a.Name, b.Name) })
	for i := range out {
		if out[i].Signals == nil {
			out[i].Signals = []string{}
		}
	}
	return out, nil
}
