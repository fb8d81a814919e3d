package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/tail"
	"github.com/vigil-obs/vigil/storage"
)

// LogReader is what the log API needs from the log query layer
// (query/logs.Service). Implementations must be safe for concurrent use;
// returned records are owned by the caller. Errors map as for TraceReader.
type LogReader interface {
	FindLogs(ctx context.Context, q storage.LogQuery) (storage.LogPage, error)
	TraceLogs(ctx context.Context, id pcommon.TraceID) ([]storage.LogRecord, error)
}

// LogsOptions holds the log API's optional dependencies and settings.
type LogsOptions struct {
	// Tail is the hub the log pipeline publishes committed records on;
	// nil turns GET /api/logs/tail off (404).
	Tail *tail.Hub[storage.LogRecord]
	// AllowedOrigins are the browser origins (e.g. "https://vigil.example")
	// that may open the live tail besides the API's own origin. Requests
	// without an Origin header (non-browser clients) are always allowed.
	AllowedOrigins []string
	// WriteTimeout bounds the sending of one live-tail frame; a client
	// that does not read for that long is disconnected (default 5s).
	WriteTimeout time.Duration
	Logger       *slog.Logger // nil = discard
}

// Logs serves Vigil's native log API. Safe for concurrent use.
type Logs struct {
	reader   LogReader
	opts     LogsOptions
	logger   *slog.Logger
	upgrader websocket.Upgrader
}

// NewLogs returns the log API over r, which must not be nil.
func NewLogs(r LogReader, opts LogsOptions) *Logs {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	l := &Logs{reader: r, opts: opts, logger: opts.Logger.With("component", "logs_api")}
	l.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  16 << 10,
		CheckOrigin:      l.checkOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			l.writeJSON(w, r, status, logsEnvelope{Errors: []apiError{{Code: status, Msg: reason.Error()}}})
		},
	}
	return l
}

// Register adds the log routes to mux:
//
//	GET /api/logs?service=&severity=&q=&trace_id=&span_id=&attr.<key>=&start=&end=&limit=&cursor=
//	GET /api/logs/tail?(the same filter)   WebSocket
//	GET /api/logs/histogram?(the same filter)&buckets=   volume over time
//	GET /api/traces/{traceID}/logs
func (l *Logs) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/logs", l.find)
	mux.HandleFunc("GET /api/logs/tail", l.tail)
	mux.HandleFunc("GET /api/logs/histogram", l.histogram)
	mux.HandleFunc("GET /api/traces/{traceID}/logs", l.traceLogs)
}

// logsEnvelope is the answer of the log API: records newest first, the
// cursor of the next page, and errors as in the Jaeger envelope.
type logsEnvelope struct {
	Data       []logJSON  `json:"data"`
	NextCursor string     `json:"next_cursor,omitempty"`
	Errors     []apiError `json:"errors,omitempty"`
}

// logJSON is one record in the API.
type logJSON struct {
	Timestamp         time.Time      `json:"timestamp"`
	ObservedTimestamp time.Time      `json:"observed_timestamp"`
	Service           string         `json:"service"`
	SeverityNumber    int32          `json:"severity_number"`
	SeverityText      string         `json:"severity_text"`
	Body              any            `json:"body"`
	Attributes        map[string]any `json:"attributes"`
	Resource          map[string]any `json:"resource"`
	Scope             *scopeJSON     `json:"scope,omitempty"`
	TraceID           string         `json:"trace_id,omitempty"`
	SpanID            string         `json:"span_id,omitempty"`
	EventName         string         `json:"event_name,omitempty"`
	Flags             uint32         `json:"flags,omitempty"`
}

type scopeJSON struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

func toLogJSON(r storage.LogRecord) logJSON {
	lr := r.Record
	out := logJSON{
		Timestamp:         lr.Timestamp().AsTime().UTC(),
		ObservedTimestamp: lr.ObservedTimestamp().AsTime().UTC(),
		Service:           r.Service,
		SeverityNumber:    int32(lr.SeverityNumber()),
		SeverityText:      lr.SeverityText(),
		Body:              lr.Body().AsRaw(),
		Attributes:        lr.Attributes().AsRaw(),
		Resource:          r.Resource.Attributes().AsRaw(),
		TraceID:           hexTraceID(lr.TraceID()),
		SpanID:            hexSpanID(lr.SpanID()),
		EventName:         lr.EventName(),
		Flags:             uint32(lr.Flags()),
	}
	if lr.Timestamp() == 0 {
		out.Timestamp = out.ObservedTimestamp
	}
	if r.Scope.Name() != "" || r.Scope.Version() != "" {
		out.Scope = &scopeJSON{Name: r.Scope.Name(), Version: r.Scope.Version()}
	}
	return out
}

func (l *Logs) find(w http.ResponseWriter, r *http.Request) {
	q, err := parseQueryString(r.URL.RawQuery)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	lq, err := parseLogQuery(q)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	page, err := l.reader.FindLogs(r.Context(), lq)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	env := logsEnvelope{Data: make([]logJSON, len(page.Records))}
	for i, rec := range page.Records {
		env.Data[i] = toLogJSON(rec)
	}
	if page.Next != nil {
		env.NextCursor = encodeCursor(*page.Next)
	}
	l.writeJSON(w, r, http.StatusOK, env)
}

// logHistogrammer is the optional capability behind
// GET /api/logs/histogram (query/logs.Service has it).
type logHistogrammer interface {
	LogHistogram(ctx context.Context, q storage.LogQuery, buckets int) ([]storage.LogBucket, time.Duration, bool, error)
}

// MaxLogHistogramBuckets is the largest 'buckets' of
// GET /api/logs/histogram.
const MaxLogHistogramBuckets = 1000

// histogramJSON is the answer of GET /api/logs/histogram.
type histogramJSON struct {
	Data []struct {
		Time  string `json:"time"`
		Count int64  `json:"count"`
	} `json:"data"`
	StepSeconds float64 `json:"step_seconds"`
	Approximate bool    `json:"approximate"`
}

func (l *Logs) histogram(w http.ResponseWriter, r *http.Request) {
	h, ok := l.reader.(logHistogrammer)
	if !ok {
		http.NotFound(w, r)
		return
	}
	q, err := parseQueryString(r.URL.RawQuery)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	buckets := 60
	if v := q["buckets"]; len(v) > 0 {
		n, perr := strconv.Atoi(v[0])
		if len(v) > 1 || perr != nil || n < 1 || n > MaxLogHistogramBuckets {
			l.fail(w, r, paramError("buckets", fmt.Sprintf("must be one integer from 1 to %d", MaxLogHistogramBuckets), nil))
			return
		}
		buckets = n
		delete(q, "buckets")
	}
	lq, err := parseLogQuery(q)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	if lq.After != nil || lq.Limit != 0 {
		l.fail(w, r, paramError("cursor", "and limit do not apply to a histogram", nil))
		return
	}
	bs, step, approx, err := h.LogHistogram(r.Context(), lq, buckets)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	out := histogramJSON{StepSeconds: step.Seconds(), Approximate: approx}
	out.Data = make([]struct {
		Time  string `json:"time"`
		Count int64  `json:"count"`
	}, len(bs))
	for i, b := range bs {
		out.Data[i].Time = b.Start.UTC().Format(time.RFC3339Nano)
		out.Data[i].Count = b.Count
	}
	l.writeAny(w, r, http.StatusOK, out)
}

func (l *Logs) traceLogs(w http.ResponseWriter, r *http.Request) {
	id, err := parseTraceID(r.PathValue(paramTraceID))
	if err != nil {
		l.fail(w, r, err)
		return
	}
	recs, err := l.reader.TraceLogs(r.Context(), id)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	env := logsEnvelope{Data: make([]logJSON, len(recs))}
	for i, rec := range recs {
		env.Data[i] = toLogJSON(rec)
	}
	l.writeJSON(w, r, http.StatusOK, env)
}

// checkOrigin accepts requests without Origin (non-browser clients), from
// the API's own origin, and from the configured origins.
func (l *Logs) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if u.Host == r.Host {
		return true
	}
	return slices.Contains(l.opts.AllowedOrigins, origin)
}

// TailSubprotocol is the WebSocket subprotocol of the live tail. Browsers
// offer it next to the token's (auth.WebSocketProtocolPrefix), and the
// tail selects it, so the token is never echoed back.
const TailSubprotocol = "vigil.tail"

// tailResponseHeader selects the subprotocol of a tail handshake: the tail
// protocol when offered, else an offered token protocol (a browser fails a
// handshake whose answer selects none of the protocols it offered), else
// none.
func tailResponseHeader(r *http.Request) http.Header {
	var bearer string
	for _, p := range auth.WebSocketProtocols(r) {
		if p == TailSubprotocol {
			return http.Header{"Sec-Websocket-Protocol": {p}}
		}
		if bearer == "" && strings.HasPrefix(p, auth.WebSocketProtocolPrefix) {
			bearer = p
		}
	}
	if bearer != "" {
		return http.Header{"Sec-Websocket-Protocol": {bearer}}
	}
	return nil
}

// tailFrame is one WebSocket message of the live tail: a record, or a
// marker saying how many matching records this client missed because it
// was not reading fast enough.
type tailFrame struct {
	Type    string   `json:"type"` // "record" or "dropped"
	Record  *logJSON `json:"record,omitempty"`
	Dropped int64    `json:"dropped,omitempty"`
}

// tail streams committed records matching the filter over a WebSocket
// until the client goes away, falls behind by more than WriteTimeout, or
// the hub closes.
func (l *Logs) tail(w http.ResponseWriter, r *http.Request) {
	if l.opts.Tail == nil {
		l.fail(w, r, storage.ErrNotFound)
		return
	}
	q, err := parseQueryString(r.URL.RawQuery)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	lq, err := parseLogQuery(q)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		l.fail(w, r, &requestError{msg: "GET /api/logs/tail needs a WebSocket upgrade"})
		return
	}
	if !l.checkOrigin(r) {
		l.writeJSON(w, r, http.StatusForbidden, logsEnvelope{Errors: []apiError{{Code: http.StatusForbidden, Msg: "origin not allowed"}}})
		return
	}
	sub, err := l.opts.Tail.Subscribe(lq.Matches)
	if err != nil {
		status := http.StatusServiceUnavailable
		l.writeJSON(w, r, status, logsEnvelope{Errors: []apiError{{Code: status, Msg: err.Error()}}})
		return
	}
	defer sub.Close()
	conn, err := l.upgrader.Upgrade(w, r, tailResponseHeader(r))
	if err != nil {
		return // the upgrader answered
	}
	defer conn.Close()

	// Read (and discard) what the client sends so that control frames are
	// processed; a read error means the client is gone.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		conn.SetReadLimit(4096)
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	defer func() { _ = conn.Close(); <-gone }()

	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	send := func(f tailFrame) error {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		_ = conn.SetWriteDeadline(time.Now().Add(l.opts.WriteTimeout))
		return conn.WriteMessage(websocket.TextMessage, b)
	}
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
				_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"))
				return
			}
			if ev.Dropped > 0 {
				if err := send(tailFrame{Type: "dropped", Dropped: ev.Dropped}); err != nil {
					l.logger.DebugContext(r.Context(), "live tail client dropped", "err", err)
					return
				}
			}
			rec := toLogJSON(ev.Item)
			if err := send(tailFrame{Type: "record", Record: &rec}); err != nil {
				l.logger.DebugContext(r.Context(), "live tail client dropped", "err", err)
				return
			}
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(l.opts.WriteTimeout)); err != nil {
				return
			}
		case <-gone:
			return
		}
	}
}

// fail answers err with the one error mapping of this package.
func (l *Logs) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := errorStatus(err, "resource")
	switch status {
	case http.StatusInternalServerError:
		l.logger.ErrorContext(r.Context(), "logs api request failed", "path", r.URL.Path, "status", status, "err", err)
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		l.logger.WarnContext(r.Context(), "logs api request failed", "path", r.URL.Path, "status", status, "err", err)
	default:
		l.logger.DebugContext(r.Context(), "logs api request rejected", "path", r.URL.Path, "status", status, "err", err)
	}
	l.writeJSON(w, r, status, logsEnvelope{Errors: []apiError{{Code: status, Msg: msg}}})
}

func (l *Logs) writeJSON(w http.ResponseWriter, r *http.Request, status int, body logsEnvelope) {
	if body.Data == nil && len(body.Errors) == 0 {
		body.Data = []logJSON{}
	}
	l.writeAny(w, r, status, body)
}

// writeAny writes any JSON answer, indented with ?pretty.
func (l *Logs) writeAny(w http.ResponseWriter, r *http.Request, status int, body any) {
	var (
		out []byte
		err error
	)
	if pp := r.URL.Query().Get(logParamPretty); pp != "" && pp != "false" {
		out, err = json.MarshalIndent(body, "", "    ")
	} else {
		out, err = json.Marshal(body)
	}
	if err != nil {
		l.logger.ErrorContext(r.Context(), "logs api encode failed", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		out = []byte(fmt.Sprintf(`{"data":null,"errors":[{"code":%d,"msg":"internal server error"}]}`, status))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}
