package inflight

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// healthServer answers Check after wait (when set) and counts its calls;
// its request's service name is the payload the tests size.
type healthServer struct {
	healthpb.UnimplementedHealthServer
	calls atomic.Int32
	wait  func(ctx context.Context)
}

func (s *healthServer) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	s.calls.Add(1)
	if s.wait != nil {
		s.wait(ctx)
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// refusal is the status refused calls get in these tests.
func refusal() *status.Status {
	st, err := status.New(codes.ResourceExhausted, "too many request bytes in flight, retry later").
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	if err != nil {
		panic(err)
	}
	return st
}

// serveGRPC serves srv under b on loopback and returns a client whose
// connection goes through dial (nil: a plain one).
func serveGRPC(t *testing.T, b *Budget, o GRPCOptions, srv *healthServer, dial func(context.Context, string) (net.Conn, error)) healthpb.HealthClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.Refusal = refusal()
	s := grpc.NewServer(b.GRPCServerOptions(o)...)
	healthpb.RegisterHealthServer(s, srv)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Serve(ln) })
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if dial != nil {
		opts = append(opts, grpc.WithContextDialer(dial))
	}
	cc, err := grpc.NewClient(ln.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		s.Stop()
		wg.Wait()
	})
	return healthpb.NewHealthClient(cc)
}

// checkRefused fails unless err is the retryable refusal.
func checkRefused(t *testing.T, err error) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("got %v, want RESOURCE_EXHAUSTED", err)
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() == time.Second {
			return
		}
	}
	t.Fatalf("refusal %v carries no RetryInfo", err)
}

func TestGRPCChargeHeldUntilAnswered(t *testing.T) {
	b, err := New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan int64, 1)
	srv := &healthServer{wait: func(context.Context) { held <- b.InUse() }}
	client := serveGRPC(t, b, GRPCOptions{MaxMessageBytes: 64 << 10, ReadTimeout: 200 * time.Millisecond}, srv, nil)
	payload := strings.Repeat("x", 100_000)
	if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: payload}); err != nil {
		t.Fatal(err)
	}
	if got := <-held; got < int64(len(payload)) || got > int64(len(payload))+64 {
		t.Errorf("budget held %d bytes during a call of %d bytes", got, len(payload))
	}
	// The charge is given back when the call ends, just after the answer.
	deadline := time.Now().Add(5 * time.Second)
	for b.InUse() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if b.InUse() != 0 {
		t.Errorf("budget holds %d bytes after the call", b.InUse())
	}
}

// TestGRPCSlowHandlerNotCut: ReadTimeout bounds the arrival of the
// message, not the handler.
func TestGRPCSlowHandlerNotCut(t *testing.T) {
	b, err := New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &healthServer{wait: func(context.Context) { time.Sleep(300 * time.Millisecond) }}
	client := serveGRPC(t, b, GRPCOptions{MaxMessageBytes: 64 << 10, ReadTimeout: 50 * time.Millisecond}, srv, nil)
	if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "svc"}); err != nil {
		t.Fatalf("a handler slower than ReadTimeout was cut: %v", err)
	}
}

func TestGRPCRefusals(t *testing.T) {
	tests := []struct {
		name    string
		limit   int64
		maxMsg  int64
		prehold int64 // taken from the budget before the call
		payload int
	}{
		// Admission: less room than one message of the largest size.
		{name: "no room for a new stream", limit: 1 << 20, maxMsg: 256 << 10, prehold: 800 << 10, payload: 10},
		// Admitted, but the message that arrived does not fit.
		{name: "message larger than the room left", limit: 200_000, maxMsg: 1 << 10, payload: 300_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.limit, nil)
			if err != nil {
				t.Fatal(err)
			}
			srv := &healthServer{}
			client := serveGRPC(t, b, GRPCOptions{MaxMessageBytes: tt.maxMsg, ReadTimeout: time.Second}, srv, nil)
			b.TryAcquire(tt.prehold)
			_, err = client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: strings.Repeat("x", tt.payload)})
			checkRefused(t, err)
			if n := srv.calls.Load(); n != 0 {
				t.Errorf("handler called %d times for a refused call", n)
			}
			b.Release(tt.prehold)
			deadline := time.Now().Add(5 * time.Second)
			for b.InUse() != 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if b.InUse() != 0 || b.Peak() > b.Limit() {
				t.Errorf("budget holds %d (peak %d of %d) after a refused call", b.InUse(), b.Peak(), b.Limit())
			}
		})
	}
}

// stallConn passes the first budget bytes written and blocks later writes
// until the connection is closed: a client whose message stops arriving.
type stallConn struct {
	net.Conn
	budget  int
	written int
	closed  chan struct{}
	once    sync.Once
}

func (c *stallConn) Write(p []byte) (int, error) {
	if c.written+len(p) > c.budget {
		n := max(c.budget-c.written, 0)
		if n > 0 {
			if _, err := c.Conn.Write(p[:n]); err != nil {
				return 0, err
			}
			c.written += n
		}
		<-c.closed
		return n, net.ErrClosed
	}
	c.written += len(p)
	return c.Conn.Write(p)
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestGRPCReadTimeoutCutsStalledMessage: a stream whose message stops
// half-way is cancelled after ReadTimeout, and what it sent was never
// charged to the budget.
func TestGRPCReadTimeoutCutsStalledMessage(t *testing.T) {
	b, err := New(4<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &healthServer{}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		sc := &stallConn{Conn: c, budget: 40 << 10, closed: make(chan struct{})}
		mu.Lock()
		conns = append(conns, sc)
		mu.Unlock()
		return sc, nil
	}
	client := serveGRPC(t, b, GRPCOptions{MaxMessageBytes: 1 << 20, ReadTimeout: 300 * time.Millisecond}, srv, dial)
	// Unblock the stalled writer before the client closes, which would
	// otherwise wait for it.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: strings.Repeat("x", 500_000)})
	if status.Code(err) != codes.Canceled {
		t.Fatalf("stalled call: %v after %s, want CANCELLED from the server", err, time.Since(start))
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("the client's own deadline ended the call")
	}
	if n := srv.calls.Load(); n != 0 || b.Peak() != 0 {
		t.Errorf("handler calls %d, budget peak %d for a message that never arrived", n, b.Peak())
	}
}
