package dict

import (
	"errors"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigil-obs/vigil/storage/postgres/internal/pgcore"
)

// names is a Source and Names over plain maps that learns every key and
// value it is asked for.
type names struct {
	keys   map[string]uint32
	byID   map[uint32]string
	values map[uint32]string
}

func newNames() *names {
	return &names{keys: map[string]uint32{}, byID: map[uint32]string{}, values: map[uint32]string{}}
}

func (n *names) KeyID(k string) (uint32, bool) {
	if id, ok := n.keys[k]; ok {
		return id, true
	}
	id := uint32(len(n.keys) + 1)
	n.keys[k], n.byID[id] = id, k
	return id, true
}

func (n *names) ValueID(uint32, string) (uint32, bool) { return 0, false }
func (n *names) Internable(string) bool                { return false }
func (n *names) ServiceKeyBits(int32) []uint64         { return nil }
func (n *names) KeyName(id uint32) (string, bool)      { k, ok := n.byID[id]; return k, ok }
func (n *names) ValueName(id uint32) (string, bool)    { v, ok := n.values[id]; return v, ok }

func TestResourceRoundTrip(t *testing.T) {
	res, scope := pcommon.NewResource(), pcommon.NewInstrumentationScope()
	res.Attributes().PutStr("service.name", "checkout")
	res.Attributes().PutEmptyMap("k8s").PutInt("replicas", 3)
	res.SetDroppedAttributesCount(2)
	scope.SetName("otelhttp")
	scope.SetVersion("0.1")
	scope.Attributes().PutBool("sampled", true)
	row := NewResourceRow(7, res, scope)
	if again := NewResourceRow(7, res, scope); again.ID != row.ID {
		t.Fatalf("ids %d and %d for the same resource", row.ID, again.ID)
	}
	gotRes, gotScope := pcommon.NewResource(), pcommon.NewInstrumentationScope()
	if err := DecodeResource(row.Resource, row.Scope, gotRes, gotScope); err != nil {
		t.Fatal(err)
	}
	if !gotRes.Attributes().Equal(res.Attributes()) || gotRes.DroppedAttributesCount() != 2 ||
		gotScope.Name() != "otelhttp" || gotScope.Version() != "0.1" || !gotScope.Attributes().Equal(scope.Attributes()) {
		t.Fatalf("got %v %v", gotRes.Attributes().AsRaw(), gotScope.Attributes().AsRaw())
	}
	for i := range row.Resource {
		err := DecodeResource(row.Resource[:i], row.Scope, pcommon.NewResource(), pcommon.NewInstrumentationScope())
		if !errors.Is(err, pgcore.ErrCorrupt) {
			t.Fatalf("resource truncated at %d: %v", i, err)
		}
	}
}

// TestAttrEquals checks the attribute match that trace search runs on
// payloads without decoding them.
func TestAttrEquals(t *testing.T) {
	n := newNames()
	m := pcommon.NewMap()
	m.PutStr("http.method", "GET")
	m.PutInt("http.status_code", 500)
	m.PutEmptySlice("list").AppendEmpty().SetStr("x")
	e := NewEncoder(n, NewMissing())
	e.Begin(nil)
	e.Attrs(m, true)
	p := append([]byte(nil), e.Payload()...)
	if e.Bloom() == 0 || e.NeedKey() {
		t.Fatalf("bloom %x, need key %v", e.Bloom(), e.NeedKey())
	}
	for _, tc := range []struct {
		key, want string
		match     bool
	}{
		{"http.method", "GET", true},
		{"http.method", "POST", false},
		{"http.status_code", "500", true},
		{"list", `["x"]`, true},
		{"absent", "", false},
	} {
		d, err := NewDecoder(p, n)
		if err != nil {
			t.Fatal(err)
		}
		kid, _ := n.KeyID(tc.key)
		if got := d.AttrEquals(kid, 0, tc.want); got != tc.match || d.Err() != nil {
			t.Errorf("%s=%s: got %v (%v), want %v", tc.key, tc.want, got, d.Err(), tc.match)
		}
	}
	d, _ := NewDecoder(p, n)
	got := pcommon.NewMap()
	d.Attrs(got)
	if err := d.Finish(); err != nil || !got.Equal(m) {
		t.Fatalf("decoded %v (%v)", got.AsRaw(), err)
	}
}
