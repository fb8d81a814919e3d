package consulapi_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/vigil-obs/vigil/registry/consulapi"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// times matches the timestamps of Vigil's own check fields, which differ
// per run.
var times = regexp.MustCompile(`"(StatusSince|LastCheck)":"[^"]*"`)

// TestGoldenShapes pins the JSON of the read endpoints: the shapes Consul's
// clients decode. Refresh with -update.
func TestGoldenShapes(t *testing.T) {
	r := startReplica(t, database(t), consulapi.Options{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer target.Close()
	if err := r.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Tags: []string{"v1"},
		Address: "10.0.0.1", Port: 8080, Meta: map[string]string{"version": "1.2"},
		Checks: api.AgentServiceChecks{
			{CheckID: "web-ttl", Name: "ttl", TTL: "30s", Notes: "heartbeat"},
			{CheckID: "web-http", HTTP: target.URL + "/health", Interval: "1h", Timeout: "2s", DeregisterCriticalServiceAfter: "10m",
				Header: map[string][]string{"X-A": {"b"}}},
		}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the HTTP check's first run", func() bool { return checkStatus(t, r.client, "web-http") == "passing" })
	for name, path := range map[string]string{
		"health_service":  "/v1/health/service/web",
		"catalog_service": "/v1/catalog/service/web",
		"catalog_list":    "/v1/catalog/services",
		"agent_services":  "/v1/agent/services",
		"agent_checks":    "/v1/agent/checks",
		"agent_self":      "/v1/agent/self",
		"catalog_nodes":   "/v1/catalog/nodes",
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Get(r.srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(resp)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			masked := times.ReplaceAllString(body, `"$1":"<time>"`)
			masked = strings.ReplaceAll(masked, target.Listener.Addr().String(), "127.0.0.1:<port>")
			var out bytes.Buffer
			if err := json.Indent(&out, []byte(masked), "", "  "); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			file := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("GET %s:\n%s\nwant (%s):\n%s", path, out.Bytes(), file, want)
			}
		})
	}
}
