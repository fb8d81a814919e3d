package jaeger

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	zipkinhttp "github.com/openzipkin/zipkin-go/reporter/http"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/internal/tlsconfig"
	"github.com/vigil-obs/vigil/internal/tlstest"
)

// httpsClient returns a client with TLS configuration c whose idle
// connections close with the test.
func httpsClient(t *testing.T, c *tls.Config) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: c, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestTLS serves every TCP transport over TLS from one web config: the
// collector's HTTP thrift and gRPC APIs and Zipkin (through zipkin-go's
// own HTTP reporter) accept clients trusting the CA and refuse plain
// text; the UDP ports stay as they are.
func TestTLS(t *testing.T) {
	files := tlstest.NewFiles(t, "")
	cfg, err := tlsconfig.Load(files.WebConfigPath(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(_ *Config, o *Options) { o.TLS = cfg.ServerTLS() })
	client := httpsClient(t, files.ClientTLS())

	t.Run("collector http", func(t *testing.T) {
		resp, err := client.Post("https://"+b.r.HTTPAddr()+"/api/traces", "application/x-thrift",
			bytes.NewReader(thriftBody(t, simpleBatch("svc", "http-tls", 1, 2))))
		if err != nil {
			t.Fatalf("POST /api/traces over TLS: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /api/traces over TLS: %s %s", resp.Status, body)
		}
		code, _, _ := post(t, "http://"+b.r.HTTPAddr()+"/api/traces", "application/x-thrift", thriftBody(t, simpleBatch("svc", "plain", 2, 1)), nil)
		if code != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: %d, want 400", code)
		}
	})

	t.Run("collector grpc", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cc := collectorClient(t, b.r.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(files.ClientTLS())))
		if _, err := cc.PostSpans(ctx, &api_v2.PostSpansRequest{Batch: simpleModelBatch("svc", "grpc-tls", 3, 3)}); err != nil {
			t.Fatalf("PostSpans over TLS: %v", err)
		}
		_, err := collectorClient(t, b.r.GRPCAddr()).PostSpans(ctx, &api_v2.PostSpansRequest{Batch: simpleModelBatch("svc", "plain", 4, 1)})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("plain-text gRPC to the TLS port: %v, want Unavailable", err)
		}
	})

	t.Run("zipkin", func(t *testing.T) {
		rep := zipkinhttp.NewReporter("https://"+b.r.ZipkinAddr()+"/api/v2/spans", zipkinhttp.Client(client))
		start := time.Now().Add(-time.Second)
		for i := range 2 {
			rep.Send(zipkinmodel.SpanModel{
				SpanContext:   zipkinmodel.SpanContext{TraceID: zipkinmodel.TraceID{Low: 5}, ID: zipkinmodel.ID(i + 1)},
				Name:          "zipkin-tls",
				Timestamp:     start,
				Duration:      time.Millisecond,
				LocalEndpoint: &zipkinmodel.Endpoint{ServiceName: "zsvc"},
			})
		}
		if err := rep.Close(); err != nil {
			t.Fatalf("zipkin reporter over TLS: %v", err)
		}
	})

	t.Run("udp stays plain", func(t *testing.T) {
		sendUDP(t, b.r.UDPCompactAddr(), agentMessage(t, simpleBatch("svc", "udp", 6, 1), true))
		waitFor(t, "udp span", func() bool { return len(b.rec.SpanNames()) == 8 })
	})

	counts := map[string]int{}
	for _, n := range b.rec.SpanNames() {
		counts[n]++
	}
	want := map[string]int{"http-tls-a": 1, "http-tls-b": 1, "grpc-tls": 3, "zipkin-tls": 2, "udp": 1}
	for name, n := range want {
		if counts[name] != n {
			t.Errorf("stored %d spans named %s, want %d (all: %v)", counts[name], name, n, counts)
		}
	}
	if counts["plain"] != 0 {
		t.Errorf("a plain-text request was stored")
	}
}
