package otlp

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/internal/tlsconfig"
	"github.com/vigil-obs/vigil/internal/tlstest"
)

// setupTLS starts a Receiver serving both transports with the TLS
// configuration of a fresh web config (client_auth_type clientAuth, or
// none when empty).
func setupTLS(t *testing.T, clientAuth string) (*bundle, *tlstest.Files) {
	t.Helper()
	files := tlstest.NewFiles(t, clientAuth)
	cfg, err := tlsconfig.Load(files.WebConfigPath(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return setup(t, func(_ *Config, o *Options) { o.TLS = cfg.ServerTLS() }), files
}

// tlsExporter returns an OTel SDK exporter of the transport ("grpc" or
// "http") to b with the client TLS configuration c, retries off.
func tlsExporter(ctx context.Context, t *testing.T, b *bundle, transport string, c *tls.Config) sdktrace.SpanExporter {
	t.Helper()
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch transport {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(b.r.GRPCAddr()),
			otlptracegrpc.WithTLSCredentials(credentials.NewTLS(c)),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	case "http":
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(b.r.HTTPAddr()),
			otlptracehttp.WithTLSClientConfig(c),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	if err != nil {
		t.Fatalf("new %s exporter: %v", transport, err)
	}
	return exp
}

// export sends the SDK's two sample spans through a new exporter and
// shuts it down.
func export(t *testing.T, b *bundle, transport string, c *tls.Config, now time.Time) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exp := tlsExporter(ctx, t, b, transport, c)
	err := exp.ExportSpans(ctx, sdkSpans(now).Snapshots())
	if shutErr := exp.Shutdown(ctx); shutErr != nil {
		t.Errorf("%s exporter shutdown: %v", transport, shutErr)
	}
	return err
}

func TestTLSSDKExporters(t *testing.T) {
	for _, transport := range []string{"grpc", "http"} {
		t.Run(transport, func(t *testing.T) {
			b, files := setupTLS(t, "")
			now := time.Now().Truncate(time.Microsecond)
			if err := export(t, b, transport, files.ClientTLS(), now); err != nil {
				t.Fatalf("ExportSpans over TLS: %v", err)
			}
			checkSDKSpans(t, recordedSpans(b.rec), now)

			// An exporter that does not trust the server's CA is refused.
			other := tlstest.NewCA(t, "other CA")
			if err := export(t, b, transport, &tls.Config{RootCAs: other.Pool()}, now); err == nil {
				t.Error("ExportSpans succeeded with a client trusting another CA")
			}
			if n := len(recordedSpans(b.rec)); n != 2 {
				t.Errorf("consumer holds %d spans, want the first 2 only", n)
			}
		})
	}
}

func TestTLSPlainTextRefused(t *testing.T) {
	b, _ := setupTLS(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := b.grpcClient(t).Export(ctx, newRequest("plain"))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("plain-text gRPC to the TLS port: %v, want Unavailable", err)
	}
	resp, body := b.post(t, mustProto(t, newRequest("plain")), nil)
	if resp.StatusCode != 400 {
		t.Errorf("plain-text HTTP to the TLS port: %d %s, want 400", resp.StatusCode, body)
	}
	if n := b.rec.Calls(); n != 0 {
		t.Errorf("consumer called %d times", n)
	}
}

func TestTLSClientCertRequired(t *testing.T) {
	for _, transport := range []string{"grpc", "http"} {
		t.Run(transport, func(t *testing.T) {
			b, files := setupTLS(t, "RequireAndVerifyClientCert")
			other := tlstest.NewCA(t, "other client CA")
			tests := []struct {
				name   string
				certs  []tls.Certificate
				accept bool
			}{
				{"cert from the client CA", []tls.Certificate{files.ClientCert(t, "collector-1")}, true},
				{"no cert", nil, false},
				{"cert from another CA", []tls.Certificate{other.IssueClient(t, "intruder").TLS(t)}, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := b.rec.Calls()
					err := export(t, b, transport, files.ClientTLS(tt.certs...), time.Now())
					switch {
					case tt.accept && err != nil:
						t.Fatalf("ExportSpans: %v", err)
					case !tt.accept && err == nil:
						t.Fatal("ExportSpans succeeded, want the handshake refused")
					case !tt.accept && b.rec.Calls() != before:
						t.Fatal("the consumer was called for a refused client")
					}
				})
			}
		})
	}
}

// TestTLSReload replaces the certificate and key on disk: both transports
// serve the new pair at the next handshake, and exporters keep working.
func TestTLSReload(t *testing.T) {
	b, files := setupTLS(t, "")
	h2 := func() *tls.Config {
		c := files.ClientTLS()
		c.NextProtos = []string{"h2"}
		return c
	}
	for _, addr := range []string{b.r.GRPCAddr(), b.r.HTTPAddr()} {
		if got := tlstest.PeerCertificate(t, addr, h2()); got.Subject.CommonName != "server-1" {
			t.Fatalf("%s serves %q, want server-1", addr, got.Subject.CommonName)
		}
	}
	rotated := files.Rotate(t, "server-2")
	for _, addr := range []string{b.r.GRPCAddr(), b.r.HTTPAddr()} {
		got := tlstest.PeerCertificate(t, addr, h2())
		if got.Subject.CommonName != "server-2" || got.SerialNumber.Cmp(rotated.Leaf.SerialNumber) != 0 {
			t.Fatalf("%s serves %q serial %s after rotation, want server-2 serial %s", addr, got.Subject.CommonName, got.SerialNumber, rotated.Leaf.SerialNumber)
		}
	}
	for _, transport := range []string{"grpc", "http"} {
		if err := export(t, b, transport, files.ClientTLS(), time.Now()); err != nil {
			t.Errorf("%s export after rotation: %v", transport, err)
		}
	}
}
