package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/internal/tlstest"
)

// TestServeWebConfig runs `vigil serve --web-config` with client
// certificates required: spans exported by the OTel SDK over TLS on both
// OTLP ports come back from the Jaeger API over HTTPS, and a client
// without a certificate is refused on every port.
func TestServeWebConfig(t *testing.T) {
	files := tlstest.NewFiles(t, "RequireAndVerifyClientCert")
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) { c.WebConfigFile = files.WebConfigPath() })
	clientTLS := files.ClientTLS(files.ClientCert(t, "exporter"))
	ctx := context.Background()

	grpcExp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(ts.grpcAddr),
		otlptracegrpc.WithTLSCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	httpExp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(ts.otlpHTTP), otlptracehttp.WithTLSClientConfig(clientTLS))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for service, tracer := range map[string]trace.Tracer{
		"tls-grpc": sdkProvider(t, grpcExp, "tls-grpc").Tracer("t"),
		"tls-http": sdkProvider(t, httpExp, "tls-http").Tracer("t"),
	} {
		_, span := tracer.Start(ctx, "op of "+service)
		span.End()
		ids = append(ids, span.SpanContext().TraceID().String())
	}

	httpsURL := strings.Replace(ts.httpURL, "http://", "https://", 1)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	for _, id := range ids {
		resp, err := client.Get(httpsURL + "/api/traces/" + id)
		if err != nil {
			t.Fatalf("get trace over https: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("trace %s over https: status %d", id, resp.StatusCode)
		}
	}

	// Without a client certificate every TCP listener refuses the handshake.
	noCert := files.ClientTLS()
	for name, addr := range map[string]string{
		"http": strings.TrimPrefix(ts.httpURL, "http://"), "otlp grpc": ts.grpcAddr, "otlp http": ts.otlpHTTP,
	} {
		conn, err := tls.Dial("tcp", addr, noCert)
		if err == nil {
			// TLS 1.3 reports the refusal on the first read.
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s without a client certificate: got %v, want a certificate error", name, err)
		}
	}
}
