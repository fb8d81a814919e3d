package robots

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/alert"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
)

// clock is a clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// request is one request a robot received.
type request struct {
	Method string
	URL    *url.URL
	Header http.Header
	Body   []byte
}

// robotServer stands in for a chat robot on loopback: it records every
// request and answers with reply.
type robotServer struct {
	*httptest.Server

	mu       sync.Mutex
	requests []request
	reply    func(w http.ResponseWriter, r *http.Request)
}

func newRobotServer(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) *robotServer {
	t.Helper()
	s := &robotServer{reply: reply}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, request{Method: r.Method, URL: r.URL, Header: r.Header.Clone(), Body: body})
		s.mu.Unlock()
		s.reply(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *robotServer) Requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.requests...)
}

// answer replies with a JSON body.
func answer(status int, body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func mustURL(t *testing.T, s string) *amcommoncfg.SecretURL {
	t.Helper()
	u, err := amcommoncfg.ParseURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return &amcommoncfg.SecretURL{URL: u.URL}
}

func newTemplate(t *testing.T) *template.Template {
	t.Helper()
	tmpl, err := template.FromGlobs(nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ExternalURL, _ = url.Parse("https://vigil.example.com")
	return tmpl
}

// notifyContext is the context Alertmanager's pipeline gives a notifier.
func notifyContext(ctx context.Context) context.Context {
	ctx = notify.WithGroupKey(ctx, `{}:{alertname="HighLatency"}`)
	ctx = notify.WithReceiverName(ctx, "oncall-cn")
	ctx = notify.WithGroupLabels(ctx, model.LabelSet{"alertname": "HighLatency"})
	return ctx
}

// firing returns a firing alert with the given labels (pairs) and a
// summary annotation.
func firing(summary string, labels ...string) *alert.Alert {
	ls := model.LabelSet{}
	for i := 0; i+1 < len(labels); i += 2 {
		ls[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
	}
	return alert.New(model.Alert{
		Labels:      ls,
		Annotations: model.LabelSet{"summary": model.LabelValue(summary)},
		StartsAt:    time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC),
		EndsAt:      time.Now().Add(time.Hour),
	}, time.Now(), false)
}

func resolved(summary string, labels ...string) *alert.Alert {
	a := firing(summary, labels...)
	a.EndsAt = time.Date(2026, 3, 14, 9, 20, 0, 0, time.UTC)
	return a
}

// build makes the notifier of the first integration of r.
func build(t *testing.T, r Receiver, opts Options) notify.Integration {
	t.Helper()
	ints, err := r.Integrations("oncall-cn", 0, newTemplate(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(ints) != 1 {
		t.Fatalf("got %d integrations, want 1", len(ints))
	}
	return ints[0]
}

func decodeBody(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	return m
}

// field returns the value at a dotted path of a decoded JSON body
// ("card.elements.0.content").
func field(t *testing.T, m map[string]any, path string) any {
	t.Helper()
	var v any = m
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				t.Fatalf("no %q in %s", p, path)
			}
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				t.Fatalf("no index %d in %s", i, path)
			}
			v = x[i]
		default:
			t.Fatalf("%s: %q is not an object or array", path, p)
		}
	}
	return v
}

func stringField(t *testing.T, m map[string]any, path string) string {
	t.Helper()
	s, ok := field(t, m, path).(string)
	if !ok {
		t.Fatalf("%s is %T, not a string", path, field(t, m, path))
	}
	return s
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
