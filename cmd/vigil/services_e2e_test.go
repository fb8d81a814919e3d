package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

func TestServiceCatalog(t *testing.T) {
	ts := startServer(t, pgtest.NewDatabase(t))
	before := time.Now().Add(-time.Second)
	now := time.Now().UnixNano()
	post := func(path, body string) {
		t.Helper()
		resp, err := http.Post("http://"+ts.otlpHTTP+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
	}
	post("/v1/logs", fmt.Sprintf(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"user-service"}}]},
		"scopeLogs":[{"logRecords":[{"timeUnixNano":"%d","body":{"stringValue":"hello"}}]}]}]}`, now))
	post("/v1/traces", fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"order-service"}}]},
		"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /orders",
		"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}`, now, now+1000))

	type service struct {
		Name     string   `json:"name"`
		LastSeen string   `json:"last_seen"`
		Signals  []string `json:"signals"`
	}
	got, code := getJSON[jaegerResponse[[]service]](t, ts.httpURL+"/api/vigil/services")
	if code != 200 || len(got.Data) != 2 || got.Total != 2 {
		t.Fatalf("GET /api/vigil/services: %d %+v", code, got)
	}
	want := map[string]string{"order-service": "traces", "user-service": "logs"}
	for i, s := range got.Data {
		if i > 0 && got.Data[i-1].Name >= s.Name {
			t.Errorf("not sorted by name: %+v", got.Data)
		}
		if len(s.Signals) != 1 || s.Signals[0] != want[s.Name] {
			t.Errorf("%s: signals %v, want [%s]", s.Name, s.Signals, want[s.Name])
		}
		seen, err := time.Parse(time.RFC3339Nano, s.LastSeen)
		if err != nil || seen.Before(before.Add(-time.Minute)) || seen.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s: last_seen %q (%v)", s.Name, s.LastSeen, err)
		}
	}
}
