package receiver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigil-obs/vigil/internal/inflight"
)

// blocking is an HTTP handler and a gRPC health server whose calls wait
// for release (or their context).
type blocking struct {
	healthpb.UnimplementedHealthServer
	entered chan struct{}
	release chan struct{}
}

func newBlocking() *blocking {
	return &blocking{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (b *blocking) wait(ctx context.Context) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := b.wait(r.Context()); err != nil {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (b *blocking) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if err := b.wait(ctx); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// testGroup is a Group of one gRPC and one HTTP server on loopback.
type testGroup struct {
	g    *Group
	grpc *GRPCServer
	http *HTTPServer
}

func newTestGroup(t *testing.T, shutdown time.Duration, grpcSvc healthpb.HealthServer, h http.Handler) *testGroup {
	t.Helper()
	cfg := Config{ShutdownTimeout: shutdown}.WithDefaults()
	budget, err := inflight.New(64<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := ListenGRPC("127.0.0.1:0", cfg, GRPCOptions{Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	healthpb.RegisterHealthServer(gs.Server, grpcSvc)
	hs, err := ListenHTTP("127.0.0.1:0", h, cfg, HTTPOptions{})
	if err != nil {
		_ = gs.Close()
		t.Fatal(err)
	}
	g := NewGroup("test", cfg.ShutdownTimeout)
	g.Add("test grpc", gs)
	g.Add("test http", hs)
	return &testGroup{g: g, grpc: gs, http: hs}
}

func (tg *testGroup) run() (cancel func(), done <-chan error) {
	ctx, cancelFn := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tg.g.Run(ctx) }()
	return cancelFn, errc
}

func checkHealth(t *testing.T, addr string) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	return err
}

func get(addr string) error {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return errors.New(resp.Status)
	}
	return nil
}

func TestGroupCloseWithoutRun(t *testing.T) {
	tg := newTestGroup(t, time.Second, health.NewServer(), http.NotFoundHandler())
	addrs := []string{tg.grpc.Addr(), tg.http.Addr()}
	if err := tg.g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tg.g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("address %s still bound after Close: %v", a, err)
		}
		ln.Close()
	}
}

func TestGroupRunTwice(t *testing.T) {
	tg := newTestGroup(t, time.Second, health.NewServer(), http.NotFoundHandler())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tg.g.Run(ctx); err != nil {
		t.Fatalf("Run with a cancelled context = %v, want nil", err)
	}
	if err := tg.g.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "run test receiver: already run") {
		t.Fatalf("second Run = %v", err)
	}
	if err := tg.g.Close(); err != nil {
		t.Fatalf("Close after Run: %v", err)
	}
}

// TestGroupDrains checks that cancelling Run lets the requests in flight
// of both transports finish, and that Run returns only afterwards, with
// both listeners closed.
func TestGroupDrains(t *testing.T) {
	b := newBlocking()
	tg := newTestGroup(t, 10*time.Second, b, b)
	cancel, done := tg.run()
	reqs := make(chan error, 2)
	go func() { reqs <- checkHealth(t, tg.grpc.Addr()) }()
	go func() { reqs <- get(tg.http.Addr()) }()
	<-b.entered
	<-b.entered
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with requests in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(b.release)
	for range 2 {
		if err := <-reqs; err != nil {
			t.Fatalf("request in flight failed: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, a := range []string{tg.grpc.Addr(), tg.http.Addr()} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s still accepts connections after Run returned", a)
		}
	}
}

// TestGroupShutdownBound checks that requests stuck past the shutdown
// timeout are cut, on both transports, and reported.
func TestGroupShutdownBound(t *testing.T) {
	b := newBlocking()
	tg := newTestGroup(t, 200*time.Millisecond, b, b)
	cancel, done := tg.run()
	reqs := make(chan error, 2)
	go func() { reqs <- checkHealth(t, tg.grpc.Addr()) }()
	go func() { reqs <- get(tg.http.Addr()) }()
	<-b.entered
	<-b.entered
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		for _, want := range []string{"stop test grpc: requests still running after 200ms", "stop test http: requests still running after 200ms"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Run = %v, want %q", err, want)
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Run took %s to return", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	for range 2 {
		if err := <-reqs; err == nil {
			t.Error("stuck request succeeded")
		}
	}
	close(b.release)
}

// TestHTTPShutdownWithSilentConnection checks that a connection that was
// opened but sent no request does not make a shutdown "unfinished":
// http.Server.Shutdown waits up to 5 s for such a connection, and no
// request is cut by closing it.
func TestHTTPShutdownWithSilentConnection(t *testing.T) {
	cfg := Config{}.WithDefaults()
	noContent := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	hs, err := ListenHTTP("127.0.0.1:0", noContent, cfg, HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve() }()
	conn, err := net.Dial("tcp", hs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A request on another connection proves the server accepts, so the
	// silent connection has been accepted too by the time Shutdown runs.
	if err := get(hs.Addr()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with only a silent connection open: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// failing is a Server whose Serve fails at once.
type failing struct{ stopped chan struct{} }

func (f *failing) Serve() error                   { return errors.New("accept: too many open files") }
func (f *failing) Shutdown(context.Context) error { close(f.stopped); return nil }
func (f *failing) Close() error                   { return nil }

// TestGroupServeError checks that one server failing stops the others and
// is returned.
func TestGroupServeError(t *testing.T) {
	tg := newTestGroup(t, time.Second, health.NewServer(), http.NotFoundHandler())
	f := &failing{stopped: make(chan struct{})}
	tg.g.Add("test broken", f)
	err := tg.g.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "serve test broken: accept: too many open files") {
		t.Fatalf("Run = %v", err)
	}
	<-f.stopped
}
