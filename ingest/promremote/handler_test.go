package promremote

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-obs/vigil/ingest"
	"github.com/vigil-obs/vigil/internal/inflight"
	"github.com/vigil-obs/vigil/internal/inflight/inflighttest"
)

// memStore is an AppendableV2 keeping the job label of every committed
// sample; commits wait for gate when it is set.
type memStore struct {
	gate chan struct{}
	held atomic.Int32 // commits waiting at the gate

	mu   sync.Mutex
	jobs map[string]int // samples committed by job
}

func (s *memStore) AppenderV2(context.Context) promstorage.AppenderV2 { return &memAppender{s: s} }

type memAppender struct {
	s       *memStore
	pending []string
}

func (a *memAppender) Append(_ promstorage.SeriesRef, ls labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ promstorage.AOptions) (promstorage.SeriesRef, error) {
	a.pending = append(a.pending, ls.Get("job"))
	return 0, nil
}

func (a *memAppender) Commit() error {
	if a.s.gate != nil {
		a.s.held.Add(1)
		<-a.s.gate
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if a.s.jobs == nil {
		a.s.jobs = map[string]int{}
	}
	for _, j := range a.pending {
		a.s.jobs[j]++
	}
	return nil
}

func (a *memAppender) Rollback() error { return nil }

// writeBody is a snappy remote_write body of series samples of job,
// each series with a random label value so that it does not compress.
func writeBody(t *testing.T, job string, series int) []byte {
	t.Helper()
	req := prompb.WriteRequest{}
	now := time.Now().UnixMilli()
	for i := range series {
		var id [96]byte
		_, _ = rand.Read(id[:])
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "pressure"}, {Name: "job", Value: job},
				{Name: "id", Value: fmt.Sprintf("%d-%s", i, hex.EncodeToString(id[:]))},
			},
			Samples: []prompb.Sample{{Timestamp: now, Value: 1}},
		})
	}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

// serve runs h on a loopback HTTP server with the given read timeout.
func serve(t *testing.T, h *Handler, readTimeout time.Duration) string {
	t.Helper()
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadTimeout = readTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestNewRefusesTooSmallBudget(t *testing.T) {
	budget, err := inflight.New(2<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(&memStore{}, Config{MaxRequestBytes: 1 << 20}, Options{Budget: budget}); err == nil {
		t.Error("New accepted a budget that cannot hold one request compressed and decompressed")
	}
	if _, err := New(&memStore{}, Config{MaxRequestBytes: 1 << 20}, Options{}); err != nil {
		t.Errorf("New without a budget: %v", err)
	}
}

// TestWriteUnderMemoryPressure sends 16 requests of about 600 KB at once
// against a budget of 4 MiB while the store holds every commit: the
// requests the budget cannot cover get 503 with Retry-After (which
// Prometheus retries), and exactly the acknowledged ones are stored.
func TestWriteUnderMemoryPressure(t *testing.T) {
	const requests, series = 16, 2500
	budget, err := inflight.New(4<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := &memStore{gate: make(chan struct{})}
	h, err := New(store, Config{MaxRequestBytes: 1 << 20}, Options{Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, h, 0) + "/api/v1/write"
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	codes := make([]int, requests)
	var refused atomic.Int32
	var wg sync.WaitGroup
	for i := range requests {
		body := writeBody(t, fmt.Sprint("job", i), series)
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-protobuf")
			req.Header.Set("Content-Encoding", "snappy")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				refused.Add(1)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
			if resp.StatusCode == http.StatusServiceUnavailable {
				if resp.Header.Get("Retry-After") != "1" {
					t.Errorf("request %d: 503 without Retry-After", i)
				}
				refused.Add(1)
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for int(store.held.Load()+refused.Load()) != requests {
		if time.Now().After(deadline) {
			t.Fatalf("%d held, %d refused of %d", store.held.Load(), refused.Load(), requests)
		}
		time.Sleep(5 * time.Millisecond)
	}
	held := int(store.held.Load())
	close(store.gate)
	wg.Wait()

	store.mu.Lock()
	defer store.mu.Unlock()
	acked := 0
	for i, code := range codes {
		n := store.jobs[fmt.Sprint("job", i)]
		switch code {
		case http.StatusNoContent:
			acked++
			if n != series {
				t.Errorf("request %d acknowledged, %d of %d samples stored", i, n, series)
			}
		case http.StatusServiceUnavailable:
			if n != 0 {
				t.Errorf("request %d refused, %d samples stored", i, n)
			}
		default:
			t.Errorf("request %d: status %d", i, code)
		}
	}
	t.Logf("%d requests acknowledged, %d refused; budget peak %d of %d", acked, refused.Load(), budget.Peak(), budget.Limit())
	if acked != held || acked == 0 || refused.Load() == 0 {
		t.Errorf("%d acknowledged, %d held, %d refused: want some of each, acknowledged = held", acked, held, refused.Load())
	}
	if budget.Peak() > budget.Limit() {
		t.Errorf("budget peak %d over its limit %d", budget.Peak(), budget.Limit())
	}
	if budget.InUse() != 0 {
		t.Errorf("budget holds %d once every request was answered", budget.InUse())
	}
}

// TestSlowBodiesAreCut: connections that declare a large body and send it
// a byte at a time hold only the first buffer step each and are cut by
// the server's read timeout with a 408.
func TestSlowBodiesAreCut(t *testing.T) {
	const conns = 16
	budget, err := inflight.New(64<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(&memStore{}, Config{}, Options{Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(serve(t, h, 500*time.Millisecond), "http://")
	inflighttest.CheckSlowBodies(t, budget, conns, inflighttest.Target{
		Addr: addr, Fill: 0,
		Head: inflighttest.Head("/api/v1/write", DefaultMaxRequestBytes, "Content-Type: application/x-protobuf", "Content-Encoding: snappy"),
	})
}

// refusingStore refuses the samples at the given Append positions when
// committing, as the metric pipeline reports what its store refused.
type refusingStore struct{ refuse map[int]error }

func (s refusingStore) AppenderV2(context.Context) promstorage.AppenderV2 {
	return &refusingAppender{s: s}
}

type refusingAppender struct {
	s     refusingStore
	calls int
}

func (a *refusingAppender) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AOptions) (promstorage.SeriesRef, error) {
	a.calls++
	return 0, nil
}

func (a *refusingAppender) Commit() error {
	var rs ingest.RefusedSamples
	for i := range a.calls {
		if err := a.s.refuse[i]; err != nil {
			rs.Samples = append(rs.Samples, ingest.RefusedSample{Index: i, Err: err})
		}
	}
	if len(rs.Samples) > 0 {
		return &rs
	}
	return nil
}

func (a *refusingAppender) Rollback() error { return nil }

// TestStoreRefusalsNameSeries checks that samples the store refused at
// commit are reported by the series they belong to, with the series
// validation refused, in request order.
func TestStoreRefusalsNameSeries(t *testing.T) {
	store := refusingStore{refuse: map[int]error{
		2: errors.New("out of bounds"), // series 2's first sample
		3: errors.New("out of bounds"), // and its second: named once
		5: errors.New("invalid series"),
	}}
	h, err := New(store, Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	series := func(name string, samples int) prompb.TimeSeries {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}}
		for i := range samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: now - int64(i), Value: 1})
		}
		return ts
	}
	req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("a", 2), // Append calls 0, 1
		{Labels: nil},  // refused by validation, no call
		series("b", 2), // 2, 3
		series("c", 1), // 4
		series("d", 0), // none
		series("e", 1), // 5
	}}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	h.ServeHTTP(rec, r)
	want := `3 series refused, the others were stored: timeseries[1] {}: missing __name__; ` +
		`timeseries[2] {__name__="b"}: out of bounds; timeseries[5] {__name__="e"}: invalid series`
	if rec.Code != http.StatusBadRequest || strings.TrimSpace(rec.Body.String()) != want {
		t.Fatalf("%d %q, want 400 %q", rec.Code, rec.Body.String(), want)
	}
}
