package inflight

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// GRPCOptions configures Budget.GRPCServerOptions.
type GRPCOptions struct {
	// MaxMessageBytes is the server's grpc.MaxRecvMsgSize. A new stream
	// is refused before any of its message is read while the budget has
	// less room than this, as its message may be that large.
	MaxMessageBytes int64
	// ReadTimeout bounds the time between a stream's headers and the
	// arrival of its whole request message; a stream still receiving
	// then is cancelled (the client gets CANCELLED), so a client sending
	// slowly cannot hold its bytes for longer. Zero means no bound.
	ReadTimeout time.Duration
	// Refusal is the status of refused calls: RESOURCE_EXHAUSTED with a
	// RetryInfo detail, which OTLP exporters and the OTel Collector's
	// exporters retry after the delay it carries. Nil means
	// RESOURCE_EXHAUSTED without a delay, which OTLP exporters do not
	// retry.
	Refusal *status.Status
}

// GRPCServerOptions returns the options that put a gRPC server's unary
// calls under b.
//
// grpc-go reads a request message into buffers of the frames as they
// arrive (never sized from the length prefix) and decodes it before any
// handler or interceptor runs, so no hook can stop a message half-way.
// What these options do instead:
//
//   - an in-tap handle refuses a new stream, before reading any of its
//     message, while the budget has less than MaxMessageBytes free, and
//     cancels the stream if its message has not arrived within
//     ReadTimeout;
//   - a stats handler charges the decompressed size of the message as
//     soon as it has arrived and gives it back when the call ends (its
//     decoded form lives that long);
//   - a unary interceptor answers Refusal, without calling the handler,
//     when that charge did not fit.
//
// So the budget bounds what calls hold while they wait to be stored, the
// long part of a call. What it cannot see is a message while it arrives
// and is decoded, at most MaxMessageBytes (and its decoded form) per
// stream: grpc.MaxRecvMsgSize and grpc.MaxConcurrentStreams bound that
// per connection, and admission stops new streams once the budget is
// nearly spent, but a burst of many connections that all start maximal
// messages at the same moment is bounded by neither. Bounding it too
// would take reserving MaxMessageBytes for every stream before its
// message arrives, which would cap the streams being received at
// Limit/MaxMessageBytes (three at the defaults) and refuse ordinary
// bursts of small exports. Chain these options after authentication so
// that unauthenticated calls are refused as such.
func (b *Budget) GRPCServerOptions(o GRPCOptions) []grpc.ServerOption {
	if o.Refusal == nil {
		o.Refusal = status.New(codes.ResourceExhausted, "too many request bytes in flight, retry later")
	}
	g := &grpcBudget{b: b, o: o}
	return []grpc.ServerOption{
		grpc.InTapHandle(g.tap),
		grpc.StatsHandler(g),
		grpc.ChainUnaryInterceptor(g.unary),
	}
}

// grpcBudget implements GRPCServerOptions; stats.Handler is its
// HandleRPC side.
type grpcBudget struct {
	b *Budget
	o GRPCOptions
}

// callCharge is what one call holds; the tap creates it, the call's
// goroutine updates it.
type callCharge struct {
	timer   *time.Timer // cancels the stream when its message is late; nil without ReadTimeout
	cancel  context.CancelFunc
	charged atomic.Int64
	refused atomic.Bool
}

type callChargeKey struct{}

func chargeOf(ctx context.Context) *callCharge {
	c, _ := ctx.Value(callChargeKey{}).(*callCharge)
	return c
}

// tap runs in the connection's reader goroutine for every new stream; it
// must not block.
func (g *grpcBudget) tap(ctx context.Context, _ *tap.Info) (context.Context, error) {
	if g.b.limit-g.b.used.Load() < g.o.MaxMessageBytes {
		g.b.refused.Inc()
		return nil, g.o.Refusal.Err()
	}
	c := &callCharge{}
	if g.o.ReadTimeout > 0 {
		ctx, c.cancel = context.WithCancel(ctx)
		c.timer = time.AfterFunc(g.o.ReadTimeout, c.cancel)
	}
	return context.WithValue(ctx, callChargeKey{}, c), nil
}

// HandleRPC implements stats.Handler: it charges each request message
// once it has arrived and gives the charge back when the call ends.
func (g *grpcBudget) HandleRPC(ctx context.Context, s stats.RPCStats) {
	c := chargeOf(ctx)
	if c == nil {
		return
	}
	switch s := s.(type) {
	case *stats.InPayload:
		if c.timer != nil {
			c.timer.Stop()
		}
		n := int64(s.Length)
		if g.b.TryAcquire(n) {
			c.charged.Add(n)
		} else if !c.refused.Swap(true) {
			g.b.refused.Inc()
		}
	case *stats.End:
		if c.timer != nil {
			c.timer.Stop()
		}
		if n := c.charged.Swap(0); n > 0 {
			g.b.Release(n)
		}
		if c.cancel != nil {
			c.cancel()
		}
	}
}

// TagRPC implements stats.Handler.
func (g *grpcBudget) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// TagConn implements stats.Handler.
func (g *grpcBudget) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn implements stats.Handler.
func (g *grpcBudget) HandleConn(context.Context, stats.ConnStats) {}

func (g *grpcBudget) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if c := chargeOf(ctx); c != nil && c.refused.Load() {
		return nil, g.o.Refusal.Err()
	}
	return handler(ctx, req)
}
