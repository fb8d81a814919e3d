package storage

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
)

// referenceJSONBodyFields is the definition EachJSONBodyField must keep:
// encoding/json into a map of raw values, strings decoded.
func referenceJSONBodyFields(s string) map[string]string {
	t := strings.TrimSpace(s)
	if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' {
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(t), &raw); err != nil {
		return nil
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		var str string
		if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &str) == nil {
			out[k] = str
			continue
		}
		out[k] = string(v)
	}
	return out
}

var jsonFieldSeeds = []string{
	``, `{}`, ` { } `, `{"a":1}`, `{"a" : "b" , "c":[1,{"d":"}"}],"e":{"f":"]"}}`,
	`{"msg":"order placed","user_id":42,"ok":true,"none":null,"f":-1.5e3}`,
	`{"a":"x","a":"y"}`, `{"esc\"aped":"line\nbreak \u00e9 \ud83d\ude00"}`,
	`{"bad":"` + "\xff\xfe" + `"}`, `{"a":1,}`, `{"a":1} trailing`, `{"a":}`, `[1,2]`,
	`{"a":"b"}` + "\u00a0", "\t{\"k\":\"v\"}\n", `{"nested":{"a":{"b":[[],{}]}},"s":"\\"}`,
	`{"a":1}{"b":2}`, `{"a":"\u0000"}`, `{"k":  "v"  }`, `{"a":01}`, `{"":""}`,
}

func TestEachJSONBodyField(t *testing.T) {
	for _, s := range jsonFieldSeeds {
		checkJSONBodyFields(t, s)
	}
	var keys []string
	EachJSONBodyField(`{"a":1,"b":"x","a":2}`, func(k, v string) { keys = append(keys, k+"="+v) })
	if got := strings.Join(keys, ","); got != "a=1,b=x,a=2" {
		t.Fatalf("fields in order with duplicates: %s", got)
	}
}

func FuzzJSONBodyFields(f *testing.F) {
	for _, s := range jsonFieldSeeds {
		f.Add(s)
	}
	f.Fuzz(checkJSONBodyFields)
}

func checkJSONBodyFields(t *testing.T, s string) {
	want := referenceJSONBodyFields(s)
	got := JSONBodyFields(s)
	if (want == nil) != (got == nil) || !maps.Equal(want, got) {
		t.Fatalf("JSONBodyFields(%q) = %q, encoding/json gives %q", s, got, want)
	}
}

// BenchmarkJSONBodyFields compares the scanner with encoding/json into a
// map on a typical JSON log line.
func BenchmarkJSONBodyFields(b *testing.B) {
	const line = `{"level":"info","ts":"2026-12-07T10:00:00.123Z","msg":"order placed","order_id":"o-93412","user_id":42,"amount":19.99,"items":[{"sku":"a-1","n":2}],"ok":true}`
	b.Run("scanner", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			EachJSONBodyField(line, func(string, string) {})
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			referenceJSONBodyFields(line)
		}
	})
}
