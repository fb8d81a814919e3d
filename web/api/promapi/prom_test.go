package promapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigil-obs/vigil/ingest/pipeline"
	"github.com/vigil-obs/vigil/ingest/promremote"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/metrics"
	"github.com/vigil-obs/vigil/query/promql"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/metricstore"
	"github.com/vigil-obs/vigil/web/api/promapi"
)

type promBundle struct {
	srv *httptest.Server
	now time.Time
}

// setupProm starts the remote-write handler and the Prometheus API over a
// fresh database, and loads 10 minutes of known series through
// remote_write and OTLP.
func setupProm(t *testing.T) promBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 7 * 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatalf("partitions: %v", err)
	}
	store := metricstore.New(pool, parts, metricstore.Options{})
	engine, err := promql.New(store, promql.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Close() })
	now := time.Now().Truncate(time.Minute)
	mux := http.NewServeMux()
	rw, err := promremote.New(store, promremote.Config{}, promremote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rw.Register(mux)
	promapi.New(engine, metrics.New(store, store, metrics.Config{}), promapi.Options{Now: func() time.Time { return now }}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// remote_write: two counters (10/s with status 500, 1/s with 200) and
	// a gauge of 3 GiB, every 15 s over the last 10 minutes.
	var req prompb.WriteRequest
	series := []struct {
		lbls []prompb.Label
		v    func(i int) float64
	}{
		{[]prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "job", Value: "api"}, {Name: "status_code", Value: "500"}}, func(i int) float64 { return float64(150 * i) }},
		{[]prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "job", Value: "api"}, {Name: "status_code", Value: "200"}}, func(i int) float64 { return float64(15 * i) }},
		{[]prompb.Label{{Name: "__name__", Value: "process_resident_memory_bytes"}, {Name: "job", Value: "api"}}, func(int) float64 { return 3 << 30 }},
	}
	for _, s := range series {
		ts := prompb.TimeSeries{Labels: s.lbls}
		for i := 0; i <= 40; i++ {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: now.Add(time.Duration(i-40) * 15 * time.Second).UnixMilli(), Value: s.v(i)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Metadata = []prompb.MetricMetadata{
		{MetricFamilyName: "http_requests_total", Type: prompb.MetricMetadata_COUNTER, Help: "Requests served."},
		{MetricFamilyName: "process_resident_memory_bytes", Type: prompb.MetricMetadata_GAUGE, Help: "Resident memory.", Unit: "bytes"},
	}
	if code, body := remoteWrite(t, srv.URL, &req); code != http.StatusNoContent {
		t.Fatalf("remote write: %d %s", code, body)
	}

	// OTLP: a cumulative explicit-bucket histogram http.request.duration
	// (s), bounds 0.1, 0.5, 1; every 15 s 9 observations ≤ 0.1 and one in
	// (0.5, 1].
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	rm.Resource().Attributes().PutStr("service.instance.id", "i-1")
	rm.Resource().Attributes().PutStr("host.name", "web-1") // non-identifying: makes target_info
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("http.request.duration")
	m.SetUnit("s")
	m.SetDescription("Duration of HTTP requests.")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	start := now.Add(-10*time.Minute - time.Second)
	for i := 0; i <= 40; i++ {
		dp := h.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i-40) * 15 * time.Second)))
		dp.ExplicitBounds().FromRaw([]float64{0.1, 0.5, 1})
		dp.BucketCounts().FromRaw([]uint64{uint64(9 * i), 0, uint64(i), 0})
		dp.SetCount(uint64(10 * i))
		dp.SetSum(float64(i) * (9*0.05 + 0.75))
	}
	if err := pipeline.NewOTLPMetrics(store, pipeline.OTLPMetricsConfig{}, nil).ConsumeMetrics(ctx, md); err != nil {
		t.Fatalf("otlp: %v", err)
	}
	return promBundle{srv: srv, now: now}
}

func remoteWrite(t *testing.T, base string, req *prompb.WriteRequest) (int, string) {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

type promResp struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

// call sends a GET, or a form POST when post is set.
func call(t *testing.T, base, path string, params url.Values, post bool) (int, promResp) {
	t.Helper()
	var resp *http.Response
	var err error
	if post {
		resp, err = http.PostForm(base+path, params)
	} else {
		resp, err = http.Get(base + path + "?" + params.Encode())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out promResp
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: decode: %v", path, err)
	}
	return resp.StatusCode, out
}

func instant(t *testing.T, b promBundle, q string, post bool) []promSample {
	t.Helper()
	code, r := call(t, b.srv.URL, "/api/v1/query", url.Values{"query": {q}, "time": {strconv.FormatInt(b.now.Unix(), 10)}}, post)
	if code != http.StatusOK || r.Status != "success" {
		t.Fatalf("%s: %d %+v", q, code, r)
	}
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatal(err)
	}
	return data.Result
}

func value(t *testing.T, v any) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(v.(string), 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPrometheusAPISeedExpressions(t *testing.T) {
	b := setupProm(t)
	for _, tc := range []struct {
		expr   string
		metric map[string]string
		want   float64
	}{
		{`rate(http_requests_total{status_code=~"5.."}[5m]) > 0.05`, map[string]string{"job": "api", "status_code": "500"}, 10},
		{`histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))`, map[string]string{}, 0.75},
		{`process_resident_memory_bytes / 1024 / 1024 / 1024 > 2`, map[string]string{"job": "api"}, 3},
	} {
		for _, post := range []bool{false, true} {
			got := instant(t, b, tc.expr, post)
			if len(got) != 1 {
				t.Fatalf("%s: got %d series %+v", tc.expr, len(got), got)
			}
			if fmt.Sprint(got[0].Metric) != fmt.Sprint(tc.metric) {
				t.Errorf("%s: metric %v, want %v", tc.expr, got[0].Metric, tc.metric)
			}
			if v := value(t, got[0].Value[1]); math.Abs(v-tc.want) > 1e-9 {
				t.Errorf("%s: value %v, want %v", tc.expr, v, tc.want)
			}
			if ts := got[0].Value[0].(float64); int64(ts) != b.now.Unix() {
				t.Errorf("%s: time %v", tc.expr, ts)
			}
		}
	}
	// The quiet counter is below the threshold: nothing.
	if got := instant(t, b, `rate(http_requests_total{status_code="200"}[5m]) > 1.5`, false); len(got) != 0 {
		t.Errorf("got %v", got)
	}
}

func TestPrometheusAPIRangeSeriesLabels(t *testing.T) {
	b := setupProm(t)
	code, r := call(t, b.srv.URL, "/api/v1/query_range", url.Values{
		"query": {"process_resident_memory_bytes"}, "start": {b.now.Add(-2 * time.Minute).Format(time.RFC3339)},
		"end": {b.now.Format(time.RFC3339)}, "step": {"60"},
	}, true)
	if code != http.StatusOK {
		t.Fatalf("query_range: %d %+v", code, r)
	}
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	_ = json.Unmarshal(r.Data, &data)
	if data.ResultType != "matrix" || len(data.Result) != 1 || len(data.Result[0].Values) != 3 {
		t.Fatalf("query_range: %s", r.Data)
	}
	for i, p := range data.Result[0].Values {
		if int64(p[0].(float64)) != b.now.Add(time.Duration(i-2)*time.Minute).Unix() || p[1] != "3221225472" {
			t.Errorf("point %d: %v", i, p)
		}
	}

	code, r = call(t, b.srv.URL, "/api/v1/series", url.Values{"match[]": {"http_requests_total"}}, false)
	if code != http.StatusOK || string(r.Data) != `[{"__name__":"http_requests_total","job":"api","status_code":"200"},{"__name__":"http_requests_total","job":"api","status_code":"500"}]` {
		t.Errorf("series: %d %s", code, r.Data)
	}
	code, r = call(t, b.srv.URL, "/api/v1/label/status_code/values", nil, false)
	if code != http.StatusOK || string(r.Data) != `["200","500"]` {
		t.Errorf("label values: %d %s", code, r.Data)
	}
	code, r = call(t, b.srv.URL, "/api/v1/label/le/values", url.Values{"match[]": {"http_request_duration_seconds_bucket"}}, false)
	if code != http.StatusOK || string(r.Data) != `["+Inf","0.1","0.5","1"]` {
		t.Errorf("le values: %d %s", code, r.Data)
	}
	code, r = call(t, b.srv.URL, "/api/v1/labels", url.Values{"match[]": {"http_request_duration_seconds_count"}}, true)
	if code != http.StatusOK || string(r.Data) != `["__name__","instance","job"]` {
		t.Errorf("labels: %d %s", code, r.Data)
	}
	code, r = call(t, b.srv.URL, "/api/v1/series", url.Values{"match[]": {`target_info`}}, false)
	if code != http.StatusOK || !strings.Contains(string(r.Data), `"job":"checkout"`) || !strings.Contains(string(r.Data), `"instance":"i-1"`) || !strings.Contains(string(r.Data), `"host_name":"web-1"`) {
		t.Errorf("target_info: %d %s", code, r.Data)
	}
	code, r = call(t, b.srv.URL, "/api/v1/status/buildinfo", nil, false)
	if code != http.StatusOK || !strings.Contains(string(r.Data), `"version"`) {
		t.Errorf("buildinfo: %d %s", code, r.Data)
	}
	code, r = call(t, b.srv.URL, "/api/v1/metadata", nil, false)
	var md map[string][]struct{ Type, Help, Unit string }
	if err := json.Unmarshal(r.Data, &md); code != http.StatusOK || err != nil {
		t.Fatalf("metadata: %d %s %v", code, r.Data, err)
	}
	for fam, want := range map[string]string{
		"http_requests_total":           "counter|Requests served.|",
		"process_resident_memory_bytes": "gauge|Resident memory.|bytes",
		"http_request_duration_seconds": "histogram|Duration of HTTP requests.|seconds",
	} {
		if got := md[fam]; len(got) != 1 || got[0].Type+"|"+got[0].Help+"|"+got[0].Unit != want {
			t.Errorf("metadata of %s: %+v, want %s", fam, got, want)
		}
	}
	code, r = call(t, b.srv.URL, "/api/v1/metadata", url.Values{"metric": {"http_requests_total"}}, false)
	if code != http.StatusOK || !strings.Contains(string(r.Data), `"http_requests_total"`) || strings.Contains(string(r.Data), "process_") {
		t.Errorf("metadata of one metric: %d %s", code, r.Data)
	}
	code, r = call(t, b.srv.URL, "/api/v1/metadata", url.Values{"limit": {"1"}}, false)
	var one map[string]any
	if json.Unmarshal(r.Data, &one) != nil || code != http.StatusOK || len(one) != 1 {
		t.Errorf("metadata limit=1: %d %s", code, r.Data)
	}
}

func TestPrometheusAPIErrors(t *testing.T) {
	b := setupProm(t)
	for _, tc := range []struct {
		path   string
		params url.Values
		code   int
		typ    string
		msg    string
	}{
		{"/api/v1/query", url.Values{"query": {"sum("}}, 400, "bad_data", "parse error"},
		{"/api/v1/query", url.Values{}, 400, "bad_data", `"query"`},
		{"/api/v1/query", url.Values{"query": {"up"}, "time": {"yesterday"}}, 400, "bad_data", `"time"`},
		{"/api/v1/query_range", url.Values{"query": {"up"}, "start": {"10"}, "end": {"5"}, "step": {"1"}}, 400, "bad_data", "end timestamp"},
		{"/api/v1/query_range", url.Values{"query": {"up"}, "start": {"0"}, "end": {"100000"}, "step": {"1"}}, 400, "bad_data", "11,000"},
		{"/api/v1/query_range", url.Values{"query": {"up"}, "start": {"0"}, "end": {"10"}, "step": {"0"}}, 400, "bad_data", "zero or negative"},
		{"/api/v1/series", url.Values{}, 400, "bad_data", "no match[]"},
		{"/api/v1/series", url.Values{"match[]": {`{job=~".*"}`}}, 400, "bad_data", "non-empty matcher"},
		{"/api/v1/query", url.Values{"query": {`sum(rate(http_requests_total[5m]))`}, "time": {"1e30"}}, 400, "bad_data", `"time"`},
		{"/api/v1/query", url.Values{"query": {`http_requests_total`}, "timeout": {"-1s"}}, 400, "bad_data", `"timeout"`},
	} {
		code, r := call(t, b.srv.URL, tc.path, tc.params, false)
		if code != tc.code || r.Status != "error" || r.ErrorType != tc.typ || !strings.Contains(r.Error, tc.msg) {
			t.Errorf("%s %v: %d %+v", tc.path, tc.params, code, r)
		}
	}
}

func TestRemoteWriteRefusesInvalidSeries(t *testing.T) {
	b := setupProm(t)
	ts := b.now.UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "job", Value: "x"}}, Samples: []prompb.Sample{{Timestamp: ts, Value: 1}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "ok_metric"}}, Samples: []prompb.Sample{{Timestamp: ts, Value: math.Float64frombits(0x7ff0000000000002)}, {Timestamp: ts - 1000, Value: math.Inf(1)}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "dup"}, {Name: "a", Value: "1"}, {Name: "a", Value: "2"}}, Samples: []prompb.Sample{{Timestamp: ts, Value: 1}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "future"}}, Samples: []prompb.Sample{{Timestamp: ts + int64(48*time.Hour/time.Millisecond), Value: 1}}},
	}}
	code, body := remoteWrite(t, b.srv.URL, req)
	if code != http.StatusBadRequest {
		t.Fatalf("code %d %s", code, body)
	}
	for _, want := range []string{"3 series refused", `timeseries[0] {job="x"}: missing __name__`, `timeseries[2]`, `duplicate label name "a"`, `timeseries[3]`, "future"} {
		if !strings.Contains(body, want) {
			t.Errorf("body %q lacks %q", body, want)
		}
	}
	// The valid series was stored, staleness marker and +Inf included.
	code, r := call(t, b.srv.URL, "/api/v1/query", url.Values{"query": {"ok_metric"}, "time": {strconv.FormatInt(b.now.Unix()-1, 10)}}, false)
	if code != http.StatusOK || !strings.Contains(string(r.Data), `"+Inf"`) {
		t.Errorf("ok_metric: %d %s", code, r.Data)
	}
	// At the staleness marker the series is gone from instant queries.
	code, r = call(t, b.srv.URL, "/api/v1/query", url.Values{"query": {"ok_metric"}, "time": {strconv.FormatInt(b.now.Unix(), 10)}}, false)
	if code != http.StatusOK || !strings.Contains(string(r.Data), `"result":[]`) {
		t.Errorf("stale ok_metric: %d %s", code, r.Data)
	}
	// Garbage bodies are a 400 naming the failure.
	hr, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/api/v1/write", strings.NewReader("not snappy"))
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "snappy") {
		t.Errorf("garbage: %d %s", resp.StatusCode, msg)
	}
}
