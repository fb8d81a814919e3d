package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/client/balance"
	"github.com/vigil-obs/vigil/client/outlier"
)

// GRPCScheme is the target scheme of the client's gRPC resolver:
// grpc.NewClient("vigil:///user-service", c.GRPCDialOptions()...).
const GRPCScheme = "vigil"

// grpcBalancerName names the balancer in the service config.
const grpcBalancerName = "vigil_client"

// grpc-go looks balancers up in a process-wide registry only, so the builder
// is registered once here. It is stateless: each connection finds its
// service, and through it its Client, in the attributes of the addresses the
// client's resolver produced.
func init() {
	balancer.Register(base.NewBalancerBuilder(grpcBalancerName, pickerBuilder{}, base.Config{}))
}

// GRPCDialOptions returns the options that make a grpc.ClientConn for a
// vigil:///<service> target use the client: its resolver (discovery), its
// balancer (the service's policy over ready connections, with ejection and
// instance circuits), and interceptors that add the service circuit,
// retries, the retry budget, spans, metrics and trace-context propagation to
// unary calls. Streams get discovery, balancing, spans and propagation but no
// retries.
func (c *Client) GRPCDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithResolvers(&grpcResolverBuilder{c: c}),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"` + grpcBalancerName + `":{}}]}`),
		grpc.WithChainUnaryInterceptor(c.unaryInterceptor),
		grpc.WithChainStreamInterceptor(c.streamInterceptor),
		// Retries are the client's; grpc-go's own (from service configs)
		// would multiply them.
		grpc.WithDisableRetry(),
	}
}

// DialGRPC creates a gRPC client connection to service with the client's
// options followed by opts (transport credentials among them).
func (c *Client) DialGRPC(service string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if _, err := c.service(service); err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(GRPCScheme+":///"+service, append(c.GRPCDialOptions(), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", service, err)
	}
	return cc, nil
}

// serviceAttrKey keys the *service in resolver.Address.BalancerAttributes.
type serviceAttrKey struct{}

type grpcResolverBuilder struct{ c *Client }

func (b *grpcResolverBuilder) Scheme() string { return GRPCScheme }

func (b *grpcResolverBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	name := strings.TrimPrefix(t.Endpoint(), "/")
	s, err := b.c.service(name)
	if err != nil {
		return nil, err
	}
	r := &grpcResolver{s: s, cc: cc}
	r.unsubscribe = s.subscribe(r.push)
	return r, nil
}

// grpcResolver forwards a service's instance set to one ClientConn.
type grpcResolver struct {
	s           *service
	cc          resolver.ClientConn
	unsubscribe func()
	mu          sync.Mutex
}

func (r *grpcResolver) push(eps []*endpoint) {
	addrs := make([]resolver.Address, len(eps))
	for i, ep := range eps {
		addrs[i] = resolver.Address{Addr: ep.Addr, Attributes: attributes.New(serviceAttrKey{}, r.s)}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// An error (balancer.ErrBadResolverState for an empty set) leaves
	// calls failing until the next push, which comes when the set
	// changes: there is nothing more to do here.
	_ = r.cc.UpdateState(resolver.State{Addresses: addrs})
}

// ResolveNow is a no-op: the client's watcher refreshes on its own schedule.
func (r *grpcResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops forwarding updates.
func (r *grpcResolver) Close() { r.unsubscribe() }

// subscribe calls fn with the current instance set, if any, and with every
// later one, until the returned function is called.
func (s *service) subscribe(fn func([]*endpoint)) func() {
	s.mu.Lock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	cur := s.list
	s.mu.Unlock()
	if len(cur) > 0 {
		fn(cur)
	}
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

type pickerBuilder struct{}

func (pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	p := &picker{ready: make(map[string]balancer.SubConn, len(info.ReadySCs))}
	for sc, sci := range info.ReadySCs {
		p.ready[sci.Address.Addr] = sc
		if s, ok := sci.Address.Attributes.Value(serviceAttrKey{}).(*service); ok {
			p.s = s
		}
	}
	if p.s == nil {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	return p
}

// picker chooses among ready connections with the service's policy.
type picker struct {
	s     *service
	ready map[string]balancer.SubConn
}

// grpcAttempt passes state between the interceptor and the picker of one
// attempt through the RPC's context.
type grpcAttempt struct {
	avoid  []string
	balReq balance.Request

	mu        sync.Mutex
	addr      string
	panic     bool
	pickErr   error
	neverSent bool
}

type grpcAttemptKey struct{}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	s := p.s
	st, _ := info.Ctx.Value(grpcAttemptKey{}).(*grpcAttempt)
	var avoid []string
	var req balance.Request
	if st != nil {
		avoid, req = st.avoid, st.balReq
	} else {
		md, _ := metadata.FromOutgoingContext(info.Ctx)
		req = s.grpcAffinity(info.Ctx, md)
	}
	pk, err := s.choose(s.c.clock.Now(), req, avoid, func(addr string) bool { _, ok := p.ready[addr]; return ok })
	if err != nil {
		if st != nil {
			st.mu.Lock()
			st.pickErr = err
			st.mu.Unlock()
		}
		if errors.Is(err, ErrCircuitOpen) {
			return balancer.PickResult{}, status.Error(codes.Unavailable, err.Error())
		}
		// Wait for the next picker (a connection becoming ready).
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	if st != nil {
		st.mu.Lock()
		st.addr, st.panic, st.pickErr = pk.ep.Addr, pk.panic, nil
		st.mu.Unlock()
	}
	pk.ep.Begin()
	start := s.c.clock.Now()
	return balancer.PickResult{
		SubConn: p.ready[pk.ep.Addr],
		Done: func(di balancer.DoneInfo) {
			end := s.c.clock.Now()
			o, neverSent := classifyGRPC(di)
			s.record(pk, start, end, o)
			pk.ep.Finish()
			if st != nil {
				st.mu.Lock()
				st.neverSent = neverSent
				st.mu.Unlock()
			}
		},
	}, nil
}

// classifyGRPC maps an RPC's end to what it says about the instance, the way
// Envoy maps gRPC statuses to HTTP ones for outlier detection.
func classifyGRPC(di balancer.DoneInfo) (outcome, bool) {
	code := status.Code(di.Err)
	switch code {
	case codes.OK:
		return outcome{latency: true, health: true, result: outlier.Success}, false
	case codes.Canceled:
		return outcome{}, false
	case codes.DeadlineExceeded:
		return outcome{latency: true, health: true, failed: true, result: outlier.LocalFailure}, false
	case codes.Unavailable:
		if !di.BytesSent {
			return outcome{latency: true, health: true, failed: true, result: outlier.LocalFailure}, true
		}
		return outcome{latency: true, health: true, failed: true, result: outlier.ServerError}, false
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return outcome{latency: true, health: true, failed: true, result: outlier.ServerError}, false
	}
	// Application errors (NotFound, InvalidArgument...) say the instance
	// is working.
	return outcome{latency: true, health: true, result: outlier.Success}, false
}

func (s *service) grpcAffinity(ctx context.Context, md metadata.MD) balance.Request {
	if s.cfg.Balancer.Policy != balance.RingHash {
		return balance.Request{}
	}
	key := affinityFrom(ctx, s.cfg.Affinity, func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	})
	if key == "" {
		return balance.Request{}
	}
	return balance.Request{Hash: balance.HashKey(key), HasHash: true}
}

// serviceOf returns the service a ClientConn targets, or nil when the target
// is not a vigil:/// one.
func (c *Client) serviceOf(cc *grpc.ClientConn) *service {
	name, ok := strings.CutPrefix(cc.Target(), GRPCScheme+":///")
	if !ok {
		return nil
	}
	return c.services[name]
}

func (s *service) grpcIdempotent(ctx context.Context, method string, md metadata.MD) bool {
	if isIdempotentCtx(ctx) || len(md.Get(s.cfg.Retry.IdempotencyKeyHeader)) > 0 {
		return true
	}
	for _, m := range s.cfg.Retry.GRPCIdempotentMethods {
		if m == method {
			return true
		}
		if prefix, ok := strings.CutSuffix(m, "*"); ok && strings.HasPrefix(method, prefix) {
			return true
		}
	}
	return false
}

// metadataCarrier adapts outgoing gRPC metadata to a propagation carrier.
type metadataCarrier metadata.MD

func (m metadataCarrier) Get(key string) string {
	if v := metadata.MD(m).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (m metadataCarrier) Set(key, value string) { metadata.MD(m).Set(key, value) }
func (m metadataCarrier) Keys() []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func rpcAttrs(method string) []attribute.KeyValue {
	svc, m, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	return []attribute.KeyValue{attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", svc), attribute.String("rpc.method", m)}
}

func (c *Client) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	s := c.serviceOf(cc)
	if s == nil {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	start := c.clock.Now()
	if _, ok := ctx.Deadline(); !ok && s.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
	}
	name := strings.TrimPrefix(method, "/")
	ctx, span := c.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(append(rpcAttrs(method), attribute.String(attrService, s.name))...))
	attempts, err := s.invokeUnary(ctx, method, req, reply, cc, invoker, opts)
	end := c.clock.Now()
	code := status.Code(err)
	span.SetAttributes(attribute.Int(attrAttempts, attempts), attribute.Int("rpc.grpc.status_code", int(code)))
	result := grpcResult(ctx, err)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, result)
	}
	span.End()
	c.tel.call(ctx, s.name, method, int(code), result, end.Sub(start))
	return err
}

func grpcResult(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, ErrCircuitOpen):
		return resultCircuitOpen
	case errors.Is(err, ErrNoInstances):
		return resultNoInstances
	}
	switch status.Code(err) {
	case codes.Canceled:
		return resultCanceled
	case codes.DeadlineExceeded:
		return resultTimeout
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.DataLoss:
		return resultServerError
	}
	if ctx.Err() != nil {
		return resultTimeout
	}
	return resultError
}

// grpcError carries a gRPC status for the caller and a client error for
// errors.Is and errors.As.
type grpcError struct {
	st  *status.Status
	err error
}

func (e *grpcError) Error() string              { return e.err.Error() }
func (e *grpcError) Unwrap() error              { return e.err }
func (e *grpcError) GRPCStatus() *status.Status { return e.st }

func (s *service) invokeUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) (int, error) {
	c := s.c
	if err := s.waitReady(ctx); err != nil {
		return 0, &grpcError{st: status.New(codes.Unavailable, err.Error()), err: err}
	}
	permit, err := s.brk.Allow()
	if err != nil {
		ce := s.circuitError(err)
		return 0, &grpcError{st: status.New(codes.Unavailable, ce.Error()), err: ce}
	}
	s.budget.Deposit()
	md, _ := metadata.FromOutgoingContext(ctx)
	idempotent := s.grpcIdempotent(ctx, method, md)
	balReq := s.grpcAffinity(ctx, md)
	var avoid []string
	reason := ""
	n := 0
	for ; ; n++ {
		st := &grpcAttempt{avoid: avoid, balReq: balReq}
		err = s.grpcAttempt(ctx, st, n, reason, method, req, reply, cc, invoker, opts)
		if err == nil {
			break
		}
		st.mu.Lock()
		addr, pickErr, neverSent := st.addr, st.pickErr, st.neverSent
		st.mu.Unlock()
		if pickErr != nil && addr == "" {
			err = &grpcError{st: status.Convert(err), err: pickErr}
			break
		}
		code := status.Code(err)
		retryable := s.retryCodes[uint32(code)]
		reason = "grpc_" + strings.ToLower(code.String())
		if code == codes.DeadlineExceeded && ctx.Err() == nil {
			retryable, reason = true, "per_try_timeout"
		}
		if neverSent {
			reason = "connect_failure"
		}
		if !retryable || n+1 >= s.cfg.Retry.MaxAttempts || ctx.Err() != nil || !idempotent && !neverSent {
			break
		}
		wait := s.cfg.Retry.Backoff.Delay(n+1, c.int64n)
		if dl, ok := ctx.Deadline(); ok && c.clock.Now().Add(wait).After(dl) {
			break
		}
		if !s.budget.TryWithdraw() {
			c.tel.budgetExhausted(ctx, s.name)
			break
		}
		c.tel.retry(ctx, s.name, reason)
		if addr != "" {
			avoid = append(avoid, addr)
		}
		select {
		case <-c.clock.After(wait):
			continue
		case <-ctx.Done():
		}
		break
	}
	switch {
	case err == nil:
		permit.Done(false)
	case errors.Is(err, ErrCircuitOpen), errors.Is(err, ErrNoInstances), status.Code(err) == codes.Canceled:
		permit.Release()
	default:
		permit.Done(grpcResult(ctx, err) != resultError)
	}
	return n + 1, err
}

func (s *service) grpcAttempt(ctx context.Context, st *grpcAttempt, n int, reason, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	c := s.c
	actx := context.WithValue(ctx, grpcAttemptKey{}, st)
	if t := s.cfg.Retry.PerAttemptTimeout; t > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(actx, t)
		defer cancel()
	}
	attrs := append(rpcAttrs(method), attribute.String(attrService, s.name), attribute.Int(attrAttempt, n+1))
	if reason != "" {
		attrs = append(attrs, attribute.String(attrRetryReason, reason))
	}
	actx, span := c.tracer.Start(actx, strings.TrimPrefix(method, "/"), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	md, _ := metadata.FromOutgoingContext(actx)
	md = md.Copy()
	c.prop.Inject(actx, metadataCarrier(md))
	actx = metadata.NewOutgoingContext(actx, md)

	start := c.clock.Now()
	err := invoker(actx, method, req, reply, cc, opts...)
	end := c.clock.Now()

	st.mu.Lock()
	addr, panicMode := st.addr, st.panic
	st.mu.Unlock()
	code := status.Code(err)
	span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
	if addr != "" {
		host, port := splitHostPort(addr)
		span.SetAttributes(attribute.String(attrInstance, addr), attribute.String("server.address", host), attribute.Int("server.port", port))
	}
	if panicMode {
		span.SetAttributes(attribute.Bool(attrPanic, true))
	}
	label := "ok"
	if err != nil {
		label = "error"
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, code.String())
	}
	span.End()
	c.tel.attempt(actx, s.name, addr, "", int(code), label, end.Sub(start))
	return err
}

func (c *Client) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s := c.serviceOf(cc)
	if s == nil {
		return streamer(ctx, desc, cc, method, opts...)
	}
	ctx, span := c.tracer.Start(ctx, strings.TrimPrefix(method, "/"), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(rpcAttrs(method), attribute.String(attrService, s.name))...))
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	c.prop.Inject(ctx, metadataCarrier(md))
	ctx = metadata.NewOutgoingContext(ctx, md)
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, status.Code(err).String())
		span.End()
		return nil, err
	}
	// The span covers stream set-up; per-message tracing is the
	// application's business.
	span.End()
	return cs, nil
}

// grpcCodes maps canonical status names to codes.
var grpcCodes = map[string]codes.Code{
	"OK": codes.OK, "CANCELLED": codes.Canceled, "UNKNOWN": codes.Unknown, "INVALID_ARGUMENT": codes.InvalidArgument,
	"DEADLINE_EXCEEDED": codes.DeadlineExceeded, "NOT_FOUND": codes.NotFound, "ALREADY_EXISTS": codes.AlreadyExists,
	"PERMISSION_DENIED": codes.PermissionDenied, "RESOURCE_EXHAUSTED": codes.ResourceExhausted,
	"FAILED_PRECONDITION": codes.FailedPrecondition, "ABORTED": codes.Aborted, "OUT_OF_RANGE": codes.OutOfRange,
	"UNIMPLEMENTED": codes.Unimplemented, "INTERNAL": codes.Internal, "UNAVAILABLE": codes.Unavailable,
	"DATA_LOSS": codes.DataLoss, "UNAUTHENTICATED": codes.Unauthenticated,
}

func grpcCode(name string) (uint32, bool) {
	c, ok := grpcCodes[strings.ToUpper(name)]
	return uint32(c), ok
}
