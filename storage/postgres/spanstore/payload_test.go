package spanstore

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-obs/vigil/storage/postgres/internal/dict"
)

// staticKeys resolves every id to a name derived from it.
type staticKeys map[uint32]string

func (s staticKeys) KeyName(id uint32) (string, bool) { k, ok := s[id]; return k, ok }

// valueName serves interned values from the same table, offset by 1000.
func (s staticKeys) ValueName(id uint32) (string, bool) { k, ok := s[id+1000]; return k, ok }

// valueKey is an interned value of mapDict: a key id and the string.
type valueKey struct {
	key   uint32
	value string
}

// mapDict is a dict.Source over plain maps that learns every key and
// internable value it is asked for.
type mapDict struct {
	keys   map[string]uint32
	values map[valueKey]uint32
	names  staticKeys
}

func (m *mapDict) KeyID(k string) (uint32, bool) {
	if id, ok := m.keys[k]; ok {
		return id, true
	}
	id := uint32(len(m.keys) + 1)
	m.keys[k], m.names[id] = id, k
	return id, true
}

func (m *mapDict) ValueID(k uint32, v string) (uint32, bool) {
	if id, ok := m.values[valueKey{k, v}]; ok {
		return id, true
	}
	id := uint32(len(m.values) + 1)
	m.values[valueKey{k, v}], m.names[id+1000] = id, v
	return id, true
}

func (m *mapDict) Internable(k string) bool { return true }

func (m *mapDict) ServiceKeyBits(int32) []uint64 { return nil }

func encodeForTest(sp ptrace.Span) ([]byte, staticKeys) {
	d := &mapDict{keys: map[string]uint32{}, values: map[valueKey]uint32{}, names: staticKeys{}}
	e := dict.NewEncoder(d, dict.NewMissing())
	return append([]byte(nil), encodeSpan(e, nil, sp)...), d.names
}

func TestPayloadRoundTrip(t *testing.T) {
	td := richTrace(traceID(1), time.Now())
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	p, names := encodeForTest(sp)
	got := ptrace.NewSpan()
	got.SetStartTimestamp(sp.StartTimestamp())
	if err := decodeSpan(p, names, got); err != nil {
		t.Fatal(err)
	}
	want := ptrace.NewSpan()
	sp.CopyTo(want)
	// Fields kept in columns rather than the payload.
	got.SetTraceID(want.TraceID())
	got.SetSpanID(want.SpanID())
	got.SetName(want.Name())
	got.SetKind(want.Kind())
	got.SetEndTimestamp(want.EndTimestamp())
	got.Status().SetCode(want.Status().Code())
	a, b := ptrace.NewTraces(), ptrace.NewTraces()
	want.CopyTo(a.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty())
	got.CopyTo(b.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty())
	equalTraces(t, a, b)

	// Every truncation is an error, never a panic.
	for i := 0; i < len(p); i++ {
		if err := decodeSpan(p[:i], names, ptrace.NewSpan()); err == nil {
			t.Fatalf("truncated payload of %d/%d bytes decoded without error", i, len(p))
		}
	}
}

// FuzzDecodeSpan feeds arbitrary bytes to the payload decoder: it must
// return an error or a span, never panic or allocate without bound.
func FuzzDecodeSpan(f *testing.F) {
	td := richTrace(traceID(1), time.Now())
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	p, _ := encodeForTest(sp)
	f.Add(p)
	f.Add([]byte{dict.PayloadVersion})
	f.Add([]byte{dict.PayloadVersion, 0, 0, 0, 1, 1, 8 /* a map value */, 0xff, 0xff, 0xff, 0xff, 0x0f})
	keys := staticKeys{}
	for i := uint32(0); i < 64; i++ {
		keys[i] = "k"
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		_ = decodeSpan(b, keys, ptrace.NewSpan())
		res, scope := ptrace.NewResourceSpans(), ptrace.NewScopeSpans()
		_ = dict.DecodeResource(b, b, res.Resource(), scope.Scope())
	})
}
