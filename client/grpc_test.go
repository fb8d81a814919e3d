package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/client/balance"
	"github.com/vigil-obs/vigil/client/breaker"
	"github.com/vigil-obs/vigil/client/internal/fakeclock"
	"github.com/vigil-obs/vigil/client/outlier"
)

// grpcInstance is a loopback gRPC server implementing the health service with
// injectable latency and status.
type grpcInstance struct {
	healthpb.UnimplementedHealthServer
	addr  string
	delay atomic.Int64 // nanoseconds
	code  atomic.Int32 // codes.OK by default
	hits  atomic.Int64

	mu          sync.Mutex
	traceparent string
}

func (g *grpcInstance) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	g.hits.Add(1)
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		g.mu.Lock()
		if v := md.Get("traceparent"); len(v) > 0 {
			g.traceparent = v[0]
		}
		g.mu.Unlock()
	}
	if d := time.Duration(g.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := grpc.SetHeader(ctx, metadata.Pairs("instance", g.addr)); err != nil {
		return nil, err
	}
	if c := codes.Code(g.code.Load()); c != codes.OK {
		return nil, status.Error(c, "injected by "+g.addr)
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func startGRPCFleet(t *testing.T, n int) []*grpcInstance {
	t.Helper()
	fleet := make([]*grpcInstance, n)
	for i := range fleet {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g := &grpcInstance{addr: ln.Addr().String()}
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, g)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := srv.Serve(ln); err != nil {
				t.Errorf("serve: %v", err)
			}
		}()
		t.Cleanup(func() {
			srv.Stop()
			<-done
		})
		fleet[i] = g
	}
	return fleet
}

func grpcTarget(fleet []*grpcInstance) string {
	var addrs []string
	for _, g := range fleet {
		addrs = append(addrs, g.addr)
	}
	return staticTarget(addrs...)
}

func dialSvc(t *testing.T, c *Client) healthpb.HealthClient {
	t.Helper()
	cc, err := c.DialGRPC("svc", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func check(ctx context.Context, hc healthpb.HealthClient) (string, error) {
	var hdr metadata.MD
	_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
	if v := hdr.Get("instance"); len(v) > 0 {
		return v[0], err
	}
	return "", err
}

func TestGRPCP2CRoutesAwayFromSlow(t *testing.T) {
	fleet := startGRPCFleet(t, 3)
	for _, g := range fleet[:2] {
		g.delay.Store(int64(time.Millisecond))
	}
	fleet[2].delay.Store(int64(60 * time.Millisecond))
	c := startClient(t, quietHealth(ServiceConfig{Target: grpcTarget(fleet)}), Options{Rand: rand.NewPCG(3, 4)})
	hc := dialSvc(t, c)
	var wg sync.WaitGroup
	var slow, total atomic.Int64
	for range 3 {
		wg.Go(func() {
			for range 50 {
				inst, err := check(context.Background(), hc)
				if err != nil {
					t.Error(err)
					return
				}
				total.Add(1)
				if inst == fleet[2].addr {
					slow.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if share := float64(slow.Load()) / float64(total.Load()); share > 0.12 {
		t.Fatalf("slow instance got %.3f of calls, want ≤ 0.12", share)
	}
}

func TestGRPCRetries(t *testing.T) {
	tests := []struct {
		name       string
		idempotent []string
		wantErrs   bool
	}{
		{name: "idempotent method retried elsewhere", idempotent: []string{"/grpc.health.v1.Health/*"}},
		{name: "other methods not retried", wantErrs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fleet := startGRPCFleet(t, 2)
			sc := quietHealth(ServiceConfig{Target: grpcTarget(fleet), Balancer: balance.Config{Policy: balance.RoundRobin},
				Retry: RetryConfig{MaxAttempts: 2, Backoff: fastRetry, GRPCIdempotentMethods: tt.idempotent}})
			c := startClient(t, sc, Options{})
			hc := dialSvc(t, c)
			waitConnected(t, hc, fleet)
			fleet[0].code.Store(int32(codes.Unavailable))
			errs := 0
			for range 10 {
				if _, err := check(context.Background(), hc); err != nil {
					if status.Code(err) != codes.Unavailable {
						t.Fatalf("err = %v", err)
					}
					errs++
				}
			}
			if tt.wantErrs && errs == 0 || !tt.wantErrs && errs != 0 {
				t.Fatalf("%d of 10 calls failed (hits %d/%d)", errs, fleet[0].hits.Load(), fleet[1].hits.Load())
			}
			if !tt.wantErrs && fleet[0].hits.Load() == 0 {
				t.Fatal("the failing instance was never tried")
			}
		})
	}
}

// waitConnected calls until every instance has answered, so that all
// connections are ready (only ready ones can be picked), then resets the hit
// counters.
func waitConnected(t *testing.T, hc healthpb.HealthClient, fleet []*grpcInstance) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := true
		for _, g := range fleet {
			all = all && g.hits.Load() > 0
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("instances never all connected")
		}
		_, _ = check(context.Background(), hc) // failures are retried until the deadline
	}
	for _, g := range fleet {
		g.hits.Store(0)
	}
}

func TestGRPCOpenBreakerFailsFast(t *testing.T) {
	fleet := startGRPCFleet(t, 2)
	for _, g := range fleet {
		g.code.Store(int32(codes.Unavailable))
	}
	clk := fakeclock.New(time.Now())
	sc := ServiceConfig{
		Target:          grpcTarget(fleet),
		Outlier:         outlier.Config{Disabled: true},
		InstanceBreaker: breaker.Config{Disabled: true},
		Breaker:         breaker.Config{WindowSize: 5, MinimumCalls: 5, OpenDuration: time.Minute},
		Retry:           RetryConfig{MaxAttempts: 1},
	}
	c := startClient(t, sc, Options{Clock: clk})
	hc := dialSvc(t, c)
	for range 5 {
		if _, err := check(context.Background(), hc); status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v", err)
		}
	}
	hits := fleet[0].hits.Load() + fleet[1].hits.Load()
	_, err := check(context.Background(), hc)
	if !isCircuitOpen(err) || status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v (code %v), want a CircuitOpenError with code Unavailable", err, status.Code(err))
	}
	if fleet[0].hits.Load()+fleet[1].hits.Load() != hits {
		t.Fatal("open circuit let the call through")
	}
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatal("error does not match breaker.ErrOpen")
	}
}
