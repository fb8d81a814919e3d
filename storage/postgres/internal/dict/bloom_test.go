package dict

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestJaegerForm(t *testing.T) {
	bytes := pcommon.NewValueBytes()
	bytes.Bytes().FromRaw([]byte{1, 2, 255})
	tests := []struct {
		name   string
		v      pcommon.Value
		want   string
		differ bool
	}{
		{"double same", pcommon.NewValueDouble(0.25), "", false},
		{"double rounded", pcommon.NewValueDouble(3.14159265358979), "3.141592654", true},
		{"double small", pcommon.NewValueDouble(1e-7), "1e-07", true},
		{"double large", pcommon.NewValueDouble(12345678901), "1.23456789e+10", true},
		{"bytes", bytes, "0102ff", true},
		{"int", pcommon.NewValueInt(500), "", false},
		{"bool", pcommon.NewValueBool(true), "", false},
		{"string", pcommon.NewValueStr("x"), "", false},
	}
	for _, tt := range tests {
		got, ok := JaegerForm(tt.v)
		if got != tt.want || ok != tt.differ {
			t.Errorf("%s: JaegerForm = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.differ)
		}
		// Both forms pass the Bloom filter of a map holding the value.
		m := pcommon.NewMap()
		tt.v.CopyTo(m.PutEmpty("k"))
		b := AttributesBloom(m)
		for _, form := range []string{tt.v.AsString(), got} {
			if form == "" {
				continue
			}
			if mask := BloomMask("k", form); b&mask != mask {
				t.Errorf("%s: Bloom filter misses form %q", tt.name, form)
			}
		}
	}
}
