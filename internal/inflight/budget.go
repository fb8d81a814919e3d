package inflight

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// FallbackMaxBytes is the default budget when no Go memory limit is set.
const FallbackMaxBytes = 128 << 20

// memoryLimitShare is the part of the Go memory limit the default budget
// takes. The bytes charged are the request buffers only: the pdata
// decoded from a protobuf body of small spans takes about 3.3 times its
// size on top (heap profile of vigil-bench -signal memory), and at the
// GOGC of 400 vigil serve runs with the collector lets the heap grow to
// five times what is live before it collects. With 64 concurrent 16 MiB
// exports and a GOMEMLIMIT of 1 GiB, Vigil's peak RSS was 1.08 times the
// limit with a budget of an eighth of it, 1.01 to 1.02 with a sixteenth,
// 0.95 to 1.00 with the 48 MiB this gives (0.78 at GOGC 100).
const memoryLimitShare = 32

// MinDefaultMaxBytes is the least DefaultMaxBytes returns: room for two
// requests of the receivers' default largest size (16 MiB) besides
// smaller ones, and for one remote_write request of that size,
// compressed and decompressed.
const MinDefaultMaxBytes = 48 << 20

// DefaultMaxBytes returns the budget used when none is configured: a
// thirty-second of the Go memory limit (GOMEMLIMIT, or
// debug.SetMemoryLimit; vigil serve sets 1 GiB when GOMEMLIMIT is unset)
// when one is set, else FallbackMaxBytes (128 MiB); never less than
// MinDefaultMaxBytes (48 MiB).
func DefaultMaxBytes() int64 {
	limit := debug.SetMemoryLimit(-1)
	if limit <= 0 || limit == math.MaxInt64 {
		return FallbackMaxBytes
	}
	return max(limit/memoryLimitShare, MinDefaultMaxBytes)
}

// ErrOverBudget is returned by ReadAll when the budget cannot cover the
// next bytes of a request. It is retryable: the receivers answer HTTP
// 429/503 with Retry-After or gRPC RESOURCE_EXHAUSTED with RetryInfo.
var ErrOverBudget = errors.New("ingest memory budget spent")

// Budget is a weighted semaphore of bytes shared by the receivers. Bytes
// are taken without waiting (TryAcquire) and given back with Release. It
// is safe for concurrent use.
type Budget struct {
	limit   int64
	used    atomic.Int64
	peak    atomic.Int64
	refused prometheus.Counter
}

// New returns a budget of maxBytes; zero means DefaultMaxBytes(). When reg
// is not nil it registers vigil_ingest_inflight_bytes (bytes held now),
// vigil_ingest_inflight_limit_bytes and vigil_ingest_inflight_refused_total
// (requests refused because the budget was spent). It returns an error
// when maxBytes is negative or the metrics cannot be registered.
func New(maxBytes int64, reg prometheus.Registerer) (*Budget, error) {
	if maxBytes < 0 {
		return nil, fmt.Errorf("new inflight budget: max_inflight_bytes %d is negative", maxBytes)
	}
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes()
	}
	b := &Budget{
		limit: maxBytes,
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "ingest", Name: "inflight_refused_total",
			Help: "Number of ingest requests refused with a retryable answer because the in-flight byte budget was spent.",
		}),
	}
	if reg == nil {
		return b, nil
	}
	inUse := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "vigil", Subsystem: "ingest", Name: "inflight_bytes",
		Help: "Bytes of ingest requests being read, decoded or stored, as charged to the in-flight budget.",
	}, func() float64 { return float64(b.used.Load()) })
	limit := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "vigil", Subsystem: "ingest", Name: "inflight_limit_bytes",
		Help: "Size of the in-flight byte budget of ingest requests (ingest.max_inflight_bytes).",
	}, func() float64 { return float64(b.limit) })
	var errs []error
	for _, c := range []prometheus.Collector{inUse, limit, b.refused} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register inflight metrics: %w", err)
	}
	return b, nil
}

// Limit returns the size of the budget in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// InUse returns the bytes held now.
func (b *Budget) InUse() int64 { return b.used.Load() }

// Peak returns the most bytes held at once since New: the high-water
// mark, never above Limit.
func (b *Budget) Peak() int64 { return b.peak.Load() }

// TryAcquire takes n bytes if the budget has them and reports whether it
// did; it never waits. n must not be negative; zero always succeeds.
func (b *Budget) TryAcquire(n int64) bool {
	if n < 0 {
		panic("inflight: negative acquire")
	}
	for {
		cur := b.used.Load()
		if n > b.limit-cur {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			for p := b.peak.Load(); cur+n > p && !b.peak.CompareAndSwap(p, cur+n); p = b.peak.Load() {
			}
			return true
		}
	}
}

// Release gives back n bytes taken with TryAcquire. Releasing more than
// is held is a bug of the caller and panics.
func (b *Budget) Release(n int64) {
	if n < 0 || b.used.Add(-n) < 0 {
		panic("inflight: released more than held")
	}
}

// Reservation is what one request holds of a Budget; it grows as the
// request reads and is given back all at once. The zero value is not
// usable: get one with Budget.Reserve. A Reservation belongs to one
// request and is not safe for concurrent use.
type Reservation struct {
	b *Budget
	n int64
}

// Reserve returns an empty reservation on b. On a nil *Budget it returns
// a reservation without limit, which only counts its bytes.
func (b *Budget) Reserve() *Reservation { return &Reservation{b: b} }

// Grow takes n more bytes for the request and reports whether the budget
// had them. On false the reservation is unchanged and the request is
// counted as refused (vigil_ingest_inflight_refused_total): the caller
// must refuse it with a retryable answer rather than grow it again.
func (r *Reservation) Grow(n int64) bool {
	if r.b == nil {
		r.n += n
		return true
	}
	if !r.b.TryAcquire(n) {
		r.b.refused.Inc()
		return false
	}
	r.n += n
	return true
}

// Bytes returns the bytes the reservation holds.
func (r *Reservation) Bytes() int64 { return r.n }

// fits reports whether the budget has n bytes free now, counting the
// request as refused when it has not. It takes nothing.
func (r *Reservation) fits(n int64) bool {
	if r.b == nil || n <= r.b.limit-r.b.used.Load() {
		return true
	}
	r.b.refused.Inc()
	return false
}

// Release gives back everything the reservation holds. It is idempotent,
// and the reservation may grow again afterwards.
func (r *Reservation) Release() {
	if r.b == nil {
		r.n = 0
		return
	}
	if r.n > 0 {
		r.b.Release(r.n)
		r.n = 0
	}
}
