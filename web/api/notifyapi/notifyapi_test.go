package notifyapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/vigil-obs/vigil/alerting/notify"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/alertstore"
	"github.com/vigil-obs/vigil/web/api/notifyapi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// setup runs a real notifier over a fresh database, with receiver "team"
// made of a webhook answering 200 and one answering 503, and serves the
// API on a loopback server.
func setup(t *testing.T) (api string, n *notify.Notifier) {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	if _, err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(good.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "maintenance")
	}))
	t.Cleanup(bad.Close)
	path := filepath.Join(t.TempDir(), "am.yml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`
route:
  receiver: team
receivers:
- name: team
  webhook_configs:
  - url: %s/token-in-path
  - url: %s
`, good.URL, bad.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := notify.New(notify.Config{AlertmanagerConfig: path, ExternalURL: "http://vigil.example/"},
		notify.Options{Store: alertstore.New(pool), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	mux := http.NewServeMux()
	notifyapi.New(n, nil).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, n
}

type envelope struct {
	Status string          `json:"status"`
	Data   json.RawMessage `json:"data"`
	Error  string          `json:"error"`
	Param  string          `json:"param"`
}

func call(t *testing.T, method, url string) (int, envelope) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q", method, url, ct)
	}
	var e envelope
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, e
}

func TestAPI(t *testing.T) {
	api, _ := setup(t)

	code, e := call(t, "GET", api+notifyapi.PathReceivers)
	var rs []notify.ReceiverInfo
	if err := json.Unmarshal(e.Data, &rs); err != nil || code != 200 {
		t.Fatalf("receivers: %d %v", code, err)
	}
	if len(rs) != 1 || rs[0].Name != "team" || len(rs[0].Integrations) != 2 || rs[0].Integrations[1].Type != "webhook" || rs[0].Integrations[1].Index != 1 {
		t.Fatalf("receivers = %+v", rs)
	}
	if strings.Contains(string(e.Data), "token-in-path") || strings.Contains(string(e.Data), "127.0.0.1") {
		t.Fatalf("receivers leak a URL: %s", e.Data)
	}

	code, e = call(t, "POST", api+"/api/vigil/receivers/team/test")
	var res struct {
		Receiver     string `json:"receiver"`
		OK           bool   `json:"ok"`
		Integrations []struct {
			Type    string `json:"type"`
			Index   int    `json:"index"`
			OK      bool   `json:"ok"`
			Retry   bool   `json:"retry"`
			Message string `json:"message"`
		} `json:"integrations"`
	}
	if err := json.Unmarshal(e.Data, &res); err != nil || code != 200 {
		t.Fatalf("test: %d %v %s", code, err, e.Error)
	}
	if res.Receiver != "team" || res.OK || len(res.Integrations) != 2 || !res.Integrations[0].OK ||
		res.Integrations[1].OK || !res.Integrations[1].Retry || !strings.Contains(res.Integrations[1].Message, "503") ||
		!strings.Contains(res.Integrations[1].Message, "maintenance") || strings.Contains(res.Integrations[1].Message, "127.0.0.1") {
		t.Fatalf("test result = %+v", res)
	}

	code, e = call(t, "GET", api+notifyapi.PathNotifications+"?receiver=team&limit=10")
	var hs []struct {
		Receiver    string    `json:"receiver"`
		Integration string    `json:"integration"`
		Index       int       `json:"index"`
		OK          bool      `json:"ok"`
		Test        bool      `json:"test"`
		Time        time.Time `json:"time"`
		Message     string    `json:"message"`
	}
	if err := json.Unmarshal(e.Data, &hs); err != nil || code != 200 {
		t.Fatalf("notifications: %d %v", code, err)
	}
	if len(hs) != 2 || !hs[0].Test || hs[0].Receiver != "team" {
		t.Fatalf("history = %+v", hs)
	}
	// before pages back; limit bounds.
	before := hs[0].Time.Add(time.Nanosecond * 1000).Format(time.RFC3339Nano)
	_, e = call(t, "GET", api+notifyapi.PathNotifications+"?limit=1&before="+before)
	if err := json.Unmarshal(e.Data, &hs); err != nil || len(hs) != 1 {
		t.Fatalf("limit 1: %s %v", e.Data, err)
	}
	_, e = call(t, "GET", api+notifyapi.PathNotifications+"?before=0")
	if err := json.Unmarshal(e.Data, &hs); err != nil || len(hs) != 0 {
		t.Fatalf("before 1970: %s %v", e.Data, err)
	}
	_, e = call(t, "GET", api+notifyapi.PathNotifications+"?receiver=other")
	if err := json.Unmarshal(e.Data, &hs); err != nil || len(hs) != 0 {
		t.Fatalf("other receiver: %s %v", e.Data, err)
	}

	// Alertmanager's API v2 is mounted beside it.
	resp, err := http.Get(api + "/api/v2/status")
	if err != nil {
		t.Fatal(err)
	}
	var amStatus struct {
		Config struct {
			Original string `json:"original"`
		} `json:"config"`
	}
	err = json.NewDecoder(resp.Body).Decode(&amStatus)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.Contains(amStatus.Config.Original, "team") || strings.Contains(amStatus.Config.Original, "token-in-path") {
		t.Fatalf("alertmanager status: %d %v %+v", resp.StatusCode, err, amStatus)
	}
	resp, err = http.Get(api + "/api/v2/spans")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/api/v2/spans answered %d, want it left to others", resp.StatusCode)
	}

	code, e = call(t, "GET", api+notifyapi.PathStatus)
	var st notify.Status
	if err := json.Unmarshal(e.Data, &st); err != nil || code != 200 {
		t.Fatalf("status: %d %v", code, err)
	}
	if !strings.HasSuffix(st.Source, "am.yml") || st.Error != "" || st.LastSuccess.IsZero() {
		t.Fatalf("status = %+v", st)
	}
}

func TestAPIErrors(t *testing.T) {
	api, _ := setup(t)
	for _, c := range []struct {
		method, path string
		status       int
		param        string
	}{
		{"POST", "/api/vigil/receivers/nobody/test", 404, "name"},
		{"POST", "/api/vigil/receivers/%FF/test", 400, "name"},
		{"POST", "/api/vigil/receivers/a%00b/test", 400, "name"},
		{"GET", notifyapi.PathNotifications + "?limit=0", 400, "limit"},
		{"GET", notifyapi.PathNotifications + "?limit=1001", 400, "limit"},
		{"GET", notifyapi.PathNotifications + "?limit=ten", 400, "limit"},
		{"GET", notifyapi.PathNotifications + "?before=yesterday", 400, "before"},
		{"GET", notifyapi.PathNotifications + "?before=1e300", 400, "before"},
		{"GET", notifyapi.PathNotifications + "?before=NaN", 400, "before"},
		{"GET", notifyapi.PathNotifications + "?receiver=%00", 400, "receiver"},
		{"GET", notifyapi.PathNotifications + "?receiver=" + strings.Repeat("x", 5000), 400, "receiver"},
	} {
		t.Run(c.method+" "+c.path[:min(len(c.path), 60)], func(t *testing.T) {
			code, e := call(t, c.method, api+c.path)
			if code != c.status || e.Status != "error" || e.Param != c.param || e.Error == "" {
				t.Fatalf("got %d %+v, want %d with param %q", code, e, c.status, c.param)
			}
		})
	}
}
