package promremote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/internal/inflight"
	vstorage "github.com/vigil-obs/vigil/storage"
)

// Config holds the limits of remote_write ingest.
type Config struct {
	// MaxRequestBytes bounds a request body, compressed and decompressed
	// (default 16 MiB).
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// MaxLabels is the most labels a series may have, __name__ included
	// (default 64).
	MaxLabels int `yaml:"max_labels"`
	// MaxFutureSkew refuses samples later than now plus this (default 1h).
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
}

// Defaults of Config.
const (
	DefaultMaxRequestBytes = 16 << 20
	DefaultMaxLabels       = 64
	DefaultMaxFutureSkew   = time.Hour
)

// maxReportedSeries is how many offending series a 400 names.
const maxReportedSeries = 5

// overBudgetRetryAfter is the Retry-After, in seconds, of requests refused
// because the in-flight budget is spent.
const overBudgetRetryAfter = "1"

// Handler serves POST /api/v1/write. Safe for concurrent use.
type Handler struct {
	app    storage.AppendableV2
	cfg    Config
	budget *inflight.Budget
	logger *slog.Logger
	now    func() time.Time
}

// Options holds the dependencies of a Handler.
type Options struct {
	// Logger receives the handler's logs; nil discards them.
	Logger *slog.Logger
	// Budget bounds the request bytes in flight across every receiver
	// that shares it. A request is charged its body as it is read and
	// then its decompressed size, until it is answered; one the budget
	// cannot cover gets 503 with Retry-After (Prometheus retries 5xx
	// always, 429 only with retry_on_http_429). nil gives the handler a
	// budget of its own of inflight.DefaultMaxBytes() (at least one
	// request of MaxRequestBytes), without metrics.
	Budget *inflight.Budget
}

// New returns a remote_write handler writing into app. Zero config fields
// take their defaults. It returns an error when the budget cannot hold one
// request of MaxRequestBytes, compressed and decompressed.
func New(app storage.AppendableV2, cfg Config, opts Options) (*Handler, error) {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxLabels <= 0 {
		cfg.MaxLabels = DefaultMaxLabels
	}
	if cfg.MaxFutureSkew <= 0 {
		cfg.MaxFutureSkew = DefaultMaxFutureSkew
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	budget := opts.Budget
	if budget == nil {
		var err error
		if budget, err = inflight.New(max(inflight.DefaultMaxBytes(), 2*cfg.MaxRequestBytes+1), nil); err != nil {
			return nil, fmt.Errorf("new remote write handler: %w", err)
		}
	}
	if budget.Limit() <= 2*cfg.MaxRequestBytes {
		return nil, fmt.Errorf("new remote write handler: in-flight budget of %d bytes cannot hold one request of max_request_bytes %d, compressed and decompressed", budget.Limit(), cfg.MaxRequestBytes)
	}
	return &Handler{app: app, cfg: cfg, budget: budget, logger: logger.With("component", "remote_write"), now: time.Now}, nil
}

// Register adds POST /api/v1/write to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/write", h)
}

// ServeHTTP answers 204 once every sample of the request is committed; 400
// naming the offending series when some were invalid (the others are
// committed); 413/415 for oversized or non-1.0 bodies; 408 for a body not
// received within the server's read timeout; 503 with Retry-After when
// the database is unavailable or the in-flight budget is spent (nothing
// was stored). The body is read into a buffer that grows with the bytes
// received, never from the declared length; once it is in, the
// connection's read deadline is lifted so that the server's ReadTimeout
// does not cancel the commit.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-protobuf" {
			http.Error(w, fmt.Sprintf("unsupported content type %q: remote_write 1.0 needs application/x-protobuf", ct), http.StatusUnsupportedMediaType)
			return
		}
		if p := params["proto"]; p != "" && p != "prometheus.WriteRequest" {
			http.Error(w, fmt.Sprintf("unsupported proto %q: only remote_write 1.0 (prometheus.WriteRequest) is accepted", p), http.StatusUnsupportedMediaType)
			return
		}
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "snappy") {
		http.Error(w, fmt.Sprintf("unsupported content encoding %q: remote_write needs snappy", ce), http.StatusUnsupportedMediaType)
		return
	}
	charge := h.budget.Reserve()
	defer charge.Release()
	body, err := inflight.ReadAll(r.Body, charge, h.cfg.MaxRequestBytes, r.ContentLength)
	switch {
	case errors.Is(err, inflight.ErrOverBudget):
		charge.Release()
		h.overBudget(w)
		return
	case errors.Is(err, inflight.ErrTooLarge):
		http.Error(w, fmt.Sprintf("body larger than %d bytes", h.cfg.MaxRequestBytes), http.StatusRequestEntityTooLarge)
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		http.Error(w, "request body not received within the read timeout", http.StatusRequestTimeout)
		return
	case err != nil:
		http.Error(w, fmt.Sprintf("read body: %v", err), http.StatusBadRequest)
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	req, err := decodeWriteRequest(body, h.cfg.MaxRequestBytes, charge)
	switch {
	case errors.Is(err, inflight.ErrOverBudget):
		charge.Release()
		h.overBudget(w)
		return
	case err != nil:
		status := http.StatusBadRequest
		if errors.Is(err, errTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, err.Error(), status)
		return
	}
	refused, err := h.write(r.Context(), req)
	switch {
	case errors.Is(err, vstorage.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case err != nil && r.Context().Err() != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case err != nil:
		h.logger.ErrorContext(r.Context(), "remote write failed", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	case len(refused) > 0:
		http.Error(w, refusedMessage(refused), http.StatusBadRequest)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// overBudget answers a request refused because the in-flight budget is
// spent.
func (h *Handler) overBudget(w http.ResponseWriter) {
	w.Header().Set("Retry-After", overBudgetRetryAfter)
	http.Error(w, "too many request bytes in flight, retry later", http.StatusServiceUnavailable)
}

// errTooLarge is wrapped by DecodeWriteRequest when the decompressed body
// exceeds the limit.
var errTooLarge = errors.New("decompressed body too large")

// DecodeWriteRequest decompresses (snappy block format) and unmarshals a
// remote_write 1.0 body, refusing one that decompresses to more than
// maxBytes.
func DecodeWriteRequest(body []byte, maxBytes int64) (*prompb.WriteRequest, error) {
	return decodeWriteRequest(body, maxBytes, nil)
}

// decodeWriteRequest is DecodeWriteRequest charging the decompressed size
// to res first, when res is not nil: inflight.ErrOverBudget when it does
// not fit.
func decodeWriteRequest(body []byte, maxBytes int64, res *inflight.Reservation) (*prompb.WriteRequest, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("decode snappy: %w", err)
	}
	if int64(n) > maxBytes {
		return nil, fmt.Errorf("decode snappy: %d bytes: %w", n, errTooLarge)
	}
	if res != nil && !res.Grow(int64(n)) {
		return nil, inflight.ErrOverBudget
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, fmt.Errorf("decode snappy: %w", err)
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("decode protobuf WriteRequest: %w", err)
	}
	return &req, nil
}

// refusal names one refused series.
type refusal struct {
	index  int
	series string
	reason string
}

func refusedMessage(refused []refusal) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d series refused, the others were stored: ", len(refused))
	for i, r := range refused {
		if i == maxReportedSeries {
			fmt.Fprintf(&b, "; and %d more", len(refused)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "timeseries[%d] %s: %s", r.index, r.series, r.reason)
	}
	return b.String()
}

// write validates and appends every series of req and commits them. It
// returns the refused series; an error means nothing was stored.
func (h *Handler) write(ctx context.Context, req *prompb.WriteRequest) ([]refusal, error) {
	app := h.app.AppenderV2(ctx)
	var refused []refusal
	maxT := h.now().Add(h.cfg.MaxFutureSkew).UnixMilli()
	var b labels.ScratchBuilder
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		ls, reason := h.seriesLabels(&b, ts.Labels)
		if reason == "" {
			reason = checkTimes(ts, maxT)
		}
		if reason != "" {
			refused = append(refused, refusal{index: i, series: seriesName(ts.Labels), reason: reason})
			continue
		}
		var appendErr error
		for _, s := range ts.Samples {
			if _, err := app.Append(0, ls, 0, s.Timestamp, s.Value, nil, nil, storage.AOptions{}); err != nil {
				appendErr = err
				break
			}
		}
		for _, hp := range ts.Histograms {
			if appendErr != nil {
				break
			}
			var err error
			if hp.IsFloatHistogram() {
				fh := hp.ToFloatHistogram()
				if err = fh.Validate(); err == nil {
					_, err = app.Append(0, ls, 0, hp.Timestamp, 0, nil, fh, storage.AOptions{})
				}
			} else {
				ih := hp.ToIntHistogram()
				if err = ih.Validate(); err == nil {
					_, err = app.Append(0, ls, 0, hp.Timestamp, 0, ih, nil, storage.AOptions{})
				}
			}
			appendErr = err
		}
		if appendErr != nil {
			// Samples of this series appended before the error stay: they
			// were valid.
			refused = append(refused, refusal{index: i, series: seriesName(ts.Labels), reason: appendErr.Error()})
		}
	}
	if err := app.Commit(); err != nil {
		return nil, fmt.Errorf("commit remote write: %w", err)
	}
	if mu, ok := h.app.(MetadataUpdater); ok && len(req.Metadata) > 0 {
		md := make(map[string]metadata.Metadata, len(req.Metadata))
		for _, m := range req.Metadata {
			md[m.MetricFamilyName] = metadata.Metadata{Type: metricType(m.Type), Help: m.Help, Unit: m.Unit}
		}
		// The samples are committed: failing here would only make the
		// sender send them again.
		if err := mu.UpdateMetadata(ctx, md); err != nil {
			h.logger.WarnContext(ctx, "remote write metadata not recorded", "err", err)
		}
	}
	return refused, nil
}

// metricType maps a remote_write 1.0 metadata type to Prometheus's name
// of it ("counter", "gaugehistogram", …).
func metricType(t prompb.MetricMetadata_MetricType) model.MetricType {
	switch t {
	case prompb.MetricMetadata_COUNTER:
		return model.MetricTypeCounter
	case prompb.MetricMetadata_GAUGE:
		return model.MetricTypeGauge
	case prompb.MetricMetadata_HISTOGRAM:
		return model.MetricTypeHistogram
	case prompb.MetricMetadata_GAUGEHISTOGRAM:
		return model.MetricTypeGaugeHistogram
	case prompb.MetricMetadata_SUMMARY:
		return model.MetricTypeSummary
	case prompb.MetricMetadata_INFO:
		return model.MetricTypeInfo
	case prompb.MetricMetadata_STATESET:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}

// MetadataUpdater is implemented by stores that keep metric metadata;
// remote_write 1.0 sends it apart from the series.
type MetadataUpdater interface {
	UpdateMetadata(ctx context.Context, md map[string]metadata.Metadata) error
}

// seriesLabels builds the label set of a series, or says why it is
// invalid.
func (h *Handler) seriesLabels(b *labels.ScratchBuilder, in []prompb.Label) (labels.Labels, string) {
	if len(in) > h.cfg.MaxLabels {
		return labels.EmptyLabels(), fmt.Sprintf("%d labels, more than the limit of %d", len(in), h.cfg.MaxLabels)
	}
	b.Reset()
	hasName := false
	for _, l := range in {
		switch {
		case l.Name == "":
			return labels.EmptyLabels(), "empty label name"
		case !utf8.ValidString(l.Name) || strings.IndexByte(l.Name, 0) >= 0:
			return labels.EmptyLabels(), fmt.Sprintf("invalid label name %q", l.Name)
		case !utf8.ValidString(l.Value) || strings.IndexByte(l.Value, 0) >= 0:
			return labels.EmptyLabels(), fmt.Sprintf("label %q: invalid value %q", l.Name, l.Value)
		case l.Name == labels.MetricName:
			hasName = l.Value != ""
		}
		if l.Value != "" { // an empty value means no label, as in Prometheus
			b.Add(l.Name, l.Value)
		}
	}
	if !hasName {
		return labels.EmptyLabels(), "missing __name__"
	}
	b.Sort()
	ls := b.Labels()
	if name, dup := ls.HasDuplicateLabelNames(); dup {
		return labels.EmptyLabels(), fmt.Sprintf("duplicate label name %q", name)
	}
	return ls, ""
}

// checkTimes refuses a series with a sample later than maxT.
func checkTimes(ts *prompb.TimeSeries, maxT int64) string {
	for _, s := range ts.Samples {
		if s.Timestamp > maxT {
			return fmt.Sprintf("sample at %s is too far in the future", time.UnixMilli(s.Timestamp).UTC().Format(time.RFC3339))
		}
	}
	for _, hp := range ts.Histograms {
		if hp.Timestamp > maxT {
			return fmt.Sprintf("histogram at %s is too far in the future", time.UnixMilli(hp.Timestamp).UTC().Format(time.RFC3339))
		}
	}
	return ""
}

// seriesName renders a series as sent, labels in their order, for error
// messages (at most 256 bytes).
func seriesName(in []prompb.Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range slices.Clip(in) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", strings.ToValidUTF8(l.Name, "\uFFFD"), strings.ToValidUTF8(l.Value, "\uFFFD"))
		if b.Len() > 256 {
			b.WriteString(", …")
			break
		}
	}
	b.WriteByte('}')
	return b.String()
}
