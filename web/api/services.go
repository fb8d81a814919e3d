package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/vigil-obs/vigil/storage"
)

// ServiceCatalog is what the catalogue route needs from the query layer
// (query/services.Service). Implementations must be safe for concurrent
// use; errors map as ErrorStatus says.
type ServiceCatalog interface {
	// Summaries returns every known service, sorted by name.
	Summaries(ctx context.Context) ([]storage.ServiceSummary, error)
}

// Services serves Vigil's own service catalogue, the landing page of the
// UI. It answers in the Jaeger envelope ({"data": …, "total": …,
// "errors": …}) like the other /api routes that are not Prometheus's.
// Safe for concurrent use.
type Services struct {
	catalog ServiceCatalog
	resp    *Responder
}

// NewServices returns the catalogue API over c, which must not be nil. A nil
// logger discards logs.
func NewServices(c ServiceCatalog, logger *slog.Logger) *Services {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Services{catalog: c, resp: NewResponder(logger.With("component", "services_api"), "services api")}
}

// Register adds GET /api/vigil/services to mux.
func (s *Services) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/vigil/services", s.list)
}

// serviceJSON is one service of GET /api/vigil/services.
type serviceJSON struct {
	Name      string   `json:"name"`
	FirstSeen string   `json:"first_seen"`
	LastSeen  string   `json:"last_seen"`
	Signals   []string `json:"signals"`
}

func (s *Services) list(w http.ResponseWriter, r *http.Request) {
	if _, err := ParseQuery(r.URL.RawQuery); err != nil {
		s.resp.Fail(w, r, "services", err)
		return
	}
	sums, err := s.catalog.Summaries(r.Context())
	if err != nil {
		s.resp.Fail(w, r, "services", err)
		return
	}
	data := make([]serviceJSON, len(sums))
	for i, sum := range sums {
		data[i] = serviceJSON{
			Name: sum.Name, FirstSeen: sum.FirstSeen.UTC().Format(time.RFC3339Nano),
			LastSeen: sum.LastSeen.UTC().Format(time.RFC3339Nano), Signals: sum.Signals,
		}
	}
	s.resp.Write(w, r, Envelope{Data: data, Total: len(data)})
}
