package jaeger

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	jaegerthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/ingest/pipeline"
	"github.com/vigil-obs/vigil/internal/pgtest"
	"github.com/vigil-obs/vigil/query/traces"
	"github.com/vigil-obs/vigil/storage"
	"github.com/vigil-obs/vigil/storage/postgres"
	"github.com/vigil-obs/vigil/storage/postgres/spanstore"
	"github.com/vigil-obs/vigil/web/api/jaegerapi"
)

// newStore returns a SpanStore on a fresh migrated database and a running
// group-commit pipeline writing to it, stopped when the test ends.
func newStore(t testing.TB) (*spanstore.Store, *pipeline.Pipeline) {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	parts := postgres.NewPartitions(pool, postgres.PartitionsConfig{Retention: 24 * time.Hour})
	if err := parts.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	store := spanstore.New(pool, parts)
	p, err := pipeline.New(pipeline.DefaultConfig(), pipeline.Options{Writer: store})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return store, p
}

// The sample trace every Jaeger transport sends: a server span with a
// 64-bit trace id (traceLow, varied per transport), error tags and a log,
// and a client child with CHILD_OF and FOLLOWS_FROM references.
const (
	rootSpanID   = 0xa1a2a3a4a5a6a7a8
	childSpanID  = 0x00b2
	linkedHigh   = 0x0102030405060708
	linkedLow    = 0x090a0b0c0d0e0f10
	linkedSpanID = 0x00c3
)

type sample struct {
	traceLow int64
	start    time.Time // of the root span, microsecond precision
}

func newSample(traceLow int64) sample {
	return sample{traceLow: traceLow, start: time.Now().Add(-2 * time.Second).Truncate(time.Microsecond)}
}

func (s sample) thrift() *jaegerthrift.Batch {
	str := func(k, v string) *jaegerthrift.Tag {
		return &jaegerthrift.Tag{Key: k, VType: jaegerthrift.TagType_STRING, VStr: new(v)}
	}
	us := s.start.UnixMicro()
	rootID := int64(-0x5e5d5c5b5a595858) // rootSpanID as a signed 64-bit value
	return &jaegerthrift.Batch{
		Process: &jaegerthrift.Process{ServiceName: "checkout", Tags: []*jaegerthrift.Tag{
			str("hostname", "host-1"), str("region", "eu-west"),
			{Key: "pid", VType: jaegerthrift.TagType_LONG, VLong: new(int64(42))},
		}},
		Spans: []*jaegerthrift.Span{{
			TraceIdLow: s.traceLow, SpanId: rootID, OperationName: "GET /cart", Flags: 1,
			StartTime: us, Duration: 1500,
			Tags: []*jaegerthrift.Tag{
				str("span.kind", "server"), str("http.method", "GET"),
				{Key: "http.status_code", VType: jaegerthrift.TagType_LONG, VLong: new(int64(500))},
				{Key: "error", VType: jaegerthrift.TagType_BOOL, VBool: new(true)},
				str("http.url", "http://shop/cart"), str("peer.service", "cart-db"),
				{Key: "ratio", VType: jaegerthrift.TagType_DOUBLE, VDouble: new(0.25)},
				{Key: "blob", VType: jaegerthrift.TagType_BINARY, VBinary: []byte{1, 2, 3}},
			},
			Logs: []*jaegerthrift.Log{{Timestamp: us + 100, Fields: []*jaegerthrift.Tag{str("event", "exception"), str("message", "boom")}}},
		}, {
			TraceIdLow: s.traceLow, SpanId: childSpanID, ParentSpanId: rootID, OperationName: "SELECT cart", Flags: 1,
			StartTime: us + 200, Duration: 800,
			References: []*jaegerthrift.SpanRef{
				{RefType: jaegerthrift.SpanRefType_CHILD_OF, TraceIdLow: s.traceLow, SpanId: rootID},
				{RefType: jaegerthrift.SpanRefType_FOLLOWS_FROM, TraceIdHigh: linkedHigh, TraceIdLow: linkedLow, SpanId: linkedSpanID},
			},
			Tags: []*jaegerthrift.Tag{str("span.kind", "client"), str("otel.status_code", "OK"), str("db.system", "postgresql")},
		}},
	}
}

func (s sample) model() model.Batch {
	traceID := model.NewTraceID(0, uint64(s.traceLow))
	return model.Batch{
		Process: &model.Process{ServiceName: "checkout", Tags: []model.KeyValue{
			model.String("hostname", "host-1"), model.String("region", "eu-west"), model.Int64("pid", 42),
		}},
		Spans: []*model.Span{{
			TraceID: traceID, SpanID: model.NewSpanID(rootSpanID), OperationName: "GET /cart", Flags: 1,
			StartTime: s.start, Duration: 1500 * time.Microsecond,
			Tags: []model.KeyValue{
				model.String("span.kind", "server"), model.String("http.method", "GET"), model.Int64("http.status_code", 500),
				model.Bool("error", true), model.String("http.url", "http://shop/cart"), model.String("peer.service", "cart-db"),
				model.Float64("ratio", 0.25), model.Binary("blob", []byte{1, 2, 3}),
			},
			Logs: []model.Log{{Timestamp: s.start.Add(100 * time.Microsecond), Fields: []model.KeyValue{model.String("event", "exception"), model.String("message", "boom")}}},
		}, {
			TraceID: traceID, SpanID: model.NewSpanID(childSpanID), OperationName: "SELECT cart", Flags: 1,
			StartTime: s.start.Add(200 * time.Microsecond), Duration: 800 * time.Microsecond,
			References: []model.SpanRef{
				model.NewChildOfRef(traceID, model.NewSpanID(rootSpanID)),
				model.NewFollowsFromRef(model.NewTraceID(linkedHigh, linkedLow), model.NewSpanID(linkedSpanID)),
			},
			Tags: []model.KeyValue{model.String("span.kind", "client"), model.String("otel.status_code", "OK"), model.String("db.system", "postgresql")},
		}},
	}
}

func (s sample) traceID() pcommon.TraceID {
	var id pcommon.TraceID
	for i := range 8 {
		id[8+i] = byte(uint64(s.traceLow) >> (56 - 8*i))
	}
	return id
}

func spanID(v uint64) pcommon.SpanID {
	var id pcommon.SpanID
	for i := range 8 {
		id[i] = byte(v >> (56 - 8*i))
	}
	return id
}

// readTrace polls the store until the trace holds want spans.
func readTrace(t *testing.T, store *spanstore.Store, id pcommon.TraceID, want int) ptrace.Traces {
	t.Helper()
	var td ptrace.Traces
	waitFor(t, fmt.Sprintf("%d spans of trace %x", want, id), func() bool {
		var err error
		td, err = store.Trace(context.Background(), id)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("read trace: %v", err)
		}
		return err == nil && td.SpanCount() == want
	})
	return td
}

type storedSpan struct {
	res  pcommon.Resource
	span ptrace.Span
}

func spansByID(td ptrace.Traces) map[pcommon.SpanID]storedSpan {
	out := map[pcommon.SpanID]storedSpan{}
	eachSpan(td, func(rs ptrace.ResourceSpans, sp ptrace.Span) { out[sp.SpanID()] = storedSpan{rs.Resource(), sp} })
	return out
}

// checkJaegerSample checks, field by field, the sample as read back from
// the database: ids, parent, references, kind and status from tags,
// process tags as resource attributes, logs as events.
func checkJaegerSample(t *testing.T, s sample, td ptrace.Traces) {
	t.Helper()
	spans := spansByID(td)
	root, ok := spans[spanID(rootSpanID)]
	if !ok {
		t.Fatalf("root span %x missing; got %v", spanID(rootSpanID), spans)
	}
	child, ok := spans[spanID(childSpanID)]
	if !ok {
		t.Fatalf("child span missing")
	}
	for _, sp := range []storedSpan{root, child} {
		if sp.span.TraceID() != s.traceID() {
			t.Errorf("trace id = %s, want %s (64-bit id in the low half)", sp.span.TraceID(), s.traceID())
		}
		wantRes := map[string]any{"service.name": "checkout", "hostname": "host-1", "region": "eu-west", "pid": int64(42)}
		if got := sp.res.Attributes().AsRaw(); !equalJSON(got, wantRes) {
			t.Errorf("resource attributes = %v, want %v", got, wantRes)
		}
	}
	r := root.span
	if r.Name() != "GET /cart" || r.Kind() != ptrace.SpanKindServer || !r.ParentSpanID().IsEmpty() {
		t.Errorf("root: name %q kind %v parent %s", r.Name(), r.Kind(), r.ParentSpanID())
	}
	if got, want := r.StartTimestamp().AsTime(), s.start; !got.Equal(want) {
		t.Errorf("root start = %s, want %s", got, want)
	}
	if got := r.EndTimestamp().AsTime().Sub(r.StartTimestamp().AsTime()); got != 1500*time.Microsecond {
		t.Errorf("root duration = %s, want 1.5ms", got)
	}
	if r.Status().Code() != ptrace.StatusCodeError {
		t.Errorf("root status = %v, want Error (error=true tag)", r.Status().Code())
	}
	// Tags are stored as sent: no renaming to the current semantic
	// conventions, and error=true kept besides the status it set.
	wantAttrs := map[string]any{"http.method": "GET", "http.status_code": int64(500), "error": true,
		"http.url": "http://shop/cart", "peer.service": "cart-db", "ratio": 0.25, "blob": []byte{1, 2, 3}}
	if got := r.Attributes().AsRaw(); !equalJSON(got, wantAttrs) {
		t.Errorf("root attributes = %v, want %v", got, wantAttrs)
	}
	if r.Events().Len() != 1 {
		t.Fatalf("root has %d events, want 1", r.Events().Len())
	}
	ev := r.Events().At(0)
	if ev.Name() != "exception" || !ev.Timestamp().AsTime().Equal(s.start.Add(100*time.Microsecond)) {
		t.Errorf("event = %q at %s", ev.Name(), ev.Timestamp().AsTime())
	}
	if got := ev.Attributes().AsRaw(); !equalJSON(got, map[string]any{"message": "boom"}) {
		t.Errorf("event attributes = %v", got)
	}

	c := child.span
	if c.Name() != "SELECT cart" || c.Kind() != ptrace.SpanKindClient || c.ParentSpanID() != spanID(rootSpanID) {
		t.Errorf("child: name %q kind %v parent %s", c.Name(), c.Kind(), c.ParentSpanID())
	}
	if c.Status().Code() != ptrace.StatusCodeOk {
		t.Errorf("child status = %v, want Ok (otel.status_code=OK)", c.Status().Code())
	}
	if got := c.Attributes().AsRaw(); !equalJSON(got, map[string]any{"db.system": "postgresql", "otel.status_code": "OK"}) {
		t.Errorf("child attributes = %v", got)
	}
	if c.Links().Len() != 1 {
		t.Fatalf("child has %d links, want 1 (FOLLOWS_FROM)", c.Links().Len())
	}
	l := c.Links().At(0)
	wantLinked := pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	if l.TraceID() != wantLinked || l.SpanID() != spanID(linkedSpanID) {
		t.Errorf("link = %s/%s, want %s/%s", l.TraceID(), l.SpanID(), wantLinked, spanID(linkedSpanID))
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// uiTrace is the part of the Jaeger query API's trace the test checks.
type uiTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID     string `json:"spanID"`
		References []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		ProcessID string  `json:"processID"`
		Tags      []uiTag `json:"tags"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string  `json:"serviceName"`
		Tags        []uiTag `json:"tags"`
	} `json:"processes"`
}

type uiTag struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// checkJaegerAPI reads the sample back through the Jaeger query API, by
// its 16-hex-digit id, and checks ids and references as the Jaeger UI
// sees them.
func checkJaegerAPI(t *testing.T, apiURL string, s sample) {
	t.Helper()
	id := fmt.Sprintf("%016x", uint64(s.traceLow))
	resp, err := http.Get(apiURL + "/api/traces/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data []uiTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != http.StatusOK || len(env.Data) != 1 {
		t.Fatalf("GET /api/traces/%s: status %d, err %v, %d traces", id, resp.StatusCode, err, len(env.Data))
	}
	tr := env.Data[0]
	if tr.TraceID != id || len(tr.Spans) != 2 {
		t.Fatalf("trace %q with %d spans, want %q with 2", tr.TraceID, len(tr.Spans), id)
	}
	// The tags exactly as sent, with their types, and no other: the
	// process's, the root's (legacy HTTP names, error=true, peer.service)
	// and the child's (otel.status_code=OK).
	wantTags := map[string]string{
		fmt.Sprintf("%016x", uint64(rootSpanID)): `[{"key":"blob","type":"binary","value":"AQID"},{"key":"error","type":"bool","value":true},` +
			`{"key":"http.method","type":"string","value":"GET"},{"key":"http.status_code","type":"int64","value":500},` +
			`{"key":"http.url","type":"string","value":"http://shop/cart"},{"key":"peer.service","type":"string","value":"cart-db"},` +
			`{"key":"ratio","type":"float64","value":0.25},{"key":"span.kind","type":"string","value":"server"}]`,
		fmt.Sprintf("%016x", uint64(childSpanID)): `[{"key":"db.system","type":"string","value":"postgresql"},` +
			`{"key":"otel.status_code","type":"string","value":"OK"},{"key":"span.kind","type":"string","value":"client"}]`,
	}
	wantProcess := `[{"key":"hostname","type":"string","value":"host-1"},{"key":"pid","type":"int64","value":42},{"key":"region","type":"string","value":"eu-west"}]`
	for _, sp := range tr.Spans {
		p := tr.Processes[sp.ProcessID]
		if p.ServiceName != "checkout" {
			t.Errorf("span %s: process %q", sp.SpanID, p.ServiceName)
		}
		if got, _ := json.Marshal(p.Tags); string(got) != wantProcess {
			t.Errorf("span %s: process tags\n got %s\nwant %s", sp.SpanID, got, wantProcess)
		}
		if got, _ := json.Marshal(sp.Tags); string(got) != wantTags[sp.SpanID] {
			t.Errorf("span %s: tags\n got %s\nwant %s", sp.SpanID, got, wantTags[sp.SpanID])
		}
		if sp.SpanID != fmt.Sprintf("%016x", uint64(childSpanID)) {
			continue
		}
		refs := fmt.Sprint(sp.References)
		want := fmt.Sprintf("[{CHILD_OF %s %016x} {FOLLOWS_FROM %s %016x}]", id, uint64(rootSpanID),
			hex.EncodeToString([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}), uint64(linkedSpanID))
		if refs != want {
			t.Errorf("child references = %s, want %s", refs, want)
		}
	}
}

// TestTransportsStoreEveryField sends the sample through every Jaeger
// transport and encoding (including binary thrift on the compact port and
// compact thrift on the binary port, as misconfigured clients do) into a
// real pipeline and database, then reads each back.
func TestTransportsStoreEveryField(t *testing.T) {
	store, pipe := newStore(t)
	b := setup(t, func(_ *Config, o *Options) { o.Traces = pipe })
	jaegerAPI := jaegerapi.New(traces.New(store, traces.Config{}), nil)
	mux := http.NewServeMux()
	jaegerAPI.Register(mux)
	apiSrv := httptest.NewServer(mux)
	defer apiSrv.Close()

	cases := []struct {
		name string
		send func(t *testing.T, s sample)
	}{
		{"udp compact port, compact thrift", func(t *testing.T, s sample) {
			sendUDP(t, b.r.UDPCompactAddr(), agentMessage(t, s.thrift(), true))
		}},
		{"udp compact port, binary thrift (jaeger-client-node)", func(t *testing.T, s sample) {
			sendUDP(t, b.r.UDPCompactAddr(), agentMessage(t, s.thrift(), false))
		}},
		{"udp binary port, binary thrift", func(t *testing.T, s sample) {
			sendUDP(t, b.r.UDPBinaryAddr(), agentMessage(t, s.thrift(), false))
		}},
		{"udp binary port, compact thrift", func(t *testing.T, s sample) {
			sendUDP(t, b.r.UDPBinaryAddr(), agentMessage(t, s.thrift(), true))
		}},
		{"http thrift", func(t *testing.T, s sample) {
			code, _, body := post(t, "http://"+b.r.HTTPAddr()+"/api/traces", "application/x-thrift", thriftBody(t, s.thrift()), nil)
			if code != http.StatusAccepted {
				t.Fatalf("POST /api/traces: %d %s", code, body)
			}
		}},
		{"grpc", func(t *testing.T, s sample) {
			_, err := collectorClient(t, b.r.GRPCAddr()).PostSpans(context.Background(), &api_v2.PostSpansRequest{Batch: s.model()})
			if err != nil {
				t.Fatalf("PostSpans: %v", err)
			}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSample(0x1122334455667700 + int64(i))
			tc.send(t, s)
			td := readTrace(t, store, s.traceID(), 2)
			checkJaegerSample(t, s, td)
			checkJaegerAPI(t, apiSrv.URL, s)
			checkSearch(t, apiSrv.URL, "checkout", s)
		})
	}
	if got := b.counter(t, "vigil_ingest_spans_stored_total", map[string]string{"protocol": "jaeger_udp_binary"}); got != 4 {
		t.Errorf("binary-thrift UDP spans stored = %v, want 4", got)
	}
	if got := b.counter(t, "vigil_ingest_jaeger_udp_packets_received_total", map[string]string{"listener": "compact"}); got != 2 {
		t.Errorf("packets received on the compact port = %v, want 2", got)
	}
}

// zipkinSample is the Zipkin v2 form of a trace with a 64-bit id: a server
// span with an error tag and an annotation, and a client child with a
// remote endpoint.
func zipkinSample(traceLow uint64, start time.Time) []*zipkinmodel.SpanModel {
	traceID := zipkinmodel.TraceID{Low: traceLow}
	root := zipkinmodel.ID(rootSpanID)
	return []*zipkinmodel.SpanModel{{
		SpanContext: zipkinmodel.SpanContext{TraceID: traceID, ID: root},
		Name:        "get /cart", Kind: zipkinmodel.Server,
		Timestamp: start, Duration: 1500 * time.Microsecond,
		LocalEndpoint: &zipkinmodel.Endpoint{ServiceName: "checkout"},
		Annotations:   []zipkinmodel.Annotation{{Timestamp: start.Add(100 * time.Microsecond), Value: "cache miss"}},
		Tags: map[string]string{"http.method": "GET", "http.status_code": "500", "http.url": "http://shop/cart",
			"peer.service": "cart-db", "error": "true"},
	}, {
		SpanContext: zipkinmodel.SpanContext{TraceID: traceID, ID: childSpanID, ParentID: &root},
		Name:        "select cart", Kind: zipkinmodel.Client,
		Timestamp: start.Add(200 * time.Microsecond), Duration: 800 * time.Microsecond,
		LocalEndpoint:  &zipkinmodel.Endpoint{ServiceName: "checkout"},
		RemoteEndpoint: &zipkinmodel.Endpoint{ServiceName: "postgres"},
		Tags:           map[string]string{"db.system": "postgresql"},
	}}
}

// checkZipkinAPI reads the Zipkin sample back through the Jaeger query
// API: the root's tags exactly as sent, all strings as in Zipkin, and
// span.kind from the span's kind; the child's remote endpoint comes back
// as service.peer.name, which the Zipkin translator makes of it.
func checkZipkinAPI(t *testing.T, apiURL string, s sample) {
	t.Helper()
	id := fmt.Sprintf("%016x", uint64(s.traceLow))
	resp, err := http.Get(apiURL + "/api/traces/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data []uiTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || len(env.Data) != 1 {
		t.Fatalf("GET /api/traces/%s: status %d, err %v", id, resp.StatusCode, err)
	}
	want := map[string]string{
		fmt.Sprintf("%016x", uint64(rootSpanID)): `[{"key":"error","type":"string","value":"true"},{"key":"http.method","type":"string","value":"GET"},` +
			`{"key":"http.status_code","type":"string","value":"500"},{"key":"http.url","type":"string","value":"http://shop/cart"},` +
			`{"key":"peer.service","type":"string","value":"cart-db"},{"key":"span.kind","type":"string","value":"server"}]`,
		fmt.Sprintf("%016x", uint64(childSpanID)): `[{"key":"db.system","type":"string","value":"postgresql"},` +
			`{"key":"service.peer.name","type":"string","value":"postgres"},{"key":"span.kind","type":"string","value":"client"}]`,
	}
	for _, sp := range env.Data[0].Spans {
		if got, _ := json.Marshal(sp.Tags); string(got) != want[sp.SpanID] {
			t.Errorf("span %s: tags\n got %s\nwant %s", sp.SpanID, got, want[sp.SpanID])
		}
	}
}

func checkZipkinSample(t *testing.T, s sample, td ptrace.Traces) {
	t.Helper()
	spans := spansByID(td)
	root, child := spans[spanID(rootSpanID)], spans[spanID(childSpanID)]
	if root.span == (ptrace.Span{}) || child.span == (ptrace.Span{}) {
		t.Fatalf("spans missing: %v", spans)
	}
	for _, sp := range []storedSpan{root, child} {
		if sp.span.TraceID() != s.traceID() {
			t.Errorf("trace id = %s, want %s", sp.span.TraceID(), s.traceID())
		}
		if sn, _ := sp.res.Attributes().Get("service.name"); sn.Str() != "checkout" {
			t.Errorf("service.name = %q", sn.Str())
		}
	}
	r := root.span
	if r.Name() != "get /cart" || r.Kind() != ptrace.SpanKindServer || !r.ParentSpanID().IsEmpty() {
		t.Errorf("root: name %q kind %v parent %s", r.Name(), r.Kind(), r.ParentSpanID())
	}
	if !r.StartTimestamp().AsTime().Equal(s.start) || r.EndTimestamp().AsTime().Sub(s.start) != 1500*time.Microsecond {
		t.Errorf("root times %s..%s", r.StartTimestamp().AsTime(), r.EndTimestamp().AsTime())
	}
	if r.Status().Code() != ptrace.StatusCodeError {
		t.Errorf("root status = %v, want Error (error tag)", r.Status().Code())
	}
	if v, _ := r.Attributes().Get("http.method"); v.Str() != "GET" {
		t.Errorf("root attributes = %v", r.Attributes().AsRaw())
	}
	if r.Events().Len() != 1 || r.Events().At(0).Name() != "cache miss" ||
		!r.Events().At(0).Timestamp().AsTime().Equal(s.start.Add(100*time.Microsecond)) {
		t.Errorf("root events = %d", r.Events().Len())
	}
	c := child.span
	if c.Name() != "select cart" || c.Kind() != ptrace.SpanKindClient || c.ParentSpanID() != spanID(rootSpanID) {
		t.Errorf("child: name %q kind %v parent %s", c.Name(), c.Kind(), c.ParentSpanID())
	}
	if v, _ := c.Attributes().Get("db.system"); v.Str() != "postgresql" {
		t.Errorf("child attributes = %v", c.Attributes().AsRaw())
	}
	if v, _ := c.Attributes().Get("service.peer.name"); v.Str() != "postgres" {
		t.Errorf("child service.peer.name (remote endpoint) = %q; attributes %v", v.Str(), c.Attributes().AsRaw())
	}
}

// findTraces searches through the Jaeger query API and returns the ids
// of the traces found.
func findTraces(t *testing.T, apiURL, service, tags string) []string {
	t.Helper()
	resp, err := http.Get(apiURL + "/api/traces?service=" + service + "&tags=" + url.QueryEscape(tags))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data []uiTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("search %s: status %d, err %v", tags, resp.StatusCode, err)
	}
	var ids []string
	for _, tr := range env.Data {
		ids = append(ids, tr.TraceID)
	}
	return ids
}

// checkSearch searches for the sample by the legacy name its client sent
// (http.status_code=500, an integer for Jaeger, a string for Zipkin), by
// the current name, and by a value it does not carry.
func checkSearch(t *testing.T, apiURL, service string, s sample) {
	t.Helper()
	id := fmt.Sprintf("%016x", uint64(s.traceLow))
	for _, tags := range []string{`{"http.status_code":"500"}`, `{"http.response.status_code":"500"}`, `{"http.method":"GET","http.status_code":"500"}`} {
		if ids := findTraces(t, apiURL, service, tags); !slices.Contains(ids, id) {
			t.Errorf("search %s: traces %v, want %s among them", tags, ids, id)
		}
	}
	if ids := findTraces(t, apiURL, service, `{"http.status_code":"501"}`); len(ids) != 0 {
		t.Errorf("search http.status_code=501: traces %v, want none", ids)
	}
}

func TestZipkinStoresEveryField(t *testing.T) {
	store, pipe := newStore(t)
	b := setup(t, func(_ *Config, o *Options) { o.Traces = pipe })
	jaegerAPI := jaegerapi.New(traces.New(store, traces.Config{}), nil)
	mux := http.NewServeMux()
	jaegerAPI.Register(mux)
	apiSrv := httptest.NewServer(mux)
	defer apiSrv.Close()
	url := "http://" + b.r.ZipkinAddr() + "/api/v2/spans"
	cases := []struct {
		name, contentType string
		encode            func([]*zipkinmodel.SpanModel) ([]byte, error)
	}{
		{"json", "application/json", func(s []*zipkinmodel.SpanModel) ([]byte, error) { return json.Marshal(s) }},
		{"protobuf", "application/x-protobuf", zipkin_proto3.SpanSerializer{}.Serialize},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSample(0x2233445566778800 + int64(i))
			body, err := tc.encode(zipkinSample(uint64(s.traceLow), s.start))
			if err != nil {
				t.Fatal(err)
			}
			if code, _, msg := post(t, url, tc.contentType, body, nil); code != http.StatusAccepted {
				t.Fatalf("POST: %d %s", code, msg)
			}
			checkZipkinSample(t, s, readTrace(t, store, s.traceID(), 2))
			checkZipkinAPI(t, apiSrv.URL, s)
			checkSearch(t, apiSrv.URL, "checkout", s)
		})
	}
}
