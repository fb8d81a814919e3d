package client

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/vigil-obs/vigil/client/balance"
	"github.com/vigil-obs/vigil/client/breaker"
	"github.com/vigil-obs/vigil/client/discovery"
	"github.com/vigil-obs/vigil/client/outlier"
	"github.com/vigil-obs/vigil/client/retry"
)

// endpoint is one instance with its load state and circuit.
type endpoint struct {
	*balance.Endpoint
	brk *breaker.Breaker
}

// service is everything the client keeps for one logical service.
type service struct {
	name    string
	cfg     ServiceConfig
	c       *Client
	watcher *discovery.Watcher
	bal     balance.Balancer
	det     *outlier.Detector
	brk     *breaker.Breaker
	budget  *retry.Budget

	retryStatus map[int]bool
	retryCodes  map[uint32]bool

	mu      sync.RWMutex
	eps     map[string]*endpoint
	list    []*endpoint // sorted by address
	subs    map[int]func([]*endpoint)
	nextSub int
}

func newService(c *Client, name string, cfg ServiceConfig, builders map[string]discovery.Builder, src rand.Source) (*service, error) {
	cfg = cfg.WithDefaults()
	s := &service{name: name, cfg: cfg, c: c, eps: map[string]*endpoint{}, subs: map[int]func([]*endpoint){}, retryStatus: map[int]bool{}, retryCodes: map[uint32]bool{}}
	for _, st := range cfg.Retry.RetryOnStatus {
		s.retryStatus[st] = true
	}
	for _, name := range cfg.Retry.GRPCRetryCodes {
		code, _ := grpcCode(name)
		s.retryCodes[code] = true
	}
	target, err := discovery.ParseTarget(cfg.Target)
	if err != nil {
		return nil, err
	}
	resolver, err := discovery.Build(target, builders)
	if err != nil {
		return nil, err
	}
	logger := c.logger.With("peer.service", name)
	s.watcher = discovery.NewWatcher(resolver, discovery.WatcherOptions{
		Clock:    c.clock,
		Logger:   logger,
		OnUpdate: s.update,
	})
	if s.bal, err = balance.New(cfg.Balancer, src); err != nil {
		return nil, err
	}
	s.det, err = outlier.New(cfg.Outlier, outlier.Options{Clock: c.clock, OnEvent: func(e outlier.Event) {
		if e.Ejected {
			logger.Warn("instance ejected", "instance", e.Addr, "reason", string(e.Reason), "duration", e.Duration, "ejections", e.Ejections)
		} else {
			logger.Info("instance readmitted", "instance", e.Addr, "reason", string(e.Reason), "ejections", e.Ejections)
		}
		if c.tel != nil {
			c.tel.ejection(s.name, e)
		}
	}})
	if err != nil {
		return nil, err
	}
	if _, err := breaker.New(cfg.InstanceBreaker, breaker.Options{}); err != nil {
		return nil, fmt.Errorf("instance breaker: %w", err)
	}
	s.brk, err = breaker.New(cfg.Breaker, breaker.Options{Clock: c.clock, OnStateChange: s.onBreaker("")})
	if err != nil {
		return nil, err
	}
	if s.budget, err = retry.NewBudget(cfg.Retry.Budget, c.clock); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *service) onBreaker(instance string) func(from, to breaker.State) {
	return func(from, to breaker.State) {
		level := slog.LevelInfo
		if to == breaker.Open {
			level = slog.LevelWarn
		}
		s.c.logger.Log(context.Background(), level, "circuit state changed",
			"peer.service", s.name, "instance", instance, "from", from.String(), "to", to.String())
		if s.c.tel != nil {
			s.c.tel.breakerTransition(s.name, instance, to)
		}
	}
}

// update installs a new instance set from discovery. Instances that stay keep
// their load, latency, circuit and ejection state.
func (s *service) update(in []discovery.Instance) {
	s.mu.Lock()
	next := make(map[string]*endpoint, len(in))
	list := make([]*endpoint, 0, len(in))
	for _, inst := range in {
		ep := s.eps[inst.Addr]
		switch {
		case ep == nil:
			// The config was validated in newService, so New cannot fail.
			brk, _ := breaker.New(s.cfg.InstanceBreaker, breaker.Options{Clock: s.c.clock, OnStateChange: s.onBreaker(inst.Addr)})
			ep = &endpoint{Endpoint: balance.NewEndpoint(inst.Addr, inst.Weight), brk: brk}
		case ep.Weight != max(inst.Weight, 1):
			// Balancers read Weight without locks: a new weight means a
			// new endpoint, which keeps the instance's circuit.
			ep = &endpoint{Endpoint: balance.NewEndpoint(inst.Addr, inst.Weight), brk: ep.brk}
		}
		next[inst.Addr] = ep
		list = append(list, ep)
	}
	s.eps, s.list = next, list
	subs := make([]func([]*endpoint), 0, len(s.subs))
	for _, fn := range s.subs {
		subs = append(subs, fn)
	}
	s.mu.Unlock()

	bes := make([]*balance.Endpoint, len(list))
	addrs := make([]string, len(list))
	for i, ep := range list {
		bes[i], addrs[i] = ep.Endpoint, ep.Addr
	}
	s.bal.Update(bes)
	s.det.SetHosts(addrs)
	s.c.logger.Info("instances updated", "peer.service", s.name, "instances", addrs)
	for _, fn := range subs {
		fn(list)
	}
}

func (s *service) snapshot() []*endpoint {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.list
}

func (s *service) lookup(addr string) *endpoint {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.eps[addr]
}

// waitReady blocks until discovery has produced a first set or ctx ends.
func (s *service) waitReady(ctx context.Context) error {
	select {
	case <-s.watcher.Ready():
		return nil
	default:
	}
	select {
	case <-s.watcher.Ready():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("service %s: waiting for discovery (is Client.Run running?): %w: %w", s.name, ErrNoInstances, ctx.Err())
	}
}

// healthy says whether ep may take traffic outside panic mode.
func (s *service) healthy(ep *endpoint) bool {
	return ep.brk.State() != breaker.Open && !s.det.Ejected(ep.Addr)
}

// pick is one balancing decision.
type pick struct {
	ep     *endpoint
	permit breaker.Permit
	panic  bool
}

// choose picks an instance for an attempt. avoid lists instances to skip
// while another is usable (the ones just tried); allow, when set, restricts
// the choice (gRPC: instances with a ready connection).
func (s *service) choose(now time.Time, req balance.Request, avoid []string, allow func(addr string) bool) (pick, error) {
	list := s.snapshot()
	if len(list) == 0 {
		return pick{}, fmt.Errorf("service %s: %w", s.name, ErrNoInstances)
	}
	total, healthy := 0, 0
	for _, ep := range list {
		if allow != nil && !allow(ep.Addr) {
			continue
		}
		total++
		if s.healthy(ep) {
			healthy++
		}
	}
	if total == 0 {
		return pick{}, fmt.Errorf("service %s: %w (no connected instance)", s.name, ErrNoInstances)
	}
	panicMode := s.cfg.PanicThreshold > 0 && float64(healthy)*100 < s.cfg.PanicThreshold*float64(total)
	if panicMode {
		s.c.tel.panicPick(s.name)
	}
	var refused []string // half-open circuits with no probe slot left
	var lastOpen *breaker.OpenError
	for range len(list) + 1 {
		usable := func(be *balance.Endpoint) bool {
			if allow != nil && !allow(be.Addr) || slices.Contains(refused, be.Addr) {
				return false
			}
			if panicMode {
				return true
			}
			ep := s.lookup(be.Addr)
			return ep != nil && s.healthy(ep)
		}
		be := s.bal.Pick(now, req, func(be *balance.Endpoint) bool { return !slices.Contains(avoid, be.Addr) && usable(be) })
		if be == nil && len(avoid) > 0 {
			// Nothing else is usable: the instance just tried is better
			// than failing the retry outright.
			be = s.bal.Pick(now, req, usable)
		}
		if be == nil {
			break
		}
		ep := s.lookup(be.Addr)
		if ep == nil {
			// Removed by discovery between the pick and now.
			refused = append(refused, be.Addr)
			continue
		}
		if panicMode {
			return pick{ep: ep, panic: true}, nil
		}
		permit, err := ep.brk.Allow()
		if err == nil {
			return pick{ep: ep, permit: permit}, nil
		}
		lastOpen, _ = err.(*breaker.OpenError)
		refused = append(refused, ep.Addr)
	}
	if lastOpen != nil {
		return pick{}, &CircuitOpenError{Service: s.name, Instance: refused[len(refused)-1], Until: lastOpen.Until}
	}
	return pick{}, fmt.Errorf("service %s: %w (%d of %d instances healthy)", s.name, ErrNoInstances, healthy, total)
}

// outcome is what an attempt tells about its instance.
type outcome struct {
	// latency says whether the attempt's duration says something about
	// the instance (false when the caller gave up first).
	latency bool
	// health says whether the attempt counts for ejection and the
	// instance's circuit.
	health bool
	failed bool
	result outlier.Result
}

// record feeds an attempt on p.ep that ran from start to end into the
// instance's latency estimate, outlier detector and circuit. It does not end
// the attempt's outstanding count: that happens when the response body is
// closed.
func (s *service) record(p pick, start, end time.Time, o outcome) {
	if o.latency {
		p.ep.Observe(s.cfg.Balancer.EWMA, end, end.Sub(start), o.failed)
		if !o.failed {
			s.det.RecordLatency(p.ep.Addr, end.Sub(start))
		}
	}
	if o.health {
		s.det.Record(p.ep.Addr, o.result)
		p.permit.Done(o.failed)
	} else {
		p.permit.Release()
	}
}
