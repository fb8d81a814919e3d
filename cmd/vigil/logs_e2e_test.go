package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

// TestLogsWiring checks that `vigil serve` wires the log signal: an OTLP
// log export is stored and found by /api/logs and by its trace id.
func TestLogsWiring(t *testing.T) {
	ts := startServer(t, pgtest.NewDatabase(t))
	traceID := "5b8efff798038103d269b633813fc60c"
	body := fmt.Sprintf(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"user-service"}}]},
		"scopeLogs":[{"logRecords":[{"timeUnixNano":"%d","severityNumber":17,"severityText":"ERROR",
		"body":{"stringValue":"用户登录失败: connection refused"},"traceId":%q,"spanId":"eee19b7ec3c1b174",
		"attributes":[{"key":"requestId","value":{"stringValue":"req-42"}}]}]}]}]}`, time.Now().UnixNano(), traceID)
	resp, err := http.Post("http://"+ts.otlpHTTP+"/v1/logs", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("export logs: %d %s", resp.StatusCode, b)
	}
	for _, q := range []url.Values{
		{"q": {"登录"}},
		{"q": {`"connection refused"`}, "service": {"user-service"}, "severity": {"error"}},
		{"trace_id": {traceID}},
		{"attr.requestId": {"req-42"}},
	} {
		got, code := getJSON[struct {
			Data []struct {
				Body    any    `json:"body"`
				TraceID string `json:"trace_id"`
			} `json:"data"`
		}](t, ts.httpURL+"/api/logs?"+q.Encode())
		if code != 200 || len(got.Data) != 1 || got.Data[0].TraceID != traceID {
			t.Errorf("GET /api/logs?%s: %d %+v", q.Encode(), code, got)
		}
	}
	got, code := getJSON[struct {
		Data []any `json:"data"`
	}](t, ts.httpURL+"/api/traces/"+traceID+"/logs")
	if code != 200 || len(got.Data) != 1 {
		t.Errorf("trace logs: %d %+v", code, got)
	}

	type histogram struct {
		Data []struct {
			Time  string `json:"time"`
			Count int64  `json:"count"`
		} `json:"data"`
		StepSeconds float64 `json:"step_seconds"`
		Approximate bool    `json:"approximate"`
	}
	for _, c := range []struct {
		q      string
		total  int64
		approx bool
	}{
		{"service=user-service&buckets=12&start=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), 1, false},
		{"q=nothing-like-this", 0, false},
		{"attr.requestId=req-42", 1, true},
	} {
		h, code := getJSON[histogram](t, ts.httpURL+"/api/logs/histogram?"+c.q)
		var total int64
		for _, b := range h.Data {
			total += b.Count
		}
		if code != 200 || total != c.total || h.Approximate != c.approx || len(h.Data) < 12 || h.StepSeconds <= 0 {
			t.Errorf("histogram %s: %d, total %d (want %d), %d buckets of %gs, approximate %v",
				c.q, code, total, c.total, len(h.Data), h.StepSeconds, h.Approximate)
		}
	}
	if _, code := getJSON[map[string]any](t, ts.httpURL+"/api/logs/histogram?buckets=0"); code != 400 {
		t.Errorf("buckets=0: %d, want 400", code)
	}
}
