package robots

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// maxFuzzInput caps the configuration files FuzzSplit tries; real ones are
// a few kilobytes.
const maxFuzzInput = 64 << 10

// FuzzSplit checks that Split never panics and that whenever it succeeds
// and changes the file, the rest is YAML without robot keys that a second
// Split leaves alone. Seeds are the files under testdata/; the corpus the
// fuzzer finds is kept in testdata/fuzz/FuzzSplit.
func FuzzSplit(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range seeds {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > maxFuzzInput {
			t.Skip()
		}
		rest, robots, err := Split(raw)
		if err != nil {
			if rest != nil || robots != nil {
				t.Fatalf("an error with results: rest %q, robots %v", rest, robots)
			}
			return
		}
		if robots == nil {
			t.Fatal("nil robots map without an error")
		}
		for name, r := range robots {
			if r.Len() == 0 {
				t.Errorf("receiver %q is in the map without robots", name)
			}
		}
		if bytes.Equal(rest, raw) {
			return
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(rest, &doc); err != nil {
			t.Fatalf("the rest is not YAML: %v\n%s", err, rest)
		}
		if want, ok := valueWithoutRobots(raw); ok {
			got, ok := valueWithoutRobots(rest)
			if !ok || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("the rest says something else than the file without its robots:\n%v\n%v", got, want)
			}
		}
		again, more, err := Split(rest)
		if err != nil {
			t.Fatalf("second split: %v\n%s", err, rest)
		}
		if len(more) != 0 || !bytes.Equal(again, rest) {
			t.Fatalf("second split found robots %v or changed the rest\n%s", more, rest)
		}
	})
}

// valueWithoutRobots decodes a configuration into plain values (aliases
// and merges applied) and deletes the robot keys of its receivers; ok is
// false when the file cannot be decoded so.
func valueWithoutRobots(raw []byte) (any, bool) {
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return nil, false
	}
	for _, r := range splitList(splitGet(v, "receivers")) {
		for _, k := range []string{keyFeishu, keyDingTalk, keyWeCom} {
			switch m := r.(type) {
			case map[string]any:
				delete(m, k)
			case map[any]any:
				delete(m, k)
			}
		}
	}
	return v, true
}

// splitGet returns key's value in a decoded mapping of either kind.
func splitGet(v any, key string) any {
	switch m := v.(type) {
	case map[string]any:
		return m[key]
	case map[any]any:
		return m[key]
	}
	return nil
}

func splitList(v any) []any {
	l, _ := v.([]any)
	return l
}
