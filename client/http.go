package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-obs/vigil/client/balance"
	"github.com/vigil-obs/vigil/client/breaker"
	"github.com/vigil-obs/vigil/client/outlier"
)

// RoundTrip implements http.RoundTripper. The request's URL host (port
// ignored) names the logical service, e.g. http://user-service/users/42.
//
// The response is that of the last attempt made; its body must be closed, as
// with any RoundTripper, which also ends the call's outstanding count and
// its timeout. Errors wrap ErrUnknownService, ErrNoInstances, a
// *CircuitOpenError, the context's error or the last attempt's transport
// error.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	s, err := c.service(req.URL.Hostname())
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	return s.roundTrip(req)
}

// Transport returns the client as an http.RoundTripper.
func (c *Client) Transport() http.RoundTripper { return c }

// HTTPClient returns an *http.Client that sends every request through the
// client. Its own Timeout is unset: deadlines come from the request context
// and ServiceConfig.Timeout.
func (c *Client) HTTPClient() *http.Client { return &http.Client{Transport: c} }

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// idempotentMethods are RFC 9110's idempotent methods.
var idempotentMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true,
	http.MethodTrace: true, http.MethodPut: true, http.MethodDelete: true,
}

// httpCall is one logical HTTP call and its attempts.
type httpCall struct {
	s      *service
	req    *http.Request
	ctx    context.Context
	cancel context.CancelFunc
	balReq balance.Request

	idempotent bool
	replayable bool // the body can be sent again
	attempts   int
}

func (s *service) roundTrip(req *http.Request) (*http.Response, error) {
	c := s.c
	start := c.clock.Now()
	ctx := req.Context()
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok && s.cfg.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Timeout)
	}
	ctx, span := c.tracer.Start(ctx, req.Method+" "+s.name,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String(attrService, s.name), attribute.String("http.request.method", req.Method)))
	call := &httpCall{
		s:          s,
		req:        req,
		ctx:        ctx,
		cancel:     cancel,
		idempotent: idempotentMethods[req.Method] || req.Header.Get(s.cfg.Retry.IdempotencyKeyHeader) != "" || isIdempotentCtx(ctx),
		replayable: req.Body == nil || req.Body == http.NoBody || req.GetBody != nil,
	}
	call.balReq = s.affinity(ctx, req.Header)

	resp, err := call.run()

	end := c.clock.Now()
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	result := callResult(ctx, status, err)
	span.SetAttributes(attribute.Int(attrAttempts, call.attempts))
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	if result != resultOK {
		span.SetAttributes(attribute.String("error.type", errorType(status, err)))
		span.SetStatus(codes.Error, result)
	}
	if err != nil {
		span.RecordError(err)
	}
	span.End()
	c.tel.call(ctx, s.name, req.Method, status, result, end.Sub(start))
	if err != nil {
		cancel()
		closeRequestBody(req)
		return nil, err
	}
	// The call's timeout lives until the caller is done with the body.
	if tb, ok := resp.Body.(*trackedBody); ok {
		tb.final = cancel
	} else {
		cancel()
	}
	return resp, nil
}

// Outcomes of logical calls, used in metrics and span status.
const (
	resultOK          = "ok"
	resultServerError = "server_error"
	resultError       = "error"
	resultCircuitOpen = "circuit_open"
	resultNoInstances = "no_instances"
	resultCanceled    = "canceled"
	resultTimeout     = "timeout"
)

func callResult(ctx context.Context, status int, err error) string {
	switch {
	case err == nil && status >= 500:
		return resultServerError
	case err == nil:
		return resultOK
	case errors.Is(err, ErrCircuitOpen):
		return resultCircuitOpen
	case errors.Is(err, ErrNoInstances):
		return resultNoInstances
	case errors.Is(err, context.Canceled):
		return resultCanceled
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return resultTimeout
	}
	return resultError
}

func errorType(status int, err error) string {
	if err == nil {
		return strconv.Itoa(status)
	}
	var ce *CircuitOpenError
	var op *net.OpError
	switch {
	case errors.As(err, &ce):
		return "circuit_open"
	case errors.Is(err, ErrNoInstances):
		return "no_instances"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &op):
		return "connect_failure"
	}
	return "_OTHER"
}

func (h *httpCall) run() (*http.Response, error) {
	s := h.s
	if err := s.waitReady(h.ctx); err != nil {
		return nil, err
	}
	permit, err := s.brk.Allow()
	if err != nil {
		return nil, s.circuitError(err)
	}
	s.budget.Deposit()
	var resp *http.Response
	if s.cfg.Retry.HedgeDelay > 0 && h.idempotent && h.replayable && s.cfg.Retry.MaxAttempts > 1 {
		resp, err = h.runHedged()
	} else {
		resp, err = h.runSequential()
	}
	switch {
	case err != nil && errors.Is(err, context.Canceled):
		permit.Release()
	case err != nil && (errors.Is(err, ErrCircuitOpen) || errors.Is(err, ErrNoInstances)):
		// The service was never called: nothing to learn.
		permit.Release()
	default:
		permit.Done(err != nil || resp.StatusCode >= 500)
	}
	return resp, err
}

func (s *service) circuitError(err error) error {
	ce := &CircuitOpenError{Service: s.name}
	var oe *breaker.OpenError
	if errors.As(err, &oe) {
		ce.Until = oe.Until
	}
	return ce
}

// attemptResult is one attempt's response and what it means.
type attemptResult struct {
	n         int
	p         pick
	resp      *http.Response
	err       error
	retryable bool   // worth retrying if the call allows it
	neverSent bool   // the request never reached the instance
	reason    string // why a retry would be made
}

// discard drains and closes a response that will not be returned, which
// ends the attempt.
func (r *attemptResult) discard() {
	if r.resp != nil {
		// Draining lets the connection be reused; one that fails to drain
		// is closed below, which costs only that reuse.
		_, _ = io.CopyN(io.Discard, r.resp.Body, 4<<10)
		r.resp.Body.Close()
		r.resp = nil
	}
}

// mayRetry decides whether a failed attempt is retried, and takes the budget
// for it.
func (h *httpCall) mayRetry(r *attemptResult, next int) bool {
	s := h.s
	switch {
	case !r.retryable, next >= s.cfg.Retry.MaxAttempts, !h.replayable:
		return false
	case !h.idempotent && !r.neverSent:
		return false
	case h.ctx.Err() != nil:
		return false
	}
	if !s.budget.TryWithdraw() {
		s.c.tel.budgetExhausted(h.ctx, s.name)
		return false
	}
	s.c.tel.retry(h.ctx, s.name, r.reason)
	return true
}

func (h *httpCall) runSequential() (*http.Response, error) {
	s := h.s
	c := s.c
	var avoid []string
	var last *attemptResult
	for n := 0; ; n++ {
		reason := ""
		if last != nil {
			reason = last.reason
		}
		p, err := s.choose(c.clock.Now(), h.balReq, avoid, nil)
		if err != nil {
			if last != nil {
				return last.resp, last.err
			}
			return nil, err
		}
		if last != nil {
			last.discard()
		}
		h.attempts = n + 1
		r := h.attempt(h.ctx, p, n, reason, nil)
		if r.err == nil && !r.retryable {
			return r.resp, nil
		}
		// A retry whose backoff, or the wait the instance asked for, would
		// outlive the call is not worth the budget.
		wait := s.cfg.Retry.Backoff.Delay(n+1, c.int64n)
		if ra, ok := retryAfter(r.resp, c.clock.Now()); ok && ra > wait {
			wait = ra
		}
		if dl, ok := h.ctx.Deadline(); ok && c.clock.Now().Add(wait).After(dl) {
			return r.resp, r.err
		}
		if !h.mayRetry(&r, n+1) {
			return r.resp, r.err
		}
		avoid = append(avoid, p.ep.Addr)
		last = &r
		select {
		case <-c.clock.After(wait):
		case <-h.ctx.Done():
			return r.resp, r.err
		}
	}
}

// runHedged sends a further attempt to another instance whenever HedgeDelay
// passes without an answer, and a retry at once when an attempt fails; the
// first good answer wins and the others are cancelled.
func (h *httpCall) runHedged() (*http.Response, error) {
	s := h.s
	c := s.c
	max := s.cfg.Retry.MaxAttempts
	results := make(chan attemptResult, max)
	cancels := make([]context.CancelFunc, 0, max)
	var avoid []string
	launch := func(n int, reason string) error {
		p, err := s.choose(c.clock.Now(), h.balReq, avoid, nil)
		if err != nil {
			return err
		}
		avoid = append(avoid, p.ep.Addr)
		hctx, hcancel := context.WithCancel(h.ctx)
		cancels = append(cancels, hcancel)
		h.attempts = n + 1
		go func() { results <- h.attempt(hctx, p, n, reason, hcancel) }()
		return nil
	}
	if err := launch(0, ""); err != nil {
		return nil, err
	}
	launched, pending := 1, 1
	var last *attemptResult
	// settle cancels every attempt but the winner and discards their
	// answers in the background.
	settle := func(winner int) {
		for i, cancel := range cancels {
			if i != winner {
				cancel()
			}
		}
		if last != nil && last.n != winner {
			last.discard()
		}
		if pending > 0 {
			go func(n int) {
				for range n {
					r := <-results
					r.discard()
				}
			}(pending)
		}
	}
	timer := c.clock.After(s.cfg.Retry.HedgeDelay)
	// retryTimer, when set, fires once the pause an instance asked for
	// with Retry-After is over.
	var retryTimer <-chan time.Time
	var retryReason string
	for {
		select {
		case r := <-results:
			pending--
			if r.err == nil && !r.retryable {
				settle(r.n)
				return r.resp, nil
			}
			if last != nil {
				last.discard()
			}
			last = &r
			// The instance may ask for a pause before the retry; one that
			// would outlive the call means no retry.
			ra, asked := retryAfter(r.resp, c.clock.Now())
			tooLate := false
			if dl, ok := h.ctx.Deadline(); ok && asked && c.clock.Now().Add(ra).After(dl) {
				tooLate = true
			}
			if launched < max && retryTimer == nil && !tooLate && h.mayRetry(&r, launched) {
				if ra > 0 {
					retryTimer, retryReason = c.clock.After(ra), r.reason
					continue
				}
				if launch(launched, r.reason) == nil {
					launched++
					pending++
					continue
				}
			}
			if pending == 0 && retryTimer == nil {
				settle(r.n)
				return r.resp, r.err
			}
		case <-retryTimer:
			retryTimer = nil
			if launch(launched, retryReason) == nil {
				launched++
				pending++
				continue
			}
			if pending == 0 {
				settle(last.n)
				return last.resp, last.err
			}
		case <-timer:
			timer = nil
			if launched >= max || retryTimer != nil {
				continue
			}
			if !s.budget.TryWithdraw() {
				c.tel.budgetExhausted(h.ctx, s.name)
				continue
			}
			if launch(launched, "hedge") == nil {
				c.tel.retry(h.ctx, s.name, "hedge")
				launched++
				pending++
				timer = c.clock.After(s.cfg.Retry.HedgeDelay)
			}
		case <-h.ctx.Done():
			settle(-1)
			if last != nil {
				return nil, fmt.Errorf("service %s: %w (last attempt: %v)", s.name, h.ctx.Err(), last.err)
			}
			return nil, fmt.Errorf("service %s: %w", s.name, h.ctx.Err())
		}
	}
}

// attempt sends the request once to p.ep. parent is the call's context or,
// for hedged attempts, a cancellable child of it; release, if set, is called
// once the attempt is over.
func (h *httpCall) attempt(parent context.Context, p pick, n int, reason string, release func()) attemptResult {
	s := h.s
	c := s.c
	actx, acancel := parent, context.CancelFunc(func() {})
	if t := s.cfg.Retry.PerAttemptTimeout; t > 0 {
		actx, acancel = context.WithTimeout(parent, t)
	}
	host, port := splitHostPort(p.ep.Addr)
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", h.req.Method),
		attribute.String("server.address", host),
		attribute.Int("server.port", port),
		attribute.String(attrService, s.name),
		attribute.String(attrInstance, p.ep.Addr),
		attribute.Int(attrAttempt, n+1),
	}
	if n > 0 {
		attrs = append(attrs, attribute.Int("http.request.resend_count", n))
	}
	if reason != "" {
		attrs = append(attrs, attribute.String(attrRetryReason, reason))
	}
	if p.panic {
		attrs = append(attrs, attribute.Bool(attrPanic, true))
	}
	actx, span := c.tracer.Start(actx, h.req.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))

	out := h.req.Clone(actx)
	out.URL.Host = p.ep.Addr
	if out.Host == "" {
		out.Host = h.req.URL.Host
	}
	if n > 0 || release != nil {
		out.Body = nil
		if h.req.GetBody != nil {
			b, err := h.req.GetBody()
			if err != nil {
				acancel()
				span.End()
				p.permit.Release()
				return attemptResult{n: n, p: p, err: fmt.Errorf("service %s: get body: %w", s.name, err)}
			}
			out.Body = b
		}
	}
	c.prop.Inject(actx, propagation.HeaderCarrier(out.Header))
	span.SetAttributes(attribute.String("url.full", out.URL.String()))

	p.ep.Begin()
	start := c.clock.Now()
	resp, err := c.base.RoundTrip(out)
	end := c.clock.Now()

	r := attemptResult{n: n, p: p, resp: resp}
	o := s.classify(h.ctx, parent, actx, resp, err, &r)
	s.record(p, start, end, o)

	status := 0
	if resp != nil {
		status = resp.StatusCode
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	attemptResultLabel := "ok"
	if o.failed || err != nil {
		attemptResultLabel = "error"
		et := errorType(status, err)
		if r.reason != "" && err != nil {
			et = r.reason
		}
		span.SetAttributes(attribute.String("error.type", et))
		span.SetStatus(codes.Error, et)
		if err != nil {
			span.RecordError(err)
		}
	}
	span.End()
	c.tel.attempt(actx, s.name, p.ep.Addr, h.req.Method, status, attemptResultLabel, end.Sub(start))

	done := func() {
		p.ep.Finish()
		acancel()
		if release != nil {
			release()
		}
	}
	if err != nil {
		done()
		r.err = fmt.Errorf("service %s instance %s: %w", s.name, p.ep.Addr, err)
		return r
	}
	resp.Body = &trackedBody{ReadCloser: resp.Body, done: done}
	return r
}

// classify maps an attempt's result to what it says about the instance and
// whether a retry could help.
func (s *service) classify(callCtx, parent, actx context.Context, resp *http.Response, err error, r *attemptResult) outcome {
	if err != nil {
		switch {
		case errors.Is(callCtx.Err(), context.Canceled):
			// The caller gave up: nothing is known about the instance.
			r.reason = "canceled"
			return outcome{}
		case parent.Err() != nil && callCtx.Err() == nil:
			// A hedge lost: its latency is at least this long.
			r.reason = "hedge_lost"
			return outcome{latency: true}
		case callCtx.Err() != nil:
			// The call's deadline passed during this attempt.
			r.reason = "timeout"
			return outcome{latency: true, health: true, failed: true, result: outlier.LocalFailure}
		case actx.Err() != nil:
			r.retryable, r.reason = true, "per_try_timeout"
			return outcome{latency: true, health: true, failed: true, result: outlier.LocalFailure}
		case isDialError(err):
			r.retryable, r.neverSent, r.reason = true, true, "connect_failure"
			return outcome{latency: true, health: true, failed: true, result: outlier.LocalFailure}
		default:
			r.retryable, r.reason = true, "reset"
			return outcome{latency: true, health: true, failed: true, result: outlier.LocalFailure}
		}
	}
	if resp.StatusCode >= 500 {
		r.retryable = s.retryStatus[resp.StatusCode]
		r.reason = "status_" + strconv.Itoa(resp.StatusCode)
		return outcome{latency: true, health: true, failed: true, result: outlier.ServerError}
	}
	if resp.StatusCode == http.StatusTooManyRequests && s.retryStatus[resp.StatusCode] {
		// Rate limited: worth retrying when configured, but not a fault of
		// the instance.
		r.retryable, r.reason = true, "status_429"
	}
	return outcome{latency: true, health: true, result: outlier.Success}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func splitHostPort(addr string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

// affinity extracts the call's affinity key for ring_hash.
func (s *service) affinity(ctx context.Context, header http.Header) balance.Request {
	if s.cfg.Balancer.Policy != balance.RingHash {
		return balance.Request{}
	}
	key := affinityFrom(ctx, s.cfg.Affinity, header.Get)
	if key == "" {
		return balance.Request{}
	}
	return balance.Request{Hash: balance.HashKey(key), HasHash: true}
}

func affinityFrom(ctx context.Context, cfg AffinityConfig, get func(string) string) string {
	if k, _ := ctx.Value(affinityKey).(string); k != "" {
		return k
	}
	if cfg.Header != "" {
		if v := get(cfg.Header); v != "" {
			return v
		}
	}
	if cfg.ClientIP {
		if xff := get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if ip := strings.TrimSpace(first); ip != "" {
				return ip
			}
		}
		if ip := get("X-Real-IP"); ip != "" {
			return ip
		}
		if ip, _ := ctx.Value(clientIPKey).(string); ip != "" {
			return ip
		}
	}
	return ""
}

// trackedBody ends its attempt on EOF or Close, whichever comes first, and
// then, for the response handed to the caller, the call itself.
type trackedBody struct {
	io.ReadCloser
	once  sync.Once
	done  func()
	final func() // set before the response is returned; nil for discarded ones
}

func (b *trackedBody) finish() {
	b.done()
	if b.final != nil {
		b.final()
	}
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.finish)
	}
	return n, err
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.finish)
	return err
}

// retryAfter returns the pause a 429 or 503 response asks for with
// Retry-After (RFC 9110 §10.2.3: delay-seconds or an HTTP-date, which counts
// from now; a date in the past means no pause). ok is false when there is
// no such response or header, or the header does not parse.
func retryAfter(resp *http.Response, now time.Time) (d time.Duration, ok bool) {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return 0, false
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
