package notify

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Kinds of replicated state in the StateStore.
const (
	kindSilences = "silences"
	kindNflog    = "nflog"
)

// flushTimeout bounds the last write of pending deltas when Run ends.
const flushTimeout = 5 * time.Second

// replicated is what silence.Silences and nflog.Log offer to gossip.
type replicated interface {
	Merge(b []byte) error
	Snapshot(w io.Writer) (int64, error)
	SetBroadcast(f func([]byte))
	GC() (int, error)
}

// stateSync carries one replicated state (silences or the notification
// log) through the StateStore, in place of Alertmanager's gossip: every
// change the state broadcasts is appended as a delta, deltas appended by
// any replica are merged in order, and maintenance folds the state into a
// snapshot.
//
// Merge re-broadcasts what it merged (gossip spreads that way); those
// broadcasts are recognised by their bytes, which are the very slice
// being merged, and dropped, so a delta is appended once.
type stateSync struct {
	kind    string
	state   replicated
	store   StateStore
	logger  *slog.Logger
	metrics *metrics

	merging atomic.Pointer[byte] // first byte of the payload being merged
	last    int64                // last delta merged; used under Notifier.syncMu (or before Run's goroutines start)

	mu      sync.Mutex
	pending [][]byte
	wake    chan struct{}
}

func newStateSync(kind string, state replicated, store StateStore, logger *slog.Logger, m *metrics) *stateSync {
	s := &stateSync{kind: kind, state: state, store: store, logger: logger.With("state", kind), metrics: m, wake: make(chan struct{}, 1)}
	state.SetBroadcast(s.broadcast)
	return s
}

// broadcast queues a local change. It runs under the state's lock, so it
// only queues: writeLoop appends.
func (s *stateSync) broadcast(b []byte) {
	if len(b) == 0 {
		return
	}
	if p := s.merging.Load(); p != nil && p == &b[0] {
		return
	}
	s.mu.Lock()
	s.pending = append(s.pending, bytes.Clone(b))
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// flush appends the queued deltas in order; a failed one and those after
// it stay queued for the next flush.
func (s *stateSync) flush(ctx context.Context) error {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	for i, b := range batch {
		if _, err := s.store.AppendDelta(ctx, s.kind, b); err != nil {
			s.metrics.stateWriteFailures.WithLabelValues(s.kind).Inc()
			s.mu.Lock()
			s.pending = append(batch[i:len(batch):len(batch)], s.pending...)
			s.mu.Unlock()
			return err
		}
	}
	return nil
}

// writeLoop appends queued deltas until ctx ends, retrying failures every
// retry, then makes a last attempt on a detached context.
func (s *stateSync) writeLoop(ctx context.Context, retry time.Duration) {
	t := time.NewTicker(retry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			if err := s.flush(fctx); err != nil {
				s.logger.ErrorContext(ctx, "changes not written at shutdown", "err", err)
			}
			return
		case <-s.wake:
		case <-t.C:
		}
		if err := s.flush(ctx); err != nil && ctx.Err() == nil {
			s.logger.WarnContext(ctx, "write state change", "err", err)
		}
	}
}

// sync merges what the store holds after the last merged delta.
func (s *stateSync) sync(ctx context.Context) error {
	for {
		st, err := s.store.ReadState(ctx, s.kind, s.last)
		if err != nil {
			s.metrics.stateSyncFailures.WithLabelValues(s.kind).Inc()
			return err
		}
		if st.Snapshot != nil {
			s.merge(ctx, st.Snapshot)
		}
		for _, d := range st.Deltas {
			s.merge(ctx, d.Data)
		}
		s.last = st.Last(s.last)
		if len(st.Deltas) < maxDeltasPerRead {
			return nil
		}
	}
}

// maxDeltasPerRead is alertstore's page size: a full page means more may
// follow.
const maxDeltasPerRead = 1000

func (s *stateSync) merge(ctx context.Context, b []byte) {
	if len(b) == 0 {
		return
	}
	s.merging.Store(&b[0])
	err := s.state.Merge(b)
	s.merging.Store(nil)
	if err != nil {
		// A payload that does not decode cannot become decodable: skip it
		// rather than stop every later change.
		s.metrics.stateSyncFailures.WithLabelValues(s.kind).Inc()
		s.logger.ErrorContext(ctx, "merge state change", "err", err)
	}
}

// maintain garbage collects the state and stores it as the snapshot up to
// the last merged delta. Its caller holds Notifier.syncMu, so last is
// stable.
func (s *stateSync) maintain(ctx context.Context) error {
	if _, err := s.state.GC(); err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := s.state.Snapshot(&buf); err != nil {
		return err
	}
	if s.last == 0 {
		return nil
	}
	return s.store.WriteSnapshot(ctx, s.kind, s.last, buf.Bytes())
}
