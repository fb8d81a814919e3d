package main

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

// TestRemoteWriteWiring checks that `vigil serve` wires the metrics store:
// a remote_write request on the HTTP port (behind the ingest tokens) is
// queryable through the Prometheus API (behind the read tokens).
func TestRemoteWriteWiring(t *testing.T) {
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) {
		c.Auth.IngestTokens = []string{"in"}
		c.Auth.ReadTokens = []string{"out"}
	})
	now := time.Now()
	var samples []prompb.Sample
	for i := 10; i >= 0; i-- {
		samples = append(samples, prompb.Sample{Timestamp: now.Add(-time.Duration(i) * 15 * time.Second).UnixMilli(), Value: float64(100 - i)})
	}
	req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "job", Value: "user-service"}, {Name: "status_code", Value: "500"}},
		Samples: samples,
	}}}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	post := func(token string) int {
		r, _ := http.NewRequest(http.MethodPost, ts.httpURL+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
		r.Header.Set("Content-Type", "application/x-protobuf")
		r.Header.Set("Content-Encoding", "snappy")
		r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("out"); code != http.StatusUnauthorized {
		t.Fatalf("remote write with the read token: %d, want 401", code)
	}
	if code := post("in"); code/100 != 2 {
		t.Fatalf("remote write: %d", code)
	}

	q := url.Values{"query": {`sum(http_requests_total{status_code=~"5.."})`}, "time": {now.Format(time.RFC3339Nano)}}
	r, _ := http.NewRequest(http.MethodGet, ts.httpURL+"/api/v1/query?"+q.Encode(), nil)
	r.Header.Set("Authorization", "Bearer out")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := decodeJSON(resp.Body, &body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body.Status != "success" || len(body.Data.Result) != 1 || body.Data.Result[0].Value[1] != "100" {
		t.Fatalf("query: %d %+v", resp.StatusCode, body)
	}
}
