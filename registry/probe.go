package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigil-obs/vigil/storage/postgres/registrystore"
)

// userAgent is sent by HTTP checks, as Consul sends its own.
const userAgent = "Vigil Health Check"

// prober runs the active checks. It is safe for concurrent use.
type prober struct {
	client, insecureClient *http.Client
}

func newProber() *prober {
	tr := func(skip bool) *http.Transport {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DisableKeepAlives = true // a check must see the target answer a new connection
		if skip {
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the check's TLSSkipVerify asks for it
		}
		return t
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &prober{
		client:         &http.Client{Transport: tr(false), CheckRedirect: noRedirect},
		insecureClient: &http.Client{Transport: tr(true), CheckRedirect: noRedirect},
	}
}

// check runs c once within its timeout and returns its status and output.
func (p *prober) check(ctx context.Context, c Check) (status, output string) {
	d := c.Definition
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	switch c.Kind {
	case KindHTTP:
		return p.http(ctx, d)
	case KindTCP:
		return tcp(ctx, d.TCP)
	case KindGRPC:
		return grpcHealth(ctx, d)
	}
	return StatusCritical, "unknown check kind " + c.Kind
}

// http passes on a 2xx answer, warns on 429 and fails on anything else,
// as Consul does; the output holds the start of the body.
func (p *prober) http(ctx context.Context, d Definition) (string, string) {
	var body io.Reader
	if d.Body != "" {
		body = strings.NewReader(d.Body)
	}
	req, err := http.NewRequestWithContext(ctx, d.Method, d.HTTP, body)
	if err != nil {
		return StatusCritical, err.Error()
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "text/plain, text/*, */*")
	for k, vs := range d.Header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h
	}
	client := p.client
	if d.TLSSkipVerify {
		client = p.insecureClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return StatusCritical, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, registrystore.MaxOutput))
	output := fmt.Sprintf("HTTP %s %s: %s Output: %s", d.Method, d.HTTP, resp.Status, out)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return StatusPassing, output
	case resp.StatusCode == http.StatusTooManyRequests:
		return StatusWarning, output
	}
	return StatusCritical, output
}

// tcp passes when a connection opens.
func tcp(ctx context.Context, addr string) (string, string) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return StatusCritical, err.Error()
	}
	_ = conn.Close()
	return StatusPassing, fmt.Sprintf("TCP connect %s: Success", addr)
}

// grpcHealth asks grpc.health.v1.Health/Check at "host:port[/service]"
// and passes when the answer is SERVING.
func grpcHealth(ctx context.Context, d Definition) (string, string) {
	addr, service, _ := strings.Cut(d.GRPC, "/")
	creds := insecure.NewCredentials()
	if d.GRPCUseTLS {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: d.TLSSkipVerify}) //nolint:gosec // the check's TLSSkipVerify asks for it
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return StatusCritical, err.Error()
	}
	defer func() { _ = conn.Close() }()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return StatusCritical, fmt.Sprintf("gRPC check %s: %v", d.GRPC, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return StatusCritical, fmt.Sprintf("gRPC check %s: status %s", d.GRPC, resp.GetStatus())
	}
	return StatusPassing, fmt.Sprintf("gRPC check %s: success", d.GRPC)
}
