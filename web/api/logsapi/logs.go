package logsapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-obs/vigil/internal/auth"
	"github.com/vigil-obs/vigil/internal/tail"
	querylogs "github.com/vigil-obs/vigil/query/logs"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/web/api"
)

// Reader is what the log API needs from the log query layer
// (query/logs.Service). Implementations must be safe for concurrent use;
// returned records are owned by the caller. Errors should wrap the
// storage sentinels where they apply (see api.ErrorStatus).
// The window, limit and buckets a request leaves open (zero) take the
// query layer's defaults.
type Reader interface {
	// FindLogs returns one page of the records matching q, newest first,
	// with the cursor of the next page when more may follow.
	FindLogs(ctx context.Context, q storage.LogQuery) (storage.LogPage, error)
	// LogHistogram counts the records matching q in about buckets equal
	// buckets, oldest first, and returns their width and whether the
	// counts are approximate.
	LogHistogram(ctx context.Context, q storage.LogQuery, buckets int) ([]storage.LogBucket, time.Duration, bool, error)
	// TraceLogs returns the records of one trace, oldest first: at most
	// query/logs.MaxTraceLogs of them (the oldest), the rest left out.
	TraceLogs(ctx context.Context, id pcommon.TraceID) ([]storage.LogRecord, error)
}

// Options holds the log API's optional dependencies and settings.
type Options struct {
	// Tail is the hub the log pipeline publishes committed records on;
	// nil turns GET /api/logs/tail off (404). Its MaxSubscribers bounds
	// the live-tail connections of all clients together.
	Tail *tail.Hub[storage.LogRecord]
	// TailLimits bound the live-tail connections of one client and how
	// long they may stay idle.
	TailLimits TailConfig
	// AllowedOrigins are the browser origins (e.g. "https://vigil.example")
	// that may open the live tail besides the API's own origin. Requests
	// without an Origin header (non-browser clients) are always allowed.
	AllowedOrigins []string
	// WriteTimeout bounds the sending of one live-tail frame; a client
	// that does not read for that long is disconnected (default 5s).
	WriteTimeout time.Duration
	Logger       *slog.Logger // nil = discard
}

// Defaults of TailConfig.
const (
	DefaultTailMaxPerAddress = 8
	DefaultTailMaxPerToken   = 16
	DefaultTailIdleTimeout   = 30 * time.Minute
)

// TailConfig limits the live tail per client (YAML section logs.tail).
// Zero fields take the defaults; a negative field turns its limit off.
type TailConfig struct {
	// MaxPerAddress bounds the live-tail connections open from one client
	// address: the host of the connection's remote address (an IPv6
	// client is counted by its /64 network, which one host usually holds
	// whole). X-Forwarded-For is not trusted, so behind a reverse proxy
	// every client shares the proxy's address. Default 8.
	MaxPerAddress int `yaml:"max_per_address"`
	// MaxPerToken bounds the live-tail connections opened with one bearer
	// token (Authorization header or vigil.bearer.* subprotocol), from any
	// address. Default 16.
	MaxPerToken int `yaml:"max_per_token"`
	// IdleTimeout closes a live-tail connection that has been sent no
	// record for that long, with close code TailCloseIdle, so that idle
	// clients do not hold places for ever. Default 30m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Validate reports a setting that cannot work, naming its key.
func (c TailConfig) Validate() error {
	if c.IdleTimeout > 0 && c.IdleTimeout < time.Second {
		return fmt.Errorf("idle_timeout: %s is below 1s", c.IdleTimeout)
	}
	return nil
}

// withDefaults fills zero fields with the defaults and turns negative
// ones into "no limit" (0 limits, a zero timeout).
func (c TailConfig) withDefaults() TailConfig {
	fill := func(v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0
		}
	}
	fill(&c.MaxPerAddress, DefaultTailMaxPerAddress)
	fill(&c.MaxPerToken, DefaultTailMaxPerToken)
	switch {
	case c.IdleTimeout == 0:
		c.IdleTimeout = DefaultTailIdleTimeout
	case c.IdleTimeout < 0:
		c.IdleTimeout = 0
	}
	return c
}

// API serves Vigil's native log API. Safe for concurrent use.
type API struct {
	reader   Reader
	opts     Options
	limits   TailConfig // with defaults; 0 = no limit
	logger   *slog.Logger
	resp     *api.Responder
	upgrader websocket.Upgrader
}

// New returns the log API over r, which must not be nil.
func New(r Reader, opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	logger := opts.Logger.With("component", "logs_api")
	l := &API{reader: r, opts: opts, limits: opts.TailLimits.withDefaults(), logger: logger, resp: api.NewResponder(logger, "logs api")}
	l.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  16 << 10,
		CheckOrigin:      l.checkOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			l.fail(w, r, &handshakeError{status: status, err: reason})
		},
	}
	return l
}

// Register adds the log routes to mux:
//
//	GET /api/logs?service=&severity=&q=&trace_id=&span_id=&attr.<key>=&start=&end=&limit=&cursor=
//	GET /api/logs/tail?(the same filter)   WebSocket
//	GET /api/logs/histogram?(the same filter)&buckets=   volume over time
//	GET /api/traces/{traceID}/logs   oldest first, at most query/logs.MaxTraceLogs
//
// The logs of a trace stop at query/logs.MaxTraceLogs records: the oldest
// are answered and the later ones left out, without a cursor (a search
// with trace_id pages through all of them).
//
// Every route checks all its parameters with api.CheckParams. The live
// tail is bounded per client address and per token (TailConfig, 429),
// in all (the hub's MaxSubscribers, 503), and in idle time.
func (l *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/logs", l.find)
	mux.HandleFunc("GET /api/logs/tail", l.tail)
	mux.HandleFunc("GET /api/logs/histogram", l.histogram)
	mux.HandleFunc("GET /api/traces/{traceID}/logs", l.traceLogs)
}

// logsEnvelope is the answer of the log API: records newest first, the
// cursor of the next page, and errors as in the Jaeger envelope.
type logsEnvelope struct {
	Data       []logJSON           `json:"data"`
	NextCursor string              `json:"next_cursor,omitempty"`
	Errors     []api.EnvelopeError `json:"errors,omitempty"`
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

func (l *API) find(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseQuery(r.URL.RawQuery)
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

// histogramJSON is the answer of GET /api/logs/histogram.
type histogramJSON struct {
	Data []struct {
		Time  string `json:"time"`
		Count int64  `json:"count"`
	} `json:"data"`
	StepSeconds float64 `json:"step_seconds"`
	Approximate bool    `json:"approximate"`
}

func (l *API) histogram(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseQuery(r.URL.RawQuery)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	var buckets int // the query layer's default
	if v := q["buckets"]; len(v) > 0 {
		n, perr := strconv.Atoi(v[0])
		if len(v) > 1 || perr != nil || n < 1 || n > querylogs.MaxHistogramBuckets {
			l.fail(w, r, api.ParamError("buckets", fmt.Sprintf("must be one integer from 1 to %d", querylogs.MaxHistogramBuckets), nil))
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
		l.fail(w, r, api.ParamError("cursor", "and limit do not apply to a histogram", nil))
		return
	}
	bs, step, approx, err := l.reader.LogHistogram(r.Context(), lq, buckets)
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
	l.resp.WriteJSON(w, r, http.StatusOK, out)
}

func (l *API) traceLogs(w http.ResponseWriter, r *http.Request) {
	if _, err := api.ParseQuery(r.URL.RawQuery); err != nil {
		l.fail(w, r, err)
		return
	}
	raw, err := api.PathValue(r, api.ParamTraceID)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	id, err := api.ParseTraceID(raw)
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
func (l *API) checkOrigin(r *http.Request) bool {
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

// TailCloseIdle is the WebSocket close code of a live tail closed after
// TailConfig.IdleTimeout without a record (4000-4999 are for
// applications; 408 recalls HTTP's Request Timeout). A client that
// reconnects on it holds a place again; one that is gone does not.
const TailCloseIdle = 4408

// tailPingPeriod is how often the live tail pings its client; a client
// that answers no ping (nor sends anything) for two periods and the write
// timeout is taken for gone.
const tailPingPeriod = 30 * time.Second

// Quota key prefixes of the live tail (tail.Quota).
const (
	tailKeyAddr  = "addr:"
	tailKeyToken = "token:"
)

// tail streams committed records matching the filter over a WebSocket
// until the client goes away, falls behind by more than WriteTimeout,
// stays without a record for TailLimits.IdleTimeout, or the hub closes.
// Before the upgrade it refuses a bad filter (400), a foreign origin
// (403), a client over its address or token quota (429) and a full hub
// (503).
func (l *API) tail(w http.ResponseWriter, r *http.Request) {
	if l.opts.Tail == nil {
		l.fail(w, r, storage.ErrNotFound)
		return
	}
	q, err := api.ParseQuery(r.URL.RawQuery)
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
		l.fail(w, r, &api.RequestError{Msg: "GET /api/logs/tail needs a WebSocket upgrade"})
		return
	}
	if !l.checkOrigin(r) {
		l.fail(w, r, &handshakeError{status: http.StatusForbidden, err: errors.New("origin not allowed")})
		return
	}
	sub, err := l.opts.Tail.Subscribe(lq.Matches, l.tailQuotas(r)...)
	if err != nil {
		l.fail(w, r, err)
		return
	}
	defer sub.Close()
	conn, err := l.upgrader.Upgrade(w, r, tailResponseHeader(r))
	if err != nil {
		return // the upgrader answered
	}
	defer conn.Close()

	// Read (and discard) what the client sends so that control frames are
	// processed; a read error means the client is gone. The read deadline
	// replaces any the HTTP server set and moves with every pong.
	readWait := 2*tailPingPeriod + l.opts.WriteTimeout
	_ = conn.SetReadDeadline(time.Now().Add(readWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(readWait)) })
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

	ping := time.NewTicker(tailPingPeriod)
	defer ping.Stop()
	var idle <-chan time.Time
	var idleTimer *time.Timer
	if l.limits.IdleTimeout > 0 {
		idleTimer = time.NewTimer(l.limits.IdleTimeout)
		defer idleTimer.Stop()
		idle = idleTimer.C
	}
	send := func(f tailFrame) error {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		_ = conn.SetWriteDeadline(time.Now().Add(l.opts.WriteTimeout))
		return conn.WriteMessage(websocket.TextMessage, b)
	}
	closeWith := func(code int, reason string) {
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
	}
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				closeWith(websocket.CloseGoingAway, "server shutting down")
				return
			}
			if idleTimer != nil {
				idleTimer.Reset(l.limits.IdleTimeout)
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
		case <-idle:
			l.logger.DebugContext(r.Context(), "live tail client idle", "idle_timeout", l.limits.IdleTimeout)
			closeWith(TailCloseIdle, fmt.Sprintf("idle: no matching record for %s", l.limits.IdleTimeout))
			return
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(l.opts.WriteTimeout)); err != nil {
				return
			}
		case <-gone:
			return
		}
	}
}

// tailQuotas returns the quotas a live-tail subscription of r holds: its
// client address and, when it carries one, its bearer token (by digest,
// so the hub never holds a token).
func (l *API) tailQuotas(r *http.Request) []tail.Quota {
	qs := []tail.Quota{{Key: tailKeyAddr + clientAddr(r.RemoteAddr), Limit: l.limits.MaxPerAddress}}
	if tok, ok := requestToken(r); ok {
		sum := sha256.Sum256([]byte(tok))
		qs = append(qs, tail.Quota{Key: tailKeyToken + hex.EncodeToString(sum[:]), Limit: l.limits.MaxPerToken})
	}
	return qs
}

// handshakeError is a live-tail handshake refused before the WebSocket
// upgrade (a foreign origin, or what the upgrader refuses), with the
// status that says why. Its text goes to the client: it holds nothing
// from storage.
type handshakeError struct {
	status int
	err    error
}

func (e *handshakeError) Error() string { return e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// tailQuotaMessage is the answer to a live-tail subscription over one of
// its client's quotas.
func tailQuotaMessage(qe *tail.QuotaError) string {
	who := "from this address"
	if strings.HasPrefix(qe.Quota.Key, tailKeyToken) {
		who = "with this token"
	}
	return fmt.Sprintf("too many live-tail connections %s (at most %d); close one and retry", who, qe.Quota.Limit)
}

// clientAddr returns the address a client is counted by: the host of
// remoteAddr (http.Request.RemoteAddr), an IPv4-mapped IPv6 address as
// IPv4, and an IPv6 address as its /64 network.
func clientAddr(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

// requestToken returns the bearer token r carries, in its Authorization
// header or, for a browser's WebSocket, as a vigil.bearer.* subprotocol.
// The token is not checked here: the read-token middleware did that, and
// with tokens off it only names a quota.
func requestToken(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
		if tok = strings.TrimSpace(tok); ok && strings.EqualFold(scheme, "bearer") && tok != "" {
			return tok, true
		}
		return "", false
	}
	return auth.WebSocketToken(r)
}

// errorStatus maps err to the status and message the client sees: the
// live-tail refusals first (a refused handshake with its own status, a
// client over its quota 429, a full or closed hub 503), then
// api.ErrorStatus.
func errorStatus(err error) (int, string) {
	var he *handshakeError
	var qe *tail.QuotaError
	switch {
	case errors.As(err, &he):
		return he.status, he.Error()
	case errors.As(err, &qe):
		return http.StatusTooManyRequests, tailQuotaMessage(qe)
	case errors.Is(err, tail.ErrTooManySubscribers):
		return http.StatusServiceUnavailable, tail.ErrTooManySubscribers.Error()
	case errors.Is(err, tail.ErrClosed):
		return http.StatusServiceUnavailable, tail.ErrClosed.Error()
	}
	return api.ErrorStatus(err, "resource")
}

// fail answers err with the one error mapping of this package.
func (l *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := errorStatus(err)
	l.resp.LogFailure(r, status, err)
	l.writeJSON(w, r, status, logsEnvelope{Errors: []api.EnvelopeError{{Code: status, Msg: msg}}})
}

func (l *API) writeJSON(w http.ResponseWriter, r *http.Request, status int, body logsEnvelope) {
	if body.Data == nil && len(body.Errors) == 0 {
		body.Data = []logJSON{}
	}
	l.resp.WriteJSON(w, r, status, body)
}
