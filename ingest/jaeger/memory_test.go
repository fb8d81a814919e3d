package jaeger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-obs/vigil/internal/inflight"
	"github.com/vigil-obs/vigil/internal/inflight/inflighttest"
)

// Sizes of the memory-pressure tests: 32 requests of about 1 MiB against
// a budget of 4 MiB, with requests of up to 2 MiB allowed.
const (
	pressureRequests = 32
	pressureBudget   = 4 << 20
	pressureMaxBytes = 2 << 20
	pressureSpans    = 100
	pressureBlob     = 10 << 10
)

// pressureSetup starts a receiver with a budget of pressureBudget.
func pressureSetup(t *testing.T, mutate func(*Config)) (*bundle, *inflight.Budget) {
	t.Helper()
	budget, err := inflight.New(pressureBudget, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(c *Config, o *Options) {
		c.MaxRequestBytes = pressureMaxBytes
		if mutate != nil {
			mutate(c)
		}
		o.Budget = budget
	})
	return b, budget
}

// bigThriftBatch is request i: pressureSpans spans of service "r<i>",
// each with a pressureBlob tag.
func bigThriftBatch(i int) *jaegerthrift.Batch {
	b := simpleBatch(fmt.Sprintf("r%d", i), "op", int64(i+1), pressureSpans)
	blob := strings.Repeat("j", pressureBlob)
	for _, sp := range b.Spans {
		sp.Tags = append(sp.Tags, &jaegerthrift.Tag{Key: "blob", VType: jaegerthrift.TagType_STRING, VStr: &blob})
	}
	return b
}

// bigZipkinJSON is request i in Zipkin v2 JSON.
func bigZipkinJSON(t *testing.T, i int) []byte {
	t.Helper()
	blob := strings.Repeat("z", pressureBlob)
	spans := make([]map[string]any, pressureSpans)
	for j := range spans {
		spans[j] = map[string]any{
			"traceId": fmt.Sprintf("%016x", i+1), "id": fmt.Sprintf("%016x", j+1), "name": "op",
			"timestamp": nowMicros(), "duration": 10, "localEndpoint": map[string]any{"serviceName": fmt.Sprintf("r%d", i)},
			"tags": map[string]string{"blob": blob},
		}
	}
	body, err := json.Marshal(spans)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestHTTPAndGRPCUnderMemoryPressure sends 32 requests of about 1 MiB at
// once to each transport against a budget of 4 MiB while the pipeline
// holds every request it gets: the requests the budget cannot cover are
// refused with a retryable answer, and exactly the acknowledged ones are
// stored.
func TestHTTPAndGRPCUnderMemoryPressure(t *testing.T) {
	tests := []struct {
		name string
		// sender returns the function that sends request i and tells
		// whether it was stored (true) or refused (false).
		sender func(t *testing.T, b *bundle) func(i int) (bool, error)
	}{
		{
			name: "jaeger http",
			sender: func(t *testing.T, b *bundle) func(int) (bool, error) {
				url := "http://" + b.r.HTTPAddr() + jaegerTracesPath
				return func(i int) (bool, error) {
					return postUnderPressure(url, contentTypeThrift, thriftBody(t, bigThriftBatch(i)))
				}
			},
		},
		{
			name: "zipkin",
			sender: func(t *testing.T, b *bundle) func(int) (bool, error) {
				url := "http://" + b.r.ZipkinAddr() + zipkinSpansPath
				return func(i int) (bool, error) {
					return postUnderPressure(url, contentTypeJSON, bigZipkinJSON(t, i))
				}
			},
		},
		{
			name: "grpc",
			sender: func(t *testing.T, b *bundle) func(int) (bool, error) {
				client := collectorClient(t, b.r.GRPCAddr())
				return func(i int) (bool, error) {
					batch := simpleModelBatch(fmt.Sprintf("r%d", i), "op", uint64(i+1), pressureSpans)
					blob := strings.Repeat("g", pressureBlob)
					for _, sp := range batch.Spans {
						sp.Tags = append(sp.Tags, model.String("blob", blob))
					}
					_, err := client.PostSpans(context.Background(), &api_v2.PostSpansRequest{Batch: batch})
					if err == nil {
						return true, nil
					}
					if st := status.Convert(err); st.Code() == codes.ResourceExhausted && len(st.Details()) == 1 {
						return false, nil
					}
					return false, err
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, budget := pressureSetup(t, nil)
			b.rec.Hold()
			send := tt.sender(t, b)
			stored := make([]bool, pressureRequests)
			var refused atomic.Int32
			var wg sync.WaitGroup
			for i := range pressureRequests {
				wg.Go(func() {
					ok, err := send(i)
					switch {
					case err != nil:
						t.Errorf("request %d: %v", i, err)
						refused.Add(1) // neither held nor refused; keeps the wait below finite
					case ok:
						stored[i] = true
					default:
						refused.Add(1)
					}
				})
			}
			deadline := time.Now().Add(30 * time.Second)
			for b.rec.Held()+int(refused.Load()) != pressureRequests {
				if time.Now().After(deadline) {
					t.Fatalf("%d held, %d refused of %d", b.rec.Held(), refused.Load(), pressureRequests)
				}
				time.Sleep(5 * time.Millisecond)
			}
			held := b.rec.Held()
			b.rec.Release()
			wg.Wait()

			acked := map[string]bool{}
			for i, ok := range stored {
				if ok {
					acked[fmt.Sprintf("r%d", i)] = true
				}
			}
			t.Logf("%d requests acknowledged, %d refused; budget peak %d of %d", len(acked), refused.Load(), budget.Peak(), budget.Limit())
			if len(acked) != held || held == 0 || refused.Load() == 0 {
				t.Errorf("%d acknowledged, %d held by the pipeline, %d refused: want some of each, acknowledged = held", len(acked), held, refused.Load())
			}
			services := map[string]int{}
			for _, td := range b.rec.Got() {
				for i := 0; i < td.ResourceSpans().Len(); i++ {
					rs := td.ResourceSpans().At(i)
					svc, _ := rs.Resource().Attributes().Get("service.name")
					services[svc.Str()] += rs.ScopeSpans().At(0).Spans().Len()
				}
			}
			if len(services) != len(acked) {
				t.Errorf("stored the spans of %d requests, acknowledged %d", len(services), len(acked))
			}
			for svc, n := range services {
				if !acked[svc] || n != pressureSpans {
					t.Errorf("stored %d spans of request %s, acknowledged: %v", n, svc, acked[svc])
				}
			}
			if budget.Peak() > budget.Limit() {
				t.Errorf("budget peak %d over its limit %d", budget.Peak(), budget.Limit())
			}
			waitFor(t, "the budget to be given back", func() bool { return budget.InUse() == 0 })
		})
	}
}

// postUnderPressure posts body and tells stored (202) from refused (429
// with Retry-After); any other answer is an error.
func postUnderPressure(url, contentType string, body []byte) (bool, error) {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var msg bytes.Buffer
	_, _ = msg.ReadFrom(resp.Body)
	switch {
	case resp.StatusCode == http.StatusAccepted:
		return true, nil
	case resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "1":
		return false, nil
	}
	return false, fmt.Errorf("status %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), msg.String())
}

// TestSlowBodiesAreCut opens connections to the HTTP APIs that declare a
// large body and send it a byte at a time: while they trickle they hold
// only the first buffer step each, and the read timeout cuts them with a
// 408.
func TestSlowBodiesAreCut(t *testing.T) {
	b, budget := pressureSetup(t, func(c *Config) { c.ReadTimeout = 500 * time.Millisecond })
	inflighttest.CheckSlowBodies(t, budget, 16,
		inflighttest.Target{Addr: b.r.HTTPAddr(), Fill: '[',
			Head: inflighttest.Head(jaegerTracesPath, pressureMaxBytes, "Content-Type: "+contentTypeThrift)},
		inflighttest.Target{Addr: b.r.ZipkinAddr(), Fill: '[',
			Head: inflighttest.Head(zipkinSpansPath, pressureMaxBytes, "Content-Type: "+contentTypeJSON)})
}
