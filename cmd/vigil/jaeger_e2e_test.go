package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

// TestZipkinWiring checks that `vigil serve` wires the Jaeger/Zipkin
// receivers into the span pipeline: a Zipkin v2 span posted to the
// Zipkin port reads back through the Jaeger query API.
func TestZipkinWiring(t *testing.T) {
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) {
		c.Jaeger = JaegerConfig{UDPCompactAddress: "127.0.0.1:0", UDPBinaryAddress: "127.0.0.1:0",
			HTTPAddress: "127.0.0.1:0", GRPCAddress: "127.0.0.1:0"}
		c.Zipkin = ZipkinConfig{Address: "127.0.0.1:0"}
	})
	if ts.jaeger == nil || ts.jaeger.ZipkinAddr() == "" || ts.jaeger.UDPCompactAddr() == "" {
		t.Fatal("jaeger receivers not started")
	}
	now := time.Now().UnixMicro()
	body := fmt.Sprintf(`[{"traceId":"86154a4ba6e91385","id":"4d1e00c0db9010db","name":"get /users/{id}",
		"kind":"SERVER","timestamp":%d,"duration":1500,"localEndpoint":{"serviceName":"legacy-service"},
		"tags":{"http.method":"GET"}}]`, now)
	resp, err := http.Post("http://"+ts.jaeger.ZipkinAddr()+"/api/v2/spans", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("zipkin post: %d, want 202", resp.StatusCode)
	}
	got, code := getJSON[jaegerResponse[[]jTrace]](t, ts.httpURL+"/api/traces/86154a4ba6e91385")
	if code != 200 || len(got.Data) != 1 || len(got.Data[0].Spans) != 1 {
		t.Fatalf("trace: %d %+v", code, got)
	}
	sp := got.Data[0].Spans[0]
	if sp.OperationName != "get /users/{id}" || got.Data[0].Processes[sp.ProcessID].ServiceName != "legacy-service" {
		t.Fatalf("span %+v processes %+v", sp, got.Data[0].Processes)
	}
	if v, _ := tagValue(sp.Tags, "span.kind"); v != "server" {
		t.Errorf("span.kind = %v", v)
	}
}
