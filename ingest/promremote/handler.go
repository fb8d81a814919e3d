package promremote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/ingest/internal/receiver"
	"github.com/vigil-obs/vigil/internal/inflight"
)

// Config holds the limits of remote_write ingest. Zero fields take their
// defaults.
type Config struct {
	// MaxRequestBytes bounds a request body, compressed and decompressed
	// (default 16 MiB).
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// MaxLabels is the most labels a series may have, __name__ included
	// (default 64).
	MaxLabels int `yaml:"max_labels"`
	// MaxFutureSkew refuses samples later than now plus this (default 1h).
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
	// RetryAfter is the delay suggested to senders (Retry-After, rounded
	// up to whole seconds) when Vigil pushes back: the metric pipeline's
	// queue is full, the in-flight budget is spent, the database is
	// unavailable (default 1 s).
	RetryAfter time.Duration `yaml:"retry_after"`
}

// Defaults of Config.
const (
	DefaultMaxRequestBytes = receiver.DefaultMaxRequestBytes
	DefaultMaxLabels       = 64
	DefaultMaxFutureSkew   = time.Hour
	DefaultRetryAfter      = receiver.DefaultRetryAfter
)

// Validate reports the first invalid setting: a negative or too large
// size, a negative count or duration.
func (c Config) Validate() error {
	switch {
	case c.MaxRequestBytes < 0 || c.MaxRequestBytes > math.MaxInt32:
		return fmt.Errorf("remote_write config: max_request_bytes %d is outside [0, %d]", c.MaxRequestBytes, math.MaxInt32)
	case c.MaxLabels < 0:
		return fmt.Errorf("remote_write config: max_labels %d is negative", c.MaxLabels)
	case c.MaxFutureSkew < 0:
		return fmt.Errorf("remote_write config: max_future_skew %s is negative", c.MaxFutureSkew)
	case c.RetryAfter < 0:
		return fmt.Errorf("remote_write config: retry_after %s is negative", c.RetryAfter)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxLabels == 0 {
		c.MaxLabels = DefaultMaxLabels
	}
	if c.MaxFutureSkew == 0 {
		c.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	return c
}

// maxReportedSeries is how many offending series a 400 names.
const maxReportedSeries = 5

// Handler serves POST /api/v1/write. Safe for concurrent use.
type Handler struct {
	app    promstorage.AppendableV2
	cfg    Config
	body   receiver.BodyReader
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

// New returns a remote_write handler writing into app, in Vigil the
// metric pipeline (pipeline.MetricPipeline), whose Commit follows the
// contract of package ingest; when app also records metadata (it has
// UpdateMetadata, see MetadataUpdater), the metadata of requests goes
// there. It returns an error when cfg is invalid or the budget cannot
// hold one request of MaxRequestBytes, compressed and decompressed.
func New(app promstorage.AppendableV2, cfg Config, opts Options) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new remote write handler: %w", err)
	}
	cfg = cfg.withDefaults()
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	budget, err := receiver.Budget(opts.Budget, cfg.MaxRequestBytes, 2)
	if err != nil {
		return nil, fmt.Errorf("new remote write handler: %w", err)
	}
	return &Handler{
		app: app, cfg: cfg, budget: budget, logger: logger.With("component", "remote_write"), now: time.Now,
		body: receiver.BodyReader{MaxBytes: cfg.MaxRequestBytes, RetryAfter: cfg.RetryAfter},
	}, nil
}

// Register adds POST /api/v1/write to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/write", h)
}

// ServeHTTP answers 204 once every sample of the request is committed; 400
// naming the offending series when some were invalid or refused by the
// store (the others are committed); 413/415 for oversized or non-1.0
// bodies; 408 for a body not received within the server's read timeout;
// 503 with Retry-After when Vigil pushes back (the metric pipeline's queue
// is full, it is shutting down, the database is unavailable, or the
// in-flight budget is spent: nothing was stored), which Prometheus
// retries. Failures are answered as every receiver does (see
// ingest/internal/receiver), but for Prometheus's retry rules:
// RESOURCE_EXHAUSTED is 503, not 429. The body is read into a buffer that
// grows with the bytes received, never from the declared length; once it
// is in, the connection's read deadline is lifted so that the server's
// ReadTimeout does not cancel the commit.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-protobuf" {
			h.fail(w, &receiver.Failure{HTTP: http.StatusUnsupportedMediaType, Status: receiver.InvalidArgument(
				fmt.Sprintf("unsupported content type %q: remote_write 1.0 needs application/x-protobuf", ct))})
			return
		}
		if p := params["proto"]; p != "" && p != "prometheus.WriteRequest" {
			h.fail(w, &receiver.Failure{HTTP: http.StatusUnsupportedMediaType, Status: receiver.InvalidArgument(
				fmt.Sprintf("unsupported proto %q: only remote_write 1.0 (prometheus.WriteRequest) is accepted", p))})
			return
		}
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "snappy") {
		h.fail(w, &receiver.Failure{HTTP: http.StatusUnsupportedMediaType, Status: receiver.InvalidArgument(
			fmt.Sprintf("unsupported content encoding %q: remote_write needs snappy", ce))})
		return
	}
	charge := h.budget.Reserve()
	defer charge.Release()
	body, fail := h.body.Read(w, r, charge)
	if fail != nil {
		charge.Release()
		h.fail(w, fail)
		return
	}
	req, err := decodeWriteRequest(body, h.cfg.MaxRequestBytes, charge)
	switch {
	case errors.Is(err, inflight.ErrOverBudget):
		charge.Release()
		h.fail(w, receiver.Fail(receiver.OverBudget(h.cfg.RetryAfter)))
		return
	case errors.Is(err, errTooLarge):
		h.fail(w, &receiver.Failure{HTTP: http.StatusRequestEntityTooLarge, Status: status.New(codes.ResourceExhausted, err.Error())})
		return
	case err != nil:
		h.fail(w, receiver.Fail(receiver.InvalidArgument(err.Error())))
		return
	}
	refused, err := h.write(r.Context(), req)
	switch {
	case err != nil:
		st, _ := receiver.ConsumerStatus(r.Context(), h.logger, err, h.cfg.RetryAfter, "samples")
		h.fail(w, receiver.Fail(st))
	case len(refused) > 0:
		h.fail(w, receiver.Fail(receiver.InvalidArgument(refusedMessage(refused))))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// fail answers f in plain text, as Prometheus's receiver does, with the
// status remote_write senders retry when Vigil pushes back.
func (h *Handler) fail(w http.ResponseWriter, f *receiver.Failure) {
	if f.HTTP == http.StatusTooManyRequests {
		f = &receiver.Failure{HTTP: receiver.RemoteWriteStatus(f.Status.Code()), Status: f.Status}
	}
	receiver.WriteText(w, f)
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

// appendedSeries is a series of the request whose samples were appended:
// its index and the count of Append calls up to its last sample.
type appendedSeries struct {
	index int
	end   int
}

// write validates and appends every series of req and commits them. It
// returns the refused series, by the validation or by the store; an error
// means nothing was stored.
func (h *Handler) write(ctx context.Context, req *prompb.WriteRequest) ([]refusal, error) {
	app := h.app.AppenderV2(ctx)
	var (
		refused  []refusal
		appended []appendedSeries
		calls    int
		b        labels.ScratchBuilder
	)
	maxT := h.now().Add(h.cfg.MaxFutureSkew).UnixMilli()
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
			calls++
			if _, err := app.Append(0, ls, 0, s.Timestamp, s.Value, nil, nil, promstorage.AOptions{}); err != nil {
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
					calls++
					_, err = app.Append(0, ls, 0, hp.Timestamp, 0, nil, fh, promstorage.AOptions{})
				}
			} else {
				ih := hp.ToIntHistogram()
				if err = ih.Validate(); err == nil {
					calls++
					_, err = app.Append(0, ls, 0, hp.Timestamp, 0, ih, nil, promstorage.AOptions{})
				}
			}
			appendErr = err
		}
		appended = append(appended, appendedSeries{index: i, end: calls})
		if appendErr != nil {
			// Samples of this series appended before the error stay: they
			// were valid.
			refused = append(refused, refusal{index: i, series: seriesName(ts.Labels), reason: appendErr.Error()})
		}
	}
	if err := app.Commit(); err != nil {
		var rs *ingest.RefusedSamples
		if !errors.As(err, &rs) {
			return nil, fmt.Errorf("commit remote write: %w", err)
		}
		refused = append(refused, storeRefusals(rs, appended, req)...)
		slices.SortStableFunc(refused, func(a, b refusal) int { return cmp.Compare(a.index, b.index) })
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

// storeRefusals turns the samples the store refused into one refusal per
// series, with the first reason; appended maps Append calls to series.
func storeRefusals(rs *ingest.RefusedSamples, appended []appendedSeries, req *prompb.WriteRequest) []refusal {
	var out []refusal
	last := -1
	for _, s := range rs.Samples {
		k, _ := slices.BinarySearchFunc(appended, s.Index, func(a appendedSeries, call int) int {
			// appended[k] holds calls [appended[k-1].end, appended[k].end).
			return cmp.Compare(a.end, call+1)
		})
		if k >= len(appended) || k == last {
			continue
		}
		last = k
		i := appended[k].index
		out = append(out, refusal{index: i, series: seriesName(req.Timeseries[i].Labels), reason: s.Err.Error()})
	}
	return out
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

// MetadataUpdater is implemented by appendables that keep metric
// metadata (the metric pipeline, which hands it to the store, and the
// store itself); remote_write 1.0 sends it apart from the series.
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
		case l.Name == model.MetricNameLabel:
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
