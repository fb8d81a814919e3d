package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

// TestTokens runs Vigil with ingest and read tokens: requests without the
// right token are refused before they reach the pipeline or the store,
// probes and /metrics stay open.
func TestTokens(t *testing.T) {
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) {
		c.Auth.IngestTokens = []string{"in-secret"}
		c.Auth.ReadTokens = []string{"read-secret"}
	})
	conn, err := grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "secured")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1, 2, 3})
	sp.SetSpanID(pcommon.SpanID{4, 5, 6})
	sp.SetName("op")
	now := pcommon.NewTimestampFromTime(time.Now())
	sp.SetStartTimestamp(now)
	sp.SetEndTimestamp(now)
	req := ptraceotlp.NewExportRequestFromTraces(td)

	ctx := context.Background()
	for _, tok := range []string{"", "Bearer wrong"} {
		c := ctx
		if tok != "" {
			c = metadata.AppendToOutgoingContext(ctx, "authorization", tok)
		}
		if _, err := client.Export(c, req); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("export with %q: got %v, want Unauthenticated", tok, err)
		}
	}
	if _, err := client.Export(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer in-secret"), req); err != nil {
		t.Fatalf("export with token: %v", err)
	}
	resp, err := http.Post("http://"+ts.otlpHTTP+"/v1/traces", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("OTLP/HTTP without token: %d, want 401", resp.StatusCode)
	}

	get := func(path, tok string) int {
		r, _ := http.NewRequest(http.MethodGet, ts.httpURL+path, nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		path, tok string
		want      int
	}{
		{"/api/services", "", 401},
		{"/api/services", "in-secret", 401},
		{"/api/services", "read-secret", 200},
		{"/api/traces/01020300000000000000000000000000", "read-secret", 200},
		{"/debug/pprof/", "", 401},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 200},
	}
	for _, c := range cases {
		if got := get(c.path, c.tok); got != c.want {
			t.Errorf("GET %s with token %q: %d, want %d", c.path, c.tok, got, c.want)
		}
	}
}
