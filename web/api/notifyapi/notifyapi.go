package notifyapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-obs/vigil/alerting/notify"
	"github.com/vigil-obs/vigil/storage"
)

// Source is what the handlers use; *notify.Notifier implements it. Its
// methods must be safe for concurrent use and return values the handler
// may keep.
type Source interface {
	// Receivers returns the configured receivers, secrets masked.
	Receivers() []notify.ReceiverInfo
	// TestReceiver sends a sample alert through every integration of a
	// receiver; notify.ErrUnknownReceiver when there is no such receiver.
	TestReceiver(ctx context.Context, name string) (notify.Result, error)
	// History returns notification history, newest first.
	History(ctx context.Context, f notify.HistoryFilter) ([]notify.Notification, error)
	// Status tells how the configuration last loaded.
	Status() notify.Status
}

// Routes served by Register.
const (
	PathReceivers     = "/api/vigil/receivers"
	PathTestReceiver  = "/api/vigil/receivers/{name}/test"
	PathNotifications = "/api/vigil/notifications"
	PathStatus        = "/api/vigil/alertmanager/status"
)

// Limits of the history parameters.
const (
	DefaultLimit  = 100
	MaxLimit      = 1000
	maxParamBytes = 4 << 10
)

// StatusClientClosedRequest is the status logged for a request its client
// abandoned.
const StatusClientClosedRequest = 499

// AlertmanagerSource is the optional interface of a Source that also
// serves Alertmanager's API v2 (*notify.Notifier does): Register mounts
// it on the paths amtool and Prometheus use.
type AlertmanagerSource interface {
	APIHandler() http.Handler
}

// AlertmanagerPaths are the mux patterns of Alertmanager's API v2 that
// Register hands to an AlertmanagerSource. They are listed one by one so
// that the rest of /api/v2/ (Zipkin's /api/v2/spans) stays free.
var AlertmanagerPaths = []string{
	"/api/v2/alerts",
	"/api/v2/alerts/",
	"/api/v2/silences",
	"/api/v2/silence/",
	"/api/v2/status",
	"/api/v2/receivers",
}

// API serves a Source over HTTP. It implements web.Mounter. Safe for
// concurrent use.
type API struct {
	src    Source
	logger *slog.Logger
}

// New returns the API over src. A nil logger discards.
func New(src Source, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{src: src, logger: logger.With("component", "notify_api")}
}

// Register serves the API on mux: PathReceivers, PathNotifications and
// PathStatus (GET), PathTestReceiver (POST), and, when the Source is an
// AlertmanagerSource, Alertmanager's API v2 on AlertmanagerPaths.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathReceivers, a.receivers)
	mux.HandleFunc("POST "+PathTestReceiver, a.test)
	mux.HandleFunc("GET "+PathNotifications, a.notifications)
	mux.HandleFunc("GET "+PathStatus, a.status)
	if am, ok := a.src.(AlertmanagerSource); ok {
		h := am.APIHandler()
		for _, p := range AlertmanagerPaths {
			mux.Handle(p, h)
		}
	}
}

// response is the envelope of every answer: data on success, the error
// and, for a bad parameter, its name otherwise.
type response struct {
	Status string `json:"status"`
	Data   any    `json:"data,omitempty"`
	Error  string `json:"error,omitempty"`
	Param  string `json:"param,omitempty"`
}

// paramError is a bad parameter; its text is shown.
type paramError struct {
	param string
	err   error
}

func (e *paramError) Error() string { return fmt.Sprintf("parameter '%s' %v", e.param, e.err) }

// checkParam refuses values no parameter accepts.
func checkParam(name, v string) error {
	switch {
	case len(v) > maxParamBytes:
		return &paramError{name, fmt.Errorf("is longer than %d bytes", maxParamBytes)}
	case !utf8.ValidString(v):
		return &paramError{name, errors.New("is not valid UTF-8")}
	case strings.IndexByte(v, 0) >= 0:
		return &paramError{name, errors.New("contains a NUL byte")}
	}
	return nil
}

func (h *API) ok(w http.ResponseWriter, r *http.Request, data any) {
	h.write(w, r, http.StatusOK, response{Status: "success", Data: data})
}

// fail is the one error mapping of this API: a bad parameter 400 with its
// text, an unknown receiver 404, a deadline 504, a client gone 499, the
// database unavailable 503, anything else 500 with a fixed text, so that
// no storage detail leaks.
func (h *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var pe *paramError
	status, body := http.StatusInternalServerError, response{Status: "error", Error: "internal error"}
	switch {
	case errors.As(err, &pe):
		status, body.Error, body.Param = http.StatusBadRequest, pe.Error(), pe.param
	case errors.Is(err, notify.ErrUnknownReceiver):
		status, body.Error, body.Param = http.StatusNotFound, "receiver not found", "name"
	case errors.Is(err, context.DeadlineExceeded):
		status, body.Error = http.StatusGatewayTimeout, "request timed out"
	case errors.Is(err, context.Canceled):
		status, body.Error = StatusClientClosedRequest, "request canceled"
	case errors.Is(err, storage.ErrUnavailable):
		status, body.Error = http.StatusServiceUnavailable, "storage unavailable, retry later"
	}
	if status >= 500 {
		h.logger.ErrorContext(r.Context(), "notify api request failed", "path", r.URL.Path, "status", status, "err", err)
	}
	h.write(w, r, status, body)
}

func (h *API) write(w http.ResponseWriter, r *http.Request, status int, body response) {
	out, err := json.Marshal(body)
	if err != nil {
		h.logger.ErrorContext(r.Context(), "notify api encode failed", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		out = []byte(`{"status":"error","error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func (h *API) receivers(w http.ResponseWriter, r *http.Request) {
	h.ok(w, r, h.src.Receivers())
}

// testResult is the answer of a receiver test.
type testResult struct {
	Receiver     string              `json:"receiver"`
	OK           bool                `json:"ok"`
	Integrations []integrationResult `json:"integrations"`
}

type integrationResult struct {
	Type       string  `json:"type"`
	Index      int     `json:"index"`
	OK         bool    `json:"ok"`
	Retry      bool    `json:"retry"`
	Message    string  `json:"message"`
	DurationMS float64 `json:"durationMs"`
}

func (h *API) test(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := checkParam("name", name); err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.src.TestReceiver(r.Context(), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := testResult{Receiver: res.Receiver, OK: true, Integrations: make([]integrationResult, 0, len(res.Integrations))}
	for _, in := range res.Integrations {
		out.OK = out.OK && in.OK
		out.Integrations = append(out.Integrations, integrationResult{
			Type: in.Type, Index: in.Index, OK: in.OK, Retry: in.Retry, Message: in.Message,
			DurationMS: float64(in.Duration.Microseconds()) / 1000,
		})
	}
	h.ok(w, r, out)
}

// notification is one history entry as the API shows it.
type notification struct {
	ID          int64     `json:"id"`
	Time        time.Time `json:"time"`
	Receiver    string    `json:"receiver"`
	Integration string    `json:"integration"`
	Index       int       `json:"index"`
	GroupKey    string    `json:"groupKey"`
	Firing      int       `json:"firing"`
	Resolved    int       `json:"resolved"`
	OK          bool      `json:"ok"`
	Retry       bool      `json:"retry"`
	Message     string    `json:"message"`
	DurationMS  float64   `json:"durationMs"`
	Test        bool      `json:"test"`
}

// parseHistoryQuery reads receiver, limit (1..MaxLimit, default
// DefaultLimit) and before (RFC 3339 or Unix seconds, exclusive).
func parseHistoryQuery(r *http.Request) (notify.HistoryFilter, error) {
	f := notify.HistoryFilter{Limit: DefaultLimit}
	q := r.URL.Query()
	for name, vs := range q {
		if err := checkParam(name, name); err != nil {
			return f, &paramError{"name", errors.New("of a parameter is not acceptable")}
		}
		for _, v := range vs {
			if err := checkParam(name, v); err != nil {
				return f, err
			}
		}
	}
	f.Receiver = q.Get("receiver")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return f, &paramError{"limit", fmt.Errorf("must be a whole number from 1 to %d", MaxLimit)}
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return f, &paramError{"before", err}
		}
		f.Before = t
	}
	return f, nil
}

func parseTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	s, err := strconv.ParseFloat(v, 64)
	// Bounds keep the conversion exact and the year within PostgreSQL's
	// range.
	if err != nil || s != s || s < -62135596800 || s > 253402300799 {
		return time.Time{}, errors.New("must be an RFC 3339 time or Unix seconds")
	}
	sec := int64(s)
	return time.Unix(sec, int64((s-float64(sec))*1e9)).UTC(), nil
}

func (h *API) notifications(w http.ResponseWriter, r *http.Request) {
	f, err := parseHistoryQuery(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hs, err := h.src.History(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]notification, 0, len(hs))
	for _, e := range hs {
		out = append(out, notification{
			ID: e.ID, Time: e.Time, Receiver: e.Receiver, Integration: e.Integration, Index: e.Index,
			GroupKey: e.GroupKey, Firing: e.Firing, Resolved: e.Resolved, OK: e.OK, Retry: e.Retry,
			Message: e.Message, DurationMS: float64(e.Duration.Microseconds()) / 1000, Test: e.Test,
		})
	}
	h.ok(w, r, out)
}

func (h *API) status(w http.ResponseWriter, r *http.Request) {
	h.ok(w, r, h.src.Status())
}
